/**
 * Checks that real/guest/layout.ts mirrors real/guest/payload.h: every address,
 * port and enum value, and every mailbox field's offset and width. Runs without
 * KVM, a compiler or the addon.
 * Leaves out: the payload's behaviour (payload.test.ts).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import * as L from '../../../real/guest/layout.ts';

const header = readFileSync(join(import.meta.dirname, '..', '..', '..', 'real', 'guest', 'payload.h'), 'utf8');

function defines(): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of header.matchAll(/^#define\s+([A-Z0-9_]+)\s+(0x[0-9a-fA-F]+|\d+)(?:ull|u)?\b/gm)) {
    out.set(m[1]!, Number(m[2]));
  }
  return out;
}

function enumValues(name: string): Map<string, number> {
  const body = new RegExp(`enum ${name} \\{([^}]*)\\}`).exec(header)?.[1] ?? '';
  return new Map([...body.matchAll(/([A-Z_]+)\s*=\s*(\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
}

describe('payload.h and layout.ts agree', () => {
  it('on addresses, ports and mailbox constants', () => {
    const d = defines();
    const names = [
      'MAILBOX_ADDR', 'MAILBOX_STRIDE', 'VCPUS_MAX', 'STACK_STRIDE', 'GDT_ADDR', 'PAGE_TABLE_ADDR', 'VQ_DESC_ADDR', 'VQ_AVAIL_ADDR', 'VQ_USED_ADDR', 'VQ_BUF_ADDR',
      'VQ_BUF_STRIDE', 'VQ_SIZE_MAX', 'PAYLOAD_ADDR', 'STACK_TOP', 'WORK_ADDR', 'GUEST_RAM_MIN', 'PORT_DEBUG',
      'PORT_HELLO', 'PORT_HEARTBEAT', 'PORT_DONE', 'PORT_PONG', 'PORT_VQ_NOTIFY', 'MMIO_HELLO', 'MMIO_VQ_NOTIFY',
      'MAILBOX_MAGIC', 'MAILBOX_VERSION', 'VRING_DESC_F_NEXT', 'VRING_DESC_F_WRITE', 'VRING_USED_F_NO_NOTIFY', 'VQ_REPLY',
    ] as const;
    for (const n of names) expect(L[n], n).toBe(d.get(n));
  });

  it('on workload, pattern, notify and state numbers', () => {
    const pairs: Array<[Record<string, number>, string, Record<string, string>]> = [
      [L.Workload, 'workload', { hello: 'WL_HELLO', dirty: 'WL_DIRTY', increment: 'WL_INCREMENT', virtio: 'WL_VIRTIO', tripleFault: 'WL_TRIPLE_FAULT' }],
      [L.Pattern, 'pattern', { uniform: 'PAT_UNIFORM', hotSet: 'PAT_HOT_SET', sequential: 'PAT_SEQUENTIAL' }],
      [L.NotifyKind, 'notify_kind', { pio: 'NOTIFY_PIO', mmio: 'NOTIFY_MMIO' }],
      [L.GuestState, 'state', { idle: 'ST_IDLE', running: 'ST_RUNNING', done: 'ST_DONE', badMailbox: 'ST_BAD_MAILBOX', badParams: 'ST_BAD_PARAMS' }],
    ];
    for (const [ts, cEnum, names] of pairs) {
      const c = enumValues(cEnum);
      expect(Object.keys(ts).length).toBe(c.size);
      for (const [k, cName] of Object.entries(names)) expect(ts[k], `${cEnum}.${k}`).toBe(c.get(cName));
    }
  });

  it('on every mailbox field offset and width', () => {
    const body = /struct mailbox \{([\s\S]*?)\n\};/.exec(header)?.[1] ?? '';
    const fields = [...body.matchAll(/uint(32|64)_t\s+([a-z0-9_]+);\s*\/\*\s*(0x[0-9a-f]+)/g)]
      .map((m) => ({ name: m[2]!, width: Number(m[1]) / 8, offset: Number(m[3]) }))
      .filter((f) => !f.name.startsWith('reserved'));
    expect(fields.length).toBe(Object.keys(L.MAILBOX_FIELDS).length);
    for (const f of fields) {
      expect(L.MAILBOX_FIELDS[f.name as L.MailboxField], f.name).toEqual([f.offset, f.width]);
    }
  });
});

// Postcopy: a guest pre-copy cannot converge completes once the destination
// runs it; its writes to missing pages fault and wait at least a round trip;
// postcopy-preempt takes requested pages past the busy background stream; a
// link-break pauses both sides and migrate-recover resumes them with every
// page placed once and equal to the source's; a planted second placement is
// caught; and the scenario refuses what QEMU would.
import { describe, expect, it } from 'vitest';
import { simulate } from '../../../sim/run.ts';
import { SOCKET_BUFFER_BYTES } from '../../../sim/migration/link.ts';
import { parseScenario, ScenarioError } from '../../../cli/scenario-file.ts';
import { scenario, MS, S } from '../helpers.ts';

/** 2 vCPUs writing 20,000 pages/s each over 256 MiB: more than a 64 MiB/s rate limit moves. */
const guest = (o: { postcopy?: string; qemu?: string; faults?: string; extra?: string; duration?: string; memory?: string } = {}) => `
name: pc
seed: 3
duration: ${o.duration ?? '12s'}
${o.qemu ? `qemu: { version: ${o.qemu} }` : ''}
vm: { memory: ${o.memory ?? '256MiB'}, vcpus: 2 }
guest: { workloads: [ { vcpus: all, dirty: { rate: 20000/s, pattern: uniform } } ] }
${o.faults ?? ''}
migration:
  start: 1s
  max_bandwidth: 64MiB/s
${o.extra ?? ''}
${o.postcopy ? `  postcopy: ${o.postcopy}` : ''}
`;

const LINK_BYTES_PER_S = 10e9 / 8;
/** Pages missing on the destination at the switch (the dirty pages after its last sync). */
const m0 = (m: { iterations: { dirty_pages: number }[] }) => m.iterations.at(-1)!.dirty_pages;
const LATENCY_NS = 100_000;

describe('postcopy', () => {
  it('completes a migration pre-copy cannot converge, with a short switch and faults of at least a round trip', () => {
    const precopy = simulate(scenario(guest())).result.migration!;
    expect(precopy.status).toBe('active');
    expect(precopy.postcopy).toBeNull();

    const { result } = simulate(scenario(guest({ postcopy: '{ start_after_passes: 1 }' })));
    const m = result.migration!;
    expect(result.outcome).toBe('ok');
    expect(m.status).toBe('completed');
    expect(m.verified).toBe(true);
    expect(m.transitions.map((t) => t.to)).toEqual(['setup', 'active', 'postcopy-active', 'completed']);
    const pc = m.postcopy!;
    // After the first full pass: dirty-sync-count 2, then the switch's own sync.
    expect(m.iterations.map((i) => i.n)).toEqual([1, 2, 3]);
    expect(pc.started_at_ns).toBe(m.iterations[1]!.at_ns);
    expect(m.downtime).toBeLessThan(20);
    expect(m.attempts.map((a) => a.outcome)).toEqual(['postcopy']);
    expect(pc.faults).toBeGreaterThan(0);
    expect(pc.fault_latency_p50_ns).toBeGreaterThanOrEqual(2 * LATENCY_NS);
    expect(pc.fault_latency_p50_ns).toBeLessThanOrEqual(pc.fault_latency_p99_ns);
    expect(pc.fault_latency_p99_ns).toBeLessThanOrEqual(pc.fault_latency_max_ns);
    expect(pc.stall_ns).toBeGreaterThanOrEqual(pc.faults * 2 * LATENCY_NS);
    // Every page not sent before the switch came over afterwards, by request or in the background.
    expect(pc.requested_pages + pc.background_pages).toBe(m.iterations[2]!.dirty_pages);
    expect(pc.requested_pages).toBeLessThanOrEqual(pc.postcopy_requests);
    // The destination's vCPUs waited: their stalls show it.
    expect(result.guest.vcpus.every((v) => v.stall_total_ns > 0)).toBe(true);
    expect(result.handlers.some((h) => h.kind === 'userfault')).toBe(true);
  });

  it('waits for a requested page behind the socket, at least the round trip plus the buffer', () => {
    const { result } = simulate(scenario(guest({ postcopy: '{ start_after_passes: 1 }', extra: '  link: { latency: 2ms }' })));
    const pc = result.migration!.postcopy!;
    expect(pc.fault_latency_p50_ns).toBeGreaterThanOrEqual(2 * 2 * MS + (SOCKET_BUFFER_BYTES * 1e9) / LINK_BYTES_PER_S * 0.9);
  });

  it('starts postcopy at start_at, or not at all when pre-copy converges first', () => {
    const at = simulate(scenario(guest({ postcopy: '{ start_at: 3s }' }))).result.migration!;
    expect(at.status).toBe('completed');
    expect(at.postcopy!.started_at_ns).toBeGreaterThanOrEqual(3 * S);
    expect(at.postcopy!.started_at_ns).toBeLessThan(3 * S + 200 * MS);
    // A quiet guest converges in pre-copy: migrate-start-postcopy never takes effect.
    const quiet = simulate(scenario(guest({ postcopy: '{ start_after_passes: 1 }' }).replace('20000/s', '10/s'))).result.migration!;
    expect(quiet.status).toBe('completed');
    expect(quiet.postcopy!.started_at_ns).toBeNull();
    expect(quiet.transitions.map((t) => t.to)).not.toContain('postcopy-active');
  });

  it('paces the background stream with max-postcopy-bandwidth, requested pages not', () => {
    const run = (postcopy: string) => simulate(scenario(guest({ postcopy }))).result.migration!;
    const free = run('{ start_after_passes: 1 }');
    const paced = run('{ start_after_passes: 1, max_bandwidth: 64MiB/s }');
    const postcopyTime = (m: typeof free) => m.transitions.at(-1)!.t_ns - m.postcopy!.started_at_ns!;
    expect(postcopyTime(free)).toBeLessThan(((m0(free) * 4104 * 1e9) / LINK_BYTES_PER_S) * 1.5);
    // The background pages at the limit; a requested page goes out at once (QEMU: postcopy_has_request).
    expect(postcopyTime(paced)).toBeGreaterThan(((paced.postcopy!.background_pages * 4104 * 1e9) / (64 * 2 ** 20)) * 0.9);
    expect(paced.postcopy!.requested_pages).toBeGreaterThan(0);
    expect(paced.postcopy!.fault_latency_p50_ns).toBeLessThan(free.postcopy!.fault_latency_p50_ns);
  });

  for (const qemu of ['7.2', '9.2']) {
    it(`puts requested pages past a busy background stream with postcopy-preempt (QEMU ${qemu})`, () => {
      // 1 GiB: a fault on a page the background stream sent already (which no channel can speed up) stays under 1%.
      const run = (postcopy: string) => simulate(scenario(guest({ qemu, memory: '1GiB', duration: '20s', postcopy }))).result.migration!.postcopy!;
      const plain = run('{ start_after_passes: 1 }');
      const preempt = run('{ start_after_passes: 1, preempt: true }');
      expect(plain.preempt).toBe(false);
      expect(preempt.preempt).toBe(true);
      // Plain postcopy: behind the main channel's full socket buffer.
      expect(plain.fault_latency_p50_ns).toBeGreaterThan((SOCKET_BUFFER_BYTES * 1e9) / LINK_BYTES_PER_S * 0.9);
      expect(preempt.fault_latency_p50_ns).toBeGreaterThanOrEqual(2 * LATENCY_NS);
      expect(preempt.fault_latency_p50_ns).toBeLessThan(2 * LATENCY_NS + 50_000);
      expect(preempt.fault_latency_p99_ns * 2).toBeLessThan(plain.fault_latency_p99_ns);
      expect(preempt.stall_ns).toBeLessThan(plain.stall_ns);
    });
  }

  it('pauses on a link-break, recovers with migrate-recover, and ends with every page as the source had it', () => {
    const base = simulate(scenario(guest({ postcopy: '{ start_after_passes: 1, preempt: true }' }))).result.migration!;
    const cutAt = base.postcopy!.started_at_ns! + 100 * MS;
    const s = scenario(guest({
      qemu: '7.2',
      postcopy: '{ start_after_passes: 1, preempt: true, recover_after: 500ms }',
      faults: `faults: [ { name: cut, kind: link-break, at: ${cutAt}ns, for: 1s } ]`,
    }));
    const { result, world } = simulate(s);
    const m = result.migration!;
    expect(result.outcome).toBe('ok');
    expect(m.status).toBe('completed');
    expect(m.verified).toBe(true);
    const after = m.transitions.filter((t) => t.t_ns >= cutAt);
    expect(after.map((t) => t.to)).toEqual(['postcopy-paused', 'postcopy-recover', 'postcopy-active', 'completed']);
    expect(after[0]!.t_ns).toBe(cutAt);
    expect(after[1]!.t_ns).toBe(cutAt + 1 * S + 500 * MS);
    const pc = m.postcopy!;
    expect(pc).toMatchObject({ paused: 1, recovered: 1 });
    expect(pc.lost_in_flight).toBeGreaterThan(0);
    // A vCPU that faulted during the pause waited through it.
    expect(pc.fault_latency_max_ns).toBeGreaterThan(1 * S);
    // The destination holds what the source held when it stopped, page for page.
    const mig = world.migration!;
    expect(mig.dest.versions.firstDifference(mig.postcopy!.sourceAtSwitch!)).toBe(-1);
    const atSwitch = mig.postcopy!.sourceAtSwitch!;
    const dest = mig.dest.versions.toArray();
    expect(dest.every((v, p) => v === atSwitch.version(p))).toBe(true);
  });

  it('cannot recover before QEMU 3.0: the migration fails and the source does not run the guest again', () => {
    const base = simulate(scenario(guest({ qemu: '2.12', duration: '20s', postcopy: '{ start_after_passes: 1 }' }))).result.migration!;
    expect(base.status).toBe('completed');
    const cutAt = base.postcopy!.started_at_ns! + 100 * MS;
    const { result, world } = simulate(scenario(guest({
      qemu: '2.12', duration: '20s', postcopy: '{ start_after_passes: 1 }',
      faults: `faults: [ { name: cut, kind: link-break, at: ${cutAt}ns, for: 1s } ]`,
    })));
    expect(result.outcome).toBe('ok');
    expect(result.migration!.status).toBe('failed');
    expect(result.migration!.fail_reason).toMatch(/cannot recover/);
    // The destination runs the guest, which waits for its missing pages for good.
    expect(world.migration!.dest.running).toBe(true);
    expect(result.guest.vcpu_stall_max_ns).toBeGreaterThan(5 * S);
  });

  it('runs the guest on neither side when the link breaks in the switch: failed before the package, paused for good after it', () => {
    const pc = '{ start_after_passes: 1 }';
    const base = simulate(scenario(guest({ postcopy: pc }))).result.migration!;
    const sw = base.attempts[0]!;
    const at = (ns: number) => `faults: [ { name: cut, kind: link-break, at: ${ns}ns, for: 10ms } ]`;

    // During vm_stop: the switch's own writes fail (QEMU 7.2's postcopy_start fail path); the VM stays stopped.
    const during = simulate(scenario(guest({ postcopy: pc, faults: at(sw.at_ns + 1) })));
    expect(during.result.migration!.status).toBe('failed');
    expect(during.result.migration!.attempts.map((a) => a.outcome)).toEqual(['failed']);
    expect(during.world.machine.runstate.running).toBe(false);
    expect(during.world.migration!.dest.running).toBe(false);

    // The package sent but not arrived: the destination never entered postcopy, nothing can recover it.
    const after = simulate(scenario(guest({ postcopy: pc, faults: at(sw.at_ns + sw.downtime_ns + 1) })));
    const m = after.result.migration!;
    expect(after.result.outcome).toBe('ok');
    expect(m.status).toBe('postcopy-paused');
    expect(m.postcopy).toMatchObject({ paused: 1, recovered: 0, faults: 0 });
    expect(after.world.machine.runstate.running).toBe(false);
    expect(after.world.migration!.dest.running).toBe(false);
  });

  it('fails a pre-copy migration on a link-break, the source running on', () => {
    const { result, world } = simulate(scenario(guest({ faults: 'faults: [ { name: cut, kind: link-break, at: 2s, for: 10ms } ]' })));
    expect(result.migration!.status).toBe('failed');
    expect(result.migration!.fail_reason).toBe('the migration stream broke (cut)');
    expect(world.machine.runstate.running).toBe(true);
  });

  it('catches a planted second placement of a page (UFFDIO_COPY would fail with EEXIST)', () => {
    const { result } = simulate(scenario(guest({ postcopy: '{ start_after_passes: 1 }', extra: '  bug: resend-queued-page' })));
    expect(result.outcome).toBe('invariant');
    expect(result.error).toMatch(/invariant violated \(duplicate-page\): page \d+ \(guest address 0x[0-9a-f]+\) placed twice on the destination/);
  });

  it('catches a planted lost write at the switch: its flush skipped', () => {
    const disk = `devices: { blk: [ { name: disk0, io: { rate: 200/s, write_fraction: 1, flush_every: 0 } } ] }`;
    const text = guest({ postcopy: '{ start_after_passes: 1 }', faults: disk, extra: '  bug: skip-final-flush' });
    expect(simulate(scenario(text.replace('  bug: skip-final-flush', ''))).result.migration!.verified).toBe(true);
    const { result } = simulate(scenario(text));
    expect(result.outcome).toBe('invariant');
    expect(result.error).toMatch(/lost-write\): disk0 sector \d+/);
  });
});

describe('postcopy in the scenario', () => {
  const error = (text: string): string => {
    try {
      parseScenario(text, 'pc.yaml');
    } catch (e) {
      expect(e).toBeInstanceOf(ScenarioError);
      expect((e as Error).message).not.toContain('\n');
      return (e as Error).message;
    }
    throw new Error('the scenario was accepted');
  };

  it('refuses what the QEMU version does not have, and an unclear start', () => {
    expect(error(guest({ qemu: '1.1', postcopy: '{ start_after_passes: 1 }' })))
      .toMatch(/^pc\.yaml:\d+:\d+: migration\.postcopy: postcopy-ram came with QEMU 2\.5; this scenario follows QEMU 1\.1$/);
    expect(error(guest({ qemu: '5.2', postcopy: '{ start_after_passes: 1, preempt: true }' })))
      .toMatch(/migration\.postcopy\.preempt: postcopy-preempt came with QEMU 7\.1; this scenario follows QEMU 5\.2$/);
    expect(error(guest({ postcopy: '{ start_after_passes: 1, start_at: 3s }' }))).toMatch(/migration\.postcopy: give one of start_after_passes and start_at/);
    expect(error(guest({ postcopy: '{ preempt: true }' }))).toMatch(/migration\.postcopy: give one of start_after_passes and start_at/);
    expect(error(guest({ postcopy: '{ start_at: 500ms }' }))).toMatch(/migration\.postcopy\.start_at: migrate-start-postcopy before the migration starts/);
    expect(error(guest({ postcopy: '{ start_after_passes: 1 }', extra: '  mode: main-loop' }))).toMatch(/migration\.postcopy: postcopy runs from the migration thread/);
    expect(error(guest({ postcopy: '{ start_after_passes: -1 }' }))).toMatch(/migration\.postcopy\.start_after_passes/);
    expect(error(guest({ postcopy: '{ start_after_passes: 1, recover: 1s }' }))).toMatch(/migration\.postcopy/);
  });

  it('takes link-break faults without a device, and postcopy budgets only with postcopy', () => {
    expect(error(guest({ faults: 'faults: [ { name: cut, device: disk0, kind: link-break, at: 2s, for: 1s } ]' })))
      .toMatch(/faults\[0\]\.device: a link-break cuts the migration stream: it takes no device/);
    expect(error(guest({ faults: 'faults: [ { name: slow, kind: stall, at: 2s, for: 1s } ]' }))).toMatch(/faults\[0\]: a stall fault needs "device"/);
    expect(error('name: pc\nduration: 5s\nfaults: [ { name: cut, kind: link-break, at: 2s, for: 1s } ]\n'))
      .toMatch(/faults\[0\]\.kind: a link-break cuts the migration stream: the scenario has no migration section/);
    expect(error(`${guest()}expect: { max_postcopy_fault_p99: 1ms }\n`)).toMatch(/expect\.max_postcopy_fault_p99: max_postcopy_fault_p99 needs migration\.postcopy/);
    const s = parseScenario(`${guest({ postcopy: '{ start_after_passes: 2, preempt: true }' })}expect: { max_postcopy_stall: 1s }\n`, 'pc.yaml');
    expect(s.migration!.postcopy).toEqual({ start_after_passes: 2, start_at_ns: -1, preempt: true, max_bandwidth: 0, recover_after_ns: 1 * S });
  });
});

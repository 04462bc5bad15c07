// Critical-path attribution: for every guest-visible stall over the threshold
// (a vCPU out of guest mode while it wanted to run) and for every migration
// downtime over it, the chain of causes, read off what the run recorded:
// who held the BQL or stopped the VM, in which handlers (outermost first),
// what that thread was waiting on inside them, and which fault delayed the
// I/O it waited for. E.g. "vcpu0 waited 42.1 s for the BQL, held by main-loop
// in migration_completion -> vm_stop -> bdrv_drain_all, waiting in
// aio_poll(qemu_aio_context) for in-flight requests on disk0, delayed by
// fault nfs-stall (slow-flush on disk0)". Chains cross threads: a wait for
// requests in an IOThread says what that IOThread did meanwhile, and a wait
// for an AioContext lock names the thread that held it and what it was
// running ("waiting 358 ms for iothread0's AioContext lock, held by
// iothread0 in virtio-blk.disk0.host-notifier-read, running for 358 ms"). A
// postcopy destination's vCPU that waited for missing pages is explained by
// the migration's pauses and the link-breaks over the wait. Only reads state.
import type { AnyWorld } from '../world.ts';
import type { SlowRun } from './instrument.ts';
import type { LockWait } from '../main-loop/aio.ts';
import { formatNs } from './format.ts';

export interface AttributionChain {
  readonly subject: 'vcpu-stall' | 'downtime';
  readonly at_ns: number;
  readonly duration_ns: number;
  readonly chain: readonly string[];
  readonly text: string;
}

/** Chains kept at most (the first ones in time). */
export const CHAINS_MAX = 200;

function overlap(a0: number, a1: number, b0: number, b1: number): number {
  return Math.max(0, Math.min(a1, b1) - Math.max(a0, b0));
}

export function attribute(world: AnyWorld): AttributionChain[] {
  const { machine, devices, scenario, migration } = world;
  const slow = machine.inst.slow;
  const threshold = machine.inst.thresholdNs;

  /** The most specific slow handler run on thread covering most of [from, to). */
  const activity = (thread: string, from: number, to: number): SlowRun | null => {
    const candidates: [SlowRun, number][] = [];
    for (const s of slow) {
      if (s.thread !== thread) continue;
      const o = overlap(s.at_ns, s.at_ns + s.duration_ns, from, to);
      if (o > 0) candidates.push([s, o]);
    }
    if (candidates.length === 0) return null;
    // Among the runs covering nearly as much as the best, the innermost one.
    const most = Math.max(...candidates.map((c) => c[1]));
    const near = candidates.filter((c) => c[1] >= 0.9 * most);
    near.sort((a, b) => b[0].stack.length - a[0].stack.length || b[1] - a[1]);
    return near[0]![0];
  };

  /** Faults that delayed I/O on the devices a wait label names, during [from, to). */
  const faultsFor = (label: string, from: number, to: number): string[] => {
    const names = new Map<string, number>();
    for (const b of devices.blk) {
      if (!label.includes(b.backend.name)) continue;
      for (const d of b.backend.delays) {
        const o = overlap(d.from_ns, d.to_ns, from, to);
        if (o > 0) names.set(d.fault, (names.get(d.fault) ?? 0) + o);
      }
    }
    return [...names.entries()].sort((a, b) => b[1] - a[1]).map(([name]) => {
      const f = scenario.faults.find((x) => x.name === name);
      return f ? `fault ${name} (${f.kind} on ${f.device})` : `fault ${name}`;
    });
  };

  /** Threads whose work others wait for: IOThreads and vhost workers. */
  const others = [...machine.iothreads.keys(), ...devices.net.flatMap((n) => (n.vhost ? [n.vhost.thread] : []))];
  const mentions = (label: string, id: string) => new RegExp(`(^|[^\\w.-])${id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}($|[^\\w.-])`).test(label);

  /** The AioContext locks by the label a wait for one carries ("iothread0's AioContext lock"). */
  const locks = new Map<string, readonly LockWait[]>();
  for (const t of machine.iothreads.values()) if (t.ctx.lock) locks.set(t.ctx.lock.label, t.ctx.lock.waits);

  /** Who held the lock that thread waited for during [from, to): the holder with the most overlap. */
  const lockHolder = (label: string, thread: string, from: number, to: number): string | null => {
    let best: string | null = null;
    let bestNs = 0;
    for (const w of locks.get(label) ?? []) {
      if (w.thread !== thread || w.holder === '') continue;
      const o = overlap(w.from_ns, w.to_ns, from, to);
      if (o > bestNs) {
        best = w.holder;
        bestNs = o;
      }
    }
    return best;
  };

  /** "<who> <thread> in a -> b -> c", "waiting in aio_poll(...) for ...", "delayed by fault f"; depth bounds the hops across threads. */
  const explain = (who: string, thread: string, from: number, to: number, depth = 0): string[] => {
    const act = activity(thread, from, to);
    if (!act) return [`${who} ${thread} (no handler over the threshold)`];
    const steps = [`${who} ${thread} in ${act.stack.join(' -> ')}`];
    if (act.waited_on === 'running') {
      steps.push(`running for ${formatNs(act.duration_ns)}`);
      return steps;
    }
    steps.push(`waiting ${formatNs(act.waited_ns)} ${locks.has(act.waited_on) ? 'for' : 'in'} ${act.waited_on}`);
    const runFrom = Math.max(from, act.at_ns);
    const runTo = Math.min(to, act.at_ns + act.duration_ns);
    const holder = locks.has(act.waited_on) ? lockHolder(act.waited_on, thread, runFrom, runTo) : null;
    if (holder !== null && depth < 2) steps.push(...explain('held by', holder, runFrom, runTo, depth + 1));
    // Work that runs on another event loop (an IOThread's requests, a vhost worker's flush): what it did meanwhile.
    for (const id of others) {
      if (locks.has(act.waited_on) || !mentions(act.waited_on, id) || id === thread || depth >= 2) continue;
      const there = activity(id, runFrom, runTo);
      steps.push(there
        ? `${id} meanwhile in ${there.stack.join(' -> ')} for ${formatNs(there.duration_ns)}`
        : `${id} meanwhile free (no handler over the threshold): the requests wait on the backend`);
    }
    for (const f of faultsFor(act.waited_on, from, to)) steps.push(`delayed by ${f}`);
    return steps;
  };

  const chains: AttributionChain[] = [];
  const push = (subject: AttributionChain['subject'], at: number, dur: number, chain: string[]) => {
    if (chains.length < CHAINS_MAX) chains.push({ subject, at_ns: at, duration_ns: dur, chain, text: chain.join(', ') });
  };

  // Downtimes first: they are few and must not be crowded out by vCPU stalls.
  for (const a of migration?.attempts ?? []) {
    if (a.downtime_ns <= threshold) continue;
    const p = a.phases;
    const phases: [string, number][] = [
      ['stopping the vCPUs', p.stop_ns], ['bdrv_drain_all', p.drain_ns], ['bdrv_flush_all', p.flush_ns],
      ['the final RAM pass', p.final_ram_ns], ['device state', p.device_state_ns], ['the destination start', p.resume_ns],
    ];
    const [top, ns] = phases.reduce((m, x) => (x[1] > m[1] ? x : m));
    let phase = top;
    const stop = machine.stops.find((x) => x.at_ns >= a.at_ns && x.at_ns <= a.at_ns + a.downtime_ns);
    // The drain phase includes vm_state_notify's handlers: a dataplane stop drains there, before bdrv_drain_all.
    const act = stop ? activity(stop.thread, a.at_ns, a.at_ns + a.downtime_ns) : null;
    if (phase === 'bdrv_drain_all' && act && act.stack.includes('vm_stop') && !act.stack.includes('bdrv_drain_all')) {
      const inner = act.stack[act.stack.indexOf('vm_stop') + 1];
      if (inner) phase = `the drain in vm_state_notify (${inner})`;
    }
    const chain = [`downtime ${formatNs(a.downtime_ns)} of completion attempt ${a.n} (${a.outcome}${a.reason ? `: ${a.reason}` : ''})`,
      `${formatNs(ns)} of it in ${phase}`];
    if (stop) chain.push(...explain('on', stop.thread, a.at_ns, a.at_ns + a.downtime_ns));
    push('downtime', a.at_ns, a.downtime_ns, chain);
  }
  const stalls = machine.vcpus.flatMap((v) => v.stalls).sort((a, b) => a.from_ns - b.from_ns || (a.vcpu < b.vcpu ? -1 : 1));
  for (const s of stalls) {
    // Bounded work: past CHAINS_MAX chains no more are explained (each explanation scans the slow runs).
    if (chains.length >= CHAINS_MAX) break;
    const dur = s.to_ns - s.from_ns;
    if (s.fault_ns > s.stopped_ns && s.fault_ns > s.bql_wait_ns) {
      const chain = [`${s.vcpu} waited ${formatNs(s.fault_ns)} for pages missing on the postcopy destination`];
      for (const t of migration?.transitions ?? []) {
        if (t.to === 'postcopy-paused' && t.t_ns < s.to_ns && t.t_ns >= s.from_ns - threshold) chain.push(`the migration paused at ${formatNs(t.t_ns)} (postcopy-paused)`);
      }
      for (const f of scenario.faults) {
        if (f.kind === 'link-break' && overlap(f.at_ns, f.at_ns + f.for_ns, s.from_ns, s.to_ns) > 0) chain.push(`the stream cut by fault ${f.name} (link-break)`);
      }
      push('vcpu-stall', s.from_ns, dur, chain);
      continue;
    }
    if (s.stopped_ns >= s.bql_wait_ns) {
      const stop = [...machine.stops].reverse().find((x) => x.at_ns <= s.from_ns + s.stopped_ns && x.at_ns >= s.from_ns - threshold)
        ?? [...machine.stops].reverse().find((x) => x.at_ns <= s.to_ns);
      const head = `${s.vcpu} was stopped for ${formatNs(s.stopped_ns)} (vm_stop to ${s.stopped_state || stop?.state || 'a stop state'})`;
      push('vcpu-stall', s.from_ns, dur, stop ? [head, ...explain('by', stop.thread, s.from_ns, s.to_ns)] : [head]);
    } else {
      const holder = s.bql_holder || 'another thread';
      push('vcpu-stall', s.from_ns, dur, [
        `${s.vcpu} waited ${formatNs(s.bql_wait_ns)} for the BQL`,
        ...(s.bql_holder ? explain('held by', s.bql_holder, s.from_ns, s.to_ns) : [`held by ${holder}`]),
      ]);
    }
  }

  return chains.sort((x, y) => x.at_ns - y.at_ns);
}

// Measures this host for real/qemu/README.md: loopback TCP, the guest's boot
// time and achieved dirty rate per pattern and target rate, and one
// unthrottled migration's bandwidth. Run: npx tsx real/qemu/measure.ts [--quick]
// Prints JSON lines. Leaves out: statistics over repeated runs.
import { parseScenario } from '../../cli/scenario-file.ts';
import { measureLoopback } from './loopback.ts';
import { runOnQemu } from './run.ts';

const quick = process.argv.includes('--quick');
const out = (o: unknown) => console.log(JSON.stringify(o));

out({ loopback: await measureLoopback() });

const patterns = quick ? ['uniform'] : ['uniform', 'hotset', 'sequential', 'increment'];
const rates = quick ? [2000] : [2000, 20000, 100000];
for (const pattern of patterns) {
  for (const rate of rates) {
    const s = parseScenario(`
name: rate-${pattern}-${rate}
duration: 4s
vm: { memory: 128MiB }
guest:
  workloads:
    - vcpus: all
      dirty: { rate: ${rate}/s, pattern: ${pattern}${pattern === 'hotset' ? ', hot_set: 16MiB, cold: 5%' : ''} }
`, 'measure.yaml');
    const r = await runOnQemu(s);
    const st = r.guest.status.filter((x) => x.side === 'source');
    out({ pattern, target: rate, achieved: r.guest.achieved_rate, per_second: st.map((x) => x.rate), boot_ms: r.qemu.boot_ms, lost_ticks: r.guest.lost_ticks });
  }
}

const mem = quick ? '128MiB' : '512MiB';
const m = await runOnQemu(parseScenario(`
name: unthrottled
duration: 30s
vm: { memory: ${mem} }
guest:
  workloads:
    - vcpus: all
      dirty: { rate: 1000/s, pattern: uniform }
migration:
  start: 500ms
  max_bandwidth: 100GiB/s
  downtime_limit: 300ms
`, 'measure.yaml'));
const g = m.migration!;
out({
  unthrottled: {
    memory: mem, status: g.status, 'total-time': g['total-time'], downtime: g.downtime, mbps: g.ram.mbps,
    transferred: g.ram.transferred, normal: g.ram.normal, duplicate: g.ram.duplicate, syncs: g.ram['dirty-sync-count'], verified: g.verified, check_ms: m.verify?.check_ms,
  },
});

import { EventQueue } from './sim/scheduler/event-queue.ts';
import { Scheduler } from './sim/scheduler/scheduler.ts';
import { Rng } from './sim/scheduler/random.ts';
// Ziggurat tables for Exp(1), 256 layers (Marsaglia & Tsang 2000).
const N = 256, R = 7.69711747013104972, V = 0.0039496598225815571993;
const X = new Float64Array(N + 1), F = new Float64Array(N + 1), ZR = new Float64Array(N);
X[0] = V * Math.exp(R); X[1] = R;
for (let i = 1; i < N - 1; i++) X[i + 1] = -Math.log(V / X[i]! + Math.exp(-X[i]!));
X[N] = 0;
for (let i = 0; i <= N; i++) F[i] = Math.exp(-X[i]!);
for (let i = 0; i < N; i++) ZR[i] = X[i + 1]! / X[i]!;
console.log('X[255]', X[255], 'X[254]', X[254]);
function zexp(rng: Rng): number {
  for (;;) {
    const u = rng.next() * N;
    const i = u | 0;
    const f = u - i;
    if (f < ZR[i]!) return f * X[i]!;
    if (i === 0) return R - Math.log(1 - rng.next());
    const x = f * X[i]!;
    if (F[i]! + rng.next() * (F[i + 1]! - F[i]!) < Math.exp(-x)) return x;
  }
}
const rng = new Rng('t');
let s = 0, s2 = 0; const M = 2e6; const hist = new Float64Array(20);
for (let k = 0; k < M; k++) { const x = zexp(rng); s += x; s2 += x * x; if (x < 4) hist[Math.floor(x * 5)]!++; }
console.log('mean', s / M, 'var', s2 / M - (s / M) ** 2);
// KS vs CDF at some points
for (const q of [0.1, 0.5, 1, 2, 3]) { let c = 0; const r2 = new Rng('k'); for (let k = 0; k < 200000; k++) if (zexp(r2) < q) c++; console.log('P(x<', q, ')', (c / 200000).toFixed(4), 'exact', (1 - Math.exp(-q)).toFixed(4)); }
const E = 5e6;
function rate(f: () => void) { let best = 0; for (let r = 0; r < 5; r++) { const t = performance.now(); f(); const sec = (performance.now() - t) / 1000; best = Math.max(best, E / sec); } return (best / 1e6).toFixed(1) + ' M/s'; }
let acc = 0;
console.log('log exp alone', rate(() => { for (let i = 0; i < E; i++) acc += rng.exponential(1000); }));
console.log('zig exp alone', rate(() => { for (let i = 0; i < E; i++) acc += 1000 * zexp(rng); }));
{
  const sch = new Scheduler({ seed: 1 }); const r = sch.random.stream('h');
  let tag = 0;
  class H { fire(arg: number) { sch.after(Math.round(1000 * zexp(r)), tag, arg); } }
  const h = new H(); tag = sch.register(h);
  for (let i = 0; i < 1000; i++) h.fire(i);
  console.log('scheduler+zig', rate(() => { sch.run(sch.now + E); }));
}
{
  const sch = new Scheduler({ seed: 1 }); const r = sch.random.stream('h');
  let tag = 0;
  class H { fire(arg: number) { sch.after(Math.round(r.exponential(1000)), tag, arg); } }
  const h = new H(); tag = sch.register(h);
  for (let i = 0; i < 1000; i++) h.fire(i);
  console.log('scheduler+log', rate(() => { sch.run(sch.now + E); }));
}
console.log(acc > 0);

// Human-readable times for reports and attribution chains: "358 ms", "42.1 s".

/** Formats ns for people: "358 ms", "42.1 s", "12 us". */
export function formatNs(ns: number): string {
  const abs = Math.abs(ns);
  if (abs >= 10e9) return `${(ns / 1e9).toFixed(1)} s`;
  if (abs >= 1e9) return `${(ns / 1e9).toFixed(2)} s`;
  if (abs >= 1e6) return `${Math.round(ns / 1e6)} ms`;
  if (abs >= 1e3) return `${Math.round(ns / 1e3)} us`;
  return `${Math.round(ns)} ns`;
}

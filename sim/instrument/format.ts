// Human-readable times and sizes for reports and attribution chains:
// "358 ms", "42.1 s", "4.0 GiB".

/** Formats ns for people: "358 ms", "42.1 s", "12 us". */
export function formatNs(ns: number): string {
  const abs = Math.abs(ns);
  if (abs >= 10e9) return `${(ns / 1e9).toFixed(1)} s`;
  if (abs >= 1e9) return `${(ns / 1e9).toFixed(2)} s`;
  if (abs >= 1e6) return `${Math.round(ns / 1e6)} ms`;
  if (abs >= 1e3) return `${Math.round(ns / 1e3)} us`;
  return `${Math.round(ns)} ns`;
}

/** Formats bytes for people: "4.0 GiB". */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

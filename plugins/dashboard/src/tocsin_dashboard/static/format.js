// Times, durations and numbers as people read them.

const pad = (n, w = 2) => String(n).padStart(w, "0");

/** Unix nanoseconds as local `YYYY-MM-DD HH:MM:SS`. */
export function time(ns) {
  if (ns === null || ns === undefined) return "—";
  const d = new Date(Number(ns) / 1e6);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Unix nanoseconds as local `HH:MM:SS.mmm` (for log lines). */
export function clock(ns) {
  const d = new Date(Number(ns) / 1e6);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** Seconds as `1.2 ms`, `3.4 s`, `5m 6s`, `2h 3m`. */
export function seconds(s) {
  if (s === null || s === undefined || Number.isNaN(s)) return "—";
  if (s < 1e-3) return `${(s * 1e6).toFixed(0)} µs`;
  if (s < 1) return `${(s * 1e3).toFixed(s < 0.01 ? 2 : 1)} ms`;
  if (s < 60) return `${s.toFixed(2)} s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${Math.floor(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

/** How long ago a nanosecond time was. */
export function age(ns) {
  if (ns === null || ns === undefined) return "—";
  return seconds(Math.max(0, Date.now() / 1e3 - Number(ns) / 1e9));
}

/** A number with at most 4 significant digits. */
export function num(v) {
  if (v === null || v === undefined) return "—";
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v)) return v.toLocaleString("en");
  return Math.abs(v) >= 1e4 ? v.toFixed(0) : String(Number(v.toPrecision(4)));
}

/** Labels as `{a="x", b="y"}` text. */
export function labels(obj) {
  const parts = Object.entries(obj || {}).map(([k, v]) => `${k}="${v}"`);
  return `{${parts.join(", ")}}`;
}

/** A range preset (`15m`, `1h`, `24h`) in seconds. */
export function presetSeconds(preset) {
  const m = /^(\d+)([smhd])$/.exec(preset || "");
  if (!m) return 3600;
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2]];
}

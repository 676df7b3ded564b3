/**
 * Hand-written SVG charts for bench/RESULTS.md: a line chart (linear or logarithmic x axis)
 * and a horizontal bar chart. Plain SVG 1.1 with inline styles, so the files render the same
 * on GitHub, in a browser and in an editor's preview.
 */

export interface Series {
  name: string;
  points: { x: number; y: number }[];
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e'];
/** Text attributes: the font, at `size` pixels. */
const font = (size = 12) => `font-family="sans-serif" font-size="${size}"`;

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** A short label for a value: 1.5M, 250k, 64. */
export function shortNumber(n: number): string {
  const f = (v: number, u: string) => `${Number(v.toPrecision(3))}${u}`;
  if (n >= 1e9) return f(n / 1e9, 'G');
  if (n >= 1e6) return f(n / 1e6, 'M');
  if (n >= 1e3) return f(n / 1e3, 'k');
  return f(n, '');
}

/** About five round ticks from 0 to at least `max`. */
function niceTicks(max: number): number[] {
  const raw = max / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const ticks: number[] = [];
  for (let v = 0; v <= max + step * 1e-9; v += step) ticks.push(v);
  if (ticks[ticks.length - 1]! < max) ticks.push(ticks[ticks.length - 1]! + step);
  return ticks;
}

/**
 * A line chart of `series` with points marked and labelled; `logX` puts x on a log10 scale
 * (ticks at the points' x values). y starts at 0.
 */
export function lineChart(o: {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  logX?: boolean;
  xFormat?: (v: number) => string;
  yFormat?: (v: number) => string;
}): string {
  const W = 720;
  const H = 420;
  const m = { l: 70, r: 20, t: 40, b: 60 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const xs = [...new Set(o.series.flatMap((s) => s.points.map((p) => p.x)))].sort((a, b) => a - b);
  const yMax = Math.max(1e-9, ...o.series.flatMap((s) => s.points.map((p) => p.y)));
  const yTicks = niceTicks(yMax);
  const yTop = yTicks[yTicks.length - 1]!;
  const tx = (v: number) => (o.logX ? Math.log10(v) : v);
  const x0 = tx(xs[0] ?? 1);
  const x1 = tx(xs[xs.length - 1] ?? 10);
  const span = x1 - x0 || 1;
  const px = (v: number) => m.l + ((tx(v) - x0) / span) * pw;
  const py = (v: number) => m.t + ph - (v / yTop) * ph;
  const yf = o.yFormat ?? shortNumber;
  const xf = o.xFormat ?? shortNumber;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" ${font(15)} font-weight="bold">${esc(o.title)}</text>`,
  ];
  for (const v of yTicks) {
    const y = py(v).toFixed(1);
    out.push(
      `<line x1="${m.l}" y1="${y}" x2="${m.l + pw}" y2="${y}" stroke="#ddd"/>`,
      `<text x="${m.l - 6}" y="${y}" text-anchor="end" dominant-baseline="middle" ${font()}>${esc(yf(v))}</text>`,
    );
  }
  for (const v of xs) {
    const x = px(v).toFixed(1);
    out.push(
      `<line x1="${x}" y1="${m.t}" x2="${x}" y2="${m.t + ph}" stroke="#eee"/>`,
      `<text x="${x}" y="${m.t + ph + 18}" text-anchor="middle" ${font()}>${esc(xf(v))}</text>`,
    );
  }
  out.push(
    `<line x1="${m.l}" y1="${m.t + ph}" x2="${m.l + pw}" y2="${m.t + ph}" stroke="black"/>`,
    `<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${m.t + ph}" stroke="black"/>`,
    `<text x="${m.l + pw / 2}" y="${H - 18}" text-anchor="middle" ${font()}>${esc(o.xLabel)}</text>`,
    `<text transform="translate(16 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle" ${font()}>${esc(o.yLabel)}</text>`,
  );
  o.series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length]!;
    const pts = [...s.points].sort((a, b) => a.x - b.x);
    const d = pts.map((p) => `${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(' ');
    out.push(`<polyline points="${d}" fill="none" stroke="${c}" stroke-width="2"/>`);
    for (const p of pts) {
      const x = px(p.x).toFixed(1);
      const y = py(p.y).toFixed(1);
      // Labels above the points of the first series, below those of the others.
      // (above them too when below would run into the x axis).
      const below = py(p.y) + 16;
      const ly = i === 0 || below > m.t + ph - 4 ? py(p.y) - 8 : below;
      out.push(
        `<circle cx="${x}" cy="${y}" r="3.5" fill="${c}"/>`,
        `<text x="${x}" y="${ly.toFixed(1)}" text-anchor="middle" ${font(10)} fill="${c}">${esc(yf(p.y))}</text>`,
      );
    }
    const ly = m.t + 8 + i * 18;
    out.push(
      `<line x1="${m.l + pw - 190}" y1="${ly}" x2="${m.l + pw - 170}" y2="${ly}" stroke="${c}" stroke-width="3"/>`,
      `<text x="${m.l + pw - 164}" y="${ly}" dominant-baseline="middle" ${font()}>${esc(s.name)}</text>`,
    );
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** A horizontal bar chart: one bar per entry, its value written at its end. */
export function barChart(o: {
  title: string;
  xLabel: string;
  bars: { label: string; value: number }[];
  format?: (v: number) => string;
}): string {
  const W = 720;
  const barH = 26;
  const gap = 12;
  const longest = Math.max(...o.bars.map((b) => b.label.length));
  const m = { l: Math.min(360, 20 + 7 * longest), r: 70, t: 40, b: 50 };
  const ph = o.bars.length * (barH + gap);
  const H = m.t + ph + m.b;
  const pw = W - m.l - m.r;
  const max = Math.max(1e-9, ...o.bars.map((b) => b.value));
  const ticks = niceTicks(max);
  const top = ticks[ticks.length - 1]!;
  const f = o.format ?? shortNumber;
  const px = (v: number) => m.l + (v / top) * pw;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" ${font(15)} font-weight="bold">${esc(o.title)}</text>`,
  ];
  for (const v of ticks) {
    const x = px(v).toFixed(1);
    out.push(
      `<line x1="${x}" y1="${m.t}" x2="${x}" y2="${m.t + ph}" stroke="#ddd"/>`,
      `<text x="${x}" y="${m.t + ph + 16}" text-anchor="middle" ${font()}>${esc(f(v))}</text>`,
    );
  }
  o.bars.forEach((b, i) => {
    const y = m.t + i * (barH + gap) + gap / 2;
    const w = Math.max(0, px(b.value) - m.l);
    out.push(
      `<text x="${m.l - 8}" y="${y + barH / 2}" text-anchor="end" dominant-baseline="middle" ${font()}>${esc(b.label)}</text>`,
      `<rect x="${m.l}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${COLORS[0]}"/>`,
      `<text x="${(m.l + w + 6).toFixed(1)}" y="${y + barH / 2}" dominant-baseline="middle" ${font()}>${esc(f(b.value))}</text>`,
    );
  });
  out.push(
    `<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${m.t + ph}" stroke="black"/>`,
    `<text x="${m.l + pw / 2}" y="${H - 14}" text-anchor="middle" ${font()}>${esc(o.xLabel)}</text>`,
    '</svg>',
  );
  return `${out.join('\n')}\n`;
}

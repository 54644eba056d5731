// Two tiny SVG charts drawn here (no chart library, no CDN): bars with error bars for
// compare, and a line for a training loss curve.

const NS = "http://www.w3.org/2000/svg";
export const COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f"];

function svg(tag, attrs = {}, text) {
  const n = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  if (text !== undefined) n.textContent = text;
  return n;
}

function niceMax(x) {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  return [1, 2, 2.5, 5, 10].map((m) => m * p).find((v) => v >= x);
}

function axisTicks(root, x0, x1, y0, y1, lo, hi, fmt) {
  for (let i = 0; i <= 4; i++) {
    const v = lo + ((hi - lo) * i) / 4;
    const y = y1 - ((v - lo) / (hi - lo || 1)) * (y1 - y0);
    root.append(svg("line", { x1: x0, x2: x1, y1: y, y2: y, class: "gridline" }));
    root.append(svg("text", { x: x0 - 4, y: y + 3, "text-anchor": "end", class: "tick" }, fmt(v)));
  }
}

// rows: [{label, mean, stderr}]; one panel per metric.
export function barChart(title, rows, { width = 228, height = 184 } = {}) {
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "chart-svg", role: "img" });
  root.append(svg("title", {}, title));
  const [x0, x1, y0, y1] = [40, width - 8, 30, height - 26];
  const top = niceMax(Math.max(...rows.map((r) => (r.mean ?? 0) + (r.stderr ?? 0)), 0));
  root.append(svg("text", { x: width / 2, y: 14, "text-anchor": "middle", class: "chart-title" }, title));
  axisTicks(root, x0, x1, y0, y1, 0, top, (v) => (top <= 1 ? v.toFixed(2) : v.toFixed(1)));
  const slot = (x1 - x0) / Math.max(rows.length, 1);
  const scale = (v) => y1 - (v / top) * (y1 - y0);
  rows.forEach((r, i) => {
    const cx = x0 + slot * (i + 0.5);
    const w = Math.min(44, slot * 0.6);
    if (r.mean !== null && r.mean !== undefined) {
      const bar = svg("rect", { x: cx - w / 2, y: scale(r.mean), width: w, height: Math.max(0, y1 - scale(r.mean)),
        fill: COLORS[i % COLORS.length] });
      bar.append(svg("title", {}, `${r.label}: ${r.mean.toFixed(4)}${r.stderr ? ` ± ${r.stderr.toFixed(4)}` : ""}`));
      root.append(bar);
      if (r.stderr) {
        const [ya, yb] = [scale(r.mean + r.stderr), scale(Math.max(0, r.mean - r.stderr))];
        root.append(svg("path", { d: `M${cx},${ya}V${yb}M${cx - 5},${ya}H${cx + 5}M${cx - 5},${yb}H${cx + 5}`,
          class: "errbar" }));
      }
    }
    const label = r.label.length > 14 ? `${r.label.slice(0, 13)}…` : r.label;
    root.append(svg("text", { x: cx, y: y1 + 14, "text-anchor": "middle", class: "tick" }, label));
  });
  root.append(svg("line", { x1: x0, x2: x1, y1, y2: y1, class: "axis" }));
  return root;
}

// points: [{x, y}] in x order.
export function lineChart(title, points, { width = 560, height = 220, xLabel = "step" } = {}) {
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "chart-svg", role: "img" });
  root.append(svg("title", {}, title));
  root.append(svg("text", { x: width / 2, y: 14, "text-anchor": "middle", class: "chart-title" }, title));
  const [x0, x1, y0, y1] = [48, width - 12, 24, height - 30];
  if (!points.length) {
    root.append(svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "tick" }, "no points yet"));
    return root;
  }
  const xs = points.map((p) => p.x);
  const ys = points.map((p) => p.y);
  const [xmin, xmax] = [Math.min(...xs), Math.max(...xs)];
  let [ymin, ymax] = [Math.min(...ys), Math.max(...ys)];
  if (ymin === ymax) [ymin, ymax] = [ymin - 0.5, ymax + 0.5];
  const sx = (x) => x0 + ((x - xmin) / (xmax - xmin || 1)) * (x1 - x0);
  const sy = (y) => y1 - ((y - ymin) / (ymax - ymin)) * (y1 - y0);
  axisTicks(root, x0, x1, y0, y1, ymin, ymax, (v) => v.toFixed(3));
  root.append(svg("line", { x1: x0, x2: x1, y1, y2: y1, class: "axis" }));
  root.append(svg("text", { x: x0, y: y1 + 16, class: "tick" }, String(xmin)));
  root.append(svg("text", { x: x1, y: y1 + 16, "text-anchor": "end", class: "tick" }, `${xLabel} ${xmax}`));
  const d = points.map((p, i) => `${i ? "L" : "M"}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join("");
  root.append(svg("path", { d, class: "line", fill: "none", stroke: COLORS[0] }));
  if (points.length < 40) {
    for (const p of points) root.append(svg("circle", { cx: sx(p.x), cy: sy(p.y), r: 2.5, fill: COLORS[0] }));
  }
  return root;
}

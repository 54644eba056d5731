// Results: the run dirs in the server's results directory, `evalctl compare` over a selection
// (table and bar charts), and one run's summary and samples.

import { api } from "./api.js";
import { barChart } from "./chart.js";
import { $, beginLoad, el, fmtNum, fmtP, fmtTime, short, tail } from "./dom.js";

const PAGE = 25;
const runPath = (id) => id.split("/").map(encodeURIComponent).join("/");
const selected = new Set();
let detail = { id: null, offset: 0 };

function meanCell(m) {
  if (!m || m.mean === null || m.mean === undefined) return "–";
  return m.stderr === null || m.stderr === undefined ? fmtNum(m.mean) : `${fmtNum(m.mean)} ± ${fmtNum(m.stderr)}`;
}

export async function showRuns() {
  $("#res-list").hidden = false;
  $("#res-detail").hidden = true;
  const body = $("#res-table tbody");
  const load = beginLoad($("#res-table"));
  let list;
  try {
    list = await api("/v1/evalctl/runs");
  } catch (err) {
    if (!load.current()) return;
    body.replaceChildren(el("tr", {}, el("td", { colspan: 8, class: "error" }, err.message)));
    load.done();
    return;
  }
  if (!load.current()) return;
  $("#res-dir").textContent = `in ${list.results_dir}`;
  for (const id of [...selected]) if (!list.data.some((r) => r.id === id)) selected.delete(id);
  if (!list.data.length) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 8, class: "muted" },
      "No runs yet: `evalctl run TASK --model NAME --out DIR` under the results directory.")));
  } else {
    body.replaceChildren(...list.data.map((r) => {
      const box = el("input", { type: "checkbox", "aria-label": `select ${r.id}`, checked: selected.has(r.id) || null,
        disabled: !r.complete || null });
      box.addEventListener("change", () => { box.checked ? selected.add(r.id) : selected.delete(r.id); updateButton(); });
      const primary = r.primary && r.metrics[r.primary];
      return el("tr", { "data-run": r.id },
        el("td", {}, box),
        el("td", {}, el("a", { href: `#/results/${encodeURIComponent(r.id)}` }, r.id)),
        el("td", {}, r.task ?? "–"), el("td", {}, r.model ?? "–"),
        el("td", { class: "num" }, r.num_examples), el("td", { class: "num" }, r.num_failed ?? "–"),
        el("td", {}, r.complete ? (primary ? `${r.primary} ${meanCell(primary)}` : "–") : el("em", {}, "running / unfinished")),
        el("td", {}, fmtTime(r.updated_at)));
    }));
  }
  updateButton();
  load.done();
}

function updateButton() {
  $("#res-compare").disabled = selected.size < 1;
  $("#res-compare").textContent = selected.size ? `Compare selected (${selected.size})` : "Compare selected";
}

async function compareSelected() {
  const out = $("#res-compare-out");
  out.hidden = false;
  out.replaceChildren(el("p", { class: "muted" }, "comparing…"));
  const ids = [...$("#res-table tbody").querySelectorAll("tr[data-run]")]
    .map((tr) => tr.dataset.run).filter((id) => selected.has(id));  // table order: the first is the baseline
  let result;
  try {
    result = await api(`/v1/evalctl/compare?runs=${encodeURIComponent(ids.join(","))}`);
  } catch (err) {
    out.replaceChildren(el("p", { class: "error" }, err.message));
    return;
  }
  const head = el("tr", {}, el("th", {}, "run"), ...result.metrics.map((m) => el("th", { class: "num" }, m)));
  const rows = result.runs.map((row) => el("tr", { "data-run": row.id },
    el("td", {}, el("a", { href: `#/results/${encodeURIComponent(row.id)}` }, row.label)),
    ...result.metrics.map((m) => {
      const c = row.metrics[m];
      const p = c && "p_value" in c ? (c.p_value === null ? "  (p n/a)" : `  (p=${fmtP(c.p_value)})`) : "";
      return el("td", { class: "num" }, meanCell(c) + p);
    })));
  const charts = el("div", { class: "charts" }, ...result.metrics.map((m) => barChart(m, result.runs.map((row) => ({
    label: row.label, mean: row.metrics[m]?.mean ?? null, stderr: row.metrics[m]?.stderr ?? null })))));
  out.replaceChildren(
    el("h2", {}, `vs ${result.baseline}: paired bootstrap, ${result.resamples} resamples`),
    el("table", { class: "grid", id: "res-compare-table" }, el("thead", {}, head), el("tbody", {}, ...rows)),
    charts);
}

function kv(obj) {
  return el("table", { class: "grid compact" }, el("tbody", {}, ...Object.entries(obj).map(([k, v]) =>
    el("tr", {}, el("th", {}, k), el("td", {}, typeof v === "object" && v !== null ? JSON.stringify(v) : String(v))))));
}

function summaryView(s) {
  const metrics = Object.entries(s.metrics || {});
  const parts = [];
  const tables = el("div", { class: "side-by-side" });
  parts.push(el("p", { class: "muted" }, [s.task, s.model, s.complete ? `${s.num_examples} examples, ${s.num_failed} failed`
    : "unfinished (no summary.json yet)", s.updated_at && `updated ${fmtTime(s.updated_at)}`].filter(Boolean).join(" · ")));
  parts.push(tables);
  if (metrics.length) {
    tables.append(el("table", { class: "grid compact", id: "res-metrics" }, el("caption", {}, "Metrics"),
      el("thead", {}, el("tr", {}, ...["metric", "mean", "± stderr", "n"].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...metrics.map(([name, m]) => el("tr", {}, el("td", {}, name), el("td", { class: "num" }, fmtNum(m.mean)),
        el("td", { class: "num" }, fmtNum(m.stderr)), el("td", { class: "num" }, m.n))))));
  }
  const cats = Object.entries(s.by_category || {});
  if (cats.length) {
    const names = metrics.map(([n]) => n);
    tables.append(el("table", { class: "grid compact", id: "res-categories" },
      el("caption", {}, "By category"),
      el("thead", {}, el("tr", {}, el("th", {}, "category"), el("th", { class: "num" }, "n"), ...names.map((n) => el("th", { class: "num" }, n)))),
      el("tbody", {}, ...cats.map(([c, v]) => el("tr", {}, el("td", {}, c), el("td", { class: "num" }, v.num_examples),
        ...names.map((n) => el("td", { class: "num" }, fmtNum(v[n]))))))));
  }
  const meta = {};
  for (const k of ["sampling", "n", "judge", "endpoint", "data_path", "git_commit", "latency_mean_s", "tokens", "timings"]) {
    if (s[k] !== undefined && s[k] !== null) meta[k] = s[k];
  }
  if (s.config) Object.assign(meta, s.config);
  parts.push(el("details", {}, el("summary", {}, "Run settings"), kv(meta)));
  return parts;
}

function sampleRow(rec, scoreNames) {
  const completion = (rec.completions || [])[0] ?? rec.completion ?? "";
  const row = el("tr", { class: "sample", "data-id": rec.id },
    el("td", {}, rec.id), el("td", {}, rec.category ?? ""),
    el("td", { class: "clip", title: "the prompt's end" }, tail(rec.prompt, 48)), el("td", { class: "clip" }, short(completion, 48)),
    el("td", {}, short((rec.extracted || [])[0] ?? "", 24)),
    ...scoreNames.map((n) => el("td", { class: "num" }, fmtNum(rec.scores?.[n], 2))),
    el("td", { class: "error" }, rec.error ? short(rec.error, 40) : ""));
  const full = el("tr", { class: "sample-full", hidden: true }, el("td", { colspan: 6 + scoreNames.length },
    el("div", { class: "label" }, "Prompt"), el("pre", {}, typeof rec.prompt === "string" ? rec.prompt : JSON.stringify(rec.prompt, null, 2)),
    ...(rec.completions || [completion]).map((c, i) => [el("div", { class: "label" }, `Completion ${i + 1}`), el("pre", {}, c ?? "")]),
    el("div", { class: "label" }, "Gold"), el("pre", {}, JSON.stringify(rec.gold ?? {}, null, 2)),
    rec.judge ? [el("div", { class: "label" }, "Judge"), el("pre", {}, JSON.stringify(rec.judge, null, 2))] : null));
  row.addEventListener("click", () => { full.hidden = !full.hidden; });
  return [row, full];
}

async function loadSamples() {
  const { id, offset } = detail;
  const q = $("#res-q").value.trim();
  const params = new URLSearchParams({ offset, limit: PAGE });
  if (q) params.set("q", q);
  if ($("#res-errors").checked) params.set("errors", "true");
  const table = $("#res-samples");
  let page;
  try {
    page = await api(`/v1/evalctl/runs/${runPath(id)}/samples?${params}`);
  } catch (err) {
    $("tbody", table).replaceChildren(el("tr", {}, el("td", { class: "error" }, err.message)));
    return;
  }
  const scoreNames = [...new Set(page.data.flatMap((r) => Object.keys(r.scores || {})))];
  const heads = ["id", "category", "prompt", "completion", "extracted"].map((h) => el("th", {}, h));
  // Long score names may wrap after an underscore, so the table fits without scrolling sideways.
  const scoreHeads = scoreNames.map((n) => el("th", { class: "num", title: n }, n.replaceAll("_", "_\u200b")));
  $("thead", table).replaceChildren(el("tr", {}, ...heads, ...scoreHeads, el("th", {}, "error")));
  $("tbody", table).replaceChildren(...page.data.flatMap((r) => sampleRow(r, scoreNames)));
  const end = Math.min(offset + PAGE, page.total);
  $("#res-count").textContent = page.total ? `${offset + 1}–${end} of ${page.total} (click a row for the full text)` : "no samples";
  $("#res-prev").disabled = offset === 0;
  $("#res-next").disabled = end >= page.total;
}

export async function showRun(id) {
  $("#res-list").hidden = true;
  $("#res-detail").hidden = false;
  $("#res-title").textContent = id;
  if (detail.id !== id) {
    detail = { id, offset: 0 };
    $("#res-q").value = "";
    $("#res-errors").checked = false;
  }
  try {
    $("#res-summary").replaceChildren(...summaryView(await api(`/v1/evalctl/runs/${runPath(id)}`)));
  } catch (err) {
    $("#res-summary").replaceChildren(el("p", { class: "error" }, err.message));
    return;
  }
  await loadSamples();
}

export function initResults() {
  $("#res-refresh").addEventListener("click", showRuns);
  $("#res-compare").addEventListener("click", compareSelected);
  let timer = null;
  $("#res-q").addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => { detail.offset = 0; loadSamples(); }, 250);
  });
  $("#res-errors").addEventListener("change", () => { detail.offset = 0; loadSamples(); });
  $("#res-prev").addEventListener("click", () => { detail.offset = Math.max(0, detail.offset - PAGE); loadSamples(); });
  $("#res-next").addEventListener("click", () => { detail.offset += PAGE; loadSamples(); });
}

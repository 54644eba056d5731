// Jobs: OpenAI-style fine-tuning jobs. Upload a JSONL (/v1/files, purpose fine-tune), create a job
// (/v1/fine_tuning/jobs), follow its status and loss curve from its metrics events, cancel it.

import { api, forgetModels } from "./api.js";
import { lineChart } from "./chart.js";
import { $, beginLoad, el, fmtTime, status } from "./dom.js";

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
let current = null;   // the job shown in the detail card
let poll = null;

function hyperparameters() {
  const h = {};
  const num = (id, int) => {
    const v = $(id).value;
    return v === "" ? undefined : (int ? Math.trunc(Number(v)) : Number(v));
  };
  const set = (k, v) => { if (v !== undefined && !Number.isNaN(v)) h[k] = v; };
  set("n_epochs", num("#job-epochs", true));
  set("batch_size", num("#job-batch", true));
  set("learning_rate_multiplier", num("#job-lr", false));
  set("max_steps", num("#job-steps", true));
  return h;
}

async function fillFiles() {
  const sel = $("#job-existing");
  const keep = sel.value;
  try {
    const files = await api("/v1/files");
    sel.replaceChildren(el("option", { value: "" }, "(upload the file above)"),
      ...files.data.filter((f) => f.purpose === "fine-tune").map((f) =>
        el("option", { value: f.id }, `${f.filename} · ${f.id}${f.records ? ` · ${f.records} records` : ""}`)));
    if ([...sel.options].some((o) => o.value === keep)) sel.value = keep;
  } catch { /* the form reports errors when it is used */ }
}

async function startJob(e) {
  e.preventDefault();
  const line = $("#job-form-status");
  const file = $("#job-file").files[0];
  let fileId = $("#job-existing").value;
  $("#job-start").disabled = true;
  try {
    if (file) {
      status(line, `uploading ${file.name}…`);
      const form = new FormData();
      form.append("purpose", "fine-tune");
      form.append("file", file, file.name);
      fileId = (await api("/v1/files", { method: "POST", form })).id;
    }
    if (!fileId) throw new Error("choose a JSONL file to upload, or an uploaded file");
    const type = $("#job-method").value;
    const body = { model: $("#job-model").value, training_file: fileId,
      method: { type, [type]: { hyperparameters: hyperparameters() } } };
    if ($("#job-suffix").value.trim()) body.suffix = $("#job-suffix").value.trim();
    status(line, "creating the job…");
    const job = await api("/v1/fine_tuning/jobs", { method: "POST", json: body });
    status(line, `started ${job.id} on ${fileId}`, "ok");
    $("#job-file").value = "";
    await fillFiles();
    location.hash = `#/jobs/${job.id}`;
  } catch (err) {
    status(line, err.message, "error");
  } finally {
    $("#job-start").disabled = false;
  }
}

async function listJobs() {
  const body = $("#job-table tbody");
  const load = beginLoad($("#job-table"));
  let list;
  try {
    list = await api("/v1/fine_tuning/jobs?limit=50");
  } catch (err) {
    if (!load.current()) return;
    load.done();
    const msg = err.status === 404 ? "This gateway has no fine-tuning jobs API (404)." : err.message;
    body.replaceChildren(el("tr", {}, el("td", { colspan: 5, class: "error" }, msg)));
    return;
  }
  if (!load.current()) return;
  load.done();
  if (!list.data.length) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No jobs yet.")));
    return;
  }
  body.replaceChildren(...list.data.map((j) => el("tr", { "data-job": j.id, class: j.id === current ? "current" : null },
    el("td", {}, el("a", { href: `#/jobs/${j.id}` }, j.id)), el("td", {}, j.model),
    el("td", {}, el("span", { class: `badge ${j.status}` }, j.status)), el("td", {}, fmtTime(j.created_at)),
    el("td", {}, j.fine_tuned_model || "–"))));
}

// Loss points from `metrics` events (OpenAI's data.step / data.train_loss; `loss` as we also log it).
function lossPoints(events) {
  const byStep = new Map();
  for (const ev of events) {
    const d = ev.data || {};
    const loss = d.train_loss ?? d.loss;
    if (ev.type === "metrics" && typeof d.step === "number" && typeof loss === "number") byStep.set(d.step, loss);
  }
  return [...byStep.entries()].sort((a, b) => a[0] - b[0]).map(([x, y]) => ({ x, y }));
}

function progressOf(job, events) {
  if (job.progress && job.progress.total_steps) return job.progress;
  const last = events.filter((e) => e.type === "metrics" && e.data && e.data.total_steps)
    .sort((a, b) => a.data.step - b.data.step).pop();
  return last ? { step: last.data.step, total_steps: last.data.total_steps } : null;
}

async function showJob(id) {
  let job;
  let events = [];
  try {
    job = await api(`/v1/fine_tuning/jobs/${encodeURIComponent(id)}`);
    events = (await api(`/v1/fine_tuning/jobs/${encodeURIComponent(id)}/events?limit=1000`)).data;
  } catch (err) {
    if (!job) {
      $("#job-detail").hidden = false;
      $("#job-title").textContent = id;
      $("#job-fields").replaceChildren(el("p", { class: "error" }, err.message));
      return;
    }
  }
  if (current !== id) return;  // the user moved on while we waited
  $("#job-detail").hidden = false;
  $("#job-title").textContent = job.id;
  const badge = $("#job-status");
  badge.textContent = job.status;
  badge.className = `badge ${job.status}`;
  $("#job-detail").dataset.status = job.status;
  $("#job-cancel").hidden = TERMINAL.has(job.status);
  const p = progressOf(job, events);
  const frac = job.status === "succeeded" ? 1 : p ? p.step / p.total_steps : 0;
  $("#job-bar").style.width = `${Math.round(frac * 100)}%`;  // CSSOM, allowed by the page's CSP
  const fields = [["model", job.model], ["training file", job.training_file], ["method", job.method?.type],
    ["progress", p ? `step ${p.step} / ${p.total_steps}` : "–"], ["fine-tuned model", job.fine_tuned_model || "–"],
    ["trained tokens", job.trained_tokens ?? "–"], ["created", fmtTime(job.created_at)],
    ["finished", fmtTime(job.finished_at)], ["hyperparameters", Object.entries(job.hyperparameters || {}).map(([k, v]) => `${k} ${v}`).join(" · ")]];
  if (job.error) fields.push(["error", `${job.error.code}: ${job.error.message}`]);
  $("#job-fields").replaceChildren(...fields.map(([k, v]) => el("div", {}, el("span", { class: "label" }, k), " ", String(v))));
  $("#job-chart").replaceChildren(lineChart("training loss", lossPoints(events)));
  const log = [...events].sort((a, b) => b.created_at - a.created_at).slice(0, 12);
  $("#job-events").replaceChildren(...log.map((ev) => el("div", { class: `event ${ev.level}` },
    el("span", { class: "muted" }, new Date(ev.created_at * 1000).toLocaleTimeString()), " ", ev.message)));
  if (job.status === "succeeded") forgetModels();  // its adapter is now served
}

async function tick() {
  await listJobs();
  if (current) await showJob(current);
}

export async function showJobs(id) {
  current = id || null;
  if (!current) $("#job-detail").hidden = true;
  fillFiles();
  await tick();
  clearInterval(poll);
  poll = setInterval(() => { if (!document.hidden) tick(); }, 2000);
}

export function leaveJobs() {
  clearInterval(poll);
  poll = null;
}

export function initJobs() {
  $("#job-form").addEventListener("submit", startJob);
  $("#job-refresh").addEventListener("click", tick);
  $("#job-cancel").addEventListener("click", async () => {
    if (!current) return;
    try {
      await api(`/v1/fine_tuning/jobs/${encodeURIComponent(current)}/cancel`, { method: "POST" });
    } catch (err) {
      $("#job-fields").prepend(el("p", { class: "error" }, err.message));
    }
    await tick();
  });
}

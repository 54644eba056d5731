// Jobs: OpenAI-style fine-tuning jobs. Upload a JSONL (/v1/files, purpose fine-tune), create a job
// (/v1/fine_tuning/jobs), follow its status and loss curve (reinforcement: train and validation
// reward curves) from its metrics events, cancel it. A reinforcement job's grader is JSON, checked
// by /v1/fine_tuning/alpha/graders/validate before the job is created.

import { api, forgetModels } from "./api.js";
import { lineChart } from "./chart.js";
import { $, beginLoad, el, fmtTime, status } from "./dom.js";

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const EXAMPLE_GRADER = {
  type: "string_check", name: "exact", operation: "eq",
  input: "{{sample.output_text}}", reference: "{{item.answer}}",
};
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
  if ($("#job-method").value === "reinforcement") {
    set("eval_interval", num("#job-eval-interval", true));
    set("max_tokens", num("#job-max-tokens", true));
  }
  return h;
}

// The grader from the editor; a message naming the problem when it is not a JSON object.
function graderJSON() {
  let g;
  try {
    g = JSON.parse($("#job-grader").value);
  } catch (err) {
    throw new Error(`grader: not valid JSON (${err.message})`);
  }
  if (!g || typeof g !== "object" || Array.isArray(g)) throw new Error("grader: a JSON object with a `type` is expected");
  return g;
}

// An error with the field it is about, unless the message already starts with it.
function describe(err) {
  return err.param && !err.message.startsWith(err.param) ? `${err.param}: ${err.message}` : err.message;
}

async function checkGrader() {
  const line = $("#job-grader-status");
  try {
    const g = graderJSON();
    await api("/v1/fine_tuning/alpha/graders/validate", { method: "POST", json: { grader: g } });
    status(line, `${g.type} grader ${g.name ?? ""} is valid`, "ok");
    return g;
  } catch (err) {
    status(line, describe(err), "error");
    throw err;
  }
}

function methodChanged() {
  const rft = $("#job-method").value === "reinforcement";
  $("#job-rft").hidden = !rft;
  if (rft && !$("#job-grader").value.trim()) $("#job-grader").value = JSON.stringify(EXAMPLE_GRADER, null, 2);
}

async function fillFiles() {
  const sel = $("#job-existing");
  const keep = sel.value;
  try {
    const files = await api("/v1/files");
    const options = () => files.data.filter((f) => f.purpose === "fine-tune").map((f) =>
      el("option", { value: f.id }, `${f.filename} · ${f.id}${f.records ? ` · ${f.records} records` : ""}`));
    sel.replaceChildren(el("option", { value: "" }, "(upload the file above)"), ...options());
    if ([...sel.options].some((o) => o.value === keep)) sel.value = keep;
    const valid = $("#job-valid");
    const keepValid = valid.value;
    valid.replaceChildren(el("option", { value: "" }, "(none)"), ...options());
    if ([...valid.options].some((o) => o.value === keepValid)) valid.value = keepValid;
  } catch { /* the form reports errors when it is used */ }
}

async function startJob(e) {
  e.preventDefault();
  const line = $("#job-form-status");
  const file = $("#job-file").files[0];
  let fileId = $("#job-existing").value;
  $("#job-start").disabled = true;
  try {
    const type = $("#job-method").value;
    const grader = type === "reinforcement" ? await checkGrader() : null;  // before anything is uploaded
    if (file) {
      status(line, `uploading ${file.name}…`);
      const form = new FormData();
      form.append("purpose", "fine-tune");
      form.append("file", file, file.name);
      fileId = (await api("/v1/files", { method: "POST", form })).id;
    }
    if (!fileId) throw new Error("choose a JSONL file to upload, or an uploaded file");
    const inner = { hyperparameters: hyperparameters(), ...(grader ? { grader } : {}) };
    const body = { model: $("#job-model").value, training_file: fileId, method: { type, [type]: inner } };
    if (grader && $("#job-valid").value) body.validation_file = $("#job-valid").value;
    if ($("#job-suffix").value.trim()) body.suffix = $("#job-suffix").value.trim();
    status(line, "creating the job…");
    const job = await api("/v1/fine_tuning/jobs", { method: "POST", json: body });
    status(line, `started ${job.id} on ${fileId}`, "ok");
    $("#job-file").value = "";
    await fillFiles();
    location.hash = `#/jobs/${job.id}`;
  } catch (err) {
    status(line, describe(err), "error");
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

// Reward points (reinforcement jobs' metrics events): train_reward_mean or valid_reward_mean.
function rewardPoints(events, key) {
  const byStep = new Map();
  for (const ev of events) {
    const d = ev.data || {};
    if (ev.type === "metrics" && typeof d.step === "number" && typeof d[key] === "number") byStep.set(d.step, d[key]);
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
  if (job.method?.type === "reinforcement") {
    $("#job-chart").replaceChildren(lineChart("train reward (mean)", rewardPoints(events, "train_reward_mean")),
      lineChart("validation reward (mean)", rewardPoints(events, "valid_reward_mean")));
  } else {
    $("#job-chart").replaceChildren(lineChart("training loss", lossPoints(events)));
  }
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
  $("#job-method").addEventListener("change", methodChanged);
  $("#job-grader-check").addEventListener("click", () => checkGrader().catch(() => {}));
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

// Small DOM helpers shared by the tabs. Text always goes in as text nodes (never innerHTML),
// so model output and file contents cannot inject markup.

import { models } from "./api.js";

export const $ = (sel, root = document) => root.querySelector(sel);

// One list can have several loads in flight (tab switch, key change, polling). Only the newest may
// render, or a slow stale response overwrites a fresh one; data-state says when the newest settled.
const loads = new WeakMap();
export function beginLoad(node) {
  const gen = (loads.get(node) || 0) + 1;
  loads.set(node, gen);
  node.dataset.state = "loading";
  const current = () => loads.get(node) === gen;
  return { current, done: () => { if (current()) node.dataset.state = "ready"; } };
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function fmtNum(x, digits = 4) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  return Number(x).toFixed(digits);
}

// Like Python's `:.3g` (what `evalctl compare` prints): 0.0001, 0.602, 1.
export const fmtP = (p) => String(Number(p.toPrecision(3)));

export function fmtTime(t) {
  if (t === null || t === undefined) return "–";
  const d = typeof t === "number" ? new Date(t * 1000) : new Date(t);
  return Number.isNaN(d.getTime()) ? String(t) : d.toLocaleString();
}

// The end of a long text: prompts share their instructions and differ in the question at the end.
export function tail(text, n = 120) {
  const s = typeof text === "string" ? text : JSON.stringify(text) ?? "";
  return s.length > n ? `…${s.slice(-n)}` : s;
}

export function short(text, n = 120) {
  const s = typeof text === "string" ? text : JSON.stringify(text);
  if (s === undefined) return "";
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

// A message line under a form or table: kind is "ok", "error" or "" (neutral).
export function status(node, message, kind = "") {
  node.textContent = message;
  node.dataset.kind = kind;
}

export function banner(message) {
  const b = $("#banner");
  b.textContent = message || "";
  b.hidden = !message;
}

// Fill every <select class="model-select"> from /v1/models, keeping each one's choice.
// base-only: base models and aliases (for jobs and adapter bases); optional: a "(default)" entry.
export async function fillModelSelects(root = document) {
  const cards = await models();
  const bases = new Set(cards.filter((m) => !m.parent).map((m) => m.id));
  for (const sel of root.querySelectorAll("select.model-select")) {
    const keep = sel.value;
    const baseOnly = sel.classList.contains("base-only");
    sel.replaceChildren();
    if (sel.classList.contains("optional")) sel.append(el("option", { value: "" }, "(default: the LoRA base)"));
    for (const m of cards) {
      if (baseOnly && m.parent) continue;
      let label = m.id;
      if (m.parent) label += `  (LoRA on ${m.parent})`;
      else if (bases.has(m.root) && m.root !== m.id) label += `  (alias of ${m.root})`;
      sel.append(el("option", { value: m.id }, label));
    }
    if ([...sel.options].some((o) => o.value === keep)) sel.value = keep;
  }
  return cards;
}

// Sampling controls, built once per tab; returns a function giving the request fields set.
export function samplingControls(container, { maxTokens = 128, temperature = 0.7 } = {}) {
  const fields = [
    ["temperature", "Temperature", temperature, "0", "2", "0.05"],
    ["top_p", "Top p", 1, "0.01", "1", "0.01"],
    ["top_k", "Top k", "", "-1", "", "1"],
    ["max_tokens", "Max tokens", maxTokens, "1", "", "1"],
    ["seed", "Seed", "", "", "", "1"],
  ];
  const inputs = {};
  for (const [name, label, value, min, max, step] of fields) {
    const input = el("input", { type: "number", name, value: String(value), min: min || null, max: max || null,
      step, placeholder: value === "" ? "default" : null });
    inputs[name] = input;
    container.append(el("label", { class: "field" }, label, input));
  }
  const stop = el("input", { type: "text", name: "stop", placeholder: "none" });
  container.append(el("label", { class: "field" }, "Stop", stop));
  const stream = el("input", { type: "checkbox", name: "stream", checked: true });
  container.append(el("label", { class: "check" }, stream, " Stream"));
  return () => {
    const out = {};
    for (const [name, input] of Object.entries(inputs)) {
      if (input.value === "") continue;
      const v = Number(input.value);
      if (!Number.isNaN(v)) out[name] = ["max_tokens", "seed", "top_k"].includes(name) ? Math.trunc(v) : v;
    }
    if (stop.value) out.stop = [stop.value.replace(/\\n/g, "\n")];
    return { sampling: out, stream: stream.checked };
  };
}

export function statsLine(r, model) {
  const parts = [model];
  if (r.usage) parts.push(`${r.usage.completion_tokens} tokens`);
  if (r.ttft !== null) parts.push(`first text ${(r.ttft / 1000).toFixed(2)} s`);
  parts.push(`total ${(r.elapsed / 1000).toFixed(2)} s`);
  if (r.usage && r.elapsed > 0) parts.push(`${(r.usage.completion_tokens / (r.elapsed / 1000)).toFixed(1)} tok/s`);
  if (r.finish) parts.push(`finish: ${r.finish}`);
  if (r.adapterVersion) parts.push(`adapter v${r.adapterVersion}`);
  return parts.join(" · ");
}

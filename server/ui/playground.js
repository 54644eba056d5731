// Playground (a conversation with one model) and Compare (one prompt, two models side by side).

import { complete, requestBody } from "./api.js";
import { $, el, samplingControls, statsLine } from "./dom.js";

function bubble(role, text = "") {
  const body = el("div", { class: "text" }, text);
  const node = el("div", { class: `msg ${role}`, "data-role": role }, el("div", { class: "role" }, role), body);
  return { node, body };
}

export function initPlayground() {
  const log = $("#pg-log");
  const settings = samplingControls($("#pg-sampling"));
  let messages = [];
  let controller = null;

  const mode = () => $("#pg-mode").value;
  $("#pg-mode").addEventListener("change", () => { $("#pg-system-label").hidden = mode() !== "chat"; });
  $("#pg-clear").addEventListener("click", () => {
    messages = [];
    log.replaceChildren();
    $("#pg-stats").textContent = "";
  });
  $("#pg-input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      $("#pg-form").requestSubmit();
    }
  });
  $("#pg-stop").addEventListener("click", () => controller && controller.abort());

  $("#pg-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = $("#pg-input").value;
    const model = $("#pg-model").value;
    if (!text.trim() || !model || controller) return;
    const { sampling, stream } = settings();
    let input;
    if (mode() === "chat") {
      messages.push({ role: "user", content: text });
      const system = $("#pg-system").value.trim();
      input = system ? [{ role: "system", content: system }, ...messages] : [...messages];
    } else {
      input = text;
    }
    log.querySelector(".hint")?.remove();
    log.append(bubble(mode() === "chat" ? "user" : "prompt", text).node);
    const reply = bubble("assistant");
    reply.node.dataset.state = "streaming";
    reply.node.dataset.model = model;
    log.append(reply.node);
    $("#pg-input").value = "";
    controller = new AbortController();
    $("#pg-stop").hidden = false;
    $("#pg-send").disabled = true;
    try {
      const r = await complete(mode(), requestBody(mode(), model, input, sampling), {
        stream, signal: controller.signal,
        onText: (t) => { reply.body.textContent = t; log.scrollTop = log.scrollHeight; },
      });
      if (mode() === "chat") messages.push({ role: "assistant", content: r.text });
      reply.node.dataset.state = "done";
      reply.node.dataset.chunks = String(r.chunks);
      if (!r.text) reply.body.append(el("span", { class: "muted" }, "(empty completion)"));
      $("#pg-stats").textContent = statsLine(r, model);
    } catch (err) {
      if (mode() === "chat" && err.name !== "AbortError") messages.pop();  // let the user resend it
      reply.node.dataset.state = err.name === "AbortError" ? "stopped" : "error";
      reply.body.append(el("div", { class: "error" }, err.name === "AbortError" ? "(stopped)" : err.message));
    } finally {
      controller = null;
      $("#pg-stop").hidden = true;
      $("#pg-send").disabled = false;
    }
  });
}

async function runPane(pane, mode, model, input, settings) {
  const out = $(".out", pane);
  const stats = $(".stats", pane);
  $(".pane-title", pane).textContent = model;
  pane.dataset.state = "streaming";
  out.textContent = "";
  stats.textContent = "";
  try {
    const r = await complete(mode, requestBody(mode, model, input, settings.sampling), {
      stream: settings.stream, onText: (t) => { out.textContent = t; },
    });
    if (!r.text) out.append(el("span", { class: "muted" }, "(empty completion)"));
    stats.textContent = statsLine(r, model);
    pane.dataset.state = "done";
  } catch (err) {
    out.append(el("div", { class: "error" }, err.message));
    pane.dataset.state = "error";
  }
}

export function initCompare() {
  const settings = samplingControls($("#cmp-sampling"), { temperature: 0 });
  $("#cmp-input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      $("#cmp-form").requestSubmit();
    }
  });
  $("#cmp-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = $("#cmp-input").value;
    if (!text.trim() || $("#cmp-send").disabled) return;
    const mode = $("#cmp-mode").value;
    const input = mode === "chat" ? [{ role: "user", content: text }] : text;
    const s = settings();
    $("#cmp-send").disabled = true;
    try {  // both at once: the two streams arrive interleaved, as they would for two users
      await Promise.all([
        runPane($("#cmp-pane-a"), mode, $("#cmp-a").value, input, s),
        runPane($("#cmp-pane-b"), mode, $("#cmp-b").value, input, s),
      ]);
    } finally {
      $("#cmp-send").disabled = false;
    }
  });
}

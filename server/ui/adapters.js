// Adapters: list, load and unload LoRA adapters (vLLM's bodies; the admin key is needed).

import { api, forgetModels } from "./api.js";
import { $, beginLoad, el, fmtTime, short, status } from "./dom.js";

// "2/2 loaded": how many engine replicas hold this version; the title lists each replica's state.
function replicasCell(replicas) {
  if (!replicas.length) return el("td", {}, "–");
  const loaded = replicas.filter((r) => r.loaded).length;
  const title = replicas.map((r) => `${r.replica}: ${r.state}${r.loaded ? ", loaded" : ""}`).join("\n");
  return el("td", { title, class: loaded < replicas.length ? "error" : null }, `${loaded}/${replicas.length} loaded`);
}

export async function showAdapters() {
  const body = $("#ad-table tbody");
  const load = beginLoad($("#ad-table"));
  let list;
  try {
    list = await api("/v1/adapters");
  } catch (err) {
    if (!load.current()) return;
    body.replaceChildren(el("tr", {}, el("td", { colspan: 8, class: "error" }, err.message)));
    load.done();
    return;
  }
  if (!load.current()) return;
  load.done();
  if (!list.data.length) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 8, class: "muted" }, "No adapters loaded.")));
    return;
  }
  body.replaceChildren(...list.data.map((a) => el("tr", { "data-adapter": a.name },
    el("td", {}, a.name), el("td", {}, a.base), el("td", { class: "num" }, a.version),
    el("td", { class: "clip", title: a.path }, short(a.path, 60)), el("td", {}, fmtTime(a.loaded_at)),
    el("td", { class: "num" }, a.inflight), replicasCell(a.replicas || []),
    el("td", {}, el("button", { type: "button", class: "danger small", "data-unload": a.name,
      onclick: () => unload(a.name) }, "Unload")))));
}

async function unload(name) {
  const line = $("#ad-status");
  status(line, `unloading ${name}…`);
  try {
    await api("/v1/unload_lora_adapter", { method: "POST", json: { lora_name: name } });
    status(line, `unloaded ${name}`, "ok");
  } catch (err) {
    status(line, err.message, "error");
  }
  forgetModels();
  await showAdapters();
}

export function initAdapters() {
  $("#ad-refresh").addEventListener("click", showAdapters);
  $("#ad-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const line = $("#ad-status");
    const body = { lora_name: $("#ad-name").value.trim(), lora_path: $("#ad-path").value.trim() };
    if ($("#ad-base").value) body.base_model = $("#ad-base").value;
    $("#ad-load").disabled = true;
    status(line, `loading ${body.lora_name}…`);
    try {
      const msg = await api("/v1/load_lora_adapter", { method: "POST", json: body });
      status(line, typeof msg === "string" ? msg : `loaded ${body.lora_name}`, "ok");
    } catch (err) {
      status(line, err.message, "error");
    } finally {
      $("#ad-load").disabled = false;
    }
    forgetModels();
    await showAdapters();
  });
}

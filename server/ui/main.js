// The page shell: the key form, hash routing between tabs (#/playground, #/results/<run>, ...),
// and the gateway health dot.

import { forgetModels, getKey, setKey } from "./api.js";
import { initAdapters, showAdapters } from "./adapters.js";
import { $, banner, fillModelSelects } from "./dom.js";
import { initJobs, leaveJobs, showJobs } from "./jobs.js";
import { initCompare, initPlayground } from "./playground.js";
import { initResults, showRun, showRuns } from "./results.js";

const TABS = ["playground", "compare", "results", "jobs", "adapters"];

async function loadModels() {
  try {
    await fillModelSelects();
    banner("");
  } catch (err) {
    banner(`Cannot list models: ${err.message}`);
  }
}

function route() {
  const [tab, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const name = TABS.includes(tab) ? tab : "playground";
  const arg = rest.length ? decodeURIComponent(rest.join("/")) : null;
  for (const t of TABS) $(`#tab-${t}`).hidden = t !== name;
  for (const a of document.querySelectorAll("#tabs a")) a.classList.toggle("active", a.dataset.tab === name);
  document.body.dataset.tab = name;
  if (name !== "jobs") leaveJobs();
  loadModels();  // cached; refetched after an adapter or a finished job changed the list
  if (name === "results") return arg ? showRun(arg) : showRuns();
  if (name === "jobs") return showJobs(arg);
  if (name === "adapters") return showAdapters();
  return null;
}

async function health() {
  const dot = $("#health");
  try {
    const r = await fetch("/health");
    const body = await r.json();
    dot.dataset.state = body.status;
    dot.textContent = body.status === "ok" ? "● ok" : `● ${body.status}: ${body.engines_down.join(", ")} down`;
  } catch {
    dot.dataset.state = "down";
    dot.textContent = "● unreachable";
  }
}

function initKey() {
  const input = $("#api-key");
  input.value = getKey();
  $("#key-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    setKey(input.value.trim());
    forgetModels();
    route();
  });
  $("#key-clear").addEventListener("click", () => {
    setKey("");
    input.value = "";
    forgetModels();
    loadModels();
  });
}

initKey();
initPlayground();
initCompare();
initResults();
initJobs();
initAdapters();
window.addEventListener("hashchange", route);
route();
health();
setInterval(health, 15000);

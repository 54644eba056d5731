// Talking to the gateway: the pasted key (localStorage), JSON calls with OpenAI-shaped errors,
// and streamed completions read from the SSE `data:` lines of a fetch() body.

const KEY = "evalctl.apiKey";

export const getKey = () => localStorage.getItem(KEY) || "";
export function setKey(key) {
  if (key) localStorage.setItem(KEY, key);
  else localStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, message, code = null, param = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.param = param;  // the request field OpenAI's error names (grader.operation, training_file, ...)
  }
}

function headers(extra = {}) {
  const h = { ...extra };
  const key = getKey();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

async function toError(resp) {
  let message = `HTTP ${resp.status}`;
  let code = null;
  let param = null;
  try {
    const body = await resp.json();
    if (body && body.error) {
      message = body.error.message || message;
      code = body.error.code ?? null;
      param = body.error.param ?? null;
    }
  } catch { /* not JSON: keep the status line */ }
  if (resp.status === 401) message += " — paste a valid key at the top right";
  return new ApiError(resp.status, message, code, param);
}

// fetch + error mapping. `json` sends a JSON body, `form` a FormData; `raw` returns the Response.
export async function api(path, { method = "GET", json, form, signal, raw = false } = {}) {
  const init = { method, signal, headers: headers(json !== undefined ? { "Content-Type": "application/json" } : {}) };
  if (json !== undefined) init.body = JSON.stringify(json);
  else if (form) init.body = form;
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, `cannot reach the gateway (${e.message})`);
  }
  if (!resp.ok) throw await toError(resp);
  if (raw) return resp;
  const type = resp.headers.get("content-type") || "";
  return type.includes("json") ? resp.json() : resp.text();
}

// Yields each JSON event of an SSE body until `data: [DONE]`.
export async function* sseEvents(resp) {
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    const parts = buffer.split(/\r?\n\r?\n/);
    buffer = parts.pop();
    for (const part of parts) {
      for (const line of part.split(/\r?\n/)) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        const event = JSON.parse(data);
        if (event.error) throw new ApiError(event.error.code || 500, event.error.message || "stream error");
        yield event;
      }
    }
  }
}

// The request body for a chat or a plain completion with the page's sampling settings.
export function requestBody(mode, model, input, sampling) {
  const body = { model, ...sampling };
  if (mode === "chat") body.messages = input;
  else body.prompt = input;
  return body;
}

// Runs one completion, streamed or not; `onText(fullTextSoFar)` fires as text arrives.
// Returns {text, finish, usage, ttft, elapsed, chunks, adapterVersion}.
export async function complete(mode, body, { stream = true, onText = () => {}, signal } = {}) {
  const path = mode === "chat" ? "/v1/chat/completions" : "/v1/completions";
  const t0 = performance.now();
  const send = stream ? { ...body, stream: true, stream_options: { include_usage: true } } : body;
  const resp = await api(path, { method: "POST", json: send, signal, raw: true });
  const out = { text: "", finish: null, usage: null, ttft: null, chunks: 0,
    adapterVersion: resp.headers.get("x-evalctl-adapter-version") };
  if (!stream) {
    const r = await resp.json();
    const c = r.choices[0];
    out.text = mode === "chat" ? (c.message.content || "") : c.text;
    out.finish = c.finish_reason;
    out.usage = r.usage;
    out.ttft = performance.now() - t0;
    out.chunks = 1;
    onText(out.text);
  } else {
    for await (const ev of sseEvents(resp)) {
      if (ev.usage) out.usage = ev.usage;
      const c = (ev.choices || [])[0];
      if (!c) continue;
      const piece = mode === "chat" ? (c.delta && c.delta.content) || "" : c.text || "";
      if (piece) {
        if (out.ttft === null) out.ttft = performance.now() - t0;
        out.text += piece;
        out.chunks += 1;
        onText(out.text);
      }
      if (c.finish_reason) out.finish = c.finish_reason;
    }
  }
  out.elapsed = performance.now() - t0;
  return out;
}

// Models the gateway serves, fetched once per key (the key decides whether we may see them).
let modelsCache = null;
export async function models(refresh = false) {
  if (!modelsCache || refresh) modelsCache = api("/v1/models").then((r) => r.data);
  try {
    return await modelsCache;
  } catch (e) {
    modelsCache = null;
    throw e;
  }
}
export const forgetModels = () => { modelsCache = null; };

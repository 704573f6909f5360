// The asm session viewer: plain JavaScript, no build step, nothing from elsewhere.
// Live updates come over Server-Sent Events read with fetch (so the bearer token
// goes in a header), resumed with Last-Event-ID after a dropped connection.
"use strict";

const state = {
  token: sessionStorage.getItem("asm-token") || "",
  stream: null, // the EventStream of the page shown
  cursor: null, // next_cursor of the sessions list
  runs: new Map(), // run id -> blocks of the timeline
  sessionId: null,
};

const $ = (selector) => document.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function headers(extra = {}) {
  return state.token ? { ...extra, Authorization: `Bearer ${state.token}` } : extra;
}

class ApiError extends Error {
  constructor(status, error) {
    super(error.message);
    this.status = status;
    this.code = error.code;
  }
}

async function api(method, path, body) {
  const init = { method, headers: headers({ Accept: "application/json" }) };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({ error: { code: "bad_response", message: response.statusText } }));
  if (response.status === 401) askToken();
  if (!response.ok) throw new ApiError(response.status, data.error || {});
  return data;
}

function askToken() {
  $("#token-form").hidden = false;
  $("#token").focus();
}

function notice(text) {
  const node = $("#notice");
  node.textContent = text;
  node.hidden = !text;
}

function setConnection(text) {
  const node = $("#connection");
  node.textContent = text;
  node.classList.toggle("live", text === "live");
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A Server-Sent Event stream over fetch: reopened after a drop, from the last seq seen.
class EventStream {
  constructor(path, onMessage, after = 0) {
    this.path = path;
    this.onMessage = onMessage;
    this.after = after;
    this.stopped = false;
    this.controller = null;
    this.run();
  }

  async run() {
    let failures = 0;
    while (!this.stopped) {
      this.controller = new AbortController();
      try {
        const response = await fetch(this.path, {
          headers: headers({ Accept: "text/event-stream", "Last-Event-ID": String(this.after) }),
          signal: this.controller.signal,
          cache: "no-store",
        });
        if (response.status === 401) {
          askToken();
          setConnection("needs a token");
          return;
        }
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        setConnection("live");
        failures = 0;
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            this.handle(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
          }
        }
      } catch (error) {
        if (this.stopped) return;
      }
      if (this.stopped) return;
      setConnection("reconnecting");
      failures += 1;
      await sleep(Math.min(5000, 250 * 2 ** Math.min(failures, 5)));
    }
  }

  handle(block) {
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("data:")) data.push(line.slice(line.startsWith("data: ") ? 6 : 5));
      else if (line.startsWith("event:")) name = line.slice(6).trim();
    }
    if (!data.length) return; // a heartbeat comment
    const message = JSON.parse(data.join("\n"));
    if (typeof message.seq === "number" && name !== "session") {
      if (message.seq <= this.after) return; // seen already
      this.after = message.seq;
    }
    this.onMessage(name, message);
  }

  stop() {
    this.stopped = true;
    if (this.controller) this.controller.abort();
  }
}

// -- the sessions list -------------------------------------------------------

function filters() {
  const params = new URLSearchParams();
  for (const [key, selector] of [["status", "#filter-status"], ["agent_id", "#filter-agent"], ["provider", "#filter-provider"]]) {
    const value = $(selector).value.trim();
    if (value) params.set(key, value);
  }
  return params;
}

function sessionItem(session) {
  const when = new Date(session.created_at).toLocaleString();
  return el(
    "li",
    { "data-session": session.id },
    el(
      "a",
      { href: `#/s/${encodeURIComponent(session.id)}` },
      el("span", { class: "id", text: session.id }),
      el("span", { class: `badge ${session.status}`, text: session.status }),
      el("span", { class: "who", text: `${session.agent_id} · ${session.provider || "default provider"}` }),
      el("span", { class: "when", text: when }),
    ),
  );
}

async function loadSessions(more = false) {
  const params = filters();
  params.set("limit", "50");
  if (more && state.cursor) params.set("cursor", state.cursor);
  const page = await api("GET", `/v1/sessions?${params}`);
  const list = $("#sessions");
  if (!more) list.replaceChildren();
  for (const session of page.sessions) list.append(sessionItem(session));
  state.cursor = page.next_cursor;
  $("#more").hidden = !page.next_cursor;
}

function matchesFilters(session) {
  const params = filters();
  return (
    (!params.get("status") || params.get("status") === session.status) &&
    (!params.get("agent_id") || params.get("agent_id") === session.agent_id) &&
    (!params.get("provider") || params.get("provider") === session.provider)
  );
}

function onSessionChange(name, message) {
  if (name !== "session") return;
  const session = message.session;
  const existing = document.querySelector(`#sessions li[data-session="${CSS.escape(session.id)}"]`);
  if (!matchesFilters(session)) {
    if (existing) existing.remove();
    return;
  }
  if (existing) existing.replaceWith(sessionItem(session));
  else $("#sessions").prepend(sessionItem(session));
}

async function showList() {
  $("#session-view").hidden = true;
  $("#list-view").hidden = false;
  document.title = "asm sessions";
  state.stream = new EventStream("/v1/sessions/stream", onSessionChange);
  try {
    await loadSessions();
  } catch (error) {
    notice(error.message);
  }
}

// -- one session -------------------------------------------------------------

function runBlock(runId) {
  let block = state.runs.get(runId);
  if (!block) {
    block = { answer: null, thinking: null, tools: new Map() };
    state.runs.set(runId, block);
  }
  return block;
}

function addItem(node) {
  $("#timeline").append(node);
  return node;
}

function lifecycle(text) {
  addItem(el("li", { class: "lifecycle", text }));
}

function renderEvent(event) {
  const data = event.data;
  const block = event.run_id ? runBlock(event.run_id) : null;
  switch (event.type) {
    case "message_sent":
      addItem(el("li", { class: "prompt-msg" }, el("span", { class: "label", text: data.role }), data.content));
      break;
    case "message_streamed":
      if (!block.answer) {
        block.answer = addItem(el("li", { class: "answer", "data-run": event.run_id }));
        block.answer.append(el("span", { class: "label", text: "answer" }), el("span", { class: "text" }));
      }
      block.answer.querySelector(".text").textContent += data.delta;
      break;
    case "message_received":
      if (!block.answer) {
        block.answer = addItem(el("li", { class: "answer", "data-run": event.run_id }));
        block.answer.append(el("span", { class: "label", text: "answer" }), el("span", { class: "text", text: data.content }));
      }
      break;
    case "thinking_streamed":
      if (!block.thinking) {
        const pre = el("pre");
        block.thinking = addItem(el("li", { class: "thinking" }, el("details", {}, el("summary", { text: "Thinking" }), pre)));
      }
      block.thinking.querySelector("pre").textContent += data.delta;
      break;
    case "tool_call_started": {
      const output = el("pre", { class: "output" });
      const node = addItem(
        el(
          "li",
          { class: "tool" },
          el(
            "details",
            {},
            el("summary", { text: `Tool call: ${data.tool_name}` }),
            el("span", { class: "label", text: "input" }),
            el("pre", { text: JSON.stringify(data.tool_input, null, 2) }),
            el("span", { class: "label", text: "output" }),
            output,
          ),
        ),
      );
      block.tools.set(data.tool_call_id, node);
      break;
    }
    case "tool_call_completed":
    case "tool_call_failed": {
      const node = block.tools.get(data.tool_call_id);
      if (!node) break;
      const text = event.type === "tool_call_failed" ? data.error_message : JSON.stringify(data.tool_output, null, 2);
      node.querySelector(".output").textContent = text ?? "";
      if (event.type === "tool_call_failed") node.classList.add("bad");
      break;
    }
    case "policy_violation":
      addItem(el("li", { class: data.action === "warn" ? "warn" : "bad", text: `Policy ${data.policy}: ${data.kind} (${data.action})` }));
      break;
    case "run_failed":
    case "error_occurred":
      addItem(el("li", { class: "bad", text: `${event.type === "run_failed" ? "Run failed" : "Error"} [${data.error_code}]: ${data.error_message}` }));
      break;
    case "run_timeout":
      addItem(el("li", { class: "bad", text: "Run timed out" }));
      break;
    case "run_interrupted":
      addItem(el("li", { class: "warn", text: `Attempt ${data.attempt} interrupted: ${data.owner} stopped; then: ${data.then}` }));
      break;
    case "approval_denied":
      addItem(el("li", { class: "warn", text: `Approval denied: ${data.tool_call_id || ""}` }));
      break;
    default:
      if (/^(run|session)_/.test(event.type)) lifecycle(`${event.type.replace("_", " ")}${data.reason ? `: ${data.reason}` : ""}`);
  }
  if (/^(run_|session_)|token_usage_updated|cost_updated/.test(event.type)) scheduleRefresh();
}

let refreshTimer = null;
function scheduleRefresh() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    refreshSession().catch((error) => notice(error.message));
  }, 100);
}

function money(cost) {
  return cost ? String(cost.total_usd) : "–";
}

async function refreshSession() {
  const id = state.sessionId;
  if (!id) return;
  const [session, runs] = await Promise.all([api("GET", `/v1/sessions/${id}`), api("GET", `/v1/sessions/${id}/runs`)]);
  if (id !== state.sessionId) return;
  const badge = $("#session-status");
  badge.textContent = session.status;
  badge.className = `badge ${session.status}`;
  $("#session-meta").textContent = `${session.agent_id} · ${session.provider || "default provider"} · created ${new Date(session.created_at).toLocaleString()}`;
  const body = $("#runs tbody");
  body.replaceChildren();
  for (const run of runs.runs) {
    const actions = el("td");
    if (run.status === "pending" || run.status === "running") {
      const cancel = el("button", { type: "button", class: "danger", "data-cancel": run.id, text: "Cancel" });
      cancel.setAttribute("aria-label", `Cancel run ${run.id}`);
      cancel.addEventListener("click", () => cancelRun(run.id, cancel));
      actions.append(cancel);
    }
    body.append(
      el(
        "tr",
        { "data-run": run.id },
        el("td", { text: run.id }),
        el("td", {}, el("span", { class: `badge ${run.status}`, text: run.status })),
        el("td", { text: `${run.usage.input_tokens} / ${run.usage.output_tokens}` }),
        el("td", { text: money(run.cost) }),
        actions,
      ),
    );
  }
}

async function cancelRun(runId, button) {
  button.disabled = true;
  try {
    await api("POST", `/v1/runs/${runId}/cancel`, {});
  } catch (error) {
    notice(error.message);
  }
  scheduleRefresh();
}

async function showSession(id) {
  $("#list-view").hidden = true;
  $("#session-view").hidden = false;
  state.sessionId = id;
  state.runs = new Map();
  $("#session-title").textContent = `Session ${id}`;
  document.title = `asm ${id}`;
  $("#timeline").replaceChildren();
  notice("");
  try {
    await refreshSession();
  } catch (error) {
    notice(error.message);
    return;
  }
  state.stream = new EventStream(`/v1/sessions/${encodeURIComponent(id)}/events/stream`, (name, event) => renderEvent(event));
}

async function submitPrompt(event) {
  event.preventDefault();
  const input = $("#prompt").value;
  if (!input.trim() || !state.sessionId) return;
  $("#send").disabled = true;
  try {
    await api("POST", `/v1/sessions/${state.sessionId}/runs`, { input });
    $("#prompt").value = "";
    notice("");
  } catch (error) {
    notice(`${error.code || "error"}: ${error.message}`);
  } finally {
    $("#send").disabled = false;
    scheduleRefresh();
  }
}

// -- routing -----------------------------------------------------------------

function route() {
  if (state.stream) state.stream.stop();
  state.stream = null;
  state.sessionId = null;
  const match = location.hash.match(/^#\/s\/(.+)$/);
  if (match) showSession(decodeURIComponent(match[1]));
  else showList();
}

document.addEventListener("DOMContentLoaded", () => {
  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = $("#token").value.trim();
    sessionStorage.setItem("asm-token", state.token);
    $("#token-form").hidden = true;
    route();
  });
  $("#filters").addEventListener("submit", (event) => {
    event.preventDefault();
    loadSessions().catch((error) => notice(error.message));
  });
  $("#more").addEventListener("click", () => loadSessions(true).catch((error) => notice(error.message)));
  $("#new-session").addEventListener("click", async () => {
    try {
      const session = await api("POST", "/v1/sessions", {});
      location.hash = `#/s/${encodeURIComponent(session.id)}`;
    } catch (error) {
      notice(error.message);
    }
  });
  $("#prompt-form").addEventListener("submit", submitPrompt);
  window.addEventListener("hashchange", route);
  route();
});

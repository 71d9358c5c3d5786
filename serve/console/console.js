// The rayfn console: plain JS over the job API's JSON routes (same origin, same token).
// Everything the API returns is data, never markup: nodes are built with textContent.
"use strict";

const TOKEN_KEY = "rayfn-token";
const LIVE_EVERY_MS = 1500;
const PAGE = 50;
const TERMINAL = new Set(["SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT", "EXPIRED_UNSTARTED", "EXPIRED", "LOST"]);
const STATUSES = ["SCHEDULED", "QUEUED", "PENDING", "RUNNING", "RETRYING", "SUCCEEDED", "FAILED",
  "CANCELLED", "TIMED_OUT", "EXPIRED_UNSTARTED"];

let liveTimer = null;
let route = 0; // bumped on every navigation: a late answer for an old view is dropped

// -- helpers ------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function when(seconds) {
  if (seconds === null || seconds === undefined) return "";
  return new Date(seconds * 1000).toLocaleString();
}

function took(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  return `${(seconds / 60).toFixed(1)} min`;
}

function status(value) {
  return h("span", { class: `status s-${value}`, "data-status": value }, value);
}

function copyButton(text) {
  return h("button", {
    class: "copy", title: "Copy", "data-copy": text,
    onclick: (event) => {
      event.preventDefault();
      navigator.clipboard?.writeText(text);
      event.target.textContent = "copied";
    },
  }, "copy");
}

function duration(call) {
  if (!call.started_at) return "";
  return took((call.finished_at || Date.now() / 1000) - call.started_at);
}

class SignInNeeded extends Error {}

async function api(path, options = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = { ...(options.headers || {}) };
  if (token) headers.Authorization = `Bearer ${token}`;
  const answer = await fetch(path, { ...options, headers });
  if (answer.status === 401) throw new SignInNeeded();
  return answer;
}

async function json(path, options) {
  const answer = await api(path, options);
  const body = await answer.json();
  if (!answer.ok) throw new Error(body.message || `HTTP ${answer.status}`);
  return body;
}

function setLive(text) {
  document.getElementById("live").textContent = text;
}

function every(work) {
  clearInterval(liveTimer);
  const mine = route;
  const tick = async () => {
    if (mine !== route) return;
    try {
      await work();
      setLive(`live · updated ${new Date().toLocaleTimeString()}`);
    } catch (error) {
      if (error instanceof SignInNeeded) showSignIn();
      else setLive(`not updated: ${error.message}`);
    }
  };
  liveTimer = setInterval(tick, LIVE_EVERY_MS);
  return tick();
}

// -- sign in ------------------------------------------------------------------------

function showSignIn(message) {
  clearInterval(liveTimer);
  document.getElementById("view").replaceChildren();
  document.getElementById("sign-in").hidden = false;
  const error = document.getElementById("sign-in-error");
  error.hidden = !message;
  error.textContent = message || "";
  setLive("");
}

document.getElementById("sign-in-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value);
  try {
    await json("/v1/apps");
  } catch (error) {
    sessionStorage.removeItem(TOKEN_KEY);
    showSignIn(error instanceof SignInNeeded ? "That token was refused." : error.message);
    return;
  }
  document.getElementById("sign-in").hidden = true;
  document.getElementById("sign-out").hidden = false;
  render();
});

document.getElementById("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  document.getElementById("sign-out").hidden = true;
  render();
});

function confirmAction(text) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
    dialog.showModal();
  });
}

// -- pictures -------------------------------------------------------------------------

function barChart(points, { width = 560, height = 120, title }) {
  // points: [{label, ok, bad}] stacked, or [{label, value}]
  const svg = "http://www.w3.org/2000/svg";
  const chart = document.createElementNS(svg, "svg");
  chart.setAttribute("viewBox", `0 0 ${width} ${height + 18}`);
  chart.setAttribute("class", "bars");
  chart.setAttribute("role", "img");
  chart.setAttribute("aria-label", title);
  const top = Math.max(1, ...points.map((p) => (p.value ?? 0) + (p.ok ?? 0) + (p.bad ?? 0)));
  const step = width / Math.max(1, points.length);
  points.forEach((point, index) => {
    const parts = point.value !== undefined ? [["hist", point.value]] : [["ok", point.ok], ["bad", point.bad]];
    let y = height;
    for (const [kind, count] of parts) {
      if (!count) continue;
      const size = (count / top) * (height - 4);
      const rect = document.createElementNS(svg, "rect");
      rect.setAttribute("x", index * step + 1);
      rect.setAttribute("y", y - size);
      rect.setAttribute("width", Math.max(1, step - 2));
      rect.setAttribute("height", size);
      rect.setAttribute("class", kind);
      const tip = document.createElementNS(svg, "title");
      tip.textContent = `${point.label}: ${count}`;
      rect.append(tip);
      chart.append(rect);
      y -= size;
    }
  });
  for (const [index, point] of [[0, points[0]], [points.length - 1, points[points.length - 1]]]) {
    if (!point) continue;
    const label = document.createElementNS(svg, "text");
    label.setAttribute("x", index === 0 ? 0 : width);
    label.setAttribute("y", height + 14);
    label.setAttribute("text-anchor", index === 0 ? "start" : "end");
    label.textContent = point.label;
    chart.append(label);
  }
  const peak = document.createElementNS(svg, "text");
  peak.setAttribute("x", width);
  peak.setAttribute("y", 10);
  peak.setAttribute("text-anchor", "end");
  peak.textContent = `max ${top}`;
  chart.append(peak);
  return h("figure", { class: "card" }, h("figcaption", { class: "muted" }, title), chart);
}

// -- views ----------------------------------------------------------------------------

function optionsText(options) {
  const parts = [];
  if (options.gpu) parts.push(`gpu ${options.gpu}`);
  if (options.cpu !== null && options.cpu !== undefined) parts.push(`cpu ${options.cpu}`);
  if (options.memory_mib) parts.push(`${options.memory_mib} MiB`);
  parts.push(`timeout ${options.timeout}s`);
  if (options.retries) parts.push(`retries ${options.retries}`);
  if (options.max_containers) parts.push(`max_containers ${options.max_containers}`);
  if (options.webhook) parts.push("webhook");
  return parts.join(" · ");
}

async function appsView(view) {
  view.replaceChildren(h("h1", {}, "Apps and functions"), h("p", { class: "muted" }, "Loading…"));
  const mine = route;
  return every(async () => {
    const [apps, stats] = await Promise.all([json("/v1/apps"), json("/v1/stats")]);
    if (mine !== route) return;
    const byFunction = new Map(stats.functions.map((f) => [`${f.app}.${f.function}`, f]));
    const cards = apps.map((app) => h("section", { class: "card", "data-app": app.name },
      h("h2", {}, app.name, " ", h("span", { class: "muted" },
        `version ${app.version} · deployed ${when(app.deployed_at)}${app.ephemeral ? " · ephemeral" : ""}`)),
      h("table", {},
        h("thead", {}, h("tr", {}, ["Function", "Options", "Calls by status", "Queued", "Running",
          "Run p50 / p95", "Wait p50 / p95"].map((t, i) => h("th", { class: i > 2 ? "num" : "" }, t)))),
        h("tbody", {}, app.functions.map((fn) => {
          const figures = byFunction.get(`${app.name}.${fn.name}`) || { by_status: {} };
          const counts = Object.entries(figures.by_status).map(([s, n]) => h("span", {}, status(s), ` ${n} `));
          const link = `#/calls?app=${encodeURIComponent(app.name)}&function=${encodeURIComponent(fn.name)}`;
          return h("tr", { "data-function": fn.name },
            h("td", {}, h("a", { href: link }, fn.name), h("div", { class: "muted id" }, fn.signature)),
            h("td", {}, optionsText(fn.options)),
            h("td", {}, counts.length ? counts : h("span", { class: "muted" }, "none in the last hour")),
            h("td", { class: "num" }, figures.queued ?? 0),
            h("td", { class: "num" }, figures.running ?? 0),
            h("td", { class: "num" }, `${took(figures.run_p50)} / ${took(figures.run_p95)}`),
            h("td", { class: "num" }, `${took(figures.wait_p50)} / ${took(figures.wait_p95)}`));
        })))));
    const timeline = stats.timeline.map((b) => ({
      label: new Date(b.at * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }),
      ok: b.succeeded, bad: b.failed,
    }));
    const histograms = stats.functions.filter((f) => f.histogram.some((n) => n)).map((f) =>
      barChart(f.histogram.map((n, i) => ({ label: stats.histogram_edges[i], value: n })),
        { title: `${f.app}.${f.function}: run time (count per bucket, up to ${stats.histogram_edges.at(-1)})` }));
    view.replaceChildren(
      h("h1", {}, "Apps and functions"),
      ...(apps.length ? cards : [h("p", { class: "muted" }, "No app is deployed.")]),
      h("h2", {}, "The last hour"),
      h("div", { class: "grid" },
        barChart(timeline, { title: "Calls ended per minute: succeeded (green), failed (red)" }),
        histograms),
      h("p", { class: "muted" }, `${stats.tracked} calls tracked by the registry.`));
  });
}

function callsQuery() {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  return Object.fromEntries(params.entries());
}

async function callsView(view) {
  const query = callsQuery();
  const cursors = [];
  let before = query.before || null;
  const field = (name, label, input) => h("label", {}, label, input);
  const filters = h("form", { class: "filters", id: "filters" },
    field("app", "App", h("input", { name: "app", value: query.app || "", size: 14 })),
    field("function", "Function", h("input", { name: "function", value: query.function || "", size: 14 })),
    field("status", "Status", h("select", { name: "status" },
      h("option", { value: "" }, "any"),
      STATUSES.map((s) => h("option", { value: s, selected: query.status === s }, s)))),
    field("dead", "Dead letters", h("select", { name: "dead" },
      h("option", { value: "" }, "all calls"), h("option", { value: "true", selected: query.dead === "true" }, "only"))),
    field("since", "Created after", h("input", { name: "since", type: "datetime-local", value: query.since || "" })),
    field("until", "Created before", h("input", { name: "until", type: "datetime-local", value: query.until || "" })),
    field("prefix", "Id starts with", h("input", { name: "prefix", value: query.prefix || "", size: 16 })),
    h("button", { type: "submit", class: "primary" }, "Filter"));
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = new URLSearchParams();
    for (const [key, value] of new FormData(filters).entries()) if (value) chosen.set(key, value);
    location.hash = `#/calls?${chosen}`;
  });
  const body = h("tbody", { id: "calls" });
  const newer = h("button", { disabled: true }, "← Newer");
  const older = h("button", { disabled: true }, "Older →");
  view.replaceChildren(h("h1", {}, "Calls"), filters,
    h("table", {}, h("thead", {}, h("tr", {}, ["Call", "Function", "Status", "Attempts", "Created",
      "Took", "Progress", "Error"].map((t) => h("th", {}, t)))), body),
    h("div", { class: "pager" }, newer, older));
  const load = async () => {
    const params = new URLSearchParams({ limit: PAGE });
    for (const key of ["app", "function", "status", "dead", "prefix"]) if (query[key]) params.set(key, query[key]);
    for (const key of ["since", "until"]) if (query[key]) params.set(key, new Date(query[key]).getTime() / 1000);
    if (before) params.set("before", before);
    const calls = await json(`/v1/calls?${params}`);
    body.replaceChildren(...calls.map((c) => h("tr", { "data-call": c.call_id },
      h("td", {}, h("a", { class: "id", href: `#/calls/${c.call_id}` }, c.call_id), copyButton(c.call_id)),
      h("td", {}, `${c.app}.${c.function}`),
      h("td", {}, status(c.status)),
      h("td", { class: "num" }, c.attempts.length),
      h("td", {}, when(c.created_at)),
      h("td", { class: "num" }, duration(c)),
      h("td", {}, progressText(c.progress)),
      h("td", { class: "error" }, c.error || ""))));
    if (!calls.length) body.append(h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No calls match.")));
    older.disabled = calls.length < PAGE;
    older.onclick = () => { cursors.push(before); before = calls.at(-1).call_id; load(); };
    newer.disabled = !cursors.length;
    newer.onclick = () => { before = cursors.pop(); load(); };
  };
  return every(load);
}

function progressText(progress) {
  if (!progress) return "";
  const value = typeof progress.value === "number" ? `${Math.round(progress.value * 100)}%` : JSON.stringify(progress.value);
  return progress.message ? `${value} ${progress.message}` : value;
}

async function callView(view, callId) {
  view.replaceChildren(h("h1", {}, h("span", { class: "id" }, callId), copyButton(callId)),
    h("p", { class: "muted" }, "Loading…"));
  const mine = route;
  let settled = false;
  let lateLooks = 0; // Ray's log API catches up a few seconds after a call ends
  return every(async () => {
    if (settled) return;
    const answer = await api(`/v1/calls/${encodeURIComponent(callId)}`);
    if (mine !== route) return;
    if (!answer.ok) {
      const body = await answer.json();
      view.replaceChildren(h("h1", {}, h("span", { class: "id" }, callId)), h("p", { class: "error" }, body.message));
      settled = true;
      return;
    }
    const call = await answer.json();
    const extras = await callExtras(callId, call);
    if (mine !== route) return;
    const printed = extras.logs.some((log) => log.lines.length);
    settled = TERMINAL.has(call.status) && (printed || ++lateLooks > 20);
    view.replaceChildren(...callPage(call, extras));
  });
}

async function callExtras(callId, call) {
  const id = encodeURIComponent(callId);
  const [logs, graph, outcome] = await Promise.all([
    json(`/v1/calls/${id}/logs`).catch((error) => [{ attempt: 0, lines: [], note: error.message }]),
    json(`/v1/calls/${id}/graph`).catch(() => null),
    TERMINAL.has(call.status) ? api(`/v1/calls/${id}/result`).then(async (r) => ({
      status: r.status, body: await r.text(), size: Number(r.headers.get("content-length") || 0),
    })) : null,
  ]);
  return { logs, graph, outcome };
}

function callPage(call, extras) {
  const actions = [];
  if (!TERMINAL.has(call.status)) {
    actions.push(h("button", { class: "danger", id: "cancel", onclick: async () => {
      if (!(await confirmAction(`Cancel ${call.call_id}? A queued call never runs; a running one is stopped.`))) return;
      await json(`/v1/calls/${encodeURIComponent(call.call_id)}`, { method: "DELETE" });
      render();
    } }, "Cancel"));
  }
  if (call.status === "FAILED" || call.status === "TIMED_OUT") {
    actions.push(h("button", { class: "primary", id: "requeue", onclick: async () => {
      if (!(await confirmAction(`Run ${call.call_id} again under its id?`))) return;
      await json(`/v1/calls/${encodeURIComponent(call.call_id)}/requeue`, { method: "POST" });
      render();
    } }, "Requeue"));
  }
  const nodes = new Map(extras.logs.map((log) => [log.attempt, log.node]));
  const facts = [
    ["Status", status(call.status)], ["Function", `${call.app}.${call.function}`],
    ["Created", when(call.created_at)], ["Started", when(call.started_at)],
    ["Finished", when(call.finished_at)], ["Took", duration(call)],
    ["Priority", call.priority], ["Scheduled for", when(call.scheduled_for)],
    ["Start by", when(call.start_by)], ["Progress", progressText(call.progress)],
  ].filter(([, value]) => value !== "" && value !== null && value !== undefined);
  const parts = [
    h("h1", {}, h("span", { class: "id" }, call.call_id), copyButton(call.call_id)),
    h("div", { class: "card" }, h("dl", { class: "kv" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
      actions.length ? h("p", {}, actions) : null),
    h("h2", {}, "Attempts"),
    h("table", { id: "attempts" },
      h("thead", {}, h("tr", {}, ["#", "Node", "Handed to Ray", "Started", "Finished", "Outcome", "Error"].map((t) => h("th", {}, t)))),
      h("tbody", {}, (call.attempts || []).map((a) => h("tr", {},
        h("td", {}, a.number), h("td", { class: "id" }, nodes.get(a.number) || ""),
        h("td", {}, when(a.submitted_at)),
        h("td", {}, when(a.started_at)), h("td", {}, when(a.finished_at)),
        h("td", {}, a.outcome || "running"), h("td", { class: "error" }, a.error || ""))))),
  ];
  const outcome = extras.outcome;
  if (outcome) parts.push(...outcomeParts(outcome));
  if (call.error && !(outcome && outcome.status === 424)) parts.push(h("h2", {}, "Error"), h("pre", { id: "error" }, call.error));
  parts.push(h("h2", {}, "What it printed"));
  const several = extras.logs.length > 1;
  const lines = extras.logs.flatMap((log) =>
    several && log.lines.length ? [`-- attempt ${log.attempt}`, ...log.lines] : log.lines);
  const notes = extras.logs.map((log) => log.note).filter(Boolean);
  parts.push(lines.length ? h("pre", { id: "logs" }, lines.join("\n"))
    : h("p", { class: "muted", id: "logs" }, notes.join(" ") || "Nothing (yet)."));
  const children = extras.graph && extras.graph.children && extras.graph.children.length ? extras.graph.children : null;
  if (children) parts.push(h("h2", {}, "Calls it spawned"), h("div", { class: "tree" }, tree(children)));
  return parts;
}

function outcomeParts(outcome) {
  let body = null;
  try { body = JSON.parse(outcome.body); } catch { body = null; }
  if (outcome.status === 200 && body) {
    const text = JSON.stringify(body.result, null, 2);
    return [h("h2", {}, "Result ", h("span", { class: "muted" }, `(${outcome.size || text.length} bytes as JSON)`)),
      h("pre", { class: "light", id: "result" }, text.length > 20000 ? `${text.slice(0, 20000)}\n…` : text)];
  }
  if (outcome.status === 424 && body && body.error) {
    return [h("h2", {}, "Error"), h("pre", { id: "error" },
      `${body.error.type}: ${body.error.message}\n\n${body.error.traceback || ""}`)];
  }
  if (body && body.message) return [h("h2", {}, "Result"), h("p", { class: "muted", id: "result" }, body.message)];
  return [];
}

function tree(nodes) {
  return h("ul", {}, nodes.map((node) => h("li", {},
    h("a", { class: "id", href: `#/calls/${node.call_id}` }, node.call_id), " ",
    `${node.app}.${node.function_name} `, status(node.status),
    node.children && node.children.length ? tree(node.children) : null)));
}

// -- routing --------------------------------------------------------------------------

async function render() {
  route += 1;
  clearInterval(liveTimer);
  const view = document.getElementById("view");
  const path = location.hash.replace(/^#/, "").split("?")[0] || "/";
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", (link.dataset.nav === "calls") === path.startsWith("/calls"));
  }
  document.getElementById("sign-in").hidden = true;
  document.getElementById("sign-out").hidden = !sessionStorage.getItem(TOKEN_KEY);
  try {
    if (path.startsWith("/calls/")) await callView(view, decodeURIComponent(path.slice("/calls/".length)));
    else if (path.startsWith("/calls")) await callsView(view);
    else await appsView(view);
  } catch (error) {
    if (error instanceof SignInNeeded) showSignIn();
    else view.replaceChildren(h("p", { class: "error" }, error.message));
  }
}

window.addEventListener("hashchange", render);
render();

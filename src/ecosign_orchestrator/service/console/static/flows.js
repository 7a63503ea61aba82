// The flow list: counts by status, queue, throughput, failure groups, and the flows matching
// the filters in the address bar, kept current by the event stream.
import {
  ago, api, confirmAction, el, follow, labelCells, notice, relative, setLive, statusBadge,
  throttle, waitText, when,
} from "./api.js";

const query = new URLSearchParams(location.search);
const FILTERS = ["status", "kind", "document_id", "step", "reason"];
const ACTIVE_STEP = ["running", "waiting", "retrying"];
let shown = 50;
let cursor = null;

for (const name of [...FILTERS, "id"]) {
  const input = document.querySelector(`#filters [name="${name}"]`);
  if (input && query.get(name)) input.value = query.get(name);
}

function listParams(limit, after) {
  const params = new URLSearchParams();
  for (const name of FILTERS) if (query.get(name)) params.set(name, query.get(name));
  params.set("limit", String(limit));
  if (after) params.set("cursor", after);
  return params;
}

export function flowStep(job) {
  const active = job.steps.find((s) => ACTIVE_STEP.includes(s.status));
  if (active) return `${active.name} (${active.status})`;
  if (job.status === "failed") {
    const step = job.last_error?.details?.step;
    const failed = job.steps.filter((s) => s.status === "failed").pop();
    return step || (failed ? failed.name : "");
  }
  return "";
}

// "protect+tsa+bitcoin" for a document flow, else the kind.
export function intentLabel(job) {
  const names = [];
  for (const group of ["actions", "forensic"]) {
    for (const [name, on] of Object.entries(job.payload?.[group] ?? {})) if (on === true) names.push(name);
  }
  return names.join("+") || job.kind;
}

// What matters about a flow now: what it waits for, why it failed, where it is.
export function nowText(job) {
  if (job.status === "waiting") return waitText(job);
  if (job.status === "failed" && job.last_error) return job.last_error.message;
  if (job.status === "retrying" && job.last_error) {
    return `${job.last_error.message} (next run ${relative(job.run_at)})`;
  }
  return flowStep(job);
}

function row(job) {
  const tr = el("tr", "", { "data-job-id": job.id, "data-status": job.status });
  const link = el("a", job.id.slice(-12), { href: `/ui/flows/${job.id}`, title: job.id });
  const id = el("td");
  id.append(link);
  const status = el("td");
  status.append(statusBadge(job.status));
  const created = el("td");
  created.append(when(job.created_at));
  const updated = el("td");
  updated.append(when(job.updated_at));
  tr.append(
    id,
    status,
    el("td", intentLabel(job)),
    el("td", nowText(job), { class: "reason" }),
    el("td", job.payload?.document_entity_id ?? "", { class: "mono" }),
    created,
    updated,
  );
  return tr;
}

async function loadList({ append = false } = {}) {
  const body = document.querySelector("#flows tbody");
  let jobs;
  let next = null;
  if (query.get("id")) {
    try {
      jobs = [await api(`/v1/jobs/${encodeURIComponent(query.get("id"))}`)];
    } catch (error) {
      if (error.status !== 404 && error.status !== 422) throw error;
      jobs = [];
      notice(error.status === 404 ? `No flow has an id starting or ending with "${query.get("id")}".` : error.message);
    }
  } else {
    const page = await api(`/v1/jobs?${listParams(append ? 50 : shown, append ? cursor : null)}`);
    jobs = page.jobs;
    next = page.next_cursor;
  }
  if (!append) body.replaceChildren();
  for (const job of jobs) body.append(row(job));
  labelCells(document.getElementById("flows"));
  shown = Math.max(50, body.children.length);
  cursor = next;
  document.getElementById("more").hidden = !cursor;
  document.getElementById("no-flows").hidden = body.children.length > 0;
}

function filterLink(params) {
  const target = new URLSearchParams(params);
  return `/ui?${target}`;
}

async function loadOverview() {
  const kind = query.get("kind");
  const view = await api(`/v1/overview${kind ? `?kind=${encodeURIComponent(kind)}` : ""}`);
  const counts = document.getElementById("counts");
  counts.replaceChildren();
  for (const [status, count] of Object.entries(view.statuses)) {
    const item = el("li", "", { "data-status": status });
    const link = el("a", "", { href: filterLink({ status }), "aria-label": `${count} ${status}` });
    link.append(el("span", count, { class: "count" }), el("span", status, { class: "label" }));
    if (query.get("status") === status) link.setAttribute("aria-current", "true");
    item.append(link);
    counts.append(item);
  }
  const kinds = document.getElementById("kinds");
  kinds.replaceChildren(...Object.keys(view.kinds).map((k) => el("option", "", { value: k })));
  document.getElementById("queue-depth").textContent = String(view.queue_depth);
  const oldest = document.getElementById("oldest-ready");
  oldest.replaceChildren();
  if (view.oldest_waiting_id) {
    oldest.append(el("a", ago(view.oldest_waiting_seconds), { href: `/ui/flows/${view.oldest_waiting_id}` }));
  } else {
    oldest.textContent = "none ready";
  }
  drawWaits(view.waiting);
  drawRate(view.per_minute);
  drawFailures(view.failures);
  return view;
}

function drawWaits(groups) {
  const list = document.getElementById("waits");
  list.replaceChildren();
  for (const group of groups) {
    const item = el("li", "", { "data-reason": group.reason });
    const seconds = (Date.now() - Date.parse(group.oldest_since)) / 1000;
    item.append(
      el("strong", group.count, { class: "count" }),
      el("span", ` waiting for ${group.reason}, the longest for ${ago(Math.max(seconds, 0))}`),
    );
    list.append(item);
  }
  document.getElementById("no-waits").hidden = groups.length > 0;
}

function drawRate(minutes) {
  const bars = document.getElementById("per-minute");
  const top = Math.max(1, ...minutes.map((m) => m.completed + m.failed));
  bars.replaceChildren();
  for (const minute of minutes) {
    const total = minute.completed + minute.failed;
    const at = new Date(minute.start).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
    const words = `${at}: ${minute.completed} completed, ${minute.failed} failed`;
    const column = el("div", "", { class: "bar", title: words });
    const ok = el("span", "", { class: "ok" });
    const bad = el("span", "", { class: "bad" });
    ok.style.height = `${(100 * minute.completed) / top}%`;  // CSSOM: allowed by the CSP
    bad.style.height = `${(100 * minute.failed) / top}%`;
    column.append(bad, ok, el("span", total || "", { class: "n" }), el("span", words, { class: "visually-hidden" }));
    bars.append(column);
  }
  const first = minutes[0]?.start;
  document.getElementById("rate-from").textContent = first
    ? new Date(first).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false })
    : "";
  document.getElementById("rate-scale").textContent = `up to ${top} a minute`;
}

function groupSelection(group) {
  const selection = { status: ["failed"], kind: [group.kind] };
  if (group.step) selection.step = group.step;
  if (group.reason) selection.reason = group.reason;
  return selection;
}

// Retry a failure group as `jobs retry --status failed --step ... --reason ...` would: a dry
// run lists the flows, the operator confirms, and exactly those flows are retried.
async function retryGroup(group, button) {
  button.disabled = true;
  try {
    const selection = groupSelection(group);
    const listed = await api("/v1/jobs:retry", { method: "POST", body: { ...selection, dry_run: true } });
    const ids = listed.selected.map((j) => j.id);
    if (!ids.length) {
      notice("No flow of this group is failed any more: nothing to retry.");
      return;
    }
    const ok = await confirmAction({
      title: `Retry ${ids.length} flow${ids.length === 1 ? "" : "s"}?`,
      question: `Each runs again from its document's current state: ${group.step || "any step"}, "${group.reason || "no reason"}".`,
      details: ids.map((id) => id.slice(-12)),
      confirm: `Retry ${ids.length}`,
      keep: "Do not retry",
    });
    if (!ok) return;
    const done = await api("/v1/jobs:retry", { method: "POST", body: { ...selection, ids, dry_run: false } });
    const skipped = done.skipped.length ? `; ${done.skipped.length} skipped (${done.skipped.map(([, why]) => why).join("; ")})` : "";
    notice(`Retried ${done.done} of ${ids.length} flow${ids.length === 1 ? "" : "s"}${skipped}.`);
    await refresh({ keepNotice: true });
  } catch (error) {
    notice(`Retry refused: ${error.message}`);
  } finally {
    button.disabled = false;
  }
}

function drawFailures(groups) {
  const table = document.getElementById("failures");
  const body = table.querySelector("tbody");
  body.replaceChildren();
  for (const group of groups) {
    const tr = el("tr");
    const reason = el("td", "", { class: "reason" });
    const params = { status: "failed", kind: group.kind };
    if (group.step) params.step = group.step;
    if (group.reason) params.reason = group.reason;
    reason.append(el("a", group.reason || "(no reason)", { href: filterLink(params) }));
    const newest = el("td");
    newest.append(when(group.newest));
    const act = el("td");
    const button = el("button", "Retry…", { type: "button", class: "quiet retry-group" });
    button.addEventListener("click", () => retryGroup(group, button));
    act.append(button);
    tr.append(el("td", group.count), el("td", group.kind), el("td", group.step || "–"), reason, newest, act);
    body.append(tr);
  }
  labelCells(table);
  document.getElementById("no-failures").hidden = groups.length > 0;
}

// A check of a waiting flow (is the anchor confirmed yet?) that finds nothing new writes no
// event, so the stream cannot say it ended: while flows are running or waiting, the page is
// also re-read every few seconds (a page read mid-check would otherwise keep showing it).
const RECHECK_MS = 5000;
let recheckTimer = null;

function recheckWhileActive(view) {
  clearTimeout(recheckTimer);
  if ((view.statuses.running ?? 0) + (view.statuses.waiting ?? 0) > 0) {
    recheckTimer = setTimeout(() => refresh({ keepNotice: true }), RECHECK_MS);
  }
}

async function refresh({ keepNotice = false } = {}) {
  try {
    if (!keepNotice) notice("");
    const [view] = await Promise.all([loadOverview(), loadList()]);
    recheckWhileActive(view);
  } catch (error) {
    notice(`Could not load flows: ${error.message}`);
  }
}

document.getElementById("more").addEventListener("click", () => loadList({ append: true }));

async function start() {
  let view;
  try {
    view = await loadOverview();
    await loadList();
    recheckWhileActive(view);
  } catch (error) {
    notice(`Could not load flows: ${error.message}. Reload the page to try again.`);
    setLive("not connected");
    return;
  }
  follow({ after: view.last_event_id, onEvent: throttle(() => refresh({ keepNotice: true }), 1000) });
}

start();

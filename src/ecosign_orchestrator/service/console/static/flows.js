// The flow list: counts by status, queue, throughput, failure groups, and the flows matching
// the filters in the address bar, kept current by the event stream.
import { ago, api, dateTime, el, follow, notice, statusBadge, throttle } from "./api.js";

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

function row(job) {
  const tr = el("tr", "", { "data-job-id": job.id, "data-status": job.status });
  const link = el("a", job.id.slice(-12), { href: `/ui/flows/${job.id}`, title: job.id });
  const id = el("td");
  id.append(link);
  const status = el("td");
  status.append(statusBadge(job.status));
  tr.append(
    id,
    status,
    el("td", job.kind),
    el("td", flowStep(job)),
    el("td", job.payload?.document_entity_id ?? "", { class: "mono" }),
    el("td", dateTime(job.created_at)),
    el("td", dateTime(job.updated_at)),
    el("td", job.last_error?.message ?? "", { class: "reason" }),
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
  const oldest = document.getElementById("oldest-waiting");
  oldest.replaceChildren();
  if (view.oldest_waiting_id) {
    oldest.append(el("a", ago(view.oldest_waiting_seconds), { href: `/ui/flows/${view.oldest_waiting_id}` }));
  } else {
    oldest.textContent = "none waiting";
  }
  drawRate(view.per_minute);
  drawFailures(view.failures);
  return view;
}

function drawRate(minutes) {
  const bars = document.getElementById("per-minute");
  const top = Math.max(1, ...minutes.map((m) => m.completed + m.failed));
  bars.replaceChildren();
  for (const minute of minutes) {
    const total = minute.completed + minute.failed;
    const column = el("div", "", {
      class: "bar",
      title: `${new Date(minute.start).toLocaleTimeString([], { hour12: false })}: ${minute.completed} completed, ${minute.failed} failed`,
    });
    const ok = el("span", "", { class: "ok" });
    const bad = el("span", "", { class: "bad" });
    ok.style.height = `${(100 * minute.completed) / top}%`;  // CSSOM: allowed by the CSP
    bad.style.height = `${(100 * minute.failed) / top}%`;
    column.append(bad, ok, el("span", total || "", { class: "n" }));
    bars.append(column);
  }
}

function drawFailures(groups) {
  const body = document.querySelector("#failures tbody");
  body.replaceChildren();
  for (const group of groups) {
    const tr = el("tr");
    const reason = el("td", "", { class: "reason" });
    const params = { status: "failed", kind: group.kind };
    if (group.step) params.step = group.step;
    if (group.reason) params.reason = group.reason;
    reason.append(el("a", group.reason || "(no reason)", { href: filterLink(params) }));
    tr.append(
      el("td", group.count),
      el("td", group.kind),
      el("td", group.step || "–"),
      reason,
      el("td", dateTime(group.newest)),
    );
    body.append(tr);
  }
  document.getElementById("no-failures").hidden = groups.length > 0;
}

async function refresh() {
  try {
    notice("");
    await Promise.all([loadOverview(), loadList()]);
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
  } catch (error) {
    notice(`Could not load flows: ${error.message}. Reload the page to try again.`);
    return;
  }
  follow({ after: view.last_event_id, onEvent: throttle(refresh, 1000) });
}

start();

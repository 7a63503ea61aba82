// One flow: facts, why it failed, a timeline of step attempts, the Edge call log, the event log,
// Retry and Cancel; kept current by the flow's event stream.
import {
  ApiError, api, confirmAction, dateTime, el, follow, labelCells, notice, setLive, throttle, time,
} from "./api.js";

const root = document.getElementById("flow");
let jobId = root.dataset.jobId;
let lastEventId = 0;
let stopFollowing = null;
let progressTimer = null;
let stopped = false;
const TERMINAL = ["completed", "failed", "cancelled"];
const STEP_STATUS = {
  started: "running", succeeded: "succeeded", skipped: "skipped", retrying: "retrying",
  failed: "failed", waiting: "waiting",
};

async function load() {
  if (jobId.length !== 36) jobId = (await api(`/v1/jobs/${encodeURIComponent(jobId)}`)).id;
  // The events first, the job after: a job still active then has its terminal event after the
  // last one read here, so following from it cannot miss the end.
  let events = await api(`/v1/jobs/${jobId}/events?limit=10000`);
  // The job before its calls, not beside them: a flow's last calls commit with its end, so
  // calls read in parallel could predate a job read as ended, and an ended flow is not followed
  // again: its page kept a call log without its last calls.
  const job = await api(`/v1/jobs/${jobId}`);
  const calls = await api(`/v1/jobs/${jobId}/calls?limit=10000`);
  // A job that ended between the two reads: read its events again, up to its last one.
  const ended = ["job_completed", "job_failed", "job_cancelled"];
  if (TERMINAL.includes(job.status) && !ended.includes(events[events.length - 1]?.type)) {
    events = await api(`/v1/jobs/${jobId}/events?limit=10000`);
  }
  if (events.length) lastEventId = Math.max(lastEventId, events[events.length - 1].id);
  drawHeader(job);
  drawFailure(job, calls);
  drawTimeline(job, events);
  drawCalls(calls);
  drawEvents(events);
  return job;
}

function drawHeader(job) {
  document.title = `Flow ${job.id.slice(-12)} (${job.status}) · ecosign-orchestrator`;
  document.getElementById("flow-id").textContent = job.id;
  document.getElementById("crumb-id").textContent = job.id;
  const status = document.getElementById("flow-status");
  status.textContent = job.status;
  status.dataset.status = job.status;
  document.getElementById("retry").disabled = !["failed", "cancelled"].includes(job.status);
  document.getElementById("cancel").disabled = TERMINAL.includes(job.status);
  const facts = document.getElementById("facts");
  facts.replaceChildren();
  const fact = (name, value, cls) => {
    if (value === undefined || value === null || value === "") return;
    const div = el("div");
    div.append(el("dt", name), el("dd", value, cls ? { class: cls } : {}));
    facts.append(div);
  };
  fact("Kind", job.kind);
  fact("Document", job.payload?.document_entity_id, "mono");
  if (job.payload?.actions) {
    fact("Intent", Object.entries(job.payload.actions).filter(([, on]) => on).map(([k]) => k).join(", "));
  }
  if (job.payload?.forensic) {
    fact("Evidence", Object.entries(job.payload.forensic).filter(([, on]) => on).map(([k]) => k).join(", "));
  }
  if (job.payload?.metadata) fact("Metadata", JSON.stringify(job.payload.metadata), "mono");
  if (job.status === "waiting" && job.waiting) {
    fact("Waiting for", job.waiting.reason);
    fact("Waiting since", dateTime(job.waiting.since));
    fact("Next check", dateTime(job.run_at));
    fact("Gives up", dateTime(job.waiting.deadline));
  }
  fact("Runs", job.attempts ? `${job.attempts} of ${job.max_attempts}` : "");
  fact("Created", dateTime(job.created_at));
  fact("Started", dateTime(job.started_at));
  fact("Finished", dateTime(job.finished_at));
  fact("Next run", job.status === "retrying" || job.status === "queued" ? dateTime(job.run_at) : "");
  if (job.lifecycle) {
    const implied = job.lifecycle.implied_lifecycle_status;
    const why = TERMINAL.includes(job.status) ? "none: the document keeps its status" : "once the flow ends";
    fact("Implied lifecycle_status", implied ? `${implied}${job.lifecycle.written_back ? " (written back)" : ""}` : why);
  }
  fact("Idempotency key", job.idempotency_key, "mono");
  fact("Priority", job.priority ? String(job.priority) : "");
  const progress = document.getElementById("progress");
  const text = document.getElementById("progress-text");
  const fraction = job.progress?.fraction;
  progress.hidden = fraction === null || fraction === undefined;
  if (!progress.hidden) progress.value = fraction;
  text.hidden = !job.progress?.message;
  text.textContent = job.progress?.message
    ? `${fraction != null ? Math.round(fraction * 100) + " % · " : ""}${job.progress.message}`
    : "";
  // Progress is not an event: while a job runs, re-read it every second for the bar. A check of
  // a waiting flow that finds nothing new writes no event either: while the flow is running or
  // waiting, re-read it every few seconds, so a page read mid-check does not stay "running".
  clearTimeout(progressTimer);
  if (job.status === "running" && fraction !== null && fraction !== undefined) {
    progressTimer = setTimeout(refresh, 1000);
  } else if (job.status === "running" || job.status === "waiting") {
    progressTimer = setTimeout(refresh, 5000);
  }
}

function drawFailure(job, calls) {
  const box = document.getElementById("failure");
  box.hidden = job.status !== "failed" || !job.last_error;
  if (box.hidden) return;
  const error = job.last_error;
  const step = error.details?.step ?? "";
  document.getElementById("failure-step").textContent = step || "(none)";
  document.getElementById("failure-message").textContent = error.message;
  const last = calls.filter((c) => !step || c.step === step).pop();
  const status = error.details?.status ?? last?.status;
  document.getElementById("failure-status").textContent = [
    status ? `HTTP ${status}` : "",
    last ? `${last.target}, attempt ${last.attempt}` : "",
    error.transient ? "transient" : "fatal",
  ].filter(Boolean).join(" · ");
  const body = last?.response_body || JSON.stringify(error.details ?? {}, null, 2);
  document.getElementById("failure-body").textContent = body;
}

// Step attempts from the step events: a bar from step_started to the event that ended it; a
// step satisfied by state is a mark; polls of a waiting step extend one bar.
export function attempts(job, events) {
  const rows = new Map(job.steps.map((s) => [s.name, []]));
  const open = new Map();
  for (const event of events) {
    if (!event.type.startsWith("step_")) continue;
    const name = event.data.step;
    const status = STEP_STATUS[event.type.slice(5)] ?? event.type.slice(5);
    if (!rows.has(name)) rows.set(name, []);
    const row = rows.get(name);
    if (status === "running") {
      const bar = { start: event.at, end: null, status, attempt: event.data.attempt };
      row.push(bar);
      open.set(name, bar);
      continue;
    }
    let bar = open.get(name);
    const previous = row[row.length - 1];
    if (!bar && previous && previous.status === "waiting" && status === "waiting") bar = previous;
    if (!bar) {
      if (previous && previous.status === "waiting") previous.end = event.at;
      bar = { start: event.at, end: event.at, status, attempt: event.data.attempt };
      row.push(bar);
    }
    bar.end = event.at;
    bar.status = status;
    bar.message = event.data.message ?? "";
    bar.next = event.data.data?.next_poll_at ?? event.data.data?.held_until ?? null;
    bar.error = event.data.error?.message ?? "";
    open.delete(name);
  }
  return rows;
}

function drawTimeline(job, events) {
  const rows = attempts(job, events);
  const ended = TERMINAL.includes(job.status);
  const list = document.getElementById("timeline");
  const stamps = events.map((e) => Date.parse(e.at));
  const start = Math.min(Date.parse(job.created_at), ...stamps);
  const active = !TERMINAL.includes(job.status);
  const end = Math.max(active ? Date.now() : 0, ...stamps, start + 1000);
  const span = end - start;
  const steps = new Map(job.steps.map((s) => [s.name, s]));
  list.replaceChildren();
  for (const [name, bars] of rows) {
    const record = steps.get(name);
    const item = el("li", "", { "data-step": name, "data-status": record?.status ?? "" });
    const label = el("div", "", { class: "label" });
    label.append(el("strong", name), el("span", record ? record.status : "", { class: "muted" }));
    const track = el("div", "", { class: "track" });
    if (!bars.length) {
      track.append(el("span", record?.status === "pending" ? "to come" : "", { class: "planned" }));
    }
    for (const bar of bars) {
      const stop = bar.end ? Date.parse(bar.end) : end;
      const words = [
        `${name}: ${bar.status === "retrying" ? "retried" : bar.status}`,
        bar.attempt ? `attempt ${bar.attempt}` : "",
        `${time(bar.start)}–${bar.end ? time(bar.end) : "now"}`,
        bar.message,
        bar.error,
        bar.next && !ended ? `next check ${time(bar.next)}` : "",
      ].filter(Boolean).join(" · ");
      const seg = el("span", "", { class: "seg", "data-status": bar.status, title: words });
      seg.append(el("span", words, { class: "visually-hidden" }));
      seg.style.left = `${(100 * (Date.parse(bar.start) - start)) / span}%`;
      seg.style.width = `${Math.max(0.6, (100 * (stop - Date.parse(bar.start))) / span)}%`;
      track.append(seg);
    }
    const detail = el("div", record?.message ?? "", { class: "step-message muted" });
    item.append(label, track, detail);
    list.append(item);
  }
  document.getElementById("axis").textContent =
    `${time(new Date(start).toISOString())} → ${active ? "now" : time(new Date(end).toISOString())} (${((end - start) / 1000).toFixed(1)} s)`;
}

function drawCalls(calls) {
  const table = document.getElementById("calls");
  const body = table.querySelector("tbody");
  body.replaceChildren();
  for (const call of calls) {
    const tr = el("tr", "", { "data-status": call.status ?? "error" });
    const answer = el("td");
    const details = el("details");
    const preview = call.response_body ? call.response_body.slice(0, 60) : call.error || "(empty)";
    details.append(el("summary", preview));
    details.append(el("pre", call.response_body || "(no body)", { class: "body" }));
    if (call.truncated) details.append(el("p", "(cut at the call log's size limit)", { class: "muted" }));
    const headers = Object.entries(call.response_headers ?? {}).map(([k, v]) => `${k}: ${v}`).join("\n");
    if (headers) details.append(el("p", "Headers", { class: "muted" }), el("pre", headers, { class: "body" }));
    const fields = JSON.stringify(call.request ?? {});
    details.append(el("p", `Request fields: ${fields}`, { class: "muted" }));
    if (call.error) details.append(el("p", `Error: ${call.error}`));
    answer.append(details);
    tr.append(
      el("td", time(call.started_at)),
      el("td", call.step),
      el("td", call.attempt),
      el("td", call.target, { class: "mono" }),
      el("td", call.status ?? "no answer", { class: "http" }),
      el("td", `${Math.round(call.duration_ms)} ms`),
      answer,
    );
    body.append(tr);
  }
  labelCells(table);
  document.getElementById("no-calls").hidden = calls.length > 0;
}

// Why a job went back to the queue, in an operator's words.
const QUEUED_WORDS = {
  enqueued: "submitted",
  lease_expired: "its worker stopped answering: back in the queue",
  manual_retry: "retried by hand",
  released: "its worker shut down: back in the queue",
};

// An event's data in words: the step and its try, what happened, who acted.
export function eventDetail(event) {
  const data = event.data ?? {};
  const error = data.error?.message ?? (typeof data.error === "string" ? data.error : "");
  const parts = [];
  if (data.step) parts.push(data.attempt ? `${data.step} try ${data.attempt}` : data.step);
  if (data.message && data.message !== error) parts.push(data.message);
  if (error) parts.push(error);
  if (data.reason) {
    parts.push(event.type === "job_waiting" ? `waits for ${data.reason}` : QUEUED_WORDS[data.reason] ?? data.reason);
  }
  if (event.type === "job_cancel_requested") parts.push("stop requested");
  if (data.worker && event.type !== "job_started") parts.push(`worker ${data.worker}`);
  if (data.actor) parts.push(`by ${data.actor}`);
  return parts.join(" · ");
}

function drawEvents(events) {
  const table = document.getElementById("events");
  const body = table.querySelector("tbody");
  body.replaceChildren();
  for (const event of events) {
    const tr = el("tr", "", { "data-type": event.type });
    tr.append(
      el("td", event.id),
      el("td", time(event.at)),
      el("td", event.type, { class: "mono" }),
      el("td", event.data?.actor ?? ""),
      el("td", eventDetail(event), { class: "reason" }),
    );
    body.append(tr);
  }
  labelCells(table);
}

async function refresh() {
  try {
    const job = await load();
    notice("");
    return job;
  } catch (error) {
    const missing = error instanceof ApiError && (error.status === 404 || error.status === 422);
    notice(missing
      ? `No flow has the id ${jobId}: check it, or find the flow in the list.`
      : `Could not load the flow: ${error.message}`);
    if (missing) {
      stopped = true;
      if (stopFollowing) stopFollowing();
      setLive("no such flow");
    }
    return null;
  }
}

const soon = throttle(refresh, 300);

function followFlow() {
  if (stopFollowing) stopFollowing();
  stopFollowing = follow({ jobId, after: lastEventId, onEvent: soon, onEnd: refresh });
}

async function act(verb) {
  const button = document.getElementById(verb);
  if (verb === "cancel") {
    const ok = await confirmAction({
      title: "Cancel this flow?",
      question: "Steps not yet done will not run and the flow ends cancelled; a step running now stops at its worker's next heartbeat. Retry runs it again later.",
      confirm: "Cancel the flow",
    });
    if (!ok) return;
  }
  button.disabled = true;
  try {
    await api(`/v1/jobs/${jobId}/${verb}`, { method: "POST" });
    notice("");
  } catch (error) {
    notice(`${verb === "retry" ? "Retry" : "Cancel"} refused: ${error.message}`);
  }
  const job = await refresh();
  if (job && !TERMINAL.includes(job.status)) followFlow();
}

document.getElementById("retry").addEventListener("click", () => act("retry"));
document.getElementById("cancel").addEventListener("click", () => act("cancel"));

const first = await refresh();
if (stopped) {
  // nothing to follow
} else if (first && !TERMINAL.includes(first.status)) {
  followFlow();
} else if (first) {
  document.getElementById("live").textContent = "flow ended";
}

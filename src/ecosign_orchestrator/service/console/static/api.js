// The console's one way to the API: the operator's token (kept for this tab only), JSON calls,
// and the live event stream. Every value reaches the page through textContent, never as HTML.

const TOKEN_KEY = "ecosign-orchestrator.token";
const authRequired = document.body.dataset.auth === "token";

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function askToken(why) {
  const dialog = document.getElementById("token-dialog");
  const input = document.getElementById("token-input");
  document.getElementById("token-why").textContent = why;
  input.value = "";
  return new Promise((resolve) => {
    const form = document.getElementById("token-form");
    const done = (value) => {
      form.removeEventListener("submit", onSubmit);
      cancel.removeEventListener("click", onCancel);
      dialog.close();
      resolve(value);
    };
    const onSubmit = (event) => {
      event.preventDefault();
      const value = input.value.trim();
      if (value) {
        sessionStorage.setItem(TOKEN_KEY, value);
        showForget();
      }
      done(value || null);
    };
    const cancel = document.getElementById("token-cancel");
    const onCancel = () => done(null);
    form.addEventListener("submit", onSubmit);
    cancel.addEventListener("click", onCancel);
    dialog.showModal();
    input.focus();
  });
}

function showForget() {
  const button = document.getElementById("forget-token");
  button.hidden = !token();
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.detail ? body.detail : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

// How many times a refused token is asked for again before the call gives up.
const TOKEN_TRIES = 5;

// One API call. On 401 (no or a wrong token) and 403 (a read-only token for a write) it asks
// for a token, saying why the last one was refused, and tries again; Cancel gives up.
export async function api(path, { method = "GET", body } = {}) {
  for (let tries = 0; ; tries += 1) {
    const headers = { Accept: "application/json" };
    if (token()) headers.Authorization = `Bearer ${token()}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = { detail: text };
    }
    if ((response.status === 401 || response.status === 403) && tries < TOKEN_TRIES) {
      let why = "This server asks for a token. It is kept in this tab only.";
      if (response.status === 403) {
        why = `This action needs a read-write token (${data?.detail ?? "refused"}).`;
      } else if (token()) {
        why = `That token was refused (${data?.detail ?? "invalid"}). Enter it again.`;
      }
      if (response.status === 401) sessionStorage.removeItem(TOKEN_KEY);
      if (await askToken(why)) continue;
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }
}

export function notice(message) {
  const box = document.getElementById("notice");
  box.textContent = message || "";
  box.hidden = !message;
}

export function setLive(text) {
  document.getElementById("live").textContent = text;
}

// Follows the event stream (all events, or one job's) from `after`, calling onEvent(event) for
// each. Reconnects by itself from the last event seen; with tokens it opens the stream with a
// short-lived ticket (EventSource cannot send an Authorization header). Returns stop().
export function follow({ jobId = null, after = 0, onEvent, onEnd = null }) {
  let last = after;
  let source = null;
  let stopped = false;
  let timer = null;

  async function open() {
    if (stopped) return;
    const params = new URLSearchParams({ after: String(last) });
    if (jobId) params.set("job_id", jobId);
    try {
      if (authRequired) {
        const { ticket } = await api("/v1/stream-tickets", { method: "POST" });
        params.set("ticket", ticket);
      }
    } catch (error) {
      setLive("offline: " + error.message);
      timer = setTimeout(open, 3000);
      return;
    }
    if (stopped) return;
    source = new EventSource(`/v1/events/stream?${params}`);
    source.onopen = () => setLive("live");
    source.onmessage = null;
    const handle = (message) => {
      last = Math.max(last, Number(message.lastEventId) || last);
      const event = JSON.parse(message.data);
      onEvent(event);
      if (jobId && ["job_completed", "job_failed", "job_cancelled"].includes(event.type)) {
        // A job's stream ends after its terminal event; stop here rather than reconnect.
        close();
        setLive("live (flow ended)");
        if (onEnd) onEnd();
      }
    };
    for (const type of EVENT_TYPES) source.addEventListener(type, handle);
    source.onerror = () => {
      if (stopped) return;
      source.close();
      setLive("reconnecting…");
      timer = setTimeout(open, 1000);
    };
  }

  function close() {
    stopped = true;
    clearTimeout(timer);
    if (source) source.close();
  }

  open();
  return close;
}

// Every event type the server emits (listed by the page: SSE dispatches by event name).
export const EVENT_TYPES = document.body.dataset.eventTypes.split(" ");

// Calls fn at most once per `ms`, and once more after the last request in a burst.
export function throttle(fn, ms) {
  let timer = null;
  let again = false;
  return function run() {
    if (timer) {
      again = true;
      return;
    }
    fn();
    timer = setTimeout(() => {
      timer = null;
      if (again) {
        again = false;
        run();
      }
    }, ms);
  };
}

// An element with text (never HTML) and optional attributes.
export function el(tag, text = "", attrs = {}) {
  const node = document.createElement(tag);
  if (text !== "" && text !== null && text !== undefined) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(name, String(value));
  }
  return node;
}

export function time(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return date.toLocaleTimeString([], { hour12: false });
}

// "2 Dec 2026, 14:05:09 (3 min ago)" in the browser's locale; the ISO time in the tooltip.
export function dateTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  const local = date.toLocaleString([], { dateStyle: "medium", timeStyle: "medium", hour12: false });
  return `${local} (${relative(iso)})`;
}

// "3 min ago" / "in 40 s".
export function relative(iso) {
  const seconds = (Date.now() - Date.parse(iso)) / 1000;
  return seconds >= 0 ? `${ago(seconds)} ago` : `in ${ago(-seconds)}`;
}

// A <time> element: the date in words, its ISO form as the machine value and the tooltip.
export function when(iso, words = dateTime(iso)) {
  if (!iso) return el("span", "");
  return el("time", words, { datetime: iso, title: iso });
}

export function ago(seconds) {
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

// What a waiting job waits for, in one line ("" when it is not waiting).
export function waitText(job) {
  if (job.status !== "waiting" || !job.waiting) return "";
  const parts = [`waits for ${job.waiting.reason}`, `next check ${relative(job.run_at)}`];
  if (job.waiting.deadline) parts.push(`gives up ${relative(job.waiting.deadline)}`);
  return parts.join(", ");
}

// Labels each cell with its column's header, so that on a phone (CSS: table.cards) every row
// reads as a card of "label: value" lines instead of scrolling sideways.
export function labelCells(table) {
  const headers = [...table.querySelectorAll("thead th")].map((th) => th.textContent.trim());
  for (const row of table.querySelectorAll("tbody tr")) {
    [...row.children].forEach((cell, index) => cell.setAttribute("data-label", headers[index] ?? ""));
  }
}

// Asks the operator to confirm an action in the page's confirmation dialog: resolves true
// when confirmed. `details` (strings) are listed under the question.
export function confirmAction({ title, question, details = [], confirm, keep = "Keep it" }) {
  const dialog = document.getElementById("confirm-dialog");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-question").textContent = question;
  const list = document.getElementById("confirm-details");
  list.replaceChildren(...details.map((d) => el("li", d)));
  list.hidden = details.length === 0;
  const yes = document.getElementById("confirm-yes");
  yes.textContent = confirm;
  document.getElementById("confirm-no").textContent = keep;
  return new Promise((resolve) => {
    const done = (value) => {
      yes.removeEventListener("click", onYes);
      no.removeEventListener("click", onNo);
      dialog.removeEventListener("cancel", onNo);
      dialog.close();
      resolve(value);
    };
    const no = document.getElementById("confirm-no");
    const onYes = () => done(true);
    const onNo = (event) => {
      event?.preventDefault?.();
      done(false);
    };
    yes.addEventListener("click", onYes);
    no.addEventListener("click", onNo);
    dialog.addEventListener("cancel", onNo);
    dialog.showModal();
    no.focus();
  });
}

export function statusBadge(status) {
  return el("span", status, { class: "status", "data-status": status });
}

document.getElementById("forget-token").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  showForget();
  location.reload();
});
showForget();

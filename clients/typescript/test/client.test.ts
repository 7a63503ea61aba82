// The client against a real `ecosign-orchestrator serve` and the sandbox, both started by the
// Python test that runs this file (tests/clients/test_typescript.py): ORCH_URL, ORCH_TOKEN,
// SANDBOX_URL and SANDBOX_KEY say where they are.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  AuthError,
  ConflictError,
  OrchestratorClient,
  ValidationError,
  type DocumentJob,
  type JobEvent,
} from "@ecosign/orchestrator-client";

function env(name: string): string {
  const value = process.env[name];
  assert.ok(value, `${name} must be set (run through tests/clients/test_typescript.py)`);
  return value;
}

const client = new OrchestratorClient({ baseUrl: env("ORCH_URL"), token: env("ORCH_TOKEN") });

async function newDocument(): Promise<string> {
  const response = await fetch(`${env("SANDBOX_URL")}/admin/documents`, {
    method: "POST",
    headers: { Authorization: `Bearer ${env("SANDBOX_KEY")}`, "Content-Type": "application/json" },
    body: "{}",
  });
  assert.equal(response.status, 201);
  const body = (await response.json()) as { id: string };
  return body.id;
}

const protect = (id: string): DocumentJob => ({
  document_entity_id: id,
  actions: { protect: true },
  forensic: { tsa: true },
});

test("submit, then follow the flow to completed over SSE", async () => {
  const job = await client.submit(protect(await newDocument()), { idempotencyKey: "ts-follow-1" });
  assert.equal(job.kind, "ecosign.document");
  const seen: JobEvent[] = [];
  for await (const event of client.follow(job.id)) seen.push(event);
  const types = seen.map((e) => e.type);
  assert.ok(types.includes("job_started"), types.join(","));
  assert.equal(types.at(-1), "job_completed");
  const done = await client.waitFor(job.id, { timeout: 30_000 });
  assert.equal(done.status, "completed");

  // Resumed after an event, the stream starts after it.
  const middle = seen[Math.floor(seen.length / 2)];
  assert.ok(middle);
  const resumed: JobEvent[] = [];
  for await (const event of client.follow(job.id, { lastEventId: middle.id })) resumed.push(event);
  assert.deepEqual(
    resumed.map((e) => e.id),
    seen.filter((e) => e.id > middle.id).map((e) => e.id),
  );
  const calls = await client.calls(job.id);
  assert.ok(calls.length > 0);
});

test("an invalid job is a ValidationError naming the field", async () => {
  const bad = { document_entity_id: await newDocument(), actions: {} } as DocumentJob;
  await assert.rejects(client.submit(bad), (error: unknown) => {
    assert.ok(error instanceof ValidationError);
    assert.equal(error.status, 422);
    assert.equal(error.field, "actions");
    assert.match(error.reason ?? "", /at least one/);
    return true;
  });
});

test("the same idempotency key returns the same flow", async () => {
  const job = protect(await newDocument());
  const first = await client.submit(job, { idempotencyKey: "ts-same-key" });
  const again = await client.submit(job, { idempotencyKey: "ts-same-key" });
  assert.equal(again.id, first.id);
});

test("a response lost on the way back is retried with the same key: one flow", async () => {
  let lost = 1;
  const lossy: typeof fetch = async (input, init) => {
    const response = await fetch(input, init); // the API did the work ...
    if (lost-- > 0) throw new TypeError("fetch failed: connection reset"); // ... we never hear
    return response;
  };
  const flaky = new OrchestratorClient({
    baseUrl: env("ORCH_URL"),
    token: env("ORCH_TOKEN"),
    fetch: lossy,
    backoffMs: 10,
  });
  const document = await newDocument();
  const job = await flaky.submit(protect(document));
  const page = await client.list({ documentId: document });
  assert.deepEqual(
    page.jobs.map((j) => j.id),
    [job.id],
  );
});

test("a bad token is an AuthError (401)", async () => {
  const stranger = new OrchestratorClient({ baseUrl: env("ORCH_URL"), token: "not-a-token" });
  await assert.rejects(stranger.list(), (error: unknown) => {
    assert.ok(error instanceof AuthError);
    assert.equal(error.status, 401);
    return true;
  });
});

test("submitMany, a flow due later, cancel, retry, get", async () => {
  const items = await client.submitMany([protect(await newDocument()), protect(await newDocument())]);
  assert.deepEqual(
    items.map((i) => i.created),
    [true, true],
  );
  const later = new Date(Date.now() + 3_600_000);
  const due = await client.submit(protect(await newDocument()), { notBefore: later, priority: 5 });
  assert.equal(due.status, "queued");
  assert.equal(due.priority, 5);
  const cancelled = await client.cancel(due.id);
  assert.equal(cancelled.status, "cancelled");
  await assert.rejects(client.cancel(due.id), ConflictError); // already ended
  const again = await client.retry(due.id.slice(-12)); // runs now: the retry is due at once
  assert.equal(again.id, due.id);
  assert.equal(again.status, "queued");
  const done = await client.waitFor(due.id, { timeout: 30_000 });
  assert.equal(done.status, "completed");
});

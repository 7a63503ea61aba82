// The built package under Deno, the runtime of Supabase Edge Functions: submit a flow, wait for
// its end, refuse a bad one. Prints one JSON line; exits non-zero on any surprise.
import { OrchestratorClient, ValidationError } from "../dist/index.js";

const need = (name: string): string => {
  const value = Deno.env.get(name);
  if (!value) throw new Error(`${name} must be set`);
  return value;
};

const created = await fetch(`${need("SANDBOX_URL")}/admin/documents`, {
  method: "POST",
  headers: { Authorization: `Bearer ${need("SANDBOX_KEY")}`, "Content-Type": "application/json" },
  body: "{}",
});
const { id: document } = (await created.json()) as { id: string };

// The three lines an Edge Function needs (clients/typescript/README.md).
const orchestrator = new OrchestratorClient({ baseUrl: need("ORCH_URL"), token: need("ORCH_TOKEN") });
const job = await orchestrator.submit(
  { document_entity_id: document, actions: { protect: true }, forensic: { tsa: true } },
  { idempotencyKey: `deno-${document}` },
);
const done = await orchestrator.waitFor(job.id, { timeout: 30_000 });

let refused = "";
try {
  await orchestrator.submit({ document_entity_id: document, actions: {} });
} catch (error) {
  if (error instanceof ValidationError) refused = error.field ?? "";
}
console.log(JSON.stringify({ runtime: `deno ${Deno.version.deno}`, status: done.status, refused }));
if (done.status !== "completed" || refused !== "actions") Deno.exit(1);

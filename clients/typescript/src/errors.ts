// Errors the client throws: the API's problem details, typed.
import type { components } from "./schema.js";

/** One field the API refused, and why (`{"field": "actions", "reason": "..."}`). */
export type FieldError = components["schemas"]["FieldError"];

/** The API answered with an error status: its problem details are here. */
export class OrchestratorError extends Error {
  override readonly name: string = "OrchestratorError";
  /** The HTTP status (401, 404, 409, 422, 429, 503, ...). */
  readonly status: number;
  /** The API's one-line summary (`detail`). */
  readonly detail: string;
  /** Each refused field with its reason (422), empty otherwise. */
  readonly errors: FieldError[];
  /** Seconds the API asked to wait before trying again (`Retry-After`), when it said. */
  readonly retryAfter: number | undefined;

  constructor(status: number, detail: string, errors: FieldError[], retryAfter?: number) {
    const first = errors[0];
    super(first ? `${status} ${detail}: ${first.field}: ${first.reason}` : `${status} ${detail}`);
    this.status = status;
    this.detail = detail;
    this.errors = errors;
    this.retryAfter = retryAfter;
  }

  /** The first refused field's name (`"actions"`), when the API named one. */
  get field(): string | undefined {
    return this.errors[0]?.field;
  }

  /** The first refused field's reason, when the API named one. */
  get reason(): string | undefined {
    return this.errors[0]?.reason;
  }

  /** Whether trying the same request again later may succeed (429, 502, 503, 504). */
  get transient(): boolean {
    return [429, 502, 503, 504].includes(this.status);
  }
}

/** The request was refused as invalid (422): `field` and `reason` say what to fix. */
export class ValidationError extends OrchestratorError {
  override readonly name = "ValidationError";
}

/** The token is missing or unknown (401), or may not do this (403). */
export class AuthError extends OrchestratorError {
  override readonly name = "AuthError";
}

/** No such job (404). */
export class NotFoundError extends OrchestratorError {
  override readonly name = "NotFoundError";
}

/** The request conflicts with the job's state or an idempotency key's first use (409). */
export class ConflictError extends OrchestratorError {
  override readonly name = "ConflictError";
}

/** The API could not be reached, or did not answer in time. */
export class NetworkError extends Error {
  override readonly name = "NetworkError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** `waitFor` gave up before the job ended. */
export class TimeoutError extends Error {
  override readonly name = "TimeoutError";
}

function retryAfterSeconds(header: string | null): number | undefined {
  if (header === null) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(seconds, 0);
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max((date - Date.now()) / 1000, 0);
}

/** The typed error for an answer with an error status. */
export async function errorFrom(response: Response): Promise<OrchestratorError> {
  let detail = response.statusText || "error";
  let errors: FieldError[] = [];
  try {
    const body: unknown = await response.json();
    if (body && typeof body === "object") {
      const problem = body as { detail?: unknown; errors?: unknown };
      if (typeof problem.detail === "string") detail = problem.detail;
      if (Array.isArray(problem.errors)) {
        errors = problem.errors.filter(
          (e): e is FieldError =>
            !!e && typeof e === "object" && typeof e.field === "string" && typeof e.reason === "string",
        );
      }
    }
  } catch {
    // Not JSON (a proxy's page): the status says enough.
  }
  const wait = retryAfterSeconds(response.headers.get("Retry-After"));
  const Kind =
    response.status === 422 || response.status === 413 || response.status === 415
      ? ValidationError
      : response.status === 401 || response.status === 403
        ? AuthError
        : response.status === 404
          ? NotFoundError
          : response.status === 409
            ? ConflictError
            : OrchestratorError;
  return new Kind(response.status, detail, errors, wait);
}

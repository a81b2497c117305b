/**
 * The error tree. Every error the client raises derives from one root, as in
 * Python's `threadline.exceptions`:
 *
 * ```text
 * ThreadlineError
 * ├── ProtocolError                 the peer sent bad data (a 4xx)
 * │   ├── InvalidOffset             malformed offset, or beyond the tail
 * │   └── InvalidEvent              a malformed session event (400)
 * ├── LogError                      an operation a log's state refuses
 * │   ├── OffsetGone                offset of another generation, or trimmed
 * │   └── TailMismatch              expected_offset is not the tail
 * ├── SessionRuleError              an event the session's state refuses
 * │   ├── Forbidden                 the rights table refuses it (403)
 * │   ├── SessionClosed             the session is read-only (409)
 * │   ├── NotInControl              the publisher does not hold the floor (409)
 * │   ├── AlreadyAccepted           a control request was already accepted (409)
 * │   ├── DeltaGap                  a message delta out of sequence (409)
 * │   ├── UnknownReference          no such message, run, request, participant…
 * │   ├── DuplicateReference        a message, run or request id used twice (409)
 * │   ├── AlreadyEnded              the message or run has ended (409)
 * │   ├── SessionNotFound           no such session, or not the caller's (404)
 * │   ├── IdConflict                an event id reused with another body (409)
 * │   └── EventTooLarge             an event over the size limit (413)
 * ├── AuthError                     a refused token (401, close 4401), a denied right (403)
 * ├── RateLimited                   publishing faster than the token's rate (429)
 * ├── StorageError                  the server's store failed
 * ├── ConnectionClosed              the connection to the server ended
 * │   ├── ConnectionClosedOK        ... because the client closed it
 * │   └── ConnectionClosedError     ... on a terminal close code, or it failed
 * ├── InvalidState                  an object used after it was closed
 * ├── ConcurrencyError              two consumers iterate one subscription
 * └── Timeout                       no answer in time
 * ```
 *
 * Each error carries `code`, the machine-readable string sent on the wire.
 * The server's `error` answers are rebuilt into the class of their code
 * ({@link errorFrom}), so a caller catches the same class in Python and in
 * TypeScript. Malformed arguments are not part of the tree: they throw
 * `TypeError` or `RangeError`.
 *
 * @module
 */

/** Root of every Threadline error. */
export class ThreadlineError extends Error {
  /** Machine-readable code, as sent on the wire. */
  code: string;
  /** Machine-readable context the server sent with the error, if any. */
  details: Record<string, unknown> | undefined;

  constructor(message: string, code = "error", details?: Record<string, unknown>) {
    super(message);
    this.code = code;
    this.details = details;
  }
}

/** The peer sent data that breaks the protocol. */
export class ProtocolError extends ThreadlineError {
  constructor(message: string, code = "bad_request", details?: Record<string, unknown>) {
    super(message, code, details);
  }
}

/** An offset is malformed, or points beyond the log's tail. */
export class InvalidOffset extends ProtocolError {
  constructor(message: string, details?: Record<string, unknown>) {
    super(message, "invalid_offset", details);
  }
}

/** A session event is malformed: a wrong type, a missing or unknown field. */
export class InvalidEvent extends ProtocolError {
  /** Where the fault is, as a path into the event (`data.parts[1].url`). */
  field: string | undefined;

  constructor(message: string, field?: string, details?: Record<string, unknown>) {
    super(message, "invalid_event", details);
    this.field = field;
  }
}

/** The log's current state refuses the operation. */
export class LogError extends ThreadlineError {}

/**
 * The offset was trimmed or belongs to another generation of the log:
 * subscribe again from `earliest` (or `-1`).
 */
export class OffsetGone extends LogError {
  /** The earliest offset still readable ("" if unknown). */
  earliest: string;
  /** The log's tail ("" if unknown). */
  tail: string;

  constructor(message: string, earliest = "", tail = "", details?: Record<string, unknown>) {
    super(message, "offset_gone", details);
    this.earliest = earliest;
    this.tail = tail;
  }
}

/** `expectedOffset` is not the session's tail: another writer won. */
export class TailMismatch extends LogError {
  /** The tail as the server saw it ("" if unknown). */
  tail: string;

  constructor(message: string, tail = "", details?: Record<string, unknown>) {
    super(message, "tail_mismatch", details);
    this.tail = tail;
  }
}

/** The session's state refuses the event. */
export class SessionRuleError extends ThreadlineError {
  /** The HTTP status that answers this error. */
  status: number;

  constructor(message: string, code: string, status = 409, details?: Record<string, unknown>) {
    super(message, code, details);
    this.status = status;
  }
}

/** The rights table refuses it (403), or the token no longer reaches the session. */
export class Forbidden extends SessionRuleError {}
/** The session is closed: read-only. */
export class SessionClosed extends SessionRuleError {}
/** The publisher does not hold the floor. */
export class NotInControl extends SessionRuleError {}
/** The control request was already accepted by someone else. */
export class AlreadyAccepted extends SessionRuleError {}
/** No such session, or not the caller's. */
export class SessionNotFound extends SessionRuleError {}
/** An event id was reused with another body. */
export class IdConflict extends SessionRuleError {}
/** An event is larger than the server's limit. */
export class EventTooLarge extends SessionRuleError {}

/** A `message.delta` out of sequence. */
export class DeltaGap extends SessionRuleError {
  /** The seq the server expected (-1 if unknown). */
  expected: number;
  /** The seq it got (-1 if unknown). */
  received: number;

  constructor(
    message: string,
    expected = -1,
    received = -1,
    details?: Record<string, unknown>,
  ) {
    super(message, "delta_gap", 409, details);
    this.expected = expected;
    this.received = received;
  }
}

/** An event refers to a message, run, request or participant that does not exist. */
export class UnknownReference extends SessionRuleError {
  /** What kind of thing (`message`, `run`, …). */
  kind: string;

  constructor(message: string, code: string, details?: Record<string, unknown>) {
    super(message, code, 409, details);
    this.kind = code.replace(/^unknown_/, "");
  }
}

/** A message, run or request id was used twice. */
export class DuplicateReference extends SessionRuleError {
  /** What kind of thing (`message`, `run`, …). */
  kind: string;

  constructor(message: string, code: string, details?: Record<string, unknown>) {
    super(message, code, 409, details);
    this.kind = code.replace(/^duplicate_/, "");
  }
}

/**
 * The message or run has ended: for instance the floor passed to a human and
 * the server ended the AI's message. Stop producing.
 */
export class AlreadyEnded extends SessionRuleError {
  /** What ended (`message`, `run`). */
  kind: string;

  constructor(message: string, code: string, details?: Record<string, unknown>) {
    super(message, code, 409, details);
    this.kind = code.replace(/_ended$/, "");
  }
}

/** The token was refused (close 4401, HTTP 401), or may not do this (4403). */
export class AuthError extends ThreadlineError {
  /** 401 or 403. */
  status: number;

  constructor(message: string, code = "unauthorized", status = 401) {
    super(message, code);
    this.status = status;
  }
}

/** Publishing faster than the token's rate allows. */
export class RateLimited extends ThreadlineError {
  /** Milliseconds to wait before trying again. */
  retryAfter: number;

  constructor(message: string, retryAfter = 1000, details?: Record<string, unknown>) {
    super(message, "rate_limited", details);
    this.retryAfter = retryAfter;
  }
}

/** The server's store failed. */
export class StorageError extends ThreadlineError {}

/** The connection to the server ended. */
export class ConnectionClosed extends ThreadlineError {
  /** The close code (undefined if the connection never opened). */
  closeCode: number | undefined;
  /** The close reason. */
  reason: string;

  constructor(closeCode: number | undefined, reason: string) {
    super(
      closeCode === undefined ? reason : `connection closed ${closeCode}${reason ? `: ${reason}` : ""}`,
      "connection_closed",
    );
    this.closeCode = closeCode;
    this.reason = reason;
  }
}

/** The connection ended because the client closed it. */
export class ConnectionClosedOK extends ConnectionClosed {}

/** The connection ended on a terminal close code, or failed. */
export class ConnectionClosedError extends ConnectionClosed {}

/** An object was used after it was closed, or in a state that does not allow it. */
export class InvalidState extends ThreadlineError {
  constructor(message: string) {
    super(message, "invalid_state");
  }
}

/** Two consumers iterate one subscription. */
export class ConcurrencyError extends ThreadlineError {
  constructor(message: string) {
    super(message, "concurrency_error");
  }
}

/** No answer in time. The outcome of a publish is then unknown: publishing again with the same ids is safe. */
export class Timeout extends ThreadlineError {
  constructor(message: string) {
    super(message, "timeout");
  }
}

// Each class names itself, whatever a minifier does to class names.
for (const [name, cls] of Object.entries({
  ThreadlineError,
  ProtocolError,
  InvalidOffset,
  InvalidEvent,
  LogError,
  OffsetGone,
  TailMismatch,
  SessionRuleError,
  Forbidden,
  SessionClosed,
  NotInControl,
  AlreadyAccepted,
  SessionNotFound,
  IdConflict,
  EventTooLarge,
  DeltaGap,
  UnknownReference,
  DuplicateReference,
  AlreadyEnded,
  AuthError,
  RateLimited,
  StorageError,
  ConnectionClosed,
  ConnectionClosedOK,
  ConnectionClosedError,
  InvalidState,
  ConcurrencyError,
  Timeout,
})) {
  Object.defineProperty(cls.prototype, "name", { value: name, configurable: true, writable: true });
}

const AUTH_CODES: ReadonlySet<string> = new Set([
  "unauthorized",
  "missing_token",
  "invalid_token",
  "token_expired",
]);

type RuleClass = new (
  message: string,
  code: string,
  status?: number,
  details?: Record<string, unknown>,
) => SessionRuleError;

const RULES: Readonly<Record<string, [RuleClass, number]>> = {
  forbidden: [Forbidden, 403],
  session_not_found: [SessionNotFound, 404],
  not_found: [SessionNotFound, 404],
  id_conflict: [IdConflict, 409],
  event_too_large: [EventTooLarge, 413],
  session_closed: [SessionClosed, 409],
  not_in_control: [NotInControl, 409],
  already_accepted: [AlreadyAccepted, 409],
};

function str(value: unknown): string {
  return typeof value === "string" ? value : "";
}

function int(value: unknown): number {
  return typeof value === "number" && Number.isInteger(value) ? value : -1;
}

/**
 * The error that a server `error` answer stands for (the same mapping as
 * Python's `threadline.client.transports.error_from`).
 *
 * @param code - The answer's machine-readable `code`.
 * @param message - Its `message`, kept verbatim.
 * @param details - Its `details`: `status` (the HTTP status of the same
 *   failure), `expected` for `delta_gap`, `offset` for `tail_mismatch`,
 *   `earliest` and `tail` for `offset_gone`, `field` for `invalid_event`.
 */
export function errorFrom(
  code: string,
  message: string,
  details?: Record<string, unknown>,
): ThreadlineError {
  const d = details ?? {};
  const status = typeof d["status"] === "number" ? d["status"] : undefined;
  if (status === 401 || AUTH_CODES.has(code)) {
    return new AuthError(message, code, status ?? 401);
  }
  const rule = RULES[code];
  if (rule !== undefined) {
    return new rule[0](message, code, status ?? rule[1], details);
  }
  switch (code) {
    case "invalid_offset":
      return new InvalidOffset(message, details);
    case "storage_error":
      return new StorageError(message, code, details);
    case "delta_gap":
      return new DeltaGap(message, int(d["expected"]), int(d["received"]), details);
    case "offset_gone":
      return new OffsetGone(message, str(d["earliest"]), str(d["tail"]), details);
    case "tail_mismatch":
      return new TailMismatch(message, str(d["offset"] ?? d["tail"]), details);
    case "rate_limited": {
      const seconds = d["retry_after"];
      return new RateLimited(
        message,
        typeof seconds === "number" ? seconds * 1000 : 1000,
        details,
      );
    }
    case "invalid_event":
      return new InvalidEvent(message, typeof d["field"] === "string" ? d["field"] : undefined, details);
  }
  if (code.startsWith("unknown_")) return new UnknownReference(message, code, details);
  if (code.startsWith("duplicate_")) return new DuplicateReference(message, code, details);
  if (code.endsWith("_ended")) return new AlreadyEnded(message, code, details);
  if (status !== undefined && status >= 500) return new ThreadlineError(message, code, details);
  return new ProtocolError(message, code, details);
}

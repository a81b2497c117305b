/**
 * Close codes and error codes of the WebSocket protocol `threadline.v1`.
 *
 * A close code's range tells the client what to do next, so a client needs
 * no table of codes to behave well:
 *
 * ```text
 * 1000         normal closure: the client asked to close; do not reconnect
 * 4000–4099    retryable: reconnect with backoff and resubscribe from the
 *              offsets you hold; nothing is lost
 * 4400–4499    terminal: do not reconnect until something changes
 * 4900–4949    for applications, retryable
 * 4950–4999    for applications, terminal
 * ```
 *
 * Other standard codes: 1002, 1003 and 1007–1010 say the peer refused our
 * data, so they are terminal; every other code (1001, 1006, 1011, 1012,
 * codes this version does not know) is retried with backoff. Mirrors
 * Python's `threadline.protocol.codes`.
 *
 * @module
 */

import { CloseCode } from "./types.js";

export { CloseCode };

// RFC 6455 § 7.4.1 codes that mean "the peer refused our data" (and 1000).
const TERMINAL_STANDARD: ReadonlySet<number> = new Set([1000, 1002, 1003, 1007, 1008, 1009, 1010]);

// RFC 6455 § 5.5.1: the close payload is at most 125 bytes, 2 of them the code.
const MAX_REASON_BYTES = 123;

/** Whether a client should reconnect after a close with `code` (any integer). */
export function isRetryable(code: number): boolean {
  if ((code >= 4000 && code < 4100) || (code >= 4900 && code < 4950)) return true;
  if ((code >= 4400 && code < 4500) || (code >= 4950 && code < 5000)) return false;
  return !TERMINAL_STANDARD.has(code);
}

/** The `code` of the errors that the wire layer raises or sends itself. */
export const ErrorCode = {
  /** A frame is not JSON, not an array, or empty (closes 4409). */
  INVALID_FRAME: "invalid_frame",
  /** A frame exceeds the byte limit (closes 4413). */
  FRAME_TOO_LARGE: "frame_too_large",
  /** A frame holds more messages than the limit (closes 4413). */
  TOO_MANY_MESSAGES: "too_many_messages",
  /** A message has a missing, unknown or mistyped field, or a bad value. */
  INVALID_MESSAGE: "invalid_message",
  /** A message's `type` is not one this side accepts. */
  UNKNOWN_TYPE: "unknown_type",
  /** An offset is malformed. */
  INVALID_OFFSET: "invalid_offset",
  /** A request reuses the `rid` of a request still in flight. */
  DUPLICATE_RID: "duplicate_rid",
  /** The connection is already subscribed to that session. */
  ALREADY_SUBSCRIBED: "already_subscribed",
  /** The connection holds as many subscriptions as the limit allows. */
  TOO_MANY_SUBSCRIPTIONS: "too_many_subscriptions",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * The decision to close the connection, as `dataToSend()` returns it: the
 * I/O layer sends every frame before it, then closes with this code and
 * reason.
 */
export class Close {
  /** The close code: a {@link CloseCode}, or an application code. */
  readonly code: number;
  /** A short human-readable reason (at most 123 bytes of UTF-8). */
  readonly reason: string;

  constructor(code: number, reason = "") {
    if (!(code === 1000 || (code >= 3000 && code <= 4999)) || !Number.isInteger(code)) {
      throw new RangeError(`cannot send close code ${code}`);
    }
    if (new TextEncoder().encode(reason).length > MAX_REASON_BYTES) {
      throw new RangeError("close reason longer than 123 bytes");
    }
    this.code = code;
    this.reason = reason;
  }

  /** A close whose reason is cut to fit the 123-byte limit. */
  static truncated(code: number, reason: string): Close {
    const bytes = new TextEncoder().encode(reason).slice(0, MAX_REASON_BYTES);
    // A cut in the middle of a character drops that character.
    return new Close(code, new TextDecoder("utf-8", { fatal: false }).decode(bytes).replace(/\uFFFD$/, ""));
  }

  /** Whether the client should reconnect after this close. */
  get retryable(): boolean {
    return isRetryable(this.code);
  }
}

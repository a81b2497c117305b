/**
 * Frames of the WebSocket protocol `threadline.v1`: the JSON they are made of.
 *
 * A frame is one WebSocket text message holding a JSON array of one or more
 * message objects. This module reads that JSON ({@link decodeFrame}) and packs
 * messages waiting to be sent into as few frames as the limits allow
 * ({@link Outbox}). Frames are written in one canonical form
 * ({@link encodeJson}): compact, UTF-8 rather than `\u` escapes, no NaN or
 * Infinity. Mirrors Python's `threadline.protocol.frames`.
 *
 * @module
 */

import { ProtocolError } from "../errors.js";
import { ErrorCode } from "./codes.js";

/** The WebSocket subprotocol that names this version of the protocol. */
export const SUBPROTOCOL = "threadline.v1";

/** Largest frame, in UTF-8 bytes: a full publish batch (1 MB) plus framing. */
export const DEFAULT_MAX_FRAME_BYTES = 2 * 1024 * 1024;

/** Most messages in one frame: a hello plus 100 resubscribes fit with room. */
export const DEFAULT_MAX_MESSAGES = 256;

/** A decoded JSON object (an event, a state snapshot, error details). */
export type JSONObject = { [key: string]: unknown };

function finite(_key: string, value: unknown): unknown {
  if (typeof value === "number" && !Number.isFinite(value)) {
    throw new RangeError(`${value} is not JSON`);
  }
  if (typeof value === "bigint") {
    throw new TypeError("a bigint is not JSON");
  }
  return value;
}

/**
 * The canonical text of a JSON value: compact, UTF-8, no NaN or Infinity.
 *
 * Integers and strings encode exactly as Python's `json.dumps(...,
 * separators=(",", ":"), ensure_ascii=False)`; floats may differ in form
 * (`1e+16` against `10000000000000000`), which no frame of the protocol
 * depends on.
 *
 * @throws RangeError - `value` holds NaN or an infinity.
 * @throws TypeError - `value` holds a bigint or a cycle.
 */
export function encodeJson(value: unknown): string {
  return JSON.stringify(value, finite);
}

/** Length of `text` in UTF-8 bytes (a lone surrogate counts 3, as Python's "surrogatepass"). */
export function utf8Size(text: string): number {
  let size = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) {
      size += 1;
    } else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        size += 2; // 2 UTF-16 units, 4 bytes
        i++;
      } else {
        size += 2;
      }
    } else {
      size += 2;
    }
  }
  return size;
}

/** Whether `text` holds an unpaired surrogate (which UTF-8 cannot carry on). */
function hasLoneSurrogate(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = i + 1 < text.length ? text.charCodeAt(i + 1) : 0;
      if (next < 0xdc00 || next > 0xdfff) return true;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      return true;
    }
  }
  return false;
}

function hasLoneSurrogateIn(value: unknown): boolean {
  if (typeof value === "string") return hasLoneSurrogate(value);
  if (Array.isArray(value)) return value.some(hasLoneSurrogateIn);
  if (value !== null && typeof value === "object") {
    return Object.entries(value).some(
      ([key, item]) => hasLoneSurrogate(key) || hasLoneSurrogateIn(item),
    );
  }
  return false;
}

// A \uD800-\uDFFF escape may decode to a lone surrogate: such frames (rare)
// get the full check.
const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/;

/** Limits of one frame, in each direction. */
export interface FrameLimits {
  /** Largest frame, in UTF-8 bytes. */
  maxFrameBytes: number;
  /** Most messages in one frame. */
  maxMessages: number;
}

/**
 * Decode a frame's JSON into its list of (unparsed) messages.
 *
 * Stricter than `JSON.parse` about lone surrogates; unlike Python's decoder it
 * does not refuse duplicate keys in an object (the last one wins).
 *
 * @throws ProtocolError - `frame_too_large` or `too_many_messages` past a
 *   limit; `invalid_frame` if the text is not a non-empty JSON array.
 */
export function decodeFrame(
  text: string,
  limits: FrameLimits = { maxFrameBytes: DEFAULT_MAX_FRAME_BYTES, maxMessages: DEFAULT_MAX_MESSAGES },
): unknown[] {
  if (utf8Size(text) > limits.maxFrameBytes) {
    throw new ProtocolError(`frame larger than ${limits.maxFrameBytes} bytes`, ErrorCode.FRAME_TOO_LARGE);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (exc) {
    throw new ProtocolError(`frame is not JSON (${String(exc)})`, ErrorCode.INVALID_FRAME);
  }
  if (SURROGATE_ESCAPE.test(text) && hasLoneSurrogateIn(value)) {
    throw new ProtocolError("frame holds a lone surrogate", ErrorCode.INVALID_FRAME);
  }
  if (!Array.isArray(value) || value.length === 0) {
    throw new ProtocolError("frame must be a non-empty JSON array", ErrorCode.INVALID_FRAME);
  }
  if (value.length > limits.maxMessages) {
    throw new ProtocolError(
      `frame holds more than ${limits.maxMessages} messages`,
      ErrorCode.TOO_MANY_MESSAGES,
    );
  }
  return value;
}

/**
 * Encoded messages waiting to be sent, packed into frames when the transport
 * asks. Nothing is reordered. Frames hold at most `maxMessages` messages and
 * `maxFrameBytes` bytes; one message that is larger on its own travels alone.
 * (The client's half of Python's `Outbox`: clients send no `events`.)
 */
export class Outbox {
  private readonly limits: FrameLimits;
  private items: { text: string; size: number }[] = [];

  constructor(limits: FrameLimits) {
    this.limits = limits;
  }

  /** Queue one encoded message. */
  add(text: string): void {
    this.items.push({ text, size: utf8Size(text) });
  }

  /** Drop everything waiting. */
  clear(): void {
    this.items = [];
  }

  /** Pack everything waiting into frames, and empty the outbox. */
  frames(): string[] {
    const frames: string[] = [];
    let parts: string[] = [];
    let size = 2; // the brackets
    for (const item of this.items) {
      if (parts.length > 0 && !this.fits(size + 1 + item.size, parts.length)) {
        frames.push(`[${parts.join(",")}]`);
        parts = [];
        size = 2;
      }
      size += item.size + (parts.length > 0 ? 1 : 0);
      parts.push(item.text);
    }
    if (parts.length > 0) frames.push(`[${parts.join(",")}]`);
    this.clear();
    return frames;
  }

  private fits(size: number, count: number): boolean {
    return size <= this.limits.maxFrameBytes && count < this.limits.maxMessages;
  }
}

/**
 * Streaming a message: `message.start`, pipelined deltas, and always an end.
 *
 * @module
 */

import { InvalidState, ThreadlineError, Timeout } from "./errors.js";
import type { JSONObject } from "./protocol/frames.js";
import type { Visibility } from "./protocol/types.js";
import { withTimeout } from "./websocket.js";

/** Deltas a stream keeps published but unacknowledged at most. */
export const DEFAULT_MAX_IN_FLIGHT = 64;

/** The part types a stream writes text into. */
export type TextPart = "text" | "reasoning";

/** How a message ended. */
export type EndStatus = "complete" | "cancelled" | "error";

/** A message's author role. */
export type MessageRole = "user" | "assistant" | "system";

/** Options of `Session.streamMessage`. */
export interface StreamMessageOptions {
  /** `assistant` (the default), `user` or `system`. */
  role?: MessageRole;
  /** The run the message belongs to. */
  runId?: string;
  /** The message's id; a new UUIDv7 by default. */
  messageId?: string;
  /** Application data carried with `message.start`. */
  metadata?: JSONObject;
  /** `all` or `staff` (of `message.start`; the message's events follow it). */
  visibility?: Visibility;
  /** Deltas published and not yet answered, at most (default 64). */
  maxInFlight?: number;
  /** Aborting it ends the message `cancelled`; `write()` then throws the abort reason. */
  signal?: AbortSignal;
}

/** What a stream needs of its session (a `Session`). */
export interface StreamTarget {
  /** The client's timeout for one operation, in milliseconds. */
  readonly timeout: number;
  /** Queue one event for publishing now; resolves to its offsets. */
  submit(type: string, data: JSONObject, visibility?: Visibility): Promise<string[]>;
}

/**
 * One message streamed into a session; `session.streamMessage()` makes one,
 * starts it, runs the producer and always ends it.
 *
 * {@link start} publishes `message.start` and waits for it, so a refusal
 * (`NotInControl`, `Forbidden`) throws at once. Each {@link write} publishes
 * a `message.delta` with the next `seq` **without waiting for its
 * acknowledgement**: up to `maxInFlight` deltas are on their way at once, in
 * order, and `write()` waits only when that many are unanswered. The end:
 *
 * - the producer returned: wait for every delta, then `message.end`
 *   `{status: complete}`; if a delta failed, end it `error` (`reason:
 *   publish_failed`) and throw that failure;
 * - the signal aborted: end it `cancelled` (`reason: cancelled`);
 * - the producer threw: end it `error` (`reason: producer_error`) and throw on.
 *
 * Each end waits at most the client's timeout; if even that fails (the server
 * is unreachable), the server ends the message itself once its lease runs out
 * (`error`, `producer_lost`). A delta not answered before a reconnect is
 * resent with the same id, so none is lost or stored twice.
 */
export class MessageStream {
  /** The message's id (`message_id` of every event of it). */
  readonly messageId: string;
  /** The message's role. */
  readonly role: MessageRole;
  /** The `seq` of the next delta: how many were written. */
  seq = 0;
  /** How the message ended, once it did. */
  status: EndStatus | undefined;
  /** The most deltas that were unanswered at once. */
  peakInFlight = 0;

  private readonly target: StreamTarget;
  private readonly options: StreamMessageOptions;
  private readonly maxInFlight: number;
  private readonly inFlightSet = new Set<Promise<unknown>>();
  private error: unknown;
  private partIndex = -1;
  private partType: TextPart | undefined;
  private started = false;

  /** @throws RangeError - `maxInFlight` is below 1. */
  constructor(target: StreamTarget, messageId: string, options: StreamMessageOptions = {}) {
    const maxInFlight = options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
    if (!(maxInFlight >= 1)) throw new RangeError("maxInFlight must be at least 1");
    this.target = target;
    this.messageId = messageId;
    this.role = options.role ?? "assistant";
    this.options = options;
    this.maxInFlight = maxInFlight;
  }

  /** Deltas published and not answered yet. */
  get inFlight(): number {
    return this.inFlightSet.size;
  }

  /**
   * Publish `message.start` and wait for it.
   *
   * @throws ThreadlineError - the server refused it.
   * @throws Timeout - no answer in time.
   */
  async start(): Promise<void> {
    if (this.started) throw new InvalidState("the stream has started");
    const data: JSONObject = { message_id: this.messageId, role: this.role };
    if (this.options.runId !== undefined) data["run_id"] = this.options.runId;
    if (this.options.metadata !== undefined) data["metadata"] = this.options.metadata;
    await this.publish("message.start", data, this.options.visibility);
    this.started = true;
  }

  /**
   * Append `text` to the message: publish one delta, without waiting for its
   * answer. A change of `partType` starts a new part. Empty text publishes
   * nothing. Waits only while `maxInFlight` deltas are unanswered.
   *
   * @throws ThreadlineError - an earlier delta failed (for instance
   *   `AlreadyEnded`: the floor passed to a human and the server ended the
   *   message); stop producing.
   * @throws InvalidState - the stream has not started or has ended.
   */
  async write(text: string, options: { partType?: TextPart } = {}): Promise<void> {
    const partType = options.partType ?? "text";
    this.check();
    if (!text) return;
    while (this.inFlightSet.size >= this.maxInFlight) {
      await Promise.race(this.inFlightSet);
      this.check();
    }
    if (partType !== this.partType) {
      this.partIndex += 1;
      this.partType = partType;
    }
    const data: JSONObject = {
      message_id: this.messageId,
      seq: this.seq,
      part_index: this.partIndex,
      part_type: partType,
      text,
    };
    const answer = this.target.submit("message.delta", data);
    this.seq += 1;
    const tracked: Promise<unknown> = answer.then(
      () => {
        this.inFlightSet.delete(tracked);
      },
      (exc: unknown) => {
        this.inFlightSet.delete(tracked);
        if (this.error === undefined) this.error = exc;
      },
    );
    this.inFlightSet.add(tracked);
    this.peakInFlight = Math.max(this.peakInFlight, this.inFlightSet.size);
  }

  /**
   * End the message `complete` once every delta is answered; if one failed,
   * end it `error` (`publish_failed`) and throw that failure.
   *
   * @throws ThreadlineError - a delta or the end failed.
   * @throws Timeout - deltas or the end unanswered in time.
   */
  async finish(): Promise<void> {
    try {
      await withTimeout(Promise.all(this.inFlightSet), this.target.timeout, () => {
        return new Timeout("deltas unanswered in time");
      });
    } catch (exc) {
      if (this.error === undefined) this.error = exc;
    }
    if (this.error !== undefined) {
      await this.endQuietly("error", "publish_failed");
      throw this.error;
    }
    await this.end("complete");
  }

  /**
   * Publish `message.end` with `status` (and `reason`) and wait for it.
   *
   * @throws ThreadlineError, Timeout - the end failed or was unanswered.
   */
  async end(status: EndStatus, reason?: string): Promise<void> {
    if (this.status !== undefined) throw new InvalidState("the stream has ended");
    this.status = status;
    const data: JSONObject = { message_id: this.messageId, status };
    if (reason !== undefined) data["reason"] = reason;
    await this.publish("message.end", data);
  }

  /** End the message, best effort: the error that got us here matters more. */
  async endQuietly(status: EndStatus, reason: string): Promise<void> {
    if (this.status !== undefined || !this.started) return;
    try {
      await this.end(status, reason);
    } catch (exc) {
      if (!(exc instanceof ThreadlineError)) throw exc;
    }
  }

  private check(): void {
    if (!this.started || this.status !== undefined) {
      throw new InvalidState("write() outside the stream's producer");
    }
    if (this.error !== undefined) throw this.error;
    const signal = this.options.signal;
    if (signal?.aborted) throw signal.reason;
  }

  private async publish(type: string, data: JSONObject, visibility?: Visibility): Promise<void> {
    await withTimeout(this.target.submit(type, data, visibility), this.target.timeout, () => {
      return new Timeout(`${type}: no answer in time`);
    });
  }
}

/**
 * Start `stream`, run `producer`, and end the message whatever happens (see
 * {@link MessageStream}).
 */
export async function runStream(
  stream: MessageStream,
  producer: (stream: MessageStream) => unknown,
  signal: AbortSignal | undefined,
): Promise<MessageStream> {
  await stream.start();
  try {
    await producer(stream);
  } catch (exc) {
    if (signal?.aborted) {
      await stream.endQuietly("cancelled", "cancelled");
    } else {
      await stream.endQuietly("error", "producer_error");
    }
    throw exc;
  }
  if (signal?.aborted) {
    await stream.endQuietly("cancelled", "cancelled");
    return stream;
  }
  await stream.finish();
  return stream;
}

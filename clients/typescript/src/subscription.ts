/**
 * A subscription: a session's events, as an async iterable or to a callback,
 * resumed by itself.
 *
 * @module
 */

import { ConcurrencyError, InvalidState } from "./errors.js";
import type { JSONObject } from "./protocol/frames.js";
import type { Event, View } from "./protocol/types.js";
import type { Sink } from "./transports.js";
import type { WebSocketTransport } from "./websocket.js";

/** Events a subscription holds for a consumer that has not read them yet. */
export const DEFAULT_MAX_QUEUE = 1000;

/** Options of `Session.subscribe`. */
export interface SubscribeOptions {
  /**
   * Deliver the events after this offset: `-1` (the default) is the start,
   * `now` the tail (live events only), or an offset delivered before (resume).
   */
  offset?: string;
  /** `raw` (every event, the default) or `compact` (completed streamed messages folded). */
  view?: View;
  /**
   * Deliver each event to this callback, as it arrives, instead of queueing
   * it for iteration. What it throws ends the subscription with that error.
   */
  onEvent?: (event: Event) => void;
  /** Called once when the subscription ends: with no argument if cleanly. */
  onEnd?: (error?: unknown) => void;
  /** Most events waiting for an iterating consumer (default 1000). */
  maxQueue?: number;
}

type Phase = "starting" | "open" | "ending" | "done";

/**
 * A session's events after an offset, then live ones, with no gap or duplicate.
 *
 * Made by `session.subscribe()`, which starts it at once: {@link ready}
 * settles when the server accepted it. Iterate it (`for await (const event of
 * subscription)`) to get the events in offset order, or pass `onEvent`. It
 * reconnects and resumes by itself: an event is never delivered twice or
 * skipped, across any number of reconnects.
 *
 * It ends after the session's `session.closed` event (nothing can follow
 * it), or when it or its client is closed; leaving a `for await` loop early
 * closes it. It fails for good — iteration throws, `onEnd` gets the error —
 * with `SessionNotFound`, `Forbidden`, `OffsetGone` (the offset was trimmed
 * or is of another generation: subscribe again from `-1`), `AuthError` or
 * `ConnectionClosedError`. Events received before a failure are yielded
 * first.
 *
 * **A slow consumer.** An iterating consumer has at most `maxQueue` events
 * waiting; when it falls that far behind, the subscription stops reading its
 * session on the server (the other subscriptions of the client go on), and
 * subscribes again from the last event it queued once the consumer has read
 * half of them. Nothing is buffered without bound, and nothing is lost.
 */
export class Subscription implements AsyncIterableIterator<Event>, Sink {
  /** The session read. */
  readonly session: string;
  /** `raw` or `compact`. */
  readonly view: View;
  /**
   * The offset of the last event delivered to the consumer (or the start
   * asked for): store it to resume in a later page or process.
   */
  offset: string;
  /**
   * The session's state snapshot when the subscription (re)started, as this
   * reader may see it: participants, presence, controller, open messages and
   * runs, other participants' cursors.
   */
  state: JSONObject | undefined;
  /** Settles once the server accepted the subscription (or refused it). */
  readonly ready: Promise<void>;

  private readonly transport: WebSocketTransport;
  private readonly onEvent: ((event: Event) => void) | undefined;
  private readonly onEnd: ((error?: unknown) => void) | undefined;
  private readonly maxQueue: number;
  private queue: Event[] = [];
  private head = 0;
  private resume: string; // the last offset queued
  private phase: Phase = "starting";
  private error: unknown;
  private paused = false;
  private waiter: (() => void) | undefined;
  private reading = false;

  /** @internal Use `session.subscribe()`. */
  constructor(transport: WebSocketTransport, session: string, options: SubscribeOptions = {}) {
    const maxQueue = options.maxQueue ?? DEFAULT_MAX_QUEUE;
    if (!(maxQueue >= 1)) throw new RangeError("maxQueue must be at least 1");
    this.transport = transport;
    this.session = session;
    this.view = options.view ?? "raw";
    this.offset = options.offset ?? "-1";
    this.resume = this.offset;
    this.onEvent = options.onEvent;
    this.onEnd = options.onEnd;
    this.maxQueue = maxQueue;
    this.ready = this.start();
    this.ready.catch(() => undefined); // the error is also iteration's and onEnd's
  }

  // Async iteration

  [Symbol.asyncIterator](): this {
    return this;
  }

  /**
   * The next event, waiting for it.
   *
   * @throws ConcurrencyError - another `next()` is waiting.
   * @throws InvalidState - the subscription delivers to `onEvent`.
   * @throws ThreadlineError - the subscription failed for good.
   */
  async next(): Promise<IteratorResult<Event, undefined>> {
    if (this.onEvent !== undefined) throw new InvalidState("this subscription delivers to onEvent");
    if (this.reading) throw new ConcurrencyError("another consumer is iterating this subscription");
    this.reading = true;
    try {
      for (;;) {
        if (this.head < this.queue.length) return { done: false, value: this.take() };
        if (this.phase === "ending") this.close();
        if (this.phase === "done") {
          if (this.error !== undefined) {
            const error = this.error;
            this.error = undefined; // thrown once; then the iteration is over
            throw error;
          }
          return { done: true, value: undefined };
        }
        await new Promise<void>((resolve) => {
          this.waiter = resolve;
        });
      }
    } finally {
      this.reading = false;
    }
  }

  /** Leaving a `for await` loop: close the subscription. */
  async return(): Promise<IteratorResult<Event, undefined>> {
    this.close();
    return { done: true, value: undefined };
  }

  // Public methods

  /**
   * Unsubscribe. Events already queued are dropped; iteration ends. Safe to
   * call twice, and while iterating.
   */
  close(): void {
    if (this.phase !== "done") {
      this.phase = "done";
      this.transport.unsubscribe(this);
      this.ended(undefined);
    }
    this.queue = [];
    this.head = 0;
    this.wake();
  }

  // The transport's side (Sink)

  /** @internal Where the transport resumes: after the last event queued. */
  resumeOffset(): string {
    return this.resume;
  }

  /** @internal Queue (or hand to `onEvent`) events in offset order. */
  deliver(events: readonly Event[]): void {
    for (const event of events) {
      if (this.phase === "done" || this.phase === "ending") return;
      this.resume = event.offset;
      if (this.onEvent !== undefined) {
        this.offset = event.offset;
        try {
          this.onEvent(event);
        } catch (exc) {
          this.transport.unsubscribe(this);
          this.finish(exc);
          return;
        }
        if (event.type === "session.closed") this.close();
        continue;
      }
      this.queue.push(event);
      if (event.type === "session.closed") this.phase = "ending"; // nothing can follow
    }
    if (this.onEvent === undefined && !this.paused && this.queue.length - this.head >= this.maxQueue) {
      this.paused = true;
      this.transport.pause(this);
    }
    this.wake();
  }

  /** @internal Record the snapshot that came with `subscribed`. */
  setState(state: JSONObject): void {
    this.state = state;
  }

  /** @internal End after the queued events: cleanly, or raising `error`. */
  finish(error: unknown): void {
    if (this.phase !== "done") {
      this.phase = "done";
      this.error = error;
      this.ended(error);
    }
    this.wake();
  }

  // Private methods

  private async start(): Promise<void> {
    try {
      await this.transport.subscribe(this);
    } catch (exc) {
      this.finish(exc);
      throw exc;
    }
    if (this.phase === "starting") this.phase = "open";
  }

  private take(): Event {
    const event = this.queue[this.head]!;
    this.head += 1;
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    this.offset = event.offset;
    const waiting = this.queue.length - this.head;
    if (this.paused && waiting <= this.maxQueue / 2 && this.phase !== "done") {
      this.paused = false;
      this.transport.resume(this);
    }
    return event;
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }

  private ended(error: unknown): void {
    if (this.onEnd === undefined) return;
    const onEnd = this.onEnd;
    queueMicrotask(() => (error === undefined ? onEnd() : onEnd(error)));
  }
}

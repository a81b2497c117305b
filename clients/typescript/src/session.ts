/**
 * A session seen from the client: subscribe, publish, stream, cursors, presence.
 *
 * @module
 */

import { InvalidEvent, RateLimited, Timeout } from "./errors.js";
import { uuid7 } from "./ids.js";
import type { JSONObject } from "./protocol/frames.js";
import type { EventDraft, PresenceStatus, Visibility } from "./protocol/types.js";
import {
  MessageStream,
  runStream,
  type MessageRole,
  type StreamMessageOptions,
  type StreamTarget,
} from "./streaming.js";
import { Subscription, type SubscribeOptions } from "./subscription.js";
import type { HttpApi } from "./transports.js";
import { withTimeout, type PresenceListener, type WebSocketTransport } from "./websocket.js";

/** An event to publish: `type` and `data` required; `id` defaults to a new UUIDv7. */
export interface Draft {
  /** The event type (`message`, `x.order.lookup`…). */
  type: string;
  /** The type's fields. */
  data: JSONObject;
  /** The event's id for exactly-once publishing; a new UUIDv7 by default. */
  id?: string;
  /** `all` or `staff`; the type's default if omitted. */
  visibility?: Visibility;
  /** A trace id, passed through. */
  trace_id?: string;
}

/** Options of `Session.publish`. */
export interface PublishOptions {
  /** Publish only if the session's tail (in the caller's view) is this offset, else `TailMismatch`. */
  expectedOffset?: string;
}

/** Options of `Session.sendMessage`. */
export interface SendMessageOptions {
  /** `user` by default for a customer's token, `assistant` for staff. */
  role?: MessageRole;
  /** The message's id; a new UUIDv7 by default. */
  messageId?: string;
  /** The run it belongs to. */
  runId?: string;
  /** Application data carried with the message. */
  metadata?: JSONObject;
  /** `all` or `staff`. */
  visibility?: Visibility;
}

/** What a session needs of its client (a `Client`). */
export interface SessionOwner {
  readonly timeout: number;
  readonly transport: WebSocketTransport;
  readonly api: HttpApi;
  checkOpen(): void;
  defaultRole(): Promise<MessageRole>;
}

// The schema's patterns (src/threadline/protocol/schema/threadline.v1.json).
const EVENT_TYPE =
  /^(message|message\.start|message\.delta|message\.end|run\.start|run\.end|run\.cancel|tool\.call|tool\.result|control\.request|control\.accept|control\.release|participant\.joined|participant\.left|note|session\.updated|session\.closed|redaction|x(\.[A-Za-z0-9_-]+)+)$/;
const ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * A draft's wire JSON, with an id, after a local check of its envelope (the
 * server checks `data` against the type).
 *
 * @throws InvalidEvent - the envelope is malformed.
 */
export function draftJson(draft: Draft): EventDraft {
  if (draft === null || typeof draft !== "object") throw new InvalidEvent("a draft must be an object");
  if (typeof draft.type !== "string" || !EVENT_TYPE.test(draft.type)) {
    throw new InvalidEvent(`type: not an event type: ${JSON.stringify(draft.type)}`, "type");
  }
  const data = draft.data;
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw new InvalidEvent("data: must be an object", "data");
  }
  const id = draft.id ?? uuid7();
  if (typeof id !== "string" || !ID.test(id)) throw new InvalidEvent("id: must match [A-Za-z0-9._:-]{1,128}", "id");
  const out: EventDraft = { type: draft.type, id, data };
  if (draft.visibility !== undefined) {
    if (draft.visibility !== "all" && draft.visibility !== "staff") {
      throw new InvalidEvent("visibility: must be all or staff", "visibility");
    }
    out.visibility = draft.visibility;
  }
  if (draft.trace_id !== undefined) {
    if (typeof draft.trace_id !== "string" || !ID.test(draft.trace_id)) {
      throw new InvalidEvent("trace_id: must match [A-Za-z0-9._:-]{1,128}", "trace_id");
    }
    out.trace_id = draft.trace_id;
  }
  return out;
}

/**
 * One session, through a `Client`: `client.session(id)`.
 *
 * Cheap to make; nothing happens on the server until a method is called.
 * Publishes of one client to one session are stored in the order they were
 * called. After the client is closed every method throws `InvalidState`, and
 * publishes still unanswered reject with `ConnectionClosedOK`.
 */
export class Session implements StreamTarget {
  /** The session's id. */
  readonly id: string;
  private readonly owner: SessionOwner;

  /** @internal Use `client.session(id)`. */
  constructor(owner: SessionOwner, id: string) {
    this.owner = owner;
    this.id = id;
  }

  /** The client's timeout for one operation, in milliseconds. */
  get timeout(): number {
    return this.owner.timeout;
  }

  // Reading

  /**
   * The session's events after `offset`, then live ones, with no gap or
   * duplicate across reconnects; starts at once. Iterate the result with
   * `for await`, or pass `onEvent`. See {@link Subscription}.
   *
   * @throws InvalidState - the client is closed.
   */
  subscribe(options: SubscribeOptions = {}): Subscription {
    this.owner.checkOpen();
    return new Subscription(this.owner.transport, this.id, options);
  }

  /**
   * Call `listener` for each presence change in the session: a device of a
   * participant became `active`, `idle`, `typing`, or `offline`. The server
   * sends presence to subscribers only: subscribe to the session too.
   *
   * @returns A function that removes the listener.
   */
  onPresence(listener: PresenceListener): () => void {
    this.owner.checkOpen();
    return this.owner.transport.addPresenceListener(this.id, listener);
  }

  /**
   * The session's state as the caller may see it (`GET /v1/sessions/{id}`):
   * participants, presence, controller, open messages and runs, other
   * participants' cursors, `offset` (the tail) and the `session` document.
   *
   * @throws SessionNotFound, AuthError, Timeout
   */
  async state(): Promise<JSONObject> {
    this.owner.checkOpen();
    return this.owner.api.request<JSONObject>("GET", `/v1/sessions/${encodeURIComponent(this.id)}`);
  }

  // Cursor and presence

  /**
   * Move the caller's read cursor forward to `offset` (read receipts, unread
   * counts). Fire and forget: a cursor never moves back and stops at the
   * caller's visible tail; a failure goes to `client.onError` listeners.
   *
   * @throws RangeError - `offset` is malformed.
   */
  setCursor(offset: string): void {
    this.owner.checkOpen();
    this.owner.transport.cursor(this.id, offset);
  }

  /**
   * Set this device's presence status: `active`, `idle` or `typing`. Fire and
   * forget; sent again (the latest per session) after a reconnect.
   *
   * @throws RangeError - `status` is malformed.
   */
  setPresence(status: PresenceStatus): void {
    this.owner.checkOpen();
    this.owner.transport.presence(this.id, status);
  }

  // Publishing

  /**
   * Publish one event, or several all or nothing; resolve to the offset(s)
   * once they are durable.
   *
   * Each draft without an `id` gets a new UUIDv7. An unanswered publish is
   * resent after a reconnect with the same ids, so it is stored once;
   * publishing again with the same ids returns the original offsets. A
   * rate-limited publish is retried after the server's `retry_after`, within
   * the timeout.
   *
   * @throws InvalidEvent - a draft is malformed (checked before sending).
   * @throws SessionRuleError - the server refused it (`Forbidden`,
   *   `NotInControl`, `SessionClosed`, `IdConflict`…), or `TailMismatch`.
   * @throws Timeout - no answer within the client's timeout (the outcome is
   *   unknown; publishing again with the same ids is safe).
   */
  publish(draft: Draft, options?: PublishOptions): Promise<string>;
  publish(drafts: readonly Draft[], options?: PublishOptions): Promise<string[]>;
  async publish(drafts: Draft | readonly Draft[], options: PublishOptions = {}): Promise<string | string[]> {
    const one = !Array.isArray(drafts);
    const events = (one ? [drafts as Draft] : (drafts as readonly Draft[])).map(draftJson);
    if (events.length === 0) throw new RangeError("nothing to publish");
    this.owner.checkOpen();
    const deadline = Date.now() + this.timeout;
    for (;;) {
      const answer = this.owner.transport.submit(this.id, events, options.expectedOffset);
      try {
        const offsets = await withTimeout(answer, Math.max(0, deadline - Date.now()), () => {
          return new Timeout(`publish to ${JSON.stringify(this.id)}: no answer in time`);
        });
        return one ? offsets[0]! : offsets;
      } catch (exc) {
        if (!(exc instanceof RateLimited) || Date.now() + exc.retryAfter >= deadline) throw exc;
        await new Promise((resolve) => setTimeout(resolve, exc.retryAfter));
      }
    }
  }

  /**
   * Publish a complete text message; resolve to its offset.
   *
   * @throws see {@link publish}.
   */
  async sendMessage(text: string, options: SendMessageOptions = {}): Promise<string> {
    const data: JSONObject = {
      message_id: options.messageId ?? uuid7(),
      role: options.role ?? (await this.owner.defaultRole()),
      parts: [{ type: "text", text }],
    };
    if (options.runId !== undefined) data["run_id"] = options.runId;
    if (options.metadata !== undefined) data["metadata"] = options.metadata;
    const draft: Draft = { type: "message", data };
    if (options.visibility !== undefined) draft.visibility = options.visibility;
    return this.publish(draft);
  }

  /**
   * Stream a message: publish `message.start`, run `producer(stream)` — which
   * calls `stream.write(text)` for each piece — and always end the message
   * (`complete`, or `cancelled` / `error`). Deltas are pipelined (up to
   * `maxInFlight` unanswered). See {@link MessageStream}.
   *
   * ```ts
   * await session.streamMessage(async (message) => {
   *   for await (const token of llm) await message.write(token);
   * });
   * ```
   *
   * @returns The stream, ended.
   * @throws what `producer` threw (after ending the message `error`), or the
   *   publish failure that ended it.
   */
  async streamMessage(
    producer: (stream: MessageStream) => unknown,
    options: StreamMessageOptions = {},
  ): Promise<MessageStream> {
    this.owner.checkOpen();
    const stream = new MessageStream(this, options.messageId ?? uuid7(), options);
    return runStream(stream, producer, options.signal);
  }

  /** @internal Queue one event for publishing now (for `MessageStream`). */
  submit(type: string, data: JSONObject, visibility?: Visibility): Promise<string[]> {
    this.owner.checkOpen();
    const draft: Draft = { type, data };
    if (visibility !== undefined) draft.visibility = visibility;
    return this.owner.transport.submit(this.id, [draftJson(draft)]);
  }
}

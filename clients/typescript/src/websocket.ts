/**
 * The WebSocket transport: one connection per client, every subscription on it.
 *
 * A thin, event-driven driver of the sans-I/O {@link ClientProtocol}, which
 * does the remembering: each subscription's last offset, the publishes not
 * answered yet. After a retryable close the driver reconnects with backoff
 * and the protocol says `hello`, resubscribes from those offsets and resends
 * those publishes with the same ids, so nothing is lost, duplicated or stored
 * twice. The twin of Python's `threadline.client.websocket`.
 *
 * @module
 */

import type { Backoff } from "./backoff.js";
import {
  AuthError,
  ConnectionClosedError,
  ConnectionClosedOK,
  errorFrom,
  Forbidden,
  InvalidState,
  OffsetGone,
  SessionNotFound,
  ThreadlineError,
  Timeout,
} from "./errors.js";
import { ClientProtocol } from "./protocol/client_protocol.js";
import { Close, CloseCode } from "./protocol/codes.js";
import { SUBPROTOCOL, type JSONObject } from "./protocol/frames.js";
import type {
  ErrorMessage,
  EventDraft,
  Gone,
  Presence,
  PresenceStatus,
  ServerMessage,
} from "./protocol/types.js";
import type { Tokens } from "./tokens.js";
import { OPEN, type Sink, type WebSocketConstructor, type WebSocketLike } from "./transports.js";

const CLOSE_TIMEOUT = 5_000;

/** A promise with its settling functions; rejections nobody awaits are not "unhandled". */
class Deferred<T> {
  readonly promise: Promise<T>;
  resolve!: (value: T) => void;
  reject!: (error: unknown) => void;
  settled = false;

  constructor() {
    this.promise = new Promise<T>((resolve, reject) => {
      this.resolve = (value) => {
        this.settled = true;
        resolve(value);
      };
      this.reject = (error) => {
        this.settled = true;
        reject(error);
      };
    });
    this.promise.catch(() => undefined);
  }
}

/** A listener of presence changes in one session. */
export type PresenceListener = (presence: Presence) => void;

/** A listener of the server's errors that answer no request of the caller (cursor, presence…). */
export type ErrorListener = (error: ThreadlineError) => void;

/**
 * Where the connection stands: `idle` (never used yet), `connecting` (the
 * first connection is opening), `live` (open, `hello` sent), `reconnecting`
 * (it dropped or could not open; retrying with backoff), `closed` (for good).
 */
export type ConnectionState = "idle" | "connecting" | "live" | "reconnecting" | "closed";

/** A listener of changes of the {@link ConnectionState}. */
export type ConnectionListener = (state: ConnectionState) => void;

/** Options of {@link WebSocketTransport}. */
export interface WebSocketTransportOptions {
  /** This tab's or install's stable id. */
  device: string | undefined;
  /** Waits between reconnects. */
  backoff: Backoff;
  /** How long `subscribe` waits for `subscribed`, in milliseconds. */
  timeout: number;
  /** The WebSocket class. */
  WebSocketImpl: WebSocketConstructor;
}

/**
 * Subscriptions and publishes over one WebSocket `/v1/ws`.
 *
 * The connection opens on first use and reopens by itself after any
 * retryable close (4000–4099, a drop, a restarting server, a server that
 * cannot be reached), with backoff. A 4001 (token expired) first asks the
 * token provider for a new token; so does one 4401, since a token may expire
 * between two connections. A terminal close (4400–4499) ends every
 * subscription and fails every unanswered publish with the close's error,
 * and every later call throws it.
 *
 * Browsers report a refused handshake (a wrong URL, an HTTP 403) like a
 * server that cannot be reached: the transport keeps retrying, with backoff.
 */
export class WebSocketTransport {
  /** The WebSocket URL, `ws(s)://host:port/v1/ws`. */
  readonly url: string;
  /** The sans-I/O state: subscriptions' offsets, unanswered publishes. */
  readonly protocol: ClientProtocol;
  /** How many connections were opened so far (the first one included). */
  connections = 0;
  /** Where the connection stands now (see {@link ConnectionState}). */
  state: ConnectionState = "idle";

  private readonly tokens: Tokens;
  private readonly options: WebSocketTransportOptions;
  private readonly sinks = new Map<string, Sink>(); // session → sink
  private readonly sinkRids = new Map<string, string>(); // subscribe rid → session
  private readonly subscribing = new Map<string, Deferred<void>>(); // rid → answer
  private readonly publishes = new Map<string, Deferred<string[]>>(); // rid → answer
  private readonly presenceListeners = new Map<string, Set<PresenceListener>>();
  private readonly errorListeners = new Set<ErrorListener>();
  private readonly connectionListeners = new Set<ConnectionListener>();
  private socket: WebSocketLike | undefined;
  private running = false;
  private closing = false;
  private error: ThreadlineError | undefined;
  private failures = 0;
  private retriedAuth = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private flushing = false;
  private readonly stopped = new Deferred<void>();

  constructor(url: string, tokens: Tokens, options: WebSocketTransportOptions) {
    this.url = url;
    this.tokens = tokens;
    this.options = options;
    this.protocol = new ClientProtocol({
      ...(tokens.token === undefined ? {} : { token: tokens.token }),
      ...(options.device === undefined ? {} : { device: options.device }),
    });
  }

  // Subscriptions

  /**
   * Start delivering a session's events to `sink`; resolve once the server
   * accepted the subscription.
   *
   * @throws InvalidState - the client is closed, or already subscribes to the session.
   * @throws ThreadlineError - the server refused (`SessionNotFound`, `Forbidden`, `AuthError`…).
   * @throws Timeout - no answer within the timeout.
   */
  async subscribe(sink: Sink): Promise<void> {
    this.start();
    if (this.sinks.has(sink.session)) {
      throw new InvalidState(`already subscribed to ${JSON.stringify(sink.session)} on this client`);
    }
    const rid = this.protocol.subscribe(sink.session, sink.resumeOffset(), sink.view);
    this.sinks.set(sink.session, sink);
    this.sinkRids.set(rid, sink.session);
    const answer = new Deferred<void>();
    this.subscribing.set(rid, answer);
    this.flush();
    try {
      await withTimeout(answer.promise, this.options.timeout, () => {
        return new Timeout(`no answer to subscribe ${JSON.stringify(sink.session)}`);
      });
    } catch (exc) {
      this.subscribing.delete(rid);
      this.unsubscribe(sink);
      throw exc;
    }
  }

  /** Stop delivering to `sink` (nothing if it is not subscribed). */
  unsubscribe(sink: Sink): void {
    if (this.sinks.get(sink.session) === sink) {
      this.sinks.delete(sink.session);
      this.forgetRids(sink.session);
      this.protocol.unsubscribe(sink.session);
      this.flush();
    }
  }

  /**
   * Stop reading `sink`'s session on the server, keeping the sink: its
   * consumer is behind. {@link resume} subscribes again from the sink's
   * resume offset, so nothing is lost.
   */
  pause(sink: Sink): void {
    if (this.sinks.get(sink.session) === sink) {
      this.forgetRids(sink.session);
      this.protocol.unsubscribe(sink.session);
      this.flush();
    }
  }

  /** Read a paused sink's session again, after the last event it was given. */
  resume(sink: Sink): void {
    if (this.sinks.get(sink.session) === sink && !(sink.session in this.protocol.subscriptions)) {
      const rid = this.protocol.subscribe(sink.session, sink.resumeOffset(), sink.view);
      this.sinkRids.set(rid, sink.session);
      this.flush();
    }
  }

  // Publishing, cursors, presence

  /**
   * Publish event drafts, all or nothing; resolve to their offsets.
   *
   * The publish is queued when this returns, behind those submitted before,
   * and resent after a reconnect until it is answered.
   *
   * @throws RangeError - a value is malformed (thrown, not rejected).
   */
  submit(session: string, events: readonly EventDraft[], expectedOffset?: string): Promise<string[]> {
    this.start();
    const rid = this.protocol.publish(
      session,
      events,
      expectedOffset === undefined ? {} : { expectedOffset },
    );
    const answer = new Deferred<string[]>();
    this.publishes.set(rid, answer);
    this.flush();
    return answer.promise;
  }

  /** Move the caller's read cursor (no answer; a failure goes to the error listeners). */
  cursor(session: string, offset: string): void {
    this.start();
    this.protocol.sendCursor(session, offset);
    this.flush();
  }

  /** Set this device's presence status (no answer; a failure goes to the error listeners). */
  presence(session: string, status: PresenceStatus): void {
    this.start();
    this.protocol.sendPresence(session, status);
    this.flush();
  }

  /** Call `listener` for each presence change in `session` (while subscribed); return its remover. */
  addPresenceListener(session: string, listener: PresenceListener): () => void {
    let listeners = this.presenceListeners.get(session);
    if (listeners === undefined) {
      listeners = new Set();
      this.presenceListeners.set(session, listeners);
    }
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
      if (listeners.size === 0 && this.presenceListeners.get(session) === listeners) {
        this.presenceListeners.delete(session);
      }
    };
  }

  /** Call `listener` for each server error that answers no request; return its remover. */
  addErrorListener(listener: ErrorListener): () => void {
    this.errorListeners.add(listener);
    return () => {
      this.errorListeners.delete(listener);
    };
  }

  /**
   * Call `listener` with each change of the connection's state (`connecting`,
   * `live`, `reconnecting`, `closed`), for a status indicator.
   *
   * @returns A function that removes the listener.
   */
  addConnectionListener(listener: ConnectionListener): () => void {
    this.connectionListeners.add(listener);
    return () => {
      this.connectionListeners.delete(listener);
    };
  }

  /** The token was replaced: send `refresh` (and use it for later hellos). */
  onToken(token: string): void {
    try {
      this.protocol.refresh(token);
    } catch (exc) {
      console.warn("threadline: cannot send the new token:", exc);
      return;
    }
    this.flush();
  }

  /**
   * Close: end every subscription cleanly, fail what is unanswered with
   * {@link ConnectionClosedOK}, close the WebSocket (1000) after what is
   * queued. Safe to call twice.
   */
  async close(): Promise<void> {
    if (this.closing) return this.stopped.promise;
    this.closing = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const socket = this.socket;
    if (socket !== undefined && this.protocol.state === "open" && socket.readyState === OPEN) {
      // Send what is queued, then the close; wait (a little) for the server's.
      this.protocol.close();
      this.write(socket);
      await withTimeout(this.stopped.promise, CLOSE_TIMEOUT, () => undefined).catch(() => undefined);
    } else if (socket !== undefined) {
      // Still connecting: some WebSocket implementations report nothing more.
      this.socket = undefined;
      closeQuietly(socket);
    }
    this.end(undefined);
    return this.stopped.promise;
  }

  /**
   * Open the connection now rather than on first use (and keep it open, as
   * after any use). Safe to call again.
   *
   * @throws InvalidState - the client is closed.
   * @throws ThreadlineError - the connection failed for good.
   */
  connect(): void {
    this.start();
  }

  // The connection loop

  private start(): void {
    if (this.error !== undefined) throw this.error;
    if (this.closing) throw new InvalidState("the client is closed");
    if (!this.running) {
      this.running = true;
      void this.open();
    }
  }

  private async open(): Promise<void> {
    this.timer = undefined;
    if (this.closing || this.error !== undefined) return;
    if (this.state === "idle") this.changeState("connecting");
    let token: string;
    try {
      token = await this.tokens.current();
    } catch (exc) {
      this.end(exc instanceof ThreadlineError ? exc : new AuthError(String(exc)));
      return;
    }
    if (this.closing || this.error !== undefined) return;
    if (this.protocol.token !== token) this.protocol.refresh(token);
    let socket: WebSocketLike;
    try {
      socket = new this.options.WebSocketImpl(this.url, SUBPROTOCOL);
    } catch (exc) {
      this.end(new ConnectionClosedError(undefined, `cannot open ${this.url}: ${String(exc)}`));
      return;
    }
    this.socket = socket;
    let opened = false;
    let answered = false;
    let stale = token;
    socket.onopen = () => {
      if (this.closing) {
        closeQuietly(socket);
        return;
      }
      if (socket.protocol !== SUBPROTOCOL) {
        closeQuietly(socket);
        this.end(new ConnectionClosedError(undefined, `the server does not speak ${SUBPROTOCOL}`));
        return;
      }
      opened = true;
      this.failures = 0;
      this.options.backoff.reset();
      this.connections += 1;
      stale = this.protocol.token ?? token;
      this.protocol.connect();
      this.write(socket);
      this.changeState("live");
    };
    socket.onmessage = (event: { data: unknown }) => {
      if (this.socket !== socket) return;
      if (typeof event.data !== "string") {
        socket.close(CloseCode.PROTOCOL_ERROR, "binary frame");
        return;
      }
      answered = true;
      this.protocol.receiveText(event.data);
      this.dispatch(this.protocol.eventsReceived());
      this.write(socket);
    };
    socket.onerror = () => undefined; // a close event follows
    socket.onclose = (event: { code: number; reason: string }) => {
      if (this.socket === socket) this.socket = undefined;
      if (this.closing) {
        this.stopped.resolve();
        return;
      }
      if (this.error !== undefined) return;
      if (!opened) {
        this.failures += 1;
        this.reconnect(this.options.backoff.compute(this.failures));
        return;
      }
      void this.closed(event.code, event.reason, answered, stale);
    };
  }

  private async closed(code: number, reason: string, answered: boolean, stale: string): Promise<void> {
    if (answered) this.retriedAuth = false;
    if (code === CloseCode.TOKEN_EXPIRED || (code === CloseCode.UNAUTHORIZED && !this.retriedAuth)) {
      let fresh: boolean;
      try {
        fresh = await this.tokens.refresh(stale);
      } catch (exc) {
        this.protocol.receiveClose(code, reason);
        this.end(exc instanceof ThreadlineError ? exc : new AuthError(String(exc)));
        return;
      }
      if (code === CloseCode.UNAUTHORIZED && fresh) {
        // Try the new token once, keeping what is pending.
        this.retriedAuth = true;
        code = CloseCode.TOKEN_EXPIRED;
      }
    }
    if (this.closing) return;
    if (!this.protocol.receiveClose(code, reason)) {
      this.end(closeError(code, reason));
      return;
    }
    this.reconnect(this.options.backoff.compute(0));
  }

  private reconnect(delay: number): void {
    if (this.closing || this.error !== undefined) return;
    if (this.state === "live") this.changeState("reconnecting");
    this.timer = setTimeout(() => void this.open(), delay);
  }

  /** Send what the protocol queued, soon: calls made together share frames. */
  private flush(): void {
    if (this.flushing) return;
    this.flushing = true;
    queueMicrotask(() => {
      this.flushing = false;
      const socket = this.socket;
      if (socket !== undefined) this.write(socket);
    });
  }

  private write(socket: WebSocketLike): void {
    if (socket.readyState !== OPEN || this.socket !== socket) return;
    for (const item of this.protocol.dataToSend()) {
      if (item instanceof Close) {
        socket.close(item.code, item.reason);
        return;
      }
      socket.send(item);
    }
  }

  // What the server said

  private dispatch(messages: ServerMessage[]): void {
    for (const message of messages) {
      switch (message.type) {
        case "events": {
          const sink = this.sinks.get(message.session);
          if (sink !== undefined) sink.deliver(message.events);
          break;
        }
        case "published": {
          const publish = this.publishes.get(message.rid);
          this.publishes.delete(message.rid);
          publish?.resolve(message.offsets);
          break;
        }
        case "subscribed": {
          this.sinks.get(message.session)?.setState(message.state);
          const answer = this.subscribing.get(message.rid);
          this.subscribing.delete(message.rid);
          answer?.resolve();
          break;
        }
        case "error":
          this.receiveError(message);
          break;
        case "presence":
          for (const listener of [...(this.presenceListeners.get(message.session) ?? [])]) {
            report(() => listener(message));
          }
          break;
        case "gone":
          this.finishSink(message.session, goneError(message));
          break;
      }
    }
  }

  private receiveError(message: ErrorMessage): void {
    const error = errorFrom(message.code, message.message, message.details as JSONObject | undefined);
    const rid = message.rid;
    const publish = rid === undefined ? undefined : this.publishes.get(rid);
    if (rid !== undefined && publish !== undefined) {
      this.publishes.delete(rid);
      publish.reject(error);
    } else if (rid !== undefined && this.sinkRids.has(rid)) {
      // The protocol dropped the subscription: a first subscribe, or a
      // resubscribe after a reconnect, that the server refused.
      const answer = this.subscribing.get(rid);
      this.subscribing.delete(rid);
      answer?.reject(error);
      this.finishSink(this.sinkRids.get(rid)!, error);
    } else if (this.errorListeners.size > 0) {
      for (const listener of [...this.errorListeners]) report(() => listener(error));
    } else {
      console.warn(`threadline: server error ${message.code}: ${message.message}`);
    }
  }

  private finishSink(session: string, error: ThreadlineError): void {
    const sink = this.sinks.get(session);
    this.sinks.delete(session);
    this.forgetRids(session);
    sink?.finish(error);
  }

  private forgetRids(session: string): void {
    for (const [rid, name] of [...this.sinkRids]) {
      if (name === session) this.sinkRids.delete(rid);
    }
  }

  /** Stop for good: fail what waits, end every subscription. */
  private end(error: ThreadlineError | undefined): void {
    if (error !== undefined && this.error === undefined && !this.closing) this.error = error;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const socket = this.socket;
    if (socket !== undefined && error !== undefined) {
      this.socket = undefined;
      closeQuietly(socket);
    }
    const failure = error ?? new ConnectionClosedOK(1000, "the client is closed");
    for (const answer of [...this.publishes.values(), ...this.subscribing.values()]) {
      answer.reject(failure);
    }
    this.publishes.clear();
    this.subscribing.clear();
    const sinks = [...this.sinks.values()];
    this.sinks.clear();
    this.sinkRids.clear();
    for (const sink of sinks) sink.finish(error);
    this.stopped.resolve();
    this.changeState("closed");
  }

  private changeState(state: ConnectionState): void {
    if (this.state === state) return;
    this.state = state;
    for (const listener of [...this.connectionListeners]) report(() => listener(state));
  }
}

function closeQuietly(socket: WebSocketLike): void {
  try {
    socket.close(CloseCode.NORMAL_CLOSURE);
  } catch {
    // already closing
  }
}

/** Run a listener; what it throws is reported, not passed to the transport. */
function report(call: () => void): void {
  try {
    call();
  } catch (exc) {
    queueMicrotask(() => {
      throw exc;
    });
  }
}

/** Settle like `promise`, or reject with `timeout()` after `ms` (if it returns an error). */
export function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  timeout: () => ThreadlineError | undefined,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(timeout() ?? new Timeout("timed out")), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

function closeError(code: number, reason: string): ThreadlineError {
  if (code === CloseCode.UNAUTHORIZED) {
    return new AuthError(reason || "token refused (close 4401)", "unauthorized", 401);
  }
  if (code === CloseCode.FORBIDDEN) {
    return new AuthError(reason || "forbidden (close 4403)", "forbidden", 403);
  }
  if (code === CloseCode.NORMAL_CLOSURE) return new ConnectionClosedOK(code, reason);
  return new ConnectionClosedError(code, reason);
}

function goneError(message: Gone): ThreadlineError {
  if (message.reason === "offset_gone") {
    return new OffsetGone(
      `the subscription's offset is gone (earliest ${message.earliest ?? "?"}, tail ${message.tail ?? "?"})`,
      message.earliest ?? "",
      message.tail ?? "",
    );
  }
  if (message.reason === "forbidden") {
    return new Forbidden("the subscription is no longer allowed", "forbidden", 403);
  }
  return new SessionNotFound(`session ${JSON.stringify(message.session)} was deleted`, "session_not_found", 404);
}

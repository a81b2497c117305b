/**
 * `connect()` and the {@link Client}: one application's link to a server.
 *
 * @module
 */

import { ExponentialBackoff, type Backoff } from "./backoff.js";
import { InvalidState } from "./errors.js";
import { Session } from "./session.js";
import type { MessageRole } from "./streaming.js";
import { Tokens, type TokenProvider } from "./tokens.js";
import { globalWebSocket, HttpApi, type WebSocketConstructor } from "./transports.js";
import {
  WebSocketTransport,
  type ConnectionListener,
  type ConnectionState,
  type ErrorListener,
} from "./websocket.js";

/** Milliseconds one operation (a request, a publish, a subscribe) may take. */
export const DEFAULT_TIMEOUT = 30_000;

const SESSION_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const DEVICE = /^[A-Za-z0-9_-]{1,64}$/;
const WS_SCHEMES: Readonly<Record<string, string>> = { "http:": "ws:", "https:": "wss:", "ws:": "ws:", "wss:": "wss:" };
const HTTP_SCHEMES: Readonly<Record<string, string>> = {
  "http:": "http:",
  "https:": "https:",
  "ws:": "http:",
  "wss:": "https:",
};

/** Options of {@link connect}. */
export interface ConnectOptions {
  /** A bearer token (`threadline token` mints one). Give it, `getToken`, or both. */
  token?: string;
  /**
   * The refresh hook: returns a fresh token. It is called for the first token
   * if `token` is absent, shortly before the token's `exp`, and when the
   * server refuses the token as expired (close 4001, one 4401, a 401).
   */
  getToken?: TokenProvider;
  /**
   * This tab's or install's stable id (`[A-Za-z0-9_-]{1,64}`), so that a
   * reconnect is the same device (presence); the server assigns one if absent.
   */
  device?: string;
  /** Milliseconds one operation may take, retries included (default 30,000). */
  timeout?: number;
  /** How long to wait between reconnects (default: exponential from 100 ms to 10 s, full jitter). */
  backoff?: Backoff;
  /** The WebSocket class (default: the global `WebSocket`; on Node 20, pass the `ws` package's). */
  WebSocketImpl?: WebSocketConstructor;
  /** The `fetch` for the HTTP calls (default: the global one). */
  fetch?: typeof fetch;
}

/** A session's document, as `createSession` returns it. */
export interface SessionInfo {
  id: string;
  customer: string | null;
  metadata: { [key: string]: unknown };
  created: string;
  controller_role: string | null;
}

/** One of the caller's sessions, as `mySessions` lists it (`GET /v1/me/sessions`). */
export interface MySession {
  /** The session's document. */
  session: SessionInfo;
  /** The tail of the caller's view. */
  offset: string;
  /** The caller's cursor, if set. */
  cursor: string | null;
  /** Messages of others after the cursor. */
  unread: number;
  /** Who holds the floor: `{id, role}`, or `null` when nobody does. */
  controller: { id: string | null; role: string } | null;
  /** Whether a message is being streamed now. */
  in_flight: boolean;
}

/** Options of `Client.createSession`. */
export interface CreateSessionOptions {
  /** Routing metadata (channel, priority, language, tags…). */
  metadata?: { [key: string]: unknown };
  /** The session's customer (staff tokens; a customer's token makes its own session). */
  customer?: string;
}

/**
 * Make a {@link Client} of the Threadline server at `url`.
 *
 * ```ts
 * const client = connect("https://chat.example.com", { getToken, device: "tab-7f3a" });
 * const session = client.session("order-1234");
 * for await (const event of session.subscribe({ offset: "-1" })) render(event);
 * ```
 *
 * Nothing is sent until it is used: subscriptions, publishes, cursors and
 * presence go over one shared WebSocket (`/v1/ws`, subprotocol
 * `threadline.v1`), opened on first use and reopened by itself; the few
 * request/response calls (`createSession`, `state`) over HTTP.
 *
 * @param url - The server's base URL, `http(s)://host:port` (`ws(s)://` is accepted too).
 * @throws TypeError - `url`, the token or `device` is malformed, or neither
 *   `token` nor `getToken` is given.
 * @throws InvalidState - the platform has no WebSocket and none was passed.
 */
export function connect(url: string, options: ConnectOptions): Client {
  return new Client(url, options);
}

/**
 * A connection to a Threadline server, for one identity (its token).
 *
 * Make one with {@link connect}. {@link close} ends every subscription and
 * rejects every unanswered publish with `ConnectionClosedOK`; after it every
 * method throws `InvalidState`. A terminal close (4401, 4403…) ends them with
 * that error instead, and every later call throws it.
 */
export class Client {
  /** The server's base HTTP URL. */
  readonly url: string;
  /** This tab's or install's id, if given. */
  readonly device: string | undefined;
  /** Milliseconds one operation may take. */
  readonly timeout: number;
  /** The current token and its refresh hook. */
  readonly tokens: Tokens;
  /** What carries subscriptions, publishes, cursors and presence. */
  readonly transport: WebSocketTransport;
  /** The session HTTP API. */
  readonly api: HttpApi;
  private closed = false;

  constructor(url: string, options: ConnectOptions) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new TypeError(`not an http(s):// or ws(s):// URL: ${JSON.stringify(url)}`);
    }
    const http = HTTP_SCHEMES[parsed.protocol];
    const ws = WS_SCHEMES[parsed.protocol];
    if (http === undefined || ws === undefined || !parsed.host) {
      throw new TypeError(`not an http(s):// or ws(s):// URL: ${JSON.stringify(url)}`);
    }
    if (options.device !== undefined && !DEVICE.test(options.device)) {
      throw new TypeError("device must match [A-Za-z0-9_-]{1,64}");
    }
    const timeout = options.timeout ?? DEFAULT_TIMEOUT;
    if (!(timeout > 0)) throw new TypeError("timeout must be positive");
    const base = parsed.pathname.replace(/\/+$/, "");
    this.url = `${http}//${parsed.host}${base}`;
    this.device = options.device;
    this.timeout = timeout;
    this.tokens = new Tokens(options.token, options.getToken);
    const backoff = options.backoff ?? new ExponentialBackoff();
    this.api = new HttpApi(this.url, this.tokens, {
      device: options.device,
      timeout,
      backoff,
      fetch: options.fetch,
    });
    this.transport = new WebSocketTransport(`${ws}//${parsed.host}${base}/v1/ws`, this.tokens, {
      device: options.device,
      backoff,
      timeout,
      WebSocketImpl: options.WebSocketImpl ?? globalWebSocket(),
    });
    this.tokens.addListener((token) => this.transport.onToken(token));
    this.tokens.start();
  }

  // Public methods

  /**
   * The session `id` (nothing is sent).
   *
   * @throws TypeError - the id is not `[A-Za-z0-9._:-]{1,128}`.
   */
  session(id: string): Session {
    if (typeof id !== "string" || !SESSION_ID.test(id)) {
      throw new TypeError("session ids match [A-Za-z0-9._:-]{1,128}");
    }
    return new Session(this, id);
  }

  /**
   * Create the session, or return it if it exists (safe to retry).
   *
   * @throws AuthError, Forbidden - the token may not create it.
   * @throws Timeout - no answer in time.
   */
  async createSession(id: string, options: CreateSessionOptions = {}): Promise<SessionInfo> {
    this.session(id);
    this.checkOpen();
    const body: { [key: string]: unknown } = { id, metadata: options.metadata ?? {} };
    if (options.customer !== undefined) body["customer"] = options.customer;
    return this.api.request<SessionInfo>("POST", "/v1/sessions", body);
  }

  /**
   * The caller's sessions (`GET /v1/me/sessions`): those it created, was
   * named customer of, published in or set a cursor in, with unread counts
   * and whether an answer is in flight. How a new tab or device finds its
   * conversations.
   *
   * @throws AuthError, Timeout
   */
  async mySessions(): Promise<MySession[]> {
    this.checkOpen();
    const answer = await this.api.request<{ sessions: MySession[] }>("GET", "/v1/me/sessions");
    return answer.sessions;
  }

  /**
   * Open the WebSocket now instead of on first use, say to show a live
   * connection before any subscription. It reopens by itself after drops,
   * like a connection opened by a subscription.
   *
   * @throws InvalidState - the client is closed.
   */
  open(): void {
    this.checkOpen();
    this.transport.connect();
  }

  /** Where the connection stands: `idle`, `connecting`, `live`, `reconnecting` or `closed`. */
  get connectionState(): ConnectionState {
    return this.transport.state;
  }

  /**
   * Call `listener` with each change of {@link connectionState} (for a
   * connection indicator). The connection opens on first use.
   *
   * @returns A function that removes the listener.
   */
  onConnection(listener: ConnectionListener): () => void {
    return this.transport.addConnectionListener(listener);
  }

  /**
   * Call `listener` with each error the server sends that answers no request
   * of the caller: a refused cursor or presence, say.
   *
   * @returns A function that removes the listener.
   */
  onError(listener: ErrorListener): () => void {
    return this.transport.addErrorListener(listener);
  }

  /**
   * Close: end subscriptions, reject unanswered publishes, close the
   * WebSocket after what is queued. Safe to call twice.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.tokens.stop();
    await this.transport.close();
  }

  // For sessions

  /**
   * The role of this identity's messages: `user` for a customer.
   *
   * @internal
   */
  async defaultRole(): Promise<MessageRole> {
    await this.tokens.current();
    const role = this.tokens.claims["role"] ?? "customer";
    return role === "customer" ? "user" : "assistant";
  }

  /**
   * Throw `InvalidState` if closed.
   *
   * @internal
   */
  checkOpen(): void {
    if (this.closed) throw new InvalidState("the client is closed");
  }
}

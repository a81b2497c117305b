/**
 * The seam between the client and the platform's I/O: the WebSocket
 * constructor (the global one, or one the application passes) and `fetch`
 * for the few request/response calls of the session HTTP API.
 *
 * What the platform raises is converted here, and only here, into the errors
 * of `./errors.ts`; the server's error answers become the class of their
 * `code` ({@link errorFrom}).
 *
 * @module
 */

import type { Backoff } from "./backoff.js";
import { AuthError, errorFrom, InvalidState, ThreadlineError, Timeout } from "./errors.js";
import type { JSONObject } from "./protocol/frames.js";
import type { Event, View } from "./protocol/types.js";
import type { Tokens } from "./tokens.js";

/**
 * The part of the browser's `WebSocket` the client uses. The global
 * `WebSocket` of browsers, Deno, Bun and Node ≥ 22 has it, and so has the
 * `WebSocket` of the `ws` package (for older Node).
 */
export interface WebSocketLike {
  readonly readyState: number;
  readonly protocol: string;
  // Handlers take `never` so that any WebSocket class fits; the client's
  // read `{data}` (message) and `{code, reason}` (close).
  onopen: ((event: never) => unknown) | null;
  onmessage: ((event: never) => unknown) | null;
  onclose: ((event: never) => unknown) | null;
  onerror: ((event: never) => unknown) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** A `WebSocket` class: `new WebSocketImpl(url, protocols)`. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** `WebSocket.OPEN`. */
export const OPEN = 1;

/**
 * The global `WebSocket`, if the platform has one.
 *
 * @throws InvalidState - there is none (Node 20 without
 *   `--experimental-websocket`): pass `WebSocketImpl`.
 */
export function globalWebSocket(): WebSocketConstructor {
  const impl = (globalThis as { WebSocket?: unknown }).WebSocket;
  if (typeof impl !== "function") {
    throw new InvalidState(
      "this platform has no global WebSocket: pass WebSocketImpl (e.g. the ws package's), " +
        "or run Node 20 with --experimental-websocket",
    );
  }
  return impl as WebSocketConstructor;
}

/** Where a transport delivers one subscription's events (a `Subscription`). */
export interface Sink {
  /** The session read. */
  readonly session: string;
  /** `raw` or `compact`. */
  readonly view: View;
  /** Where to start: the last offset delivered, or the one asked for. */
  resumeOffset(): string;
  /** Deliver events, in offset order, each once. */
  deliver(events: readonly Event[]): void;
  /** Record the session's state snapshot (`subscribed`). */
  setState(state: JSONObject): void;
  /** End the subscription, after what is queued: cleanly or with `error`. */
  finish(error: ThreadlineError | undefined): void;
}

const RETRY_STATUSES: ReadonlySet<number> = new Set([429, 502, 503, 504]);

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Options of {@link HttpApi}. */
export interface HttpApiOptions {
  /** Sent as `Threadline-Device`. */
  device: string | undefined;
  /** Default deadline of one request, retries included, in milliseconds. */
  timeout: number;
  /** Waits between retries. */
  backoff: Backoff;
  /** The `fetch` to use (default: the global one). */
  fetch: typeof fetch | undefined;
}

/**
 * The few calls of the session HTTP API the client needs, through `fetch`.
 *
 * A request is retried with backoff while it fails for a reason that may
 * pass (the network, 429, 502–504) until its deadline, then raises
 * {@link Timeout}; a 401 is retried once with a fresh token from the token
 * provider. Every request the client makes is safe to repeat.
 */
export class HttpApi {
  readonly baseUrl: string;
  private readonly tokens: Tokens;
  private readonly options: HttpApiOptions;

  constructor(baseUrl: string, tokens: Tokens, options: HttpApiOptions) {
    this.baseUrl = baseUrl;
    this.tokens = tokens;
    this.options = options;
  }

  /**
   * Send a request and decode its JSON answer, retrying what may pass.
   *
   * @throws Timeout - no answer before the deadline.
   * @throws ThreadlineError - the server's error answer.
   */
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const fetcher = this.options.fetch ?? (globalThis.fetch as typeof fetch | undefined);
    if (typeof fetcher !== "function") throw new InvalidState("this platform has no fetch");
    const deadline = Date.now() + this.options.timeout;
    let failures = 0;
    let refreshed = false;
    for (;;) {
      const token = await this.tokens.current();
      const headers: Record<string, string> = { authorization: `Bearer ${token}` };
      if (this.options.device !== undefined) headers["threadline-device"] = this.options.device;
      if (body !== undefined) headers["content-type"] = "application/json";
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), Math.max(0, deadline - Date.now()));
      let error: ThreadlineError;
      let retryAfter = 0;
      try {
        const response = await fetcher(this.baseUrl + path, {
          method,
          headers,
          signal: controller.signal,
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
        const text = await response.text();
        if (response.ok) return (text ? JSON.parse(text) : undefined) as T;
        error = httpError(response.status, text);
        if (response.status === 401 && !refreshed) {
          refreshed = true;
          if (await this.tokens.refresh(token)) continue;
        }
        if (!RETRY_STATUSES.has(response.status)) throw error;
        retryAfter = Number(response.headers.get("retry-after") ?? 0) * 1000 || 0;
      } catch (exc) {
        if (exc instanceof ThreadlineError) throw exc;
        if (controller.signal.aborted) throw new Timeout(`${method} ${path}: no answer in time`);
        error = new ThreadlineError(`${method} ${path}: ${String(exc)}`, "disconnected");
      } finally {
        clearTimeout(timer);
      }
      failures += 1;
      const delay = Math.max(this.options.backoff.compute(failures), retryAfter);
      if (Date.now() + delay >= deadline) throw new Timeout(`${method} ${path}: ${error.message}`);
      await sleep(delay);
    }
  }
}

function httpError(status: number, text: string): ThreadlineError {
  let code = `http_${status}`;
  let message = `HTTP ${status}`;
  let details: JSONObject = {};
  try {
    const error = (JSON.parse(text) as { error?: JSONObject }).error;
    if (error !== undefined && typeof error["code"] === "string" && typeof error["message"] === "string") {
      ({ code, message, ...details } = error as { code: string; message: string });
    }
  } catch {
    // not JSON: keep the status
  }
  if (status === 401) return new AuthError(message, code, 401);
  return errorFrom(code, message, { ...details, status });
}

/**
 * The client's bearer token, and refreshing it through the application's hook.
 *
 * The client reads a JWT's `exp` and `role` without verifying it (the server
 * verifies; the client only needs to know when to ask for a new one), so it
 * needs no JWT library. An opaque token works too: it is then refreshed only
 * when the server refuses it.
 *
 * @module
 */

import { AuthError } from "./errors.js";

/** The refresh hook: returns a fresh token (or a promise of one). */
export type TokenProvider = () => string | Promise<string>;

/** Ask the provider for a new token this many milliseconds before `exp`. */
export const REFRESH_MARGIN = 60_000;

const MIN_INTERVAL = 1_000; // between two proactive refreshes, at least
const MAX_TIMER = 2 ** 31 - 1; // setTimeout's longest delay

/** The claims of a JWT, unverified; `{}` for a token that is not a JWT. */
export function tokenClaims(token: string): Record<string, unknown> {
  const parts = token.split(".");
  if (parts.length !== 3) return {};
  try {
    const b64 = parts[1]!.replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    const claims: unknown = JSON.parse(new TextDecoder().decode(bytes));
    return claims !== null && typeof claims === "object" && !Array.isArray(claims)
      ? (claims as Record<string, unknown>)
      : {};
  } catch {
    return {};
  }
}

/**
 * The current token of a client, refreshed through `provider`.
 *
 * Give a token, a provider, or both: without a token, the provider is asked
 * for the first one when the client first connects.
 */
export class Tokens {
  /** The token to send now (undefined until the provider gave the first one). */
  token: string | undefined;
  /** The refresh hook. */
  readonly provider: TokenProvider | undefined;
  private readonly listeners: ((token: string) => void)[] = [];
  private inflight: Promise<boolean> | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running = false;

  /** @throws TypeError - neither a non-empty token nor a provider. */
  constructor(token: string | undefined, provider?: TokenProvider) {
    if (token !== undefined && (typeof token !== "string" || token.length === 0)) {
      throw new TypeError("token must be a non-empty string");
    }
    if (token === undefined && typeof provider !== "function") {
      throw new TypeError("give a token or a getToken hook");
    }
    this.token = token;
    this.provider = provider;
  }

  /** The current token's claims, unverified (`{}` if it is no JWT). */
  get claims(): Record<string, unknown> {
    return this.token === undefined ? {} : tokenClaims(this.token);
  }

  /** Call `listener(token)` whenever the token is replaced. */
  addListener(listener: (token: string) => void): void {
    this.listeners.push(listener);
  }

  /**
   * The token to send now, asking the provider for the first one.
   *
   * @throws AuthError - the provider failed.
   */
  async current(): Promise<string> {
    if (this.token === undefined) await this.refresh(undefined);
    return this.token!;
  }

  /**
   * Get a fresh token unless `stale` was already replaced.
   *
   * Concurrent callers share one call of the provider.
   *
   * @returns Whether a token other than `stale` is now current.
   * @throws AuthError - the provider failed or returned no token.
   */
  async refresh(stale: string | undefined): Promise<boolean> {
    while (this.inflight !== undefined) {
      await this.inflight.catch(() => false);
    }
    if (this.token !== stale) return true;
    const provider = this.provider;
    if (provider === undefined) return false;
    const call = (async () => {
      let token: unknown;
      try {
        token = await provider();
      } catch (exc) {
        throw new AuthError(`token provider failed: ${String(exc)}`);
      }
      if (typeof token !== "string" || token.length === 0) {
        throw new AuthError("token provider returned no token");
      }
      this.token = token;
      for (const listener of this.listeners) listener(token);
      this.schedule(MIN_INTERVAL);
      return token !== stale;
    })();
    this.inflight = call;
    try {
      return await call;
    } finally {
      this.inflight = undefined;
    }
  }

  /**
   * Refresh the token ahead of its expiry, until {@link stop} (with a provider
   * and a token that says `exp` only). The timer does not keep Node alive.
   */
  start(): void {
    if (this.provider === undefined || this.running) return;
    this.running = true;
    this.schedule(0);
  }

  /** Stop refreshing ahead. Safe to call twice. */
  stop(): void {
    this.running = false;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** (Re)arm the refresh-ahead timer for the current token's `exp`. */
  private schedule(minDelay: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const exp = this.claims["exp"];
    if (!this.running || typeof exp !== "number") return;
    const delay = Math.max(exp * 1000 - REFRESH_MARGIN - Date.now(), minDelay);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      // A success re-arms the timer for the new token's exp; a failure (or
      // the same token again) retries a little later.
      this.refresh(this.token).then(
        () => {
          if (this.timer === undefined) this.schedule(MIN_INTERVAL);
        },
        () => this.schedule(MIN_INTERVAL),
      );
    }, Math.min(delay, MAX_TIMER));
    unref(this.timer);
  }
}

/** Let Node exit while only this timer waits (browsers have no such notion). */
export function unref(timer: unknown): void {
  if (timer !== null && typeof timer === "object" && "unref" in timer) {
    const method = (timer as { unref: unknown }).unref;
    if (typeof method === "function") method.call(timer);
  }
}

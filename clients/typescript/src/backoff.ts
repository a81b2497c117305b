/**
 * Reconnect strategies: how long to wait before the next attempt.
 *
 * A strategy is any object with `compute(failures)` (milliseconds) and
 * `reset()` ({@link Backoff}); the client calls `compute` with the number of
 * attempts that failed in a row (0 after a connection that was up dropped),
 * and `reset` once a connection is up.
 *
 * @module
 */

/** How long to wait before reconnecting. */
export interface Backoff {
  /** Milliseconds to wait after `failures` failed attempts in a row. */
  compute(failures: number): number;
  /** Forget past failures: a connection is up. */
  reset(): void;
}

/** Options of {@link ExponentialBackoff}. */
export interface ExponentialBackoffOptions {
  /** The first wait's upper bound, in milliseconds (default 100). */
  base?: number;
  /** The longest wait, in milliseconds (default 10,000). */
  cap?: number;
  /** The random source, uniform in [0, 1) (default `Math.random`). */
  random?: () => number;
}

/**
 * Exponential backoff with full jitter, capped (the default).
 *
 * The wait after `n` failures is uniform in `[0, min(cap, base * 2**n)]`, so
 * that clients dropped together by a restarting server do not come back
 * together.
 */
export class ExponentialBackoff implements Backoff {
  /** The first wait's upper bound, in milliseconds. */
  readonly base: number;
  /** The longest wait, in milliseconds. */
  readonly cap: number;
  private readonly random: () => number;

  /** @throws RangeError - unless `0 <= base <= cap`. */
  constructor(options: ExponentialBackoffOptions = {}) {
    this.base = options.base ?? 100;
    this.cap = options.cap ?? 10_000;
    if (!(this.base >= 0 && this.cap >= this.base)) throw new RangeError("need 0 <= base <= cap");
    this.random = options.random ?? Math.random;
  }

  compute(failures: number): number {
    const ceiling = Math.min(this.cap, this.base * 2 ** Math.min(failures, 32));
    return this.random() * ceiling;
  }

  reset(): void {}
}

/** Always the same wait (tests, or a known-local server). */
export class ConstantBackoff implements Backoff {
  /** The wait, in milliseconds. */
  readonly delay: number;

  /** @throws RangeError - `delay` is negative. */
  constructor(delay: number) {
    if (!(delay >= 0)) throw new RangeError("delay must be >= 0");
    this.delay = delay;
  }

  compute(_failures: number): number {
    return this.delay;
  }

  reset(): void {}
}

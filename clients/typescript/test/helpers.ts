// Shared test helpers: paths, the server under test, a TCP proxy that cuts
// connections, polling. Every timeout is a multiple of MS, which
// THREADLINE_TEST_TIMEOUT_UNIT scales (in seconds per millisecond, as in
// Python's tests/utils.py).
import { createServer, connect as tcpConnect, type Server, type Socket } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { connect, ExponentialBackoff, type Client, type ConnectOptions } from "../src/index.js";

/** The repository's root (this file runs from clients/typescript/dist/tsc/test/). */
export const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "..", "..");

/** One millisecond, scaled. */
export const MS = Number(process.env["THREADLINE_TEST_TIMEOUT_UNIT"] ?? "0.001") * 1000;

/** The server under test, from the environment tests/clients/test_typescript.py sets. */
export const SERVER = process.env["THREADLINE_TEST_URL"];

/** Tokens by name (`service`, `service2`, `customer`, `forged`…), minted by the Python harness. */
export const TOKENS: Record<string, string> = JSON.parse(process.env["THREADLINE_TEST_TOKENS"] ?? "{}");

/** Why server tests skip, or false. */
export const NO_SERVER = SERVER === undefined ? "THREADLINE_TEST_URL is not set (run tests/clients/test_typescript.py)" : false;

/** A token by name. */
export function token(name: string): string {
  const value = TOKENS[name];
  if (value === undefined) throw new Error(`no token ${name} in THREADLINE_TEST_TOKENS`);
  return value;
}

/** A client of the server under test (or `url`), with test-sized timeouts and backoff. */
export function client(name: string, options: Partial<ConnectOptions> & { url?: string } = {}): Client {
  const { url, ...rest } = options;
  return connect(url ?? SERVER!, {
    token: token(name),
    timeout: 5_000 * MS,
    backoff: new ExponentialBackoff({ base: 5 * MS, cap: 50 * MS }),
    ...rest,
  });
}

let counter = 0;

/** A session id no other test uses. */
export function sessionId(prefix: string): string {
  counter += 1;
  return `ts-${prefix}-${process.pid}-${Date.now()}-${counter}`;
}

/** Poll `predicate` until it returns a truthy value; return it. */
export async function waitFor<T>(predicate: () => T | Promise<T>, timeout = 2_000 * MS): Promise<T> {
  const deadline = Date.now() + timeout;
  for (;;) {
    const result = await predicate();
    if (result) return result;
    if (Date.now() >= deadline) throw new Error(`condition still false after ${timeout} ms: ${predicate}`);
    await sleep(5 * MS);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A TCP proxy in front of the server, to cut every connection mid-stream. */
export class Proxy {
  /** `http://127.0.0.1:PORT`, the proxy's URL. */
  url = "";
  /** How many connections it accepted. */
  accepted = 0;
  private readonly server: Server;
  private readonly pairs = new Set<[Socket, Socket]>();

  private constructor(target: URL) {
    this.server = createServer((downstream) => {
      this.accepted += 1;
      const upstream = tcpConnect(Number(target.port), target.hostname);
      const pair: [Socket, Socket] = [downstream, upstream];
      this.pairs.add(pair);
      const drop = (): void => {
        this.pairs.delete(pair);
        downstream.destroy();
        upstream.destroy();
      };
      downstream.on("error", drop).on("close", drop);
      upstream.on("error", drop).on("close", drop);
      downstream.pipe(upstream);
      upstream.pipe(downstream);
    });
  }

  /** A proxy listening on a free port of 127.0.0.1. */
  static async start(target: string): Promise<Proxy> {
    const proxy = new Proxy(new URL(target));
    await new Promise<void>((resolve) => proxy.server.listen(0, "127.0.0.1", resolve));
    const address = proxy.server.address();
    if (address === null || typeof address === "string") throw new Error("no port");
    proxy.url = `http://127.0.0.1:${address.port}`;
    return proxy;
  }

  /** Cut every connection at once (the client sees 1006, as on a network drop). */
  cut(): number {
    const count = this.pairs.size;
    for (const [downstream, upstream] of [...this.pairs]) {
      downstream.resetAndDestroy();
      upstream.destroy();
    }
    this.pairs.clear();
    return count;
  }

  async stop(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

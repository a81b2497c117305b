"""Run the Durable Streams conformance suite against a fresh Threadline server.

Two runs, each against its own server and throw-away SQLite store:

* ``auth-off``: ``threadline serve --no-auth``; the suite talks to it directly.
* ``auth-on``: ``threadline serve --secret S``; the suite talks to it through
  ``ds-suite/auth-proxy.mjs``, which adds a service token for ``S`` to every
  request (the suite itself sends no credentials).

A run passes when vitest exits 0 and reports exactly ``EXPECTED_PASSED`` passed
and none failed (with ``-t``, any non-zero number passed). The script exits 0
only if every selected run passes. Servers and proxies run in their own process
groups, which are killed, and the temporary directory removed, on every exit
path (failure, timeout, Ctrl-C, SIGTERM).

Usage (see conformance/README.md)::

    .venv/bin/python conformance/run.py [--only auth-off|auth-on] [-t PATTERN]
        [--keep-going] [--timeout SECONDS] [--server-cmd CMD]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import secrets
import selectors
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import jwt

HERE = Path(__file__).resolve().parent
SUITE_DIR = HERE / "ds-suite"
VITEST = SUITE_DIR / "node_modules" / ".bin" / "vitest"
PROXY = SUITE_DIR / "auth-proxy.mjs"
HOST = "127.0.0.1"
RUNS = ("auth-off", "auth-on")
EXPECTED_PASSED = 332
"""Tests the pinned suite (0.3.6) runs by default; bump it with the pin."""
STARTUP_TIMEOUT = 30.0
POLL_INTERVAL = 0.05
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
SUMMARY = re.compile(r"^\s*(Test Files|Tests)\s{2,}(.*\(\d+\))\s*$")
NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""Talks to loopback directly even if http_proxy is set."""


class RunnerError(Exception):
    """A run could not be carried out (server did not start, tool missing...)."""


@dataclass
class RunResult:
    """Outcome of one suite run."""

    name: str
    ok: bool = False
    summary: list[str] = field(default_factory=list)
    """The "Test Files ..." and "Tests ..." lines, ANSI codes stripped."""
    reason: str = ""
    seconds: float = 0.0


def log(run: str, message: str) -> None:
    """Prints one line of the runner's own output, tagged with the run name."""
    print(f"conformance[{run}]: {message}", flush=True)


def free_port() -> int:
    """Returns a loopback TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def make_token(secret: str) -> str:
    """Mints the HS256 service token the auth proxy sends on every request."""
    claims = {
        "sub": "conformance",
        "tenant": "default",
        "role": "service",
        "streams": {"read": ["**"], "write": ["**"]},
        "exp": int(time.time()) + 3600,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


@contextlib.contextmanager
def process_group(
    cmd: Sequence[str],
    *,
    log_path: Path,
    env: dict[str, str] | None = None,
    pipe_stdout: bool = False,
) -> Iterator[subprocess.Popen[bytes]]:
    """Starts ``cmd`` in a new process group; kills the whole group on exit.

    Output goes to ``log_path``, except stdout if ``pipe_stdout`` (the proxy
    announces its port there and prints nothing else, so the pipe never fills).
    """
    with log_path.open("ab") as log_file:
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipe_stdout else log_file,
                stderr=log_file,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            raise RunnerError(f"cannot start {cmd[0]}: {exc}") from exc
    try:
        yield proc
    finally:
        kill_group(proc)
        if proc.stdout is not None:
            proc.stdout.close()


def kill_group(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """SIGTERMs the process group led by ``proc``, then SIGKILLs it after 5 s."""
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue


def http_status(url: str, *, method: str = "GET") -> int | None:
    """Returns the status of one request to ``url``, or None if none came back."""
    request = urllib.request.Request(url, method=method)
    try:
        with NO_PROXY_OPENER.open(request, timeout=2) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def wait_healthy(base_url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    """Polls ``GET /healthz`` until it answers 200, ``proc`` dies, or time runs out."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while http_status(f"{base_url}/healthz") != 200:
        if time.monotonic() > deadline:
            raise RunnerError(f"{what} not healthy after {STARTUP_TIMEOUT:.0f} s")
        try:  # doubles as the poll interval, but returns at once if it dies
            code = proc.wait(timeout=POLL_INTERVAL)
        except subprocess.TimeoutExpired:
            continue
        raise RunnerError(f"{what} exited with status {code} before it was healthy")


def read_proxy_port(proc: subprocess.Popen[bytes]) -> int:
    """Reads the ``LISTENING <port>`` line the auth proxy prints when ready."""
    assert proc.stdout is not None  # started with pipe_stdout=True
    deadline = time.monotonic() + STARTUP_TIMEOUT
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while not selector.select(timeout=max(0.0, deadline - time.monotonic())):
            if time.monotonic() >= deadline:
                raise RunnerError("auth proxy did not print LISTENING in time")
    line = proc.stdout.readline().decode(errors="replace").strip()
    if not line.startswith("LISTENING "):
        raise RunnerError(f"auth proxy failed to start (stdout: {line!r})")
    return int(line.split()[1])


def server_command(template: str | None, port: int, store: str) -> list[str]:
    """Builds the server command line, without its auth flags."""
    if template is None:
        threadline = Path(sys.executable).parent / "threadline"
        if not threadline.exists():
            raise RunnerError(f"{threadline} not found: run scripts/install")
        return [
            str(threadline),
            "serve",
            "--store",
            store,
            "--host",
            HOST,
            "--port",
            str(port),
            "--long-poll-timeout",
            "1s",
        ]
    fields = {"host": HOST, "port": str(port), "store": store}
    return [arg.format(**fields) for arg in shlex.split(template)]


def run_vitest(
    name: str, base_url: str, pattern: str | None, timeout: float
) -> tuple[int | None, list[str]]:
    """Runs the suite against ``base_url``, echoing its output as it comes.

    Returns:
        vitest's exit status (None if it was killed at ``timeout`` seconds)
        and its summary lines.
    """
    cmd = [str(VITEST), "run", *(["-t", pattern] if pattern else [])]
    env = {**os.environ, "CONFORMANCE_TEST_URL": base_url}
    if sys.stdout.isatty():
        env.setdefault("FORCE_COLOR", "1")
    log(name, f"$ CONFORMANCE_TEST_URL={base_url} {shlex.join(cmd)}")
    proc = subprocess.Popen(
        cmd,
        cwd=SUITE_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        text=True,
        errors="replace",
    )
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        kill_group(proc)

    timer = threading.Timer(timeout, expire)
    timer.start()
    summary: list[str] = []
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            if match := SUMMARY.match(ANSI.sub("", line)):
                summary.append(f"{match[1]}  {match[2]}")
        code = proc.wait()
    finally:
        timer.cancel()
        kill_group(proc)  # vitest workers, if vitest itself was interrupted
        proc.stdout.close()
    return (None if expired.is_set() else code), summary


def judge(summary: list[str], code: int | None, pattern: str | None) -> str:
    """Returns why a run failed, or "" if it passed."""
    if code is None:
        return "vitest timed out (--timeout)"
    tests = next((s for s in summary if s.startswith("Tests ")), None)
    if tests is None:
        return f"vitest exited {code} without a summary"
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed)", tests)}
    passed, failed = counts.get("passed", 0), counts.get("failed", 0)
    if failed or code != 0:
        return f"{failed} failed (vitest exit status {code})"
    if pattern is None and passed != EXPECTED_PASSED:
        return f"{passed} passed, expected exactly {EXPECTED_PASSED}"
    if passed == 0:
        return "no test matched"
    return ""


def run_once(name: str, args: argparse.Namespace, tmp: Path) -> RunResult:
    """Starts a server (and for auth-on the proxy), runs the suite, stops them."""
    result = RunResult(name)
    started = time.monotonic()
    run_dir = tmp / name
    run_dir.mkdir()
    server_log = run_dir / "server.log"
    secret = secrets.token_urlsafe(32)
    try:
        port = free_port()
        direct_url = f"http://{HOST}:{port}"
        store = f"sqlite:///{run_dir / 'conf.db'}"
        cmd = server_command(args.server_cmd, port, store)
        cmd += ["--no-auth"] if name == "auth-off" else [f"--secret={secret}"]
        with contextlib.ExitStack() as stack:
            log(name, "$ " + shlex.join(cmd).replace(secret, "***"))
            server = stack.enter_context(process_group(cmd, log_path=server_log))
            wait_healthy(direct_url, server, "server")
            url = direct_url
            if name == "auth-on":
                url = start_proxy(stack, direct_url, make_token(secret), args, run_dir)
            code, result.summary = run_vitest(name, url, args.pattern, args.timeout)
            result.reason = judge(result.summary, code, args.pattern)
    except RunnerError as exc:
        result.reason = str(exc)
    result.ok = not result.reason
    result.seconds = time.monotonic() - started
    if not result.ok:
        show_log_tail(name, server_log)
    return result


def start_proxy(
    stack: contextlib.ExitStack,
    target: str,
    token: str,
    args: argparse.Namespace,
    run_dir: Path,
) -> str:
    """Starts the auth proxy in front of ``target`` and returns its URL.

    Before any test runs, it checks that the token gets through (a stream that
    does not exist is 404, not 401/403) and that the server without the proxy
    refuses a request that has no token. The latter is only a warning with
    ``--server-cmd``, whose server may not implement auth.
    """
    env = {**os.environ, "TARGET_URL": target, "TOKEN": token}
    env.pop("PORT", None)
    proxy = stack.enter_context(
        process_group(
            ["node", str(PROXY)],
            log_path=run_dir / "proxy.log",
            env=env,
            pipe_stdout=True,
        )
    )
    url = f"http://{HOST}:{read_proxy_port(proxy)}"
    wait_healthy(url, proxy, "auth proxy")
    probe = "/v1/stream/__conformance-auth-probe"
    if (status := http_status(url + probe, method="HEAD")) in (401, 403):
        raise RunnerError(f"server refused the conformance token ({status})")
    if (status := http_status(target + probe, method="HEAD")) not in (401, 403):
        message = f"server answered {status} to a request without a token"
        if args.server_cmd is None:
            raise RunnerError(message + ": auth is not on")
        log("auth-on", f"warning: {message}; auth is not on")
    return url


def show_log_tail(name: str, path: Path, lines: int = 40) -> None:
    """Prints the end of a server log, which the temp dir takes with it."""
    with contextlib.suppress(OSError):
        tail = path.read_text(errors="replace").splitlines()[-lines:]
        if tail:
            log(name, f"last {len(tail)} lines of the server log:")
            print("\n".join(tail), flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parses the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=RUNS, help="do just one of the two runs")
    parser.add_argument(
        "-t", dest="pattern", metavar="PATTERN", help="vitest -t: test name regexp"
    )
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="do the auth-on run even if auth-off failed",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="wall-clock limit for each vitest run (default: %(default)s)",
    )
    parser.add_argument(
        "--server-cmd",
        metavar="CMD",
        help="development: server command instead of `threadline serve`; "
        "{host} {port} {store} are substituted and --no-auth or "
        "--secret S appended",
    )
    return parser.parse_args(argv)


def raise_on_sigterm(signum: int, frame: object) -> NoReturn:
    """Turns SIGTERM into SystemExit so that cleanup runs."""
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the selected runs; returns the process exit status."""
    args = parse_args(argv)
    if not VITEST.exists():
        print(f"{VITEST} not found: run scripts/install --node", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, raise_on_sigterm)
    results: list[RunResult] = []
    tmp = Path(tempfile.mkdtemp(prefix="threadline-conformance-"))
    try:
        for name in [args.only] if args.only else RUNS:
            results.append(result := run_once(name, args, tmp))
            if not result.ok and not args.keep_going:
                break
    except KeyboardInterrupt:
        print("conformance: interrupted", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(results)
    wanted = 1 if args.only else len(RUNS)
    return 0 if len(results) == wanted and all(r.ok for r in results) else 1


def report(results: list[RunResult]) -> None:
    """Prints each run's summary lines and verdict."""
    print()
    for r in results:
        for line in r.summary:
            log(r.name, line)
        verdict = "PASS" if r.ok else f"FAIL: {r.reason}"
        log(r.name, f"{verdict} ({r.seconds:.1f} s)")


if __name__ == "__main__":
    sys.exit(main())

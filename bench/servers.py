"""Starting and stopping the servers under test, pinned to core 0.

Each server is started from a command template (placeholders ``{port}``,
``{tmpdir}``, ``{python}``, ``{root}``, ``{bench}``) on a free loopback port,
in its own session so that its whole process group can be ended, with its
output in a log file inside its private temporary directory. Readiness is an
HTTP answer of any status on ``/v1/stream/…``.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from common import Target

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
HOST = "127.0.0.1"
SERVER_CPU = "0"

OURS_CMD = (
    "{root}/.venv/bin/threadline serve --store sqlite:///{tmpdir}/bench.db"
    " --no-auth --host 127.0.0.1 --port {port}"
)
REFERENCE_CMD = (
    "node {bench}/node/reference-server.mjs --port {port} --long-poll-ms 30000"
)
OURS_MEMORY_CMD = (
    "{root}/.venv/bin/threadline serve --store memory://"
    " --no-auth --host 127.0.0.1 --port {port}"
)
"""Ours with the memory store: what durability costs, by difference."""
RAW_NOOP_CMD = "{python} {bench}/raw_noop_app.py --host 127.0.0.1 --port {port}"
NOOP_CMD = (
    "{python} -m uvicorn noop_app:app --app-dir {bench} --loop uvloop"
    " --http httptools --lifespan off --no-access-log --log-level warning"
    " --host 127.0.0.1 --port {port}"
)


# Servers currently running, so that a signal handler can end them at once.
_LIVE: dict[int, subprocess.Popen[bytes]] = {}


class ServerError(RuntimeError):
    """A server failed to start or died."""


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """How to start one kind of server (or where an external one listens)."""

    name: str
    command: str = ""
    url: str = ""  # an already running server: nothing is started

    def describe(self) -> str:
        """The command (or URL) as it will be shown in the report."""
        if self.url:
            return f"already running at {self.url} (not started, not pinned)"
        return "taskset -c {} {}".format(
            SERVER_CPU,
            self.command.format(
                port="{port}",
                tmpdir="{tmpdir}",
                python=_rel(Path(sys.executable)),
                root=".",
                bench="bench",
            ),
        )


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def free_port() -> int:
    """A currently free loopback TCP port."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _argv(spec: ServerSpec, port: int, tmpdir: Path) -> list[str]:
    text = spec.command.format(
        port=port, tmpdir=tmpdir, python=sys.executable, root=ROOT, bench=BENCH
    )
    return ["taskset", "-c", SERVER_CPU, *shlex.split(text)]


def _probe(port: int) -> bool:
    """True once something answers HTTP on ``port``."""
    try:
        with socket.create_connection((HOST, port), timeout=1) as sock:
            sock.sendall(
                b"GET /v1/stream/bench-ready-probe HTTP/1.1\r\nHost: x\r\n"
                b"Connection: close\r\n\r\n"
            )
            return sock.recv(16).startswith(b"HTTP/1.")
    except OSError:
        return False


def _pinned_ok(pid: int) -> list[str]:
    """Threads of ``pid`` not pinned to the server core (should be none)."""
    bad = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            allowed = os.sched_getaffinity(int(tid))
        except OSError:
            continue
        if allowed != {int(SERVER_CPU)}:
            bad.append(f"{tid}:{sorted(allowed)}")
    return bad


@contextlib.contextmanager
def running(spec: ServerSpec, workdir: Path, timeout: float = 30.0) -> Iterator[Target]:
    """Start ``spec`` (unless it is an external URL) and stop it afterwards."""
    if spec.url:
        authority = spec.url.split("://", 1)[-1].split("/", 1)[0]
        host, _, port_text = authority.rpartition(":")
        yield Target(spec.name, host or HOST, int(port_text or 80))
        return
    tmpdir = Path(tempfile.mkdtemp(prefix=f"{spec.name}-", dir=workdir))
    port = free_port()
    argv = _argv(spec, port, tmpdir)
    log_path = tmpdir / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmpdir,
            start_new_session=True,
        )
    _LIVE[proc.pid] = proc
    try:
        deadline = time.monotonic() + timeout
        while not _probe(port):
            if proc.poll() is not None:
                raise ServerError(
                    f"{spec.name} exited with {proc.returncode}: {_tail(log_path)}"
                )
            if time.monotonic() > deadline:
                raise ServerError(f"{spec.name} not ready in {timeout}s")
            time.sleep(0.05)
        bad = _pinned_ok(proc.pid)
        if bad:
            raise ServerError(f"{spec.name} threads not pinned to core 0: {bad}")
        yield Target(spec.name, HOST, port, proc.pid, str(log_path))
    finally:
        _stop(proc)
        _LIVE.pop(proc.pid, None)
        shutil.rmtree(tmpdir, ignore_errors=True)


def dead(target: Target) -> str | None:
    """Why the server behind ``target`` is no longer running, or None."""
    if target.pid is None:
        return None
    try:
        with open(f"/proc/{target.pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        state = b"X"
    if state not in (b"Z", b"X"):
        return None
    return f"{target.name} died: {_tail(Path(target.log))}" if target.log else "died"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, SIGKILL it if it lingers."""
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    # Children that outlived the leader are still in its group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def kill_all() -> None:
    """SIGKILL every server still running (for signal handlers)."""
    for proc in list(_LIVE.values()):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
    _LIVE.clear()


def _tail(path: Path, lines: int = 3) -> str:
    """The last few non-empty lines of a server log, on one line."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    last = [ln.strip() for ln in text.splitlines() if ln.strip()][-lines:]
    return " | ".join(last) or "(empty log)"


def ours_available(command: str) -> str | None:
    """Why ``command`` cannot be run, or None if its executable exists."""
    exe = shlex.split(
        command.format(
            port=0, tmpdir="x", python=sys.executable, root=ROOT, bench=BENCH
        )
    )[0]
    if shutil.which(exe) is None and not os.access(exe, os.X_OK):
        return f"{exe} not found"
    return None


def reference_available() -> str | None:
    """Why the Node reference server cannot be run, or None."""
    if shutil.which("node") is None:
        return "node not found"
    if not (BENCH / "node/node_modules/@durable-streams/server").is_dir():
        return "bench/node/node_modules missing: run `scripts/install --node`"
    return None

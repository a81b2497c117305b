"""``threadline backup`` against a real server."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx

from tests.server.harness import serve_args, server_process, sqlite_url

TEXT = {"content-type": "text/plain"}


def threadline(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``threadline`` command line in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "threadline", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_backup_while_serving_holds_what_was_acknowledged(
    tmp_path: Path,
) -> None:
    """A backup taken while the server runs holds what was acknowledged before
    it and not what came after, with the audit key (mode 0600); a server
    started on the copy serves it; a second backup to the same file fails."""
    db, copy = tmp_path / "t.db", tmp_path / "backup.db"
    store = sqlite_url(db)
    async with server_process(serve_args(store, "--no-auth")) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.put("/v1/stream/x", headers=TEXT)).status_code == 201
            for text in ("a", "b"):
                answer = await client.post("/v1/stream/x", content=text, headers=TEXT)
                assert answer.status_code == 204
            kept = answer.headers["stream-next-offset"]
            made = await asyncio.to_thread(
                threadline, "backup", str(copy), "--store", store
            )
            assert made.returncode == 0, made.stderr
            assert "backed up" in made.stdout and "1 logs, 2 records" in made.stdout
            later = await client.post("/v1/stream/x", content="c", headers=TEXT)
            assert later.status_code == 204
    key = Path(str(copy) + "-audit-key.pem")
    assert key.read_bytes() == Path(str(db) + "-audit-key.pem").read_bytes()
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    again = await asyncio.to_thread(threadline, "backup", str(copy), "--store", store)
    assert again.returncode == 1 and "exists" in again.stderr
    async with server_process(serve_args(sqlite_url(copy), "--no-auth")) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            whole = await client.get("/v1/stream/x", params={"offset": "-1"})
            assert whole.text == "ab"
            assert whole.headers["stream-next-offset"] == kept


def test_backup_of_a_memory_store_is_refused(tmp_path: Path) -> None:
    """Only a SQLite store has a file to copy: other URLs exit 1 with a reason."""
    result = threadline("backup", str(tmp_path / "b.db"), "--store", "memory://")
    assert result.returncode == 1
    assert "sqlite" in result.stderr.lower()

"""``threadline backup`` and ``threadline restore`` against a real server."""

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


async def test_backup_while_serving_then_restore_loses_only_later_writes(
    tmp_path: Path,
) -> None:
    """A backup taken while the server runs holds what was acknowledged
    before it, with the audit key; restore refuses a running server, then
    puts the backup back: old offsets read the same, the lost write's offset
    answers 410 with the new bounds, and appends go on after the backup."""
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
            assert "backed up" in made.stdout
            lost = await client.post("/v1/stream/x", content="c", headers=TEXT)
            lost_offset = lost.headers["stream-next-offset"]
            refused = await asyncio.to_thread(
                threadline, "restore", str(copy), "--store", store, "--replace"
            )
            assert refused.returncode == 1
            assert "lock" in refused.stderr.lower()
    key = Path(str(copy) + "-audit-key.pem")
    assert key.is_file()
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    again = await asyncio.to_thread(threadline, "backup", str(copy), "--store", store)
    assert again.returncode == 1 and "exists" in again.stderr
    done = await asyncio.to_thread(
        threadline, "restore", str(copy), "--store", store, "--replace"
    )
    assert done.returncode == 0, done.stderr
    assert "restored" in done.stdout
    async with server_process(serve_args(store, "--no-auth")) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            whole = await client.get("/v1/stream/x", params={"offset": "-1"})
            assert whole.text == "ab"
            assert whole.headers["stream-next-offset"] == kept
            gone = await client.get("/v1/stream/x", params={"offset": lost_offset})
            assert gone.status_code == 410
            assert gone.json()["error"]["code"] == "offset_gone"
            assert gone.headers["stream-next-offset"] == kept
            after = await client.post("/v1/stream/x", content="n", headers=TEXT)
            new_offset = after.headers["stream-next-offset"]
            assert new_offset > lost_offset > kept
            tail = await client.get("/v1/stream/x", params={"offset": kept})
            assert tail.text == "n"


def test_backup_of_a_memory_store_is_refused(tmp_path: Path) -> None:
    """Only a SQLite store has a file to copy: other URLs exit 1 with a reason."""
    result = threadline("backup", str(tmp_path / "b.db"), "--store", "memory://")
    assert result.returncode == 1
    assert "sqlite" in result.stderr.lower()

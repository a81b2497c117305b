"""The examples in examples/ run against a real server (STYLE X9)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.client.conftest import SECRET, token
from tests.server.harness import serve_in_thread

EXAMPLES = Path(__file__).parent.parent / "examples"


def run(script: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}
    env["THREADLINE_TOKEN"] = token()
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), url],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_quickstart_streams_an_answer_and_reads_it_back():
    """The quickstart prints the question, each delta, and a complete answer."""
    with serve_in_thread(auth=True, secret=SECRET) as (server, _):
        result = run("quickstart.py", server.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "user: Where is my order?",
        "  … 'Your '",
        "  … 'order '",
        "  … 'ships '",
        "  … 'today.'",
        "  (answer complete)",
    ]

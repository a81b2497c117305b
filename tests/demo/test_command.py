"""``threadline demo`` on the command line."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import types

import httpx
import pytest

from tests.utils import MS
from threadline.cli import main
from threadline.demo.command import _banner, _url_host
from threadline.demo.llm import LLMAgent


def test_demo_help_lists_its_options(capsys):
    """The subcommand exists with its documented options."""
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ["--port", "--host", "--store", "--ai-pace", "--no-ai"]:
        assert option in out
    assert "THREADLINE_LLM_BASE_URL" in out


def test_demo_refuses_a_partial_llm_configuration(capsys, monkeypatch):
    """Only some THREADLINE_LLM_* set: exit 2 with what is missing."""
    monkeypatch.setenv("THREADLINE_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.delenv("THREADLINE_LLM_API_KEY", raising=False)
    monkeypatch.delenv("THREADLINE_LLM_MODEL", raising=False)
    assert main(["demo", "--port", "0", "--store", "memory://"]) == 2
    assert "THREADLINE_LLM_API_KEY" in capsys.readouterr().err


def test_demo_refuses_a_negative_pace(capsys):
    assert main(["demo", "--port", "0", "--ai-pace", "-1"]) == 2
    assert "--ai-pace" in capsys.readouterr().err


def test_demo_starts_prints_its_urls_and_stops_on_sigterm():
    """It listens on 127.0.0.1, prints the three pages' URLs and the banner,
    serves them with the sign-in, and exits 0 on SIGTERM."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_LLM")}
    env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "threadline",
            "demo",
            "--port",
            "0",
            "--store",
            "memory://",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "supervisor view" in line:
                ready.set()
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(15_000 * MS), "".join(lines)
        output = "".join(lines)
        base = re.search(r"listening on (http://127\.0\.0\.1:\d+)", output)
        assert base, output
        url = base[1]
        assert "DEMO ONLY" in output
        for page in ["/demo", "/demo/agent", "/demo/supervisor"]:
            assert f"{url}{page}\n" in output
            assert 'data-testid="demo-banner"' in httpx.get(url + page).text
        signed = httpx.post(
            f"{url}/demo/api/sign-in", json={"role": "customer", "name": "Dana"}
        )
        assert signed.json()["sub"] == "cust-dana"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        reader.join(10)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.parametrize(
    ("host", "shown"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("0.0.0.0", "127.0.0.1"),
        ("::", "[::1]"),
        ("::1", "[::1]"),
        ("localhost", "localhost"),
    ],
)
def test_demo_url_host(host, shown):
    """The printed URLs name a host a browser can open."""
    assert _url_host(host) == shown


def test_demo_banner_warns_off_loopback():
    """Bound to another interface, the banner warns that the sign-in is open."""
    app = types.SimpleNamespace(ai=None)
    args = argparse.Namespace(host="0.0.0.0", store="memory://", ai_pace=0.03)
    banner = _banner(app, "http://127.0.0.1:4437", args)
    assert "WARNING" in banner and "reachable from the network" in banner
    assert "none (--no-ai)" in banner
    args.host = "127.0.0.1"
    assert "WARNING" not in _banner(app, "http://127.0.0.1:4437", args)


def test_demo_banner_names_the_model():
    """With THREADLINE_LLM_*, the banner says which model answers."""
    agent = LLMAgent(object(), "tiny-model")
    app = types.SimpleNamespace(ai=types.SimpleNamespace(respond=agent))
    args = argparse.Namespace(host="127.0.0.1", store="memory://", ai_pace=0.03)
    assert "model tiny-model" in _banner(app, "http://127.0.0.1:4437", args)

"""``tropegraph mcp`` start-up (``interfaces.mcp_start``): the handshake answered from the recording
while the SDK loads, then the SDK serving everything — checked over real pipes, byte for byte.

The client-driven tests in test_mcp.py go through this path too (their client opens with
``initialize``); these check what they cannot see: that the recording is the SDK's own answer,
and that a client sending everything at once gets exactly one answer per request.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from test_mcp import TOOLS  # the one list of the server's tools

from interfaces.mcp_start import load_handshake, record_handshake

pytestmark = pytest.mark.slow


def start(tmp_path: Path) -> subprocess.Popen[bytes]:
    """The server as a client starts it, on an index folder with no index (nothing is opened
    before a tool call, and a tool call then answers with a tool error)."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR")}
    env["HOME"] = str(tmp_path)
    return subprocess.Popen([sys.executable, "-m", "interfaces", "mcp", "--index-dir", str(tmp_path / "index")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=tmp_path, env=env)


def exchange(proc: subprocess.Popen[bytes], messages: list[dict[str, Any]], ids: set[Any]) -> tuple[
        dict[Any, dict[str, Any]], list[dict[str, Any]], str]:
    """Send every message at once, read until each id in ``ids`` is answered, close stdin; return
    the answers by id, everything the server wrote after them, and its stderr."""
    proc.stdin.write(b"".join(json.dumps(m, ensure_ascii=False).encode() + b"\n" for m in messages))
    proc.stdin.flush()
    answers: dict[Any, dict[str, Any]] = {}
    while set(answers) != ids:
        line = proc.stdout.readline()
        if not line:
            _, err = proc.communicate(timeout=60)
            raise AssertionError(f"the server stopped (exit {proc.returncode}): {err.decode()[-3000:]}")
        msg = json.loads(line)
        assert msg.get("id") not in answers, f"answered twice: {msg}"
        answers[msg.get("id")] = msg
    out, err = proc.communicate(timeout=60)  # closes stdin: the server stops
    assert proc.returncode == 0, err.decode()[-3000:]
    return answers, [json.loads(line) for line in out.splitlines()], err.decode()


def initialize(rid: Any, version: str, **params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": "initialize",
            "params": {"protocolVersion": version, "capabilities": {"roots": {"listChanged": True}},
                       "clientInfo": {"name": "test", "version": "1"}, **params}}


def test_the_recorded_handshake_is_what_the_sdk_answers() -> None:
    recorded = load_handshake()
    assert recorded is not None
    assert record_handshake() == recorded, (
        "interfaces/mcp_handshake.json is not what the SDK answers now (a tool, its schema or the "
        "instructions changed?): re-record it with `python -m interfaces.mcp_start --record`")


@pytest.mark.parametrize("asked", ["2025-06-18", "1999-01-01"])
def test_a_client_sending_everything_at_once_gets_one_answer_per_request(asked: str, tmp_path: Path) -> None:
    recorded = load_handshake()
    version = asked if asked in recorded["versions"] else recorded["latest"]
    messages = [
        initialize(1, asked),
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": "list", "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "status", "arguments": {}}},
        {"jsonrpc": "2.0", "id": 4, "method": "ping"},
        {"jsonrpc": "2.0", "id": 5, "method": "resources/templates/list"},
        {"jsonrpc": "2.0", "id": 6, "method": "tools/list", "params": {"_meta": {"progressToken": 7}}},
    ]
    answers, rest, stderr = exchange(start(tmp_path), messages, {1, "list", 3, 4, 5, 6})
    assert rest == []  # nothing more: not the SDK's own answer to the replayed initialize, not the check
    assert answers[1]["result"] == recorded["versions"][version]["initialize"]
    assert answers[1]["result"]["protocolVersion"] == version
    assert answers["list"]["result"] == answers[6]["result"] == recorded["versions"][version]["tools/list"]
    assert {t["name"] for t in answers["list"]["result"]["tools"]} == TOOLS
    # the SDK serves the rest, in a session initialized by the replayed initialize
    status = answers[3]["result"]
    assert status["isError"] is True and "tropegraph index" in status["content"][0]["text"]
    assert answers[4]["result"] == {}
    assert {t["uriTemplate"] for t in answers[5]["result"]["resourceTemplates"]} == {
        "tropegraph://metaphor/{id}", "tropegraph://note/{+path}"}
    assert "differs from the recorded" not in stderr  # the SDK's own answers matched what was sent


def test_what_the_recording_cannot_answer_is_left_to_the_sdk(tmp_path: Path) -> None:
    """A malformed initialize is the SDK's to refuse; a request before initialize too."""
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}},
        initialize(2, "2025-06-18"),
        {"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"cursor": "x"}},
    ]
    answers, rest, _ = exchange(start(tmp_path), messages, {1, 2, 3})
    assert rest == []
    assert "error" in answers[1] and answers[1]["error"]["code"] == -32602  # invalid params, from the SDK
    assert answers[2]["result"]["serverInfo"]["name"] == "tropegraph"
    assert "result" in answers[3] or "error" in answers[3]  # the SDK's answer to a cursor, whatever it is

    before_init = [{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, initialize(2, "2025-06-18")]
    answers, rest, _ = exchange(start(tmp_path), before_init, {1, 2})
    assert rest == []
    assert answers[2]["result"]["protocolVersion"] == "2025-06-18"


def test_a_client_opening_with_discover_is_served_by_the_sdk(tmp_path: Path) -> None:
    """The SDK client's default mode probes the 2026 protocol first: nothing is answered early."""
    from mcp import Client, StdioServerParameters

    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR")}
    env["HOME"] = str(tmp_path)
    params = StdioServerParameters(command=sys.executable, args=["-m", "interfaces", "mcp", "--index-dir",
                                                                 str(tmp_path / "index")], env=env, cwd=str(tmp_path))
    recorded = load_handshake()["versions"][load_handshake()["latest"]]["tools/list"]

    async def main() -> None:
        with anyio.fail_after(120):
            async with Client(params) as client:
                tools = (await client.list_tools()).tools
                assert {t.name for t in tools} == TOOLS
                search = next(t for t in tools if t.name == "search")
                assert search.input_schema == next(t for t in recorded["tools"] if t["name"] == "search")["inputSchema"]
                r = await client.call_tool("status", {})
                assert r.is_error and "tropegraph index" in r.content[0].text

    anyio.run(main)

"""``tropegraph mcp`` start-up: answer the MCP handshake at once while the SDK loads.

Importing the MCP SDK takes ~0.6 s of CPU (its pydantic protocol models, and the HTTP stack its
server module imports even for stdio), and an MCP client waits for ``initialize`` and
``tools/list`` before it offers our tools. So the process answers those two from
``mcp_handshake.json`` — the SDK's own answers for each protocol version, recorded by
``python -m interfaces.mcp_start --record`` and compared with the live SDK by tests/test_mcp.py —
while the main thread imports the SDK and builds the server. Then the SDK serves everything:
the client's ``initialize`` is replayed to it (its answer is dropped, after a check that it is the
one the client got), so its session is the one the client believes in.

Only what is certain is answered here, and only until the SDK is ready: the first request if it is
an ``initialize`` with well-formed params, and a plain ``tools/list`` after it. Anything else
(another era's first request, a cursor, a tool call) waits for the SDK, in order.

Plumbing: the client's stdin and stdout are kept on private descriptors; fd 0 and fd 1 become
pipes, so the SDK's own stdio transport runs unchanged. A reader thread passes client lines to the
SDK; a pump thread passes the SDK's lines to the client (and sends stray non-JSON output to stderr).

Imports only the standard library: this module runs before the SDK is imported.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any, BinaryIO

HANDSHAKE = Path(__file__).with_name("mcp_handshake.json")
#: What the pump reads on the SDK's output pipe when the SDK has stopped (never valid JSON-RPC).
_END = b"\x00tropegraph: end of server output\n"
#: The id under which a client's front-answered tools/list is still asked of the SDK, to check it.
_CHECK_ID = "tropegraph:recorded-tools-list-check"
_RECORD_HINT = "re-record it with `python -m interfaces.mcp_start --record`"


def _warn(msg: str) -> None:
    sys.stderr.write(f"tropegraph mcp: {msg}\n")
    sys.stderr.flush()


def load_handshake(path: Path = HANDSHAKE) -> dict[str, Any] | None:
    """The recorded answers, or None (then the SDK answers the handshake itself, only later)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data.get("versions"), dict) and data.get("latest") in data["versions"]:
            return data
    except (OSError, ValueError, AttributeError):
        pass
    return None


def _valid_id(value: Any) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _initialize_params_ok(params: Any) -> bool:
    """What the SDK's ``InitializeRequestParams`` requires, checked without it (stricter is fine)."""
    if not isinstance(params, dict) or not isinstance(params.get("protocolVersion"), str):
        return False
    caps, info = params.get("capabilities"), params.get("clientInfo")
    return (isinstance(caps, dict) and all(v is None or isinstance(v, dict) for v in caps.values())
            and isinstance(info, dict) and isinstance(info.get("name"), str)
            and isinstance(info.get("version"), str))


def _plain_list_params(params: Any) -> bool:
    """No cursor and no 2026 envelope: the first page a handshake-era client asks for."""
    if params is None or params == {}:
        return True
    return (isinstance(params, dict) and set(params) == {"_meta"} and isinstance(params["_meta"], dict)
            and set(params["_meta"]) <= {"progressToken"})


class Front:
    """Owns the client's stdin/stdout; answers the handshake until :meth:`sdk_ready`."""

    def __init__(self, handshake: dict[str, Any]) -> None:
        self._handshake = handshake
        self._ready = threading.Event()
        self._needed = threading.Event()  # something only the SDK can answer has come (or input ended)
        self._active = True  # still allowed to answer (until the first request proves otherwise)
        self._version: str | None = None  # the protocol version our initialize answer gave
        self._out_lock = threading.Lock()
        #: SDK answers to drop (id -> what the client was given): the replayed initialize, the check
        self._swallow: dict[Any, Any] = {}
        self._swallow_lock = threading.Lock()
        self._checked_tools = False

    # -- set-up and tear-down -------------------------------------------------------------------
    def start(self) -> None:
        """Move the client's pipes to private descriptors, put our pipes on fd 0/1, start threads."""
        self._client_in: BinaryIO = os.fdopen(os.dup(0), "rb")
        self._client_out = os.dup(1)
        to_sdk_r, to_sdk_w = os.pipe()
        from_sdk_r, from_sdk_w = os.pipe()
        os.dup2(to_sdk_r, 0)
        os.dup2(from_sdk_w, 1)
        os.close(to_sdk_r)
        self._to_sdk = to_sdk_w
        self._from_sdk: BinaryIO = os.fdopen(from_sdk_r, "rb")
        self._end_w = from_sdk_w  # kept: the SDK never closes its copy of fd 1, so we write _END
        self._reader = threading.Thread(target=self._read_client, name="mcp-front-reader", daemon=True)
        self._pump = threading.Thread(target=self._pump_sdk, name="mcp-front-pump", daemon=True)
        self._reader.start()
        self._pump.start()

    def wait_until_needed(self, timeout: float) -> None:
        """Block until the SDK is needed: the handshake is answered, a request only the SDK can
        answer arrived, or input ended (at most ``timeout`` s). Loading it earlier would compete
        for the CPU and the GIL with the answers the client is waiting for."""
        self._needed.wait(timeout)

    def sdk_ready(self) -> None:
        """From now on every message goes to the SDK (called just before it starts serving)."""
        self._ready.set()

    def finish(self) -> None:
        """The SDK has stopped: let the pump pass on what it wrote, then stop it."""
        self._ready.set()
        try:
            os.write(self._end_w, _END)
        except OSError:
            return
        self._pump.join(timeout=10)

    # -- client -> SDK ----------------------------------------------------------------------------
    def _read_client(self) -> None:
        try:
            for line in self._client_in:
                if self._ready.is_set() or not self._active or not self._answer(line):
                    if not self._needed.is_set() and b'"id"' in line:  # a request (or a reply) for the SDK
                        self._needed.set()
                    self._forward(line)
        except (OSError, ValueError) as exc:
            _warn(f"reading the client's messages failed ({exc})")
        finally:
            self._needed.set()
            with contextlib.suppress(OSError):
                os.close(self._to_sdk)  # the SDK reads end of input and stops

    def _forward(self, line: bytes) -> None:
        view = memoryview(line if line.endswith(b"\n") else line + b"\n")
        while view:
            view = view[os.write(self._to_sdk, view):]

    def _answer(self, line: bytes) -> bool:
        """Answer ``line`` from the recording if it is certain to be the SDK's answer (True);
        otherwise leave it to the SDK (False). A line that is answered is not forwarded,
        except ``initialize``, which the SDK must see too."""
        try:
            msg = json.loads(line)
        except ValueError:
            return False
        if not isinstance(msg, dict) or "method" not in msg or "id" not in msg:
            return False  # notifications and anything malformed: the SDK's
        method, params, rid = msg.get("method"), msg.get("params"), msg["id"]
        if self._version is None:  # the first request decides
            self._active = False
            if method != "initialize" or msg.get("jsonrpc") != "2.0" or not _valid_id(rid):
                return False
            if not _initialize_params_ok(params):
                return False
            versions = self._handshake["versions"]
            requested = params["protocolVersion"]
            version = requested if requested in versions else self._handshake["latest"]
            result = versions[version]["initialize"]
            with self._swallow_lock:
                self._swallow[rid] = result
            self._version = version
            self._active = True
            self._send({"jsonrpc": "2.0", "id": rid, "result": result})
            self._forward(line)  # replayed: the SDK's session must be initialized as the client thinks
            return True
        if (method == "tools/list" and msg.get("jsonrpc") == "2.0" and _valid_id(rid)
                and _plain_list_params(params)):
            result = self._handshake["versions"][self._version]["tools/list"]
            self._send({"jsonrpc": "2.0", "id": rid, "result": result})
            self._needed.set()  # the handshake is done: load the SDK now, before the first tool call
            if not self._checked_tools:  # ask the SDK too, under our own id, to check the recording
                self._checked_tools = True
                with self._swallow_lock:
                    self._swallow[_CHECK_ID] = result
                self._forward(json.dumps({**msg, "id": _CHECK_ID}).encode())
            return True
        return False

    # -- SDK -> client ----------------------------------------------------------------------------
    def _send(self, msg: dict[str, Any]) -> None:
        self._write(json.dumps(msg, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        with self._out_lock:
            while view:
                view = view[os.write(self._client_out, view):]

    def _pump_sdk(self) -> None:
        try:
            for line in self._from_sdk:
                if line == _END:
                    return
                if not line.startswith(b"{"):  # a stray print must not corrupt the protocol stream
                    sys.stderr.buffer.write(line)
                    sys.stderr.flush()
                    continue
                if self._swallow and self._swallowed(line):
                    continue
                self._write(line)
        except OSError as exc:  # the client went away
            _warn(f"writing to the client failed ({exc})")

    def _swallowed(self, line: bytes) -> bool:
        """Drop the SDK's answer to a request the client already had answered (checking it)."""
        try:
            msg = json.loads(line)
        except ValueError:
            return False
        if not isinstance(msg, dict) or "method" in msg:
            return False
        rid = msg.get("id")
        with self._swallow_lock:
            if not _valid_id(rid) or rid not in self._swallow:
                return False
            given = self._swallow.pop(rid)
        if msg.get("result") != given:
            what = "tools/list" if rid == _CHECK_ID else "initialize"
            _warn(f"the SDK's {what} answer differs from the recorded one in {HANDSHAKE.name} (installed "
                  f"SDK or pydantic versions differ from the recording's?); {_RECORD_HINT}")
        return True


def serve(vault: str | None, index_dir: str | None, *, fast: bool = True) -> None:
    """Run the MCP server on stdin/stdout; with ``fast``, answer the handshake while the SDK loads."""
    handshake = load_handshake() if fast else None
    front = Front(handshake) if handshake else None
    if front is not None:
        front.start()
        front.wait_until_needed(timeout=1.0)
    try:
        from interfaces.mcp_server import run_stdio

        run_stdio(vault, index_dir, on_ready=front.sdk_ready if front else None)
    finally:
        if front is not None:
            front.finish()


# ------------------------------------------------------------------------------------ recording


def record_handshake() -> dict[str, Any]:
    """The SDK's own answers to ``initialize`` and ``tools/list`` for every handshake-era protocol
    version, from servers started without the fast path (one process per version, in parallel)."""
    import subprocess

    from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION

    code = "from interfaces.mcp_start import serve; serve(None, None, fast=False)"
    procs = {}
    for version in HANDSHAKE_PROTOCOL_VERSIONS:
        lines = [
            {"jsonrpc": "2.0", "id": 1, "method": "initialize",
             "params": {"protocolVersion": version, "capabilities": {},
                        "clientInfo": {"name": "tropegraph-record", "version": "0"}}},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        ]
        proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        proc.stdin.write("".join(json.dumps(m) + "\n" for m in lines).encode())
        proc.stdin.flush()
        procs[version] = proc
    versions: dict[str, Any] = {}
    for version, proc in procs.items():
        answers: dict[Any, Any] = {}
        while set(answers) != {1, 2}:  # both answered before stdin closes (end of input stops the server)
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"protocol {version}: the server stopped (exit {proc.wait()}) after {answers!r}")
            msg = json.loads(line)
            if msg.get("id") in (1, 2):
                if "result" not in msg:
                    raise RuntimeError(f"protocol {version}: {msg!r}")
                answers[msg["id"]] = msg["result"]
        proc.communicate(timeout=30)  # closes stdin: the server stops
        versions[version] = {"initialize": answers[1], "tools/list": answers[2]}
    return {"latest": LATEST_HANDSHAKE_VERSION, "versions": versions}


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Record the SDK's handshake answers into " + HANDSHAKE.name)
    ap.add_argument("--record", action="store_true", help=f"write {HANDSHAKE}")
    args = ap.parse_args()
    if not args.record:
        ap.error("nothing to do: pass --record")
    HANDSHAKE.write_text(json.dumps(record_handshake(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {HANDSHAKE}")


if __name__ == "__main__":
    main()

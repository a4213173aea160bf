"""The explorer's web application: Starlette routes over the read side, served by uvicorn.

Why Starlette + uvicorn: both are small, well-kept and widely used; uvicorn parses HTTP with
h11 (a strict parser) and shuts down cleanly on Ctrl-C, Starlette gives routing, a thread pool
for our blocking SQLite/FAISS calls and a trusted-host guard. Measured in a fresh venv: 3.7 MB
installed (starlette, anyio, uvicorn, h11; click and idna we have already), +0.13 s to import,
paid only by ``tropegraph serve``. The standard library's ``http.server`` would save that but
leaves request parsing, keep-alive and shutdown to us.

Security, in layers:
- binds 127.0.0.1 unless ``--host`` says otherwise; the ``Host`` header must name this server
  (so a DNS-rebinding page cannot reach it);
- every response carries a strict Content-Security-Policy (``script-src 'self'``, no inline
  script, no ``eval``, nothing from elsewhere), ``nosniff``, no framing, no referrer;
- state-changing endpoints (curation) are POST-only, need the per-process token the pages carry
  in a ``<meta>`` tag (``X-Tropegraph-Token``), a JSON body (a cross-site form cannot send one
  without a CORS preflight we never grant) and, when the browser sends one, a same-origin ``Origin``;
- only the files shipped in ``static/`` are served (a fixed list made at start); notes are never
  served, results link to them with ``obsidian://``;
- the pages insert note text with ``textContent`` only, never as HTML; the one vault string the
  server writes into HTML (the vault's name) goes through ``queries.render.escape.html_text``.

The index is opened read-only once; each request reads what is committed when it runs, so notes a
running ``tropegraph watch`` adds show up without a restart. Requests that touch the index take one
lock (one SQLite connection, one FAISS index); a local explorer has one user.
"""
from __future__ import annotations

import hmac
import json
import mimetypes
import secrets
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
PAGES = HERE / "pages"
PAGE_NAMES = ("search", "metaphors", "timeline", "graph")
TOKEN_HEADER = "x-tropegraph-token"
MAX_K = 200
CURATION_ACTIONS = ("track", "reject", "merge", "split")
MAX_TOP = 500

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "cache-control": "no-store",
}


class ApiError(Exception):
    """An error the API answers with ``{"error": message}`` and ``status``."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.extra = extra


class Explorer:
    """One server process's state: the vault, its read-only index, the embedder and the token."""

    def __init__(self, vault: Path, index_dir: Path, *, token: str | None = None) -> None:
        from indexer.store import open_index

        self.vault = Path(vault)
        self.index_dir = Path(index_dir)
        self.token = token or secrets.token_urlsafe(32)
        self.lock = threading.RLock()
        self.index = open_index(self.index_dir, readonly=True, notify=lambda m: print(f"tropegraph: {m}", file=sys.stderr))
        self._embedder: Any = None
        self._timelines: OrderedDict[tuple, dict[str, Any]] = OrderedDict()

    def close(self) -> None:
        with self.lock:
            self.index.close()

    @property
    def vault_name(self) -> str:
        return self.vault.name

    def embedder(self) -> Any:
        with self.lock:  # loading reads the index's meta: that connection is never used by two threads
            if self._embedder is None:
                from queries.search import embedder_for

                self._embedder = embedder_for(self.index)  # the one search itself caches
            return self._embedder

    def warm_up(self) -> None:
        """Load the query model, the lemmatiser and the vectors in the background (1-2 s) with one
        throw-away search, so the first search as you type is quick."""
        from vault_schema.errors import VaultError

        def load() -> None:
            from queries.search import search

            try:
                with self.lock:
                    search(self.index, "мост между мирами, map of meaning", mode="hybrid", k=1,
                           embedder=self.embedder())
            except (VaultError, OSError, ImportError) as exc:  # the first search reports it properly
                print(f"tropegraph: could not load the query model yet ({exc})", file=sys.stderr)

        threading.Thread(target=load, daemon=True, name="tropegraph-serve-warm-up").start()

    def data_version(self) -> int:
        """Changes whenever another connection (``index``, ``watch``, curation) commits."""
        return int(self.index.db.execute("PRAGMA data_version").fetchone()[0])

    def source(self) -> Any:
        """A fresh timeline source (its caches last one request, so new notes are seen)."""
        from queries.timeline import IndexSource

        return IndexSource(self.index, self.vault, embedder=self.embedder())

    def cached_timeline(self, key: tuple, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Timelines embed their contexts (seconds for a much-used image): keep the last few per index state."""
        key = (self.data_version(), *key)
        if key in self._timelines:
            self._timelines.move_to_end(key)
            return self._timelines[key]
        value = build()
        self._timelines[key] = value
        while len(self._timelines) > 32:
            self._timelines.popitem(last=False)
        return value


# --- request helpers -----------------------------------------------------------------------------


def _json(data: Any, status: int = 200) -> Response:
    body = json.dumps(data, ensure_ascii=False, default=str).encode("utf-8")
    return Response(body, status_code=status, media_type="application/json")


def _text(request: Request, name: str, default: str | None = None, *, limit: int = 500) -> str | None:
    value = request.query_params.get(name)
    if value is None or not value.strip():
        return default
    if len(value) > limit:
        raise ApiError(400, f"{name} is too long (at most {limit} characters)")
    return value.strip()


def _int(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be a whole number (got {raw!r})") from None
    if not lo <= value <= hi:
        raise ApiError(400, f"{name} must be between {lo} and {hi} (got {value})")
    return value


def _flag(request: Request, name: str, default: bool) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ApiError(400, f"{name} must be 1 or 0 (got {raw!r})")


def _choice(request: Request, name: str, choices: tuple[str, ...], default: str | None = None) -> str | None:
    value = _text(request, name, default)
    if value is not None and value not in choices:
        raise ApiError(400, f"{name} must be one of {', '.join(choices)} (got {value!r})")
    return value


def _explorer(request: Request) -> Explorer:
    return request.app.state.explorer


def _endpoint(fn: Callable[[Request], Any]) -> Callable[[Request], Response]:
    """Run a handler under the index lock and turn tropegraph's errors into JSON answers."""

    def handler(request: Request) -> Response:
        from queries.metaphors import MetaphorNotFound
        from vault_schema.errors import VaultError

        try:
            with _explorer(request).lock:
                result = fn(request)
            return result if isinstance(result, Response) else _json(result)
        except ApiError as exc:
            return _json({"error": str(exc), **exc.extra}, exc.status)
        except MetaphorNotFound as exc:
            return _json({"error": str(exc)}, 404)
        except (VaultError, ValueError) as exc:
            return _json({"error": str(exc)}, 400)

    handler.__name__ = fn.__name__
    handler.__doc__ = fn.__doc__
    return handler


# --- pages and static files ----------------------------------------------------------------------


def _static_files() -> dict[str, tuple[bytes, str]]:
    """Every file shipped under ``static/``, read once: nothing else can ever be served."""
    files = {}
    for path in sorted(STATIC.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            rel = path.relative_to(STATIC).as_posix()
            kind = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}.get(
                path.suffix, mimetypes.guess_type(path.name)[0] or "application/octet-stream")
            if kind.startswith("text/") or kind.endswith("+xml"):
                kind += "; charset=utf-8"
            files[rel] = (path.read_bytes(), kind)
    return files


def render_page(name: str, explorer: Explorer) -> str:
    """A page: the shared shell (nav, token, stylesheet) around ``pages/<name>.html``."""
    from queries.render.escape import html_text as escape

    body = (PAGES / f"{name}.html").read_text(encoding="utf-8")
    nav = "".join(
        f'<a href="/{p}"{" aria-current=" + chr(34) + "page" + chr(34) if p == name else ""}>{p.capitalize()}</a>'
        for p in PAGE_NAMES)
    title = f"{name.capitalize()} · tropegraph · {explorer.vault_name}"
    return (
        "<!DOCTYPE html>\n<html lang=\"ru\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="tropegraph-token" content="{escape(explorer.token)}">'
        f'<meta name="tropegraph-vault" content="{escape(explorer.vault_name)}">'
        f"<title>{escape(title)}</title>"
        '<link rel="icon" href="data:,"><link rel="stylesheet" href="/static/app.css"></head>\n'
        f'<body data-page="{name}"><header><span class="brand">tropegraph</span>'
        f'<nav>{nav}</nav><span class="vault" id="vault-status">{escape(explorer.vault_name)}</span></header>\n'
        f'<main id="main">{body}</main>\n'
        '<script src="/static/vendor/d3/d3.min.js"></script>'
        '<script src="/static/common.js"></script>'
        f'<script src="/static/{name}.js"></script>'
        "</body></html>\n"
    )


def _page(name: str) -> Callable[[Request], Response]:
    def page(request: Request) -> Response:
        return Response(render_page(name, _explorer(request)), media_type="text/html; charset=utf-8")

    page.__name__ = f"page_{name}"
    return page


def static(request: Request) -> Response:
    found = request.app.state.static.get(request.path_params["path"])
    if found is None:
        return Response("not found\n", status_code=404, media_type="text/plain; charset=utf-8")
    data, kind = found
    return Response(data, media_type=kind)


# --- the JSON API (docs/API.md) ------------------------------------------------------------------


@_endpoint
def api_index(request: Request) -> Any:
    """The endpoints, for a human poking at /api."""
    return {"endpoints": {
        "GET /api/status": "tropegraph status --json",
        "GET /api/facets": "providers, tags and months present, for filters",
        "GET /api/search?q=…&mode=&k=&role=&since=&until=&provider=&tag=&path=&collapse=": "tropegraph search --json",
        "GET /api/metaphors?limit=&role=&all=": "tropegraph metaphors --json",
        "GET /api/timeline?phrase=…&by=&role=&drift=": "tropegraph timeline --json",
        "GET /api/explain?ref=…": "tropegraph metaphors explain --json",
        "GET /api/graph?top=&since=&until=&kinds=&all=": "node-link JSON, like tropegraph graph export FILE.json",
        "POST /api/metaphors/track|reject|merge|split": "tropegraph metaphors track|reject|merge|split",
    }, "docs": "docs/API.md"}


@_endpoint
def api_status(request: Request) -> Any:
    from queries.status import index_status

    ex = _explorer(request)
    return index_status(ex.index, vault=ex.vault)


@_endpoint
def api_facets(request: Request) -> Any:
    db = _explorer(request).index.db
    providers = [r[0] for r in db.execute(
        "SELECT DISTINCT lower(provider) FROM conversations WHERE provider IS NOT NULL AND provider != '' ORDER BY 1")]
    tags = [r[0] for r in db.execute("SELECT name, count(DISTINCT note_id) n FROM tags GROUP BY name "
                                     "ORDER BY n DESC, name LIMIT 200")]
    span = db.execute("SELECT min(time), max(time) FROM turns WHERE time IS NOT NULL").fetchone()
    return {"providers": providers, "tags": tags, "roles": ["user", "assistant", "note"],
            "first": span[0], "last": span[1]}


@_endpoint
def api_search(request: Request) -> Any:
    from queries.search import MODES, ROLES, embedding_coverage, search, search_result

    ex = _explorer(request)
    query = _text(request, "q", limit=2000)
    if query is None:
        raise ApiError(400, "the query is empty; give some words to search for")
    mode = _choice(request, "mode", MODES, "hybrid") or "hybrid"
    coverage = embedding_coverage(ex.index)  # before the search: see embedding_coverage
    hits = search(
        ex.index, query, mode=mode, k=_int(request, "k", 20, 1, MAX_K),  # type: ignore[arg-type]
        role=_choice(request, "role", ROLES), since=_text(request, "since"), until=_text(request, "until"),
        provider=_text(request, "provider"), tag=_text(request, "tag"), path_prefix=_text(request, "path"),
        conversation=_text(request, "conversation"), collapse=_flag(request, "collapse", True),
        embedder=ex.embedder() if mode != "keyword" else None,
    )
    return search_result(query, mode, hits, coverage)


@_endpoint
def api_metaphors(request: Request) -> Any:
    from queries.metaphors import list_metaphors, list_status, metaphors_result

    show_all = _flag(request, "all", False)
    index = _explorer(request).index
    role = _choice(request, "role", ("user", "assistant"))
    items = list_metaphors(index, limit=_int(request, "limit", 100, 1, 10_000),
                           role=role,  # type: ignore[arg-type]
                           min_conversations=1 if show_all else 2, include_rejected=show_all,
                           include_literal=show_all)
    return metaphors_result(items, list_status(index), role)


@_endpoint
def api_explain(request: Request) -> Any:
    """Why a phrase is (or is not) a listed image: the same document as ``metaphors explain --json``."""
    from queries.metaphors import MetaphorNotFound, explain_metaphor

    ref = _text(request, "ref") or _text(request, "id")
    if ref is None:
        raise ApiError(400, "give the metaphor: ref=… (an id, its label, a variant or a candidate phrase)")
    try:
        return explain_metaphor(_explorer(request).index, ref).to_dict()
    except MetaphorNotFound as exc:
        raise ApiError(404, f"no metaphor or candidate phrase matches {ref!r} in this vault; "
                            "/api/metaphors?all=1 lists every candidate") from exc


@_endpoint
def api_timeline(request: Request) -> Any:
    from queries.timeline import GRANULARITIES

    ex = _explorer(request)
    phrase = _text(request, "phrase") or _text(request, "id")
    if phrase is None:
        raise ApiError(400, "give the metaphor: phrase=… (an id, its label, a variant or a free phrase)")
    by = _choice(request, "by", GRANULARITIES, "month") or "month"
    role = _choice(request, "role", ("user", "assistant"))
    drift = _flag(request, "drift", True)
    src = ex.source()
    res = src.resolve(phrase)
    if res.chosen is None:
        raise ApiError(404, src.no_match(phrase, res), suggestions=[m.to_dict() for m in res.suggestions])
    chosen = res.chosen
    full = ex.cached_timeline((chosen.id, by, drift), lambda: {"tl": src.timeline(chosen, by=by, drift=drift)})["tl"]
    return full.for_role(role).to_dict() | src.describe(res)


@_endpoint
def api_graph(request: Request) -> Any:
    from queries.graph import GRAPH_KINDS, GRAPH_TOP, metaphor_graph
    from queries.search import parse_when

    ex = _explorer(request)
    kinds = [k for k in (_text(request, "kinds") or "metaphor").split(",") if k.strip()]
    for k in kinds:
        if k not in GRAPH_KINDS:
            raise ApiError(400, f"kinds takes {', '.join(GRAPH_KINDS)} (got {k!r})")
    since, until = _text(request, "since"), _text(request, "until")
    return metaphor_graph(ex.index, top=_int(request, "top", GRAPH_TOP, 1, MAX_TOP),
                          since=parse_when(since), until=parse_when(until, end=True),
                          kinds=tuple(dict.fromkeys(["metaphor", *kinds])), vault_name=ex.vault_name,
                          show_all=_flag(request, "all", False))


# --- curation (POST, token) ----------------------------------------------------------------------


def _allowed_origins(request: Request) -> set[str]:
    return {f"http://{h}" for h in request.app.state.hosts_with_port}


async def curate(request: Request) -> Response:
    """POST /api/metaphors/{action}: the same code as ``tropegraph metaphors ACTION``."""
    from starlette.concurrency import run_in_threadpool

    from interfaces import curation

    given = request.headers.get(TOKEN_HEADER, "")
    if not hmac.compare_digest(given.encode(), _explorer(request).token.encode()):
        return _json({"error": "missing or wrong token; reload the page"}, 403)
    origin = request.headers.get("origin")
    if origin is not None and origin not in _allowed_origins(request):
        return _json({"error": f"cross-site request from {origin} refused"}, 403)
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return _json({"error": "cross-site request refused"}, 403)
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return _json({"error": "send a JSON body (Content-Type: application/json)"}, 415)
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        return _json({"error": "the body is not valid JSON"}, 400)
    if not isinstance(body, dict):
        return _json({"error": "the body must be a JSON object"}, 400)
    action = request.path_params["action"]
    if action not in CURATION_ACTIONS:
        return _json({"error": f"no curation action {action!r}; use {', '.join(CURATION_ACTIONS)}"}, 404)

    def strings(name: str) -> list[str]:
        value = body.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ApiError(400, f"{name} must be a list of strings")
        return value

    def run() -> Any:
        ex = _explorer(request)
        if action == "track":
            phrase = body.get("phrase")
            if not isinstance(phrase, str):
                raise ApiError(400, "track needs {\"phrase\": \"…\", \"aliases\": [\"…\"]}")
            return curation.track(ex.vault, ex.index_dir, phrase, strings("aliases"))
        if action == "merge":
            return curation.merge(ex.vault, ex.index_dir, strings("ids"))
        ref = body.get("id")
        if not isinstance(ref, str) or not ref.strip():
            raise ApiError(400, f"{action} needs {{\"id\": \"…\"}} (a metaphor id or phrase)")
        return getattr(curation, action)(ex.vault, ex.index_dir, ref)

    def guarded() -> Response:
        from vault_schema.errors import VaultError

        try:
            with _explorer(request).lock:
                result = run()
            return _json(result.to_dict())
        except ApiError as exc:
            return _json({"error": str(exc)}, exc.status)
        except VaultError as exc:
            return _json({"error": str(exc)}, 400)

    return await run_in_threadpool(guarded)


def not_found(request: Request, exc: Exception) -> Response:
    if request.url.path.startswith("/api/"):
        return _json({"error": f"no such endpoint: {request.method} {request.url.path}; see /api"},
                     getattr(exc, "status_code", 404))
    return Response("not found\n", status_code=getattr(exc, "status_code", 404), media_type="text/plain; charset=utf-8")


class SecurityHeaders:
    """Pure ASGI middleware: add the security headers to every response (errors included)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.decode().lower() not in SECURITY_HEADERS]
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(explorer: Explorer, *, hosts: list[str], port: int) -> Starlette:
    """The ASGI app. ``hosts``: the names this server answers to (``Host`` header), without port."""
    routes = [Route("/", lambda r: RedirectResponse("/search", status_code=303))]
    routes += [Route(f"/{name}", _page(name)) for name in PAGE_NAMES]
    routes += [
        Route("/static/{path:path}", static),
        Route("/api", api_index),
        Route("/api/", api_index),
        Route("/api/status", api_status),
        Route("/api/facets", api_facets),
        Route("/api/search", api_search),
        Route("/api/metaphors", api_metaphors),
        Route("/api/timeline", api_timeline),
        Route("/api/explain", api_explain),
        Route("/api/graph", api_graph),
        Route("/api/metaphors/{action:str}", curate, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders), Middleware(TrustedHostMiddleware, allowed_hosts=hosts)],
        exception_handlers={404: not_found, 405: not_found},
    )
    app.state.explorer = explorer
    app.state.static = _static_files()
    app.state.hosts_with_port = {f"{h}:{port}" if ":" not in h else f"[{h}]:{port}" for h in hosts}
    return app


# --- running it ----------------------------------------------------------------------------------

LOCAL_HOSTS = ["127.0.0.1", "localhost"]


def bind(host: str, port: int) -> Any:
    """A listening socket (so a busy port is a clear error, and port 0 picks a free one)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(64)
    sock.set_inheritable(True)
    return sock


def serve(explorer: Explorer, sock: Any, *, host: str, ready: Callable[[str], None] | None = None,
          server_box: list | None = None) -> None:
    """Serve on ``sock`` until Ctrl-C/SIGTERM (or ``server_box[0].should_exit = True``)."""
    import uvicorn

    port = sock.getsockname()[1]
    hosts = [*LOCAL_HOSTS, "[::1]", "::1"] if host in ("127.0.0.1", "localhost", "::1") else [host, *LOCAL_HOSTS]
    app = create_app(explorer, hosts=hosts, port=port)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    if server_box is not None:
        server_box.append(server)
    url_host = "127.0.0.1" if host in ("127.0.0.1", "0.0.0.0") else (f"[{host}]" if ":" in host else host)
    url = f"http://{url_host}:{port}/"
    if ready is not None:
        def announce() -> None:
            import time

            while not server.started and not server.should_exit:
                time.sleep(0.02)
            if server.started:
                ready(url)

        threading.Thread(target=announce, daemon=True, name="tropegraph-serve-ready").start()
    explorer.warm_up()
    server.run(sockets=[sock])

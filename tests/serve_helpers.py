"""Run ``tropegraph serve``'s app on a free loopback port in a thread, for tests."""
from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PLANTED_TITLE = 'Ранняя карта <script>window.__pwned=1</script> <img src=x onerror="window.__pwned=2">'
PLANTED_NOTE = """---
nexus: nexus-ai-chat-importer
plugin_version: "1.2.0"
provider: claude
aliases: "{title}"
conversation_id: 7d0c4a8e-1f7b-4d55-9e49-3c1f0b2a9e01
create_time: 11/05/2024 at 09:30 AM
update_time: 11/05/2024 at 09:40 AM
---

# Title: {title}

Created: 11/05/2024 at 09:30 AM
Last Updated: 11/05/2024 at 09:40 AM


>[!nexus_user] **User** - 11/05/2024 at 09:30 AM
> Я рисую карту смысла <script>window.__pwned=3</script> для своих разговоров. Маяк из янтарного стекла стоит на краю архива.
<!-- UID: 0b6f7d2e-5a71-4c3e-8a51-7f3e2d9c1a01 -->


>[!nexus_agent] **Assistant** - 11/05/2024 at 09:31 AM
> Янтарный маяк — хорошее имя для такого архива. Пусть он светит тем, кто вернётся к этим записям.
<!-- UID: 0b6f7d2e-5a71-4c3e-8a51-7f3e2d9c1a02 -->
"""
PLANTED_PATH = "Nexus/Conversations/claude/2024/11/Ранняя карта.md"
#: what the planted note says: the earliest use of «карта смысла» in the vault, by the user
PLANTED_FIRST = ("2024-11-05T09:30:00", "user")


def plant(vault: Path) -> Path:
    path = vault / PLANTED_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(PLANTED_NOTE.format(title=PLANTED_TITLE), encoding="utf-8")
    return path


@contextmanager
def running_server(vault: Path, index_dir: Path, *, host: str = "127.0.0.1") -> Iterator[Any]:
    """Yield the server's base URL (``http://127.0.0.1:PORT``) and its ``Explorer``; stop it after."""
    from interfaces.serve.app import Explorer, bind, serve

    explorer = Explorer(vault, index_dir)
    sock = bind(host, 0)
    box: list[Any] = []
    urls: list[str] = []
    thread = threading.Thread(target=serve, args=(explorer, sock), kwargs={"host": host, "ready": urls.append,
                                                                         "server_box": box}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not urls and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.02)
    assert urls, "the server did not start"
    try:
        yield urls[0].rstrip("/"), explorer
    finally:
        box[0].should_exit = True
        thread.join(10)
        explorer.close()
        sock.close()
        assert not thread.is_alive()


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def get_json(url: str) -> Any:
    status, _, body = get(url)
    assert status == 200, body
    return json.loads(body)


def post(url: str, body: Any, headers: dict[str, str] | None = None, *,
         content_type: str = "application/json") -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw

"""A Hugging Face hub on 127.0.0.1 for the resolver's tests: the few endpoints huggingface_hub's
``snapshot_download`` calls, serving repositories held in memory, and able to misbehave on purpose.

    with FakeHub({"google/vit-base-patch16-224": {"config.json": b"{...}", ...}}, fault="drop") as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)

Faults, applied to the weights (``*.safetensors``) only, so the small files arrive first:
- ``"drop"``: the connection closes half-way through the body (the client was promised all of it);
- ``"truncate"``: a complete response that holds only the first half of the file;
- ``"hangup"``: every request, the hub probe's included, is answered by closing the connection.
"""
from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

COMMIT = "c0ffee" + "0" * 34


def _lfs(path: str) -> bool:
    return path.endswith((".safetensors", ".bin"))


class FakeHub:
    def __init__(self, repos: dict[str, dict[str, bytes]], fault: str | None = None):
        self.repos, self.fault = repos, fault
        self.requests: list[str] = []  # "METHOD path" of every request, in order
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):  # noqa: N802 - http.server's naming
                hub._serve(self, body=False)

            def do_GET(self):  # noqa: N802
                hub._serve(self, body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---------------------------------------------------------------- the endpoints

    def _serve(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        self.requests.append(f"{handler.command} {handler.path}")
        if self.fault == "hangup":
            handler.close_connection = True
            handler.connection.close()
            return
        path = unquote(urlparse(handler.path).path)
        if path.startswith("/api/models/"):
            return self._api(handler, path.removeprefix("/api/models/"))
        for repo, files in self.repos.items():
            prefix = f"/{repo}/resolve/"
            if path.startswith(prefix):
                _, _, file = path.removeprefix(prefix).partition("/")  # drop the revision
                if file in files:
                    return self._file(handler, file, files[file], body)
        self._reply(handler, 404, b'{"error": "not found"}', {"X-Error-Code": "EntryNotFound"})

    def _api(self, handler, rest: str) -> None:
        for repo, files in self.repos.items():
            if rest.startswith(f"{repo}/revision/"):
                info = {"id": repo, "sha": COMMIT, "siblings": [{"rfilename": f} for f in files]}
                return self._reply(handler, 200, json.dumps(info).encode(), {"Content-Type": "application/json"})
            if rest.startswith(f"{repo}/tree/"):
                entries = [self._entry(f, data) for f, data in files.items()]
                return self._reply(handler, 200, json.dumps(entries).encode(), {"Content-Type": "application/json"})
        self._reply(handler, 404, b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound"})

    @staticmethod
    def _entry(path: str, data: bytes) -> dict:
        git = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        entry = {"type": "file", "path": path, "size": len(data), "oid": git}
        if _lfs(path):
            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return entry

    def _file(self, handler, path: str, data: bytes, body: bool) -> None:
        etag = hashlib.sha256(data).hexdigest() if _lfs(path) else hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{etag}"', "Content-Type": "application/octet-stream"}
        if _lfs(path):
            headers |= {"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))}
        if body and _lfs(path) and self.fault == "drop":
            handler.send_response(200)
            for key, value in (headers | {"Content-Length": str(len(data))}).items():
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(data[: len(data) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(2)
            return
        if body and _lfs(path) and self.fault == "truncate":
            data = data[: len(data) // 2]
        self._reply(handler, 200, data if body else b"", headers, length=len(data))

    @staticmethod
    def _reply(handler, status: int, data: bytes, headers: dict, length: int | None = None) -> None:
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data) if length is None else length))
        handler.end_headers()
        if data:
            handler.wfile.write(data)

"""A local stand-in for the Hugging Face Hub: files served on loopback at the Hub's own
``/<repo>/resolve/<revision>/<filename>`` paths, with the headers ``hf_hub_download`` reads
(``X-Repo-Commit``, ``ETag``, ``Content-Length``; ``X-Error-Code`` on a 404). Point
``HF_ENDPOINT`` at :attr:`HubStandIn.url` and the real download code runs against it.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class HubStandIn:
    """Serves ``root/<org>/<repo>/<filename>`` for any revision in ``revisions``."""

    def __init__(self, root: Path, commit: str = "3" * 40) -> None:
        self.root = Path(root)
        self.commit = commit
        self.revisions = {"main", commit}
        self.requests: list[tuple[str, str]] = []  # (method, path), for "downloaded once" checks
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def put(self, repo: str, filename: str, data: bytes) -> Path:
        path = self.root / repo / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def gets(self, filename: str) -> int:
        return sum(1 for verb, path in self.requests if verb == "GET" and path.endswith(filename))

    @contextmanager
    def serving(self) -> Iterator[HubStandIn]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def _resolve(self) -> tuple[int, dict[str, str], bytes]:
                parts = self.path.split("?")[0].lstrip("/").split("/")
                headers = {"X-Repo-Commit": stand_in.commit}
                if len(parts) < 5 or parts[2] != "resolve":
                    return 404, {**headers, "X-Error-Code": "RepoNotFound"}, b"no such repo"
                repo, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                if not (stand_in.root / repo).is_dir():
                    return 404, {"X-Error-Code": "RepoNotFound"}, b"Repository not found"
                if revision not in stand_in.revisions:
                    return 404, {"X-Error-Code": "RevisionNotFound"}, b"Revision not found"
                path = stand_in.root / repo / filename
                if not path.is_file():
                    return 404, {**headers, "X-Error-Code": "EntryNotFound"}, b"Entry not found"
                body = path.read_bytes()
                # The Hub's ETag for a large (LFS) file is its sha256.
                headers["ETag"] = f'"{hashlib.sha256(body).hexdigest()}"'
                return 200, headers, body

            def _answer(self, with_body: bool) -> None:
                stand_in.requests.append((self.command, self.path))
                status, headers, body = self._resolve()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if with_body:
                    self.wfile.write(body)

            def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
                self._answer(with_body=False)

            def do_GET(self) -> None:  # noqa: N802
                self._answer(with_body=True)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(timeout=5)

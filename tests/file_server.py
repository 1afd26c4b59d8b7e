"""An HTTP file server on 127.0.0.1 for download tests: Range requests, scripted cuts and
an optional slow pace (so a test can stop a client in the middle of a transfer)."""

from __future__ import annotations

import dataclasses
import http.server
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from glide_ui import checkpoints as ckpt


class FileServer(http.server.ThreadingHTTPServer):
    """Serves `files` (path -> bytes) with optional Range support and scripted cuts."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.honor_range = True
        self.cuts: list[int] = []  # the next responses stop after this many body bytes
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.pace: tuple[int, float] | None = None  # (bytes, seconds): send slowly
        self.lock = threading.Lock()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def spec(self, path: str = "/model.pt", **changes: object) -> ckpt.CheckpointSpec:
        data = self.files[path]
        base = ckpt.CheckpointSpec("test-model", Path(path).name, self.url(path), len(data))
        return dataclasses.replace(base, **changes)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: FileServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        with self.server.lock:
            self.server.requests.append((self.path, self.headers.get("Range")))
            cut = self.server.cuts.pop(0) if self.server.cuts else None
        data = self.server.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = self._range_start(len(data))
        if start is None:
            return
        body = data[start:]
        if start:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self._send(body if cut is None else body[:cut])
        self.close_connection = cut is not None

    def _send(self, body: bytes) -> None:
        if self.server.pace is None:
            self.wfile.write(body)
            return
        size, pause = self.server.pace
        try:
            for offset in range(0, len(body), size):
                self.wfile.write(body[offset:offset + size])
                self.wfile.flush()
                time.sleep(pause)
        except OSError:  # the client went away
            self.close_connection = True

    def _range_start(self, size: int) -> int | None:
        header = self.headers.get("Range")
        if not header or not self.server.honor_range:
            return 0
        start = int(re.fullmatch(r"bytes=(\d+)-", header).group(1))
        if start >= size:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return start

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serving(files: dict[str, bytes]) -> Iterator[FileServer]:
    """A FileServer serving `files` in a background thread for the `with` block."""
    server = FileServer()
    server.files.update(files)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()

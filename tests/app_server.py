"""Start `app.py` with tiny models on 127.0.0.1 in a subprocess, for the API and browser tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
STARTUP_SECONDS = 240


@dataclass
class RunningApp:
    url: str
    pid: int
    log: Path
    temp_dir: Path

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_app(*flags: str, script: Path = ROOT / "app.py",
                env: dict[str, str] | None = None, command: Sequence[str] = (),
                cwd: Path = ROOT) -> Iterator[RunningApp]:
    """`python app.py --models tiny <flags>` on a free port, its own temp, cache and outputs
    dirs (results are saved under `temp_dir/outputs` unless `--outputs` says otherwise).

    `script` runs instead of app.py (a test wrapper that calls `app.main`, e.g. one that
    injects faults); `command` instead of `python script` (e.g. an installed
    `glide-ui serve`), in `cwd`; `env` adds environment variables.
    """
    temp_dir = Path(tempfile.mkdtemp(prefix="glide-ui-test-"))
    port = free_port()
    env = {**os.environ, "GRADIO_TEMP_DIR": str(temp_dir / "gradio"),
           "GLIDE_CACHE_DIR": str(temp_dir / "cache"), "GLIDE_OUTPUTS": str(temp_dir / "outputs"),
           "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1", **(env or {})}
    log = temp_dir / "app.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [*(command or [sys.executable, str(script)]), "--models", "tiny", "--port",
             str(port), *flags], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    app = RunningApp(f"http://127.0.0.1:{port}/", process.pid, log, temp_dir)
    try:
        _wait_until_serving(app, process)
        yield app
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_serving(app: RunningApp, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with {process.returncode}:\n{app.log_tail()}")
        try:
            with urllib.request.urlopen(app.url + "config", timeout=5) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError:
            return  # it answers (a login is required: --auth)
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"app.py did not serve within {STARTUP_SECONDS} s:\n{app.log_tail()}")

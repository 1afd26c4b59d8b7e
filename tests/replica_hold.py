"""A seam inside the Ray replicas of tests/test_replicas.py: hold a request at a known point,
so that the test kills its replica there (a signal, not a timed sleep).

`runtime_env(folder)` goes to `ray.init`: every Ray worker of the test's job runs
`install`, which wraps `glide_ui.pipelines.text2im.text2im` once a process imports it (a
replica does; the Serve controller, which runs the hook too, never imports torch for it).
A text2im request whose prompt starts with BEFORE_STREAMING waits before its first event;
one starting with AFTER_PREVIEW waits once its first preview is sent. Waiting, it writes
`<key>.<pid>.held` into the folder, then goes on when `<key>.go` appears there (`release`).
Everything else runs as it would.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.util
import os
import re
import sys
import time
from pathlib import Path

import ray.cloudpickle

BEFORE_STREAMING = "held before streaming: "
AFTER_PREVIEW = "held after a preview: "
FOLDER_ENV = "GLIDE_TEST_HOLD_DIR"
PIPELINE_MODULE = "glide_ui.pipelines.text2im"
POLL_S = 0.02
LIMIT_S = 120.0  # a held request gives up (an error) when the test never releases it


def runtime_env(folder: Path) -> dict:
    """The `runtime_env` of `ray.init` that installs the hold in the job's workers (the
    hook travels by value: the workers cannot import the tests folder)."""
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    return {"worker_process_setup_hook": install, "env_vars": {FOLDER_ENV: str(folder)}}


def key(prompt: str) -> str:
    return re.sub(r"\W+", "-", prompt).strip("-")


# --- in the replica ---------------------------------------------------------------------


def install() -> None:
    """Ray's worker_process_setup_hook: wrap text2im when its module is imported."""
    if os.environ.get(FOLDER_ENV):
        sys.meta_path.insert(0, _WrapOnImport())


class _WrapOnImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != PIPELINE_MODULE:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            module.text2im = _held(module.text2im)

        spec.loader.exec_module = exec_module
        return spec


def _held(pipeline):
    @functools.wraps(pipeline)
    def run(request, *args, **kwargs):
        if request.prompt.startswith(BEFORE_STREAMING):
            _wait(request.prompt)
        preview = request.prompt.startswith(AFTER_PREVIEW)
        for event in pipeline(request, *args, **kwargs):
            yield event
            if preview and type(event).__name__ == "Preview":
                _wait(request.prompt)
                preview = False

    return run


def _wait(prompt: str) -> None:
    folder = Path(os.environ[FOLDER_ENV])
    (folder / f"{key(prompt)}.{os.getpid()}.held").touch()
    deadline = time.monotonic() + LIMIT_S
    while not (folder / f"{key(prompt)}.go").exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the test never released {prompt!r}")
        time.sleep(POLL_S)


# --- in the test ------------------------------------------------------------------------


def held_pids(folder: Path, prompt: str, count: int, limit: float = 60) -> list[int]:
    """The processes that held `prompt`, oldest first, once `count` of them have (each time
    the request reached its hold point: one per attempt)."""
    deadline = time.monotonic() + limit
    while len(markers := list(folder.glob(f"{key(prompt)}.*.held"))) < count:
        assert time.monotonic() < deadline, f"{prompt!r} was held {len(markers)} time(s), " \
                                             f"not {count}"
        time.sleep(POLL_S)
    markers.sort(key=lambda marker: marker.stat().st_mtime_ns)
    return [int(marker.name.split(".")[-2]) for marker in markers]


def release(folder: Path, prompt: str) -> None:
    """Let every hold of `prompt`, now and later, go on."""
    (folder / f"{key(prompt)}.go").touch()

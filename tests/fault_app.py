"""`app.py` with faults injected, for the robustness tests only (never part of the product).

    GLIDE_TEST_FAULTS="oom=base@3;files=base-inpaint,clip/image-enc" python tests/fault_app.py ...

- `oom=NAME@N`: the N-th forward call of model NAME (the first request that runs it) first
  fills `BALLAST_BYTES` of memory, as the activations of a large step would, then raises
  torch.OutOfMemoryError. Later calls run normally.
- `files=NAME,...`: with `--models tiny`, these models are loaded the way official ones are:
  from the checkpoint files in `--checkpoints DIR` (which the test makes corrupt, truncated
  or malicious), through the product's own fetching, checking and loading code.
- `index_full`: the disk holding the history index is full: SQLite may not grow any database
  file (tests/index_faults.py `refuse_growth`) and says "database or disk is full".
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FAULTS_ENV = "GLIDE_TEST_FAULTS"
BALLAST_BYTES = 600 * 2**20
INJECTED_OOM = "injected by tests/fault_app.py"


def parse_faults(text: str) -> dict[str, str]:
    faults = {}
    for part in filter(None, (piece.strip() for piece in text.split(";"))):
        key, _, value = part.partition("=")
        faults[key.strip()] = value.strip()
    return faults


def out_of_memory_at(name: str, call: int):
    """A forward pre-hook that raises OutOfMemoryError on the `call`-th call, once."""
    import torch

    calls = 0
    lock = threading.Lock()

    def hook(module, args):  # noqa: ANN001, ARG001 (torch's hook signature)
        nonlocal calls
        with lock:
            calls += 1
            now = calls
        if now == call:
            ballast = torch.ones(BALLAST_BYTES // 4)  # touched: resident memory  # noqa: F841
            raise torch.OutOfMemoryError(f"CPU out of memory at forward call {call} of "
                                         f"{name} ({INJECTED_OOM})")
        return None

    return hook


def install(faults: dict[str, str]) -> None:
    if "index_full" in faults:
        import sqlite3

        from index_faults import refuse_growth

        sqlite3.connect = refuse_growth(sqlite3.connect)
    from glide_ui.models import ModelManager

    original_load = ModelManager._load
    oom_name, _, oom_call = faults.get("oom", "").partition("@")
    from_files = set(filter(None, faults.get("files", "").split(",")))

    def load(self: ModelManager, name: str):
        if name in from_files:
            from glide_ui.model_build import prepare

            model = prepare(self._load_official(name, self.options(name)), self.path)
        else:
            model = original_load(self, name)
        if name == oom_name:
            model.register_forward_pre_hook(out_of_memory_at(name, int(oom_call)))
        return model

    ModelManager._load = load


def main() -> None:
    install(parse_faults(os.environ.get(FAULTS_ENV, "")))
    import app

    app.main(sys.argv[1:])


if __name__ == "__main__":
    main()

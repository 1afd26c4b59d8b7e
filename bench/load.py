"""How fast and how lean is loading a full-size checkpoint? `python -m bench.load`

Writes a random float32 checkpoint with the layout of the official `base.pt` to a temporary
directory, then measures, each in a fresh subprocess (so the peak RSS is that load's own):
reading the file raw, `ModelManager.get("base")` (fp32 and bf16), and for reference the
naive way (model built on the CPU, `torch.load` without mmap, `load_state_dict` copy).
The page cache is warm for all of them (the raw read comes first and the file is
re-read by every run), so the figures compare the loading code, not the disk.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
GB = 1e9


def _peak_rss() -> int:
    """Peak resident set size of this process in bytes (ru_maxrss is KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def write_checkpoint(path: Path) -> int:
    """A random state dict with the keys and shapes of the official base.pt; its bytes."""
    from glide_ui.checkpoints import meta_device
    from glide_ui.glide.options import full_options
    from glide_ui.glide.unet import create_model

    with meta_device():
        model = create_model(full_options("base"))
    generator = torch.Generator().manual_seed(0)
    state = {key: torch.randn(t.shape, generator=generator) * 0.02
             for key, t in model.state_dict().items()}
    torch.save(state, path)
    return sum(t.numel() * t.element_size() for t in state.values())


# ----------------------------------------------------------------------------- children


def _child_raw(path: Path) -> dict:
    start = time.perf_counter()
    buffer = bytearray(64 << 20)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buffer):
            pass
    return {"seconds": time.perf_counter() - start}


def _touch(model: torch.nn.Module) -> float:
    """Seconds to read every weight once (what the first forward pass does)."""
    start = time.perf_counter()
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.float().sum()
    return time.perf_counter() - start


def _child_manager(path: Path, device: str, dtype: str) -> dict:
    from glide_ui.models import ModelManager

    manager = ModelManager("official", device=device, dtype=dtype, max_memory="100GB",
                           checkpoints_dir=path.parent, cache_dir=path.parent / "cache")
    baseline = _rss()
    start = time.perf_counter()
    model = manager.get("base")
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    touch = _touch(model)
    start = time.perf_counter()
    manager.checkpoint_id("base")
    sha = time.perf_counter() - start
    return {"seconds": seconds, "touch": touch, "sha256_seconds": sha, "baseline": baseline}


def _child_naive(path: Path) -> dict:
    from glide_ui.glide.options import full_options
    from glide_ui.glide.unet import create_model

    baseline = _rss()
    start = time.perf_counter()
    model = create_model(full_options("base"))
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "touch": _touch(model), "baseline": baseline}


def _run_child(mode: str, path: Path, device: str = "cpu", dtype: str = "fp32") -> dict:
    output = subprocess.run(
        [sys.executable, "-m", "bench.load", "--child", mode, "--path", str(path),
         "--device", device, "--dtype", dtype],
        cwd=REPO, check=True, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)}).stdout
    return json.loads(output.strip().splitlines()[-1])


def _child_main(mode: str, path: Path, device: str, dtype: str) -> None:
    import glide_ui.models  # noqa: F401 (imported before the baseline RSS is taken)

    if mode == "raw":
        result = _child_raw(path)
    elif mode == "manager":
        result = _child_manager(path, device, dtype)
    else:
        result = _child_naive(path)
    result["peak_rss"] = _peak_rss()
    print(json.dumps(result))


# ----------------------------------------------------------------------------- report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=["raw", "manager", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default="fp32", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child_main(args.child, args.path, args.device, args.dtype)
        return
    with tempfile.TemporaryDirectory(prefix="glide-bench-") as tmp:
        path = Path(tmp) / "base.pt"
        start = time.perf_counter()
        weights = write_checkpoint(path)
        print(f"wrote {path.name}: {path.stat().st_size / GB:.3f} GB file, "
              f"{weights / GB:.3f} GB of float32 weights ({time.perf_counter() - start:.1f} s)")
        _run_child("raw", path)  # warms the page cache for every run below
        raw = _run_child("raw", path)
        print(f"raw read of the file:   {raw['seconds']:6.2f} s")
        runs = [("manager cpu fp32", "manager", "cpu", "fp32"),
                ("manager cpu bf16", "manager", "cpu", "bf16"),
                ("naive cpu fp32  ", "naive", "cpu", "fp32")]
        if torch.cuda.is_available():
            runs.insert(2, ("manager cuda fp16", "manager", "cuda", "fp16"))
        for label, mode, device, dtype in runs:
            _report(label, _run_child(mode, path, device, dtype), weights)


def _report(label: str, result: dict, weights: int) -> None:
    # The first manager run hashes the file; later runs read base.pt.sha256 beside it.
    extra = (f", checkpoint sha256 {result['sha256_seconds']:.2f} s"
             if "sha256_seconds" in result else "")
    print(f"{label} load: {result['seconds']:6.2f} s "
          f"(+{result['touch']:.2f} s to touch every weight{extra}); "
          f"peak RSS {result['peak_rss'] / GB:.2f} GB = {result['peak_rss'] / weights:.2f} x "
          f"the weights (RSS before loading {result['baseline'] / GB:.2f} GB)")


if __name__ == "__main__":
    main()

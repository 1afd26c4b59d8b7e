"""bench/gpu.py, run end to end on the CPU with the tiny models (`--cpu-tiny`): every part
of the GPU script that is not CUDA itself is known to work before a GPU is lent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import gpu


def _errors(value: Any, where: str = "") -> list[str]:
    """Every figure the script reported as an error, with where it sits."""
    if isinstance(value, dict):
        return [e for key, item in value.items() for e in _errors(item, f"{where}/{key}")]
    if isinstance(value, str) and value.startswith("error:"):
        return [f"{where}: {value}"]
    return []


def test_the_gpu_bench_runs_end_to_end_on_the_cpu(tmp_path: Path, capsys) -> None:
    out = tmp_path / "gpu.json"
    gpu.main(["--cpu-tiny", "--json", str(out)])
    result = json.loads(out.read_text(encoding="utf-8"))
    assert not _errors(result), _errors(result)
    for name in ("base", "upsample"):
        forward = result[f"{name}_forward_s"]
        for dtype in gpu.DTYPES:
            assert forward[f"{dtype} eager"] > 0
            assert forward[f"{dtype} compiled"]["forward_s"] > 0
        batch = result["batch_fp16"][name]
        assert batch["images"] == 2 and batch["batched"]["seconds"] > 0
        assert batch["per_image"]["seconds"] > 0
    request = result["text2im_batch"]
    assert request["images"] == 2 and request["batched"]["seconds"] > 0
    assert request["per_image"]["seconds"] > 0
    assert 0 <= request["mean_level_difference"] <= request["max_level_difference"] <= 255
    for sample in ("text2im_fp16_eager", "text2im_bf16_eager", "text2im_fp16_compiled",
                   "inpaint_fp16_eager"):
        assert result[sample]["seconds"] > 0 and result[sample]["steps"]
    assert "wrote" in capsys.readouterr().out

"""One fine-tuning step of the full-size base model (random weights, no checkpoint): LoRA
and full, seconds per optimizer step and the process's peak RSS.

    python -m bench.training [--steps 3] [--batch-size 1] [--precision auto]

Each case runs in its own process (so its peak RSS is its own), through the real loop
(`glide_ui.training.fine_tune`) on one synthetic 64 px picture, stopped before the final
save; the first step (allocation, warm-up) is reported apart from the median of the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from contextlib import closing
from pathlib import Path
from typing import Any

CASES = {"lora": {"lora_rank": 8}, "full": {"lora_rank": 0}}


def run_case(case: str, steps: int, batch_size: int, precision: str) -> dict[str, Any]:
    from PIL import Image

    from bench.pipeline import FullSizeRandomManager
    from glide_ui.training import Started, Step, TrainConfig, fine_tune

    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "data"
        data.mkdir()
        Image.new("RGB", (64, 64), (200, 40, 40)).save(data / "red.png")
        (data / "red.txt").write_text("a red square")
        config = TrainConfig(str(data), str(Path(folder) / "run"), steps=steps + 1,
                             batch_size=batch_size, precision=precision, sample_seeds=(),
                             checkpoint_every=10**6, device="cpu", **CASES[case])
        times, trainable, used = [], 0, ""
        events = fine_tune(config, FullSizeRandomManager(device="cpu"))
        with closing(events):
            previous = 0.0
            for event in events:
                if isinstance(event, Started):
                    trainable, used = event.trainable, event.precision
                if isinstance(event, Step):
                    times.append(event.seconds - previous)
                    previous = event.seconds
                    if event.step == steps:
                        break
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"case": case, "trainable_parameters": trainable, "precision": used,
            "batch_size": batch_size, "first_step_s": times[0],
            "step_s_median": statistics.median(times[1:]) if len(times) > 1 else times[0],
            "steps_timed": len(times) - 1, "peak_rss_bytes": peak_kib * 1024}


def measure(steps: int = 3, batch_size: int = 1, precision: str = "auto") -> list[dict]:
    """Both cases, each in a fresh process."""
    results = []
    for case in CASES:
        out = subprocess.run([sys.executable, "-m", "bench.training", "--case", case,
                              "--steps", str(steps), "--batch-size", str(batch_size),
                              "--precision", precision], capture_output=True, text=True,
                             check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return results


def print_report(results: list[dict]) -> None:
    for r in results:
        print(f"train {r['case']} (full-size base, batch {r['batch_size']}, {r['precision']}, "
              f"{r['trainable_parameters'] / 1e6:.1f} M trained): "
              f"{r['step_s_median']:.1f} s/step (median of {r['steps_timed']}; first "
              f"{r['first_step_s']:.1f} s), peak RSS {r['peak_rss_bytes'] / 1e9:.2f} GB",
              flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args.case, args.steps, args.batch_size, args.precision)))
        return
    print(f"load average {os.getloadavg()[0]:.1f}")
    print_report(measure(args.steps, args.batch_size, args.precision))
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

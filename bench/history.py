"""How fast is the History with thousands of pictures? `python -m bench.history [--count 5000]`

Saves `count` 64 px result PNGs (recipes with prompts drawn from a small vocabulary, over
30 days) into a temporary outputs folder through `History.save` (each written atomically,
then indexed), then times what the History tab and the /history endpoint do: a page of
24 newest first (first, middle and last page), searches by prompt words (common, rare,
with tab and date filters, characters inside Chinese and Japanese words), opening one
picture; and what start-up does: opening the index (its checks), a sync with nothing
changed, and a full rebuild of the index from the PNGs. Median of `--runs`.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from PIL import Image

from glide_ui.history import History, Query, result_png
from glide_ui.history.index import HistoryIndex
from glide_ui.recipe import Recipe

WORDS = ("corgi cat fox hedgehog lighthouse boat canyon castle forest city robot dragon "
         "teapot garden mountain river window painting drawing photo watercolor sketch "
         "crayon oil stained glass surreal tiny giant red blue golden night dusk "
         "一只可爱的猫 東京タワー 등대").split()  # unspaced scripts: searched by character
PIPELINES = ("text2im", "text2im", "clip_guided", "inpaint")
PAGE = 24


def fill(history: History, count: int, seed: int = 0) -> float:
    """Save `count` pictures; returns the mean seconds per save (write + fsync + index)."""
    rng = random.Random(seed)
    start = datetime.now().astimezone() - timedelta(days=30)
    spent = 0.0
    for n in range(count):
        prompt = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8)))
        recipe = Recipe(pipeline=rng.choice(PIPELINES), prompt=prompt, seed=n,
                        settings={"guidance_scale": 3.0, "base_respacing": "100"},
                        models={"base": "0" * 64})
        created = start + timedelta(seconds=30 * 24 * 3600 * n / count)
        image = Image.new("RGB", (64, 64), (n % 256, (n // 256) % 256, 128))
        data = result_png(image, recipe, created)
        began = time.perf_counter()
        history.save([(data, recipe)], None, created)
        spent += time.perf_counter() - began
    return spent / count


def timed(action: Callable[[], object], runs: int) -> float:
    """Median wall seconds of `action` over `runs` calls (after one warm-up)."""
    action()
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        action()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def measure(history: History, runs: int) -> dict[str, float]:
    last = history.page(None, size=PAGE).pages
    since = (datetime.now() - timedelta(days=7)).date()
    some_id = history.page(None, size=1).entries[0].id
    cases: dict[str, Callable[[], object]] = {
        "list page 1 (24 newest)": lambda: history.page(None, number=1, size=PAGE),
        f"list page {last // 2} (middle)": lambda: history.page(None, number=last // 2,
                                                                 size=PAGE),
        f"list page {last} (last)": lambda: history.page(None, number=last, size=PAGE),
        "search 'corgi' (common word)": lambda: history.page(None, Query("corgi"), size=PAGE),
        "search 'corgi watercolor dusk'": lambda: history.page(
            None, Query("corgi watercolor dusk"), size=PAGE),
        "search 'light' (prefix)": lambda: history.page(None, Query("light"), size=PAGE),
        "search 'corgi' + tab + last 7 days": lambda: history.page(
            None, Query("corgi", "generate", since=since), size=PAGE),
        "search 'zebra' (no match)": lambda: history.page(None, Query("zebra"), size=PAGE),
        "search '猫' (one character inside)": lambda: history.page(None, Query("猫"), size=PAGE),
        "search 'タワー' (characters inside)": lambda: history.page(None, Query("タワー"),
                                                                  size=PAGE),
        "open one picture": lambda: history.get(None, some_id),
    }
    figures = {name: timed(action, runs) for name, action in cases.items()}
    figures["open the index (quick_check + FTS check)"] = timed(
        lambda: HistoryIndex(history.index.path).close(), max(1, runs // 4))
    figures["start-up sync, nothing changed"] = timed(history.sync, max(1, runs // 4))
    figures["rebuild from the PNGs"] = timed(history.rebuild, 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", metavar="FILE", help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="glide-bench-history-") as folder:
        history = History.open(Path(folder) / "outputs")
        began = time.perf_counter()
        per_save = fill(history, args.count)
        print(f"saved and indexed {args.count} pictures in {time.perf_counter() - began:.1f} s "
              f"({per_save * 1000:.2f} ms per save: atomic PNG write + fsync + index row)")
        figures = measure(history, args.runs)
        history.close()
    for name, seconds in figures.items():
        print(f"{name:<40} {seconds * 1000:9.2f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps({"count": args.count, "save_s": per_save,
                                               "seconds": figures}, indent=2))


if __name__ == "__main__":
    main()

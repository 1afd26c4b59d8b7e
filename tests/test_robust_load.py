"""Load and isolation (issue #7, items 2 and 4), against `app.py --models tiny` on 127.0.0.1.

One worker runs requests one at a time in arrival order; `--queue-size 20` lets 20 wait and
turns the next away with "Queue is full"; `--max-memory 25MB` holds fewer than the tiny
models' 63 MB, so models are evicted and reloaded while the load runs. Each request's
images are compared bit for bit with the same request run alone, and a request stopped at
a random step leaves nothing behind: the same request then gives the images of a fresh
process.
"""

from __future__ import annotations

import math
import random
import re
import threading
import time
from dataclasses import dataclass, field

import httpx
import numpy as np
import pytest
from app_server import running_app
from gradio_client import Client
from gradio_client.utils import QueueError, Status
from PIL import Image
from robust_api import FAST, editor
from robust_cases import record
from robust_files import mask_layer, rgb_png

from glide_ui.images import read_recipe

QUEUE_SIZE = 20
BUDGET = 25_000_000  # bytes of fp32 weights: fewer than the tiny models' 63 MB
CLIENTS = 4
LONG = {"steps": 30, "upsample": False}  # long enough to stop half way
ALONE = (0, 1, 2, 3, 4, 9, 14, 19)  # loads run again alone: each kind, and the drawn seeds


@dataclass
class Reference:
    """A request and the images it gave as the first run of a fresh process."""

    endpoint: str
    params: dict
    pixels: list[np.ndarray] = field(default_factory=list)


def pixels(result) -> list[np.ndarray]:
    return [np.asarray(Image.open(item["image"])) for item in result[2]]


def _references() -> list[Reference]:
    return [Reference("/generate", {"prompt": "a fresh corgi", "seed": 1234, "batch_size": 2,
                                    "guidance_scale": 4.0, **LONG}),
            Reference("/clip_guided", {"prompt": "a fresh cube", "seed": 77, **LONG})]


@pytest.fixture(scope="module")
def app():
    with running_app("--queue-size", str(QUEUE_SIZE), "--max-memory", str(BUDGET),
                     "--dtype", "fp32") as running:  # fp32: the model sizes above
        client = Client(running.url, verbose=False)
        references = _references()
        for reference in references:  # the first requests this process serves
            reference.pixels = pixels(client.predict(api_name=reference.endpoint,
                                                     **reference.params))
        yield running, references


# --- isolation: Stop at any step ----------------------------------------------------------

STEP = re.compile(r"step (\d+)/(\d+)")


def _stop_at(job, step: int) -> int:
    """Follow `job` until its progress reaches `step`, then cancel it; the step reached."""
    reached = 0
    for update in job:
        match = STEP.search(update[1]) if isinstance(update[1], str) else None
        if match:
            reached = int(match.group(1))
            if reached >= step:
                break
    assert job.cancel()
    deadline = time.monotonic() + 60
    while job.status().code != Status.CANCELLED and time.monotonic() < deadline:
        time.sleep(0.1)
    assert job.status().code == Status.CANCELLED
    return reached


def test_stop_at_a_random_step_then_the_same_request_gives_a_fresh_process_images(app):
    running, references = app
    client = Client(running.url, verbose=False)
    rng = random.Random(20261121)
    for reference in references:
        stopped = []
        for _ in range(2):
            job = client.submit(api_name=reference.endpoint, **reference.params)
            stopped.append(_stop_at(job, rng.randint(2, LONG["steps"] - 10)))
        assert all(0 < step < LONG["steps"] for step in stopped), stopped
        again = pixels(client.predict(api_name=reference.endpoint, **reference.params))
        assert len(again) == len(reference.pixels)
        assert all(np.array_equal(a, b) for a, b in zip(again, reference.pixels, strict=True))
        record("isolation", f"Stop {reference.endpoint} at a random step (twice), run again",
               f"stopped at steps {stopped} of {LONG['steps']}; rerun bit-identical to the "
               "fresh process's first run", 2)


# --- load: 4 clients, 20 queued, a full queue, a memory budget ----------------------------


@dataclass
class Load:
    endpoint: str
    params: dict
    client: int
    job: object = None


def _requests(folder) -> list[Load]:
    picture = editor(rgb_png(folder), mask_layer(folder))
    loads = []
    for i in range(QUEUE_SIZE):
        seed = -1 if i % 5 == 4 else 1000 + 10 * i  # some draw their seed on the server
        kind = i % 4
        if kind == 0:
            load = Load("/generate", {"prompt": f"load {i} corgi", "seed": seed,
                                      "batch_size": 2, **FAST}, i % CLIENTS)
        elif kind == 1:
            load = Load("/clip_guided", {"prompt": f"load {i} cube", "seed": seed, **FAST},
                        i % CLIENTS)
        elif kind == 2:
            load = Load("/inpaint", {"mask_editor": picture, "prompt": f"load {i} hat",
                                     "seed": seed, **FAST}, i % CLIENTS)
        else:
            load = Load("/generate", {"prompt": f"load {i} fox", "seed": seed, "batch_size": 2,
                                      "rank_with_clip": True, **FAST}, i % CLIENTS)
        loads.append(load)
    return loads


class StatusPoller(threading.Thread):
    """Reads /models_status every 0.1 s while the load runs. It is served outside the queue
    (POST /gradio_api/run/...), so it answers even while the queue is full."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.http = httpx.Client(base_url=url, timeout=30)
        self.samples: list[dict] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            response = self.http.post("gradio_api/run/models_status", json={"data": []})
            response.raise_for_status()
            self.samples.append(response.json()["data"][0])
            time.sleep(0.1)


def _server_order(running, count: int) -> list[int]:
    """The order in which the server finished the loads: when it wrote each one's result
    files (the client's own order of completion also depends on its downloads)."""
    written = {}
    for path in (running.temp_dir / "gradio" / "glide-ui-results").glob("*/*.png"):
        match = re.search(r"-load-(\d+)-", path.name)
        if match:
            index = int(match.group(1))
            written[index] = min(written.get(index, math.inf), path.stat().st_mtime_ns)
    assert len(written) == count, sorted(written)
    return sorted(written, key=written.get)


def _wait_in_queue(job, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while job.status().code in (Status.STARTING, Status.JOINING_QUEUE) \
            and time.monotonic() < deadline:
        time.sleep(0.02)


def test_four_clients_twenty_queued_a_full_queue_and_the_memory_budget(app, tmp_path):
    running, _ = app
    clients = [Client(running.url, verbose=False) for _ in range(CLIENTS)]
    poller = StatusPoller(running.url)
    poller.start()
    loads = _requests(tmp_path)
    blocker = clients[0].submit(prompt="blocker", steps=1000, upsample=False,
                                api_name="/generate")
    for update in blocker:
        if isinstance(update[0], str):  # its first preview: the worker is busy
            break
    try:
        for load in loads:  # one by one, so the server sees them in this order
            load.job = clients[load.client].submit(api_name=load.endpoint, **load.params)
            _wait_in_queue(load.job)
            assert load.job.status().code == Status.IN_QUEUE, load.job.status()
        extra = [clients[i].submit(prompt="one too many", seed=1, api_name="/generate",
                                   **FAST) for i in range(3)]
        for job in extra:
            with pytest.raises(QueueError, match="Queue is full"):
                job.result(timeout=60)
        record("load", f"{len(extra)} requests beyond --queue-size {QUEUE_SIZE} (queue full)",
               "refused: 'Queue is full. Please try again later.'", len(extra))
    finally:
        blocker.cancel()
    deadline = time.monotonic() + 300
    while not all(load.job.done() for load in loads) and time.monotonic() < deadline:
        time.sleep(0.1)
    poller.stop.set()
    poller.join()

    results = [load.job.result() for load in loads]
    finished = _server_order(running, len(loads))
    assert finished == list(range(len(loads))), f"finished in the order {finished}"
    record("load", f"{CLIENTS} clients, {QUEUE_SIZE} requests queued behind a running one "
           "(/generate, /clip_guided, /inpaint, /generate + ranking)",
           "all finished, in the order they were queued", QUEUE_SIZE)

    drawn, compared = [], 0
    for index, (load, result) in enumerate(zip(loads, results, strict=True)):
        recipes = [read_recipe(item["image"]) for item in result[2]]
        assert {r.prompt for r in recipes} == {load.params["prompt"]}, load.params
        seeds = sorted(r.seed for r in recipes)
        first = seeds[0]
        if load.params["seed"] == -1:
            drawn.append(first)
        else:
            assert first == load.params["seed"]
        assert seeds == list(range(first, first + len(seeds)))
        if index not in ALONE:
            continue
        compared += 1
        alone = clients[0].predict(api_name=load.endpoint, **{**load.params, "seed": first})
        assert [item["caption"] for item in alone[2]] == [item["caption"] for item in result[2]]
        assert all(np.array_equal(a, b)
                   for a, b in zip(pixels(alone), pixels(result), strict=True)), load.params
    assert len(set(drawn)) == len(drawn) == QUEUE_SIZE // 5
    record("isolation", f"{QUEUE_SIZE} concurrent requests from {CLIENTS} clients, each its own "
           "prompt and seed", "each result carries only its own prompt and seeds (the "
           f"{len(drawn)} drawn seeds all different)", QUEUE_SIZE)
    record("isolation", f"{compared} of those (every endpoint, fixed and drawn seeds) run again "
           "alone", "bit-identical images, same order", compared)

    used = [sample["used_bytes"] for sample in poller.samples]
    loaded_sets = {tuple(sorted(m["name"] for m in sample["loaded"]))
                   for sample in poller.samples}
    assert len(poller.samples) > 20 and all(s["budget_bytes"] == BUDGET for s in poller.samples)
    assert max(used) <= BUDGET, max(used)
    sizes = {m["name"]: m["bytes"] for sample in poller.samples for m in sample["loaded"]}
    assert sum(sizes.values()) > BUDGET, sizes  # all were used, so some were evicted
    record("load", f"memory budget --max-memory {BUDGET / 1e6:g}MB (all tiny models: 63 MB)",
           f"loaded weights never above it in {len(used)} samples (peak "
           f"{max(used) / 1e6:.1f} MB, {len(loaded_sets)} different sets loaded)", len(used))

"""`app.py --ray`: the page as a front, the pipelines on two Ray Serve replicas of the tiny
models, on a local Ray instance of this machine's 2 cores (one Ray start-up for the module).

Requests run two at a time, each image equals the single-process pipeline's for its recipe,
a replica killed mid-run ends only its own request (with a message) and is replaced, and
Stop frees the replica that ran the request.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np
import psutil
import pytest
import ray
import torch
from app_server import ROOT, free_port
from gradio_client import Client
from gradio_client.exceptions import AppError
from PIL import Image
from ray import serve
from test_app_api import server_goes_idle

from glide_ui import server
from glide_ui.cli import parse_serve_args
from glide_ui.pipelines import Result, Text2ImRequest, text2im
from glide_ui.replicas import APP_NAME, DEPLOYMENT_NAME, RayRunner, ReplicaSettings, Served

REPLICAS = 2
FAST = {"steps": 6, "upsample": True, "upsample_steps": "2"}
LONG = {"steps": 1000, "upsample": False}  # far longer than the test waits on it


@dataclass
class Front:
    url: str
    runner: RayRunner


@pytest.fixture(scope="module")
def front():
    """The app with `--ray --replicas 2`, in this process (to see its runner), on a local
    Ray of 2 CPUs with a small object store."""
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 2**20)
    runners: list[RayRunner] = []
    start_replicas = server.start_replicas
    server.start_replicas = lambda args: runners.append(start_replicas(args)) or runners[-1]
    port = free_port()
    try:
        demo, launch = server.build(parse_serve_args(
            ["--ray", "--replicas", str(REPLICAS), "--models", "tiny", "--device", "cpu",
             "--no-save", "--port", str(port)]))
    finally:
        server.start_replicas = start_replicas
    demo.launch(prevent_thread_lock=True, quiet=True, **launch)
    try:
        yield Front(f"http://127.0.0.1:{port}/", runners[0])
    finally:
        demo.close()
        serve.shutdown()
        ray.shutdown()


def generate(client: Client, prompt: str, seed: int, **settings):
    return client.submit(prompt=prompt, seed=seed, api_name="/generate", **settings)


def first_update(job) -> float:
    """When the job's first update came (its pipeline is running on a replica)."""
    for _ in job:
        return time.monotonic()
    raise AssertionError(f"the job ended without an update: {job.status()}")


def served_by(front: Front, prompt: str) -> Served:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for replica, args in list(front.runner.running.values()):
            if args[0].prompt == prompt:
                return replica
        time.sleep(0.1)
    raise AssertionError(f"no replica runs {prompt!r}")


def running_replicas() -> int:
    deployment = serve.status().applications[APP_NAME].deployments[DEPLOYMENT_NAME]
    return deployment.replica_states.get("RUNNING", 0)


def wait_for_replicas(count: int = REPLICAS, limit: float = 180) -> None:
    deadline = time.monotonic() + limit
    while running_replicas() < count:
        assert time.monotonic() < deadline, f"Ray did not bring back {count} replicas"
        time.sleep(0.5)


def max_overlap(spans: list[tuple[float, float]], margin: float = 0.5) -> int:
    """The most spans running at one moment (each end pulled in by `margin` seconds, for
    the time an update takes to reach its client)."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end - margin, -1) for _, end in spans])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def reference(prompt: str, seed: int, manager) -> list[np.ndarray]:
    """The single-process pipeline's pixels for the recipe, with the torch threads of one
    replica (on a CPU, the number of threads changes how sums are split, hence the last
    bits of the floats, and so a few pixels)."""
    request = Text2ImRequest(prompt=prompt, seed=seed, base_respacing=str(FAST["steps"]),
                             upsample=True, upsample_respacing=FAST["upsample_steps"])
    threads = torch.get_num_threads()
    torch.set_num_threads(ReplicaSettings(replicas=REPLICAS).torch_threads())
    try:
        result = [e for e in text2im(request, manager) if isinstance(e, Result)][0]
    finally:
        torch.set_num_threads(threads)
    return [np.asarray(image) for image in result.images]


def test_four_clients_run_two_at_a_time_with_the_single_process_pixels(front, manager):
    recipes = [(f"client {n}", 100 + n) for n in range(4)]
    spans: dict[int, tuple[float, float]] = {}
    results: dict[int, tuple] = {}

    def client_run(n: int) -> None:
        job = generate(Client(front.url, verbose=False), *recipes[n], **FAST)
        started = first_update(job)
        results[n] = job.result()
        spans[n] = (started, time.monotonic())

    threads = [threading.Thread(target=client_run, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert sorted(results) == [0, 1, 2, 3]
    assert max_overlap(list(spans.values())) == REPLICAS, spans
    for n, (prompt, seed) in enumerate(recipes):
        assert captions(results[n]) == [f"seed {seed}"]
        with Image.open(results[n][2][0]["image"]) as image:
            served = np.asarray(image.convert("RGB"))
        np.testing.assert_array_equal(served, reference(prompt, seed, manager)[0])


def both_replicas_busy(front: Front, first: tuple, second: tuple) -> tuple:
    """Jobs (prompt, seed, settings) `first`, then `second` once `first` streams (so each
    has its own replica): both jobs, once `second` streams too, and `first`'s replica."""
    wait_for_replicas()
    jobs = []
    for prompt, seed, settings in (first, second):
        jobs.append(generate(Client(front.url, verbose=False), prompt, seed, **settings))
        first_update(jobs[-1])
    return jobs[0], jobs[1], served_by(front, first[0])


def captions(result: tuple) -> list[str]:
    return [item["caption"] for item in result[2]]


def generated(front: Front, prompt: str, seed: int) -> tuple:
    return Client(front.url, verbose=False).predict(prompt=prompt, seed=seed,
                                                    api_name="/generate", **FAST)


def test_a_replica_killed_mid_run_ends_only_its_request(front):
    victim, other, replica = both_replicas_busy(front, ("victim", 1, LONG), ("other", 2, FAST))
    ray.kill(replica.actor, no_restart=True)
    with pytest.raises(AppError, match="replica was lost"):
        victim.result()
    assert captions(other.result()) == ["seed 2"]
    assert captions(generated(front, "after", 3)) == ["seed 3"]
    wait_for_replicas()  # Ray replaced the killed replica


def test_stop_frees_the_replica_that_ran_the_request(front):
    stopped, busy, replica = both_replicas_busy(front, ("stopped", 4, LONG), ("busy", 5, LONG))
    try:
        assert stopped.cancel()
        assert server_goes_idle(psutil.Process(replica.pid)), "the replica kept working"
        assert all(args[0].prompt != "stopped" for _, args in front.runner.running.values())
        assert captions(generated(front, "next", 6)) == ["seed 6"]
        assert not busy.done(), "the next request waited for the other replica"
    finally:
        busy.cancel()


def test_without_ray_the_flag_says_how_to_install_it():
    """The default install has no Ray: `--ray` then ends in one line naming the extra."""
    hide_ray = "import sys; sys.modules['ray'] = None; import app; app.main(sys.argv[1:])"
    finished = subprocess.run([sys.executable, "-c", hide_ray, "--ray", "--models", "tiny",
                               "--no-save"], cwd=ROOT, capture_output=True, text=True,
                              timeout=300)
    assert finished.returncode != 0
    assert "pip install 'glide-ui[serve]'" in finished.stderr
    assert "Traceback" not in finished.stderr

"""`app.py --ray`: the page as a front, the pipelines on two Ray Serve replicas of the tiny
models, on a local Ray instance of this machine's 2 cores (one Ray start-up for the module),
History on (a temporary outputs folder).

Requests run two at a time, each image equals the single-process pipeline's for its recipe,
a replica killed before anything streamed has its request sent once more (same pixels), a
replica killed mid-run ends only its own request (with a message) and is replaced, neither
loss leaves a broken file or index row, and Stop frees the replica that ran the request. The
kills come at known points: `replica_hold` holds a request inside its replica there.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

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
from replica_hold import AFTER_PREVIEW, BEFORE_STREAMING, held_pids, release, runtime_env
from test_app_api import server_goes_idle

from glide_ui import server
from glide_ui.cli import parse_serve_args
from glide_ui.history import Entry, History
from glide_ui.pipelines import Result, Text2ImRequest, text2im
from glide_ui.replicas import APP_NAME, DEPLOYMENT_NAME, RayRunner, ReplicaSettings, Served

REPLICAS = 2
FAST = {"steps": 6, "upsample": True, "upsample_steps": "2"}
LONG = {"steps": 1000, "upsample": False}  # far longer than the test waits on it


@dataclass
class Front:
    url: str
    runner: RayRunner
    outputs: Path  # History's folder
    holds: Path  # replica_hold's


@pytest.fixture(scope="module")
def front(tmp_path_factory):
    """The app with `--ray --replicas 2 --outputs DIR`, in this process (to see its runner),
    on a local Ray of 2 CPUs with a small object store, its replicas holding the requests
    that ask to be held (see replica_hold)."""
    holds, outputs = tmp_path_factory.mktemp("holds"), tmp_path_factory.mktemp("outputs")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 2**20,
             runtime_env=runtime_env(holds))
    runners: list[RayRunner] = []
    start_replicas = server.start_replicas
    server.start_replicas = lambda args: runners.append(start_replicas(args)) or runners[-1]
    port = free_port()
    try:
        demo, launch = server.build(parse_serve_args(
            ["--ray", "--replicas", str(REPLICAS), "--models", "tiny", "--device", "cpu",
             "--outputs", str(outputs), "--port", str(port)]))
    finally:
        server.start_replicas = start_replicas
    demo.launch(prevent_thread_lock=True, quiet=True, **launch)
    try:
        yield Front(f"http://127.0.0.1:{port}/", runners[0], outputs, holds)
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


def replica_pids() -> set[int]:
    """The replicas' processes (Ray's workers descend from this process, which started it)."""
    name = f"ray::ServeReplica:{APP_NAME}:{DEPLOYMENT_NAME}"
    pids = set()
    for process in psutil.Process().children(recursive=True):
        try:
            if process.name() == name:
                pids.add(process.pid)
        except psutil.Error:  # gone meanwhile
            continue
    return pids


def wait_for_replicas(count: int = REPLICAS, limit: float = 180) -> None:
    """Until Serve counts `count` replicas running and as many replica processes live (a
    killed replica still counts as running until Serve's health check notices)."""
    deadline = time.monotonic() + limit
    while running_replicas() != count or len(replica_pids()) != count:
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


def pixels(path: str | Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


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
        np.testing.assert_array_equal(pixels(results[n][2][0]["image"]),
                                      reference(prompt, seed, manager)[0])


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


def kill(pid: int) -> None:
    """SIGKILL a replica's process (as a crash or the out-of-memory killer would), and wait
    until it is gone."""
    process = psutil.Process(pid)
    process.kill()
    process.wait(timeout=30)


def first_preview(job) -> None:
    """Wait until the job's page shows a preview: its run has streamed back."""
    for output in job:
        if output[0]:
            return
    raise AssertionError(f"the job ended without a preview: {job.status()}")


def whole_history(front: Front) -> list[Entry]:
    """History's rows, once checked that no loss broke the outputs folder: no temporary
    file is left (nothing is being written now), every PNG decodes, and the rows and the
    PNGs name the same files."""
    assert not list(front.outputs.rglob("*.tmp")), "a write was left half done"
    pngs = sorted(path.relative_to(front.outputs).as_posix()
                  for path in front.outputs.rglob("*.png"))
    for png in pngs:
        with Image.open(front.outputs / png) as image:
            image.load()
    history = History(front.outputs)
    try:
        rows = history.page(None, size=len(pngs) + 10).entries
    finally:
        history.close()
    assert sorted(row.file for row in rows) == pngs
    return rows


def kept(front: Front, prompt: str) -> list[np.ndarray]:
    """The pixels of the pictures History keeps for `prompt`."""
    return [pixels(front.outputs / row.file) for row in whole_history(front)
            if row.prompt == prompt]


def test_a_replica_lost_before_anything_streamed_has_its_request_sent_once_more(
        front, manager, caplog):
    wait_for_replicas()
    prompt, seed = f"{BEFORE_STREAMING}resent", 7
    job = generate(Client(front.url, verbose=False), prompt, seed, **FAST)
    try:
        [lost] = held_pids(front.holds, prompt, 1)
        assert not job.outputs(), "the request streamed before its hold"
        with caplog.at_level(logging.WARNING, logger="glide_ui.replicas"):
            kill(lost)
            release(front.holds, prompt)
            result = job.result(timeout=120)
    finally:
        release(front.holds, prompt)
    first, again = held_pids(front.holds, prompt, 2)  # no third attempt
    assert first == lost and again != lost, "not sent once more, to a living replica"
    assert [record.getMessage() for record in caplog.records
            if record.name == "glide_ui.replicas" and record.levelno >= logging.WARNING] == \
        ["replica lost before text2im streamed anything; sending it again"]
    expected = reference(prompt, seed, manager)[0]
    assert captions(result) == [f"seed {seed}"]
    np.testing.assert_array_equal(pixels(result[2][0]["image"]), expected)
    [saved] = kept(front, prompt)  # saved once, whole
    np.testing.assert_array_equal(saved, expected)
    wait_for_replicas()  # Ray replaced the killed replica


def test_a_replica_killed_mid_run_ends_only_its_request(front, manager):
    """Both requests hold after their first preview, each on its own replica; the victim's
    replica is killed there, then the other request goes on."""
    wait_for_replicas()
    recipes = [(f"{AFTER_PREVIEW}victim", 1), (f"{AFTER_PREVIEW}other", 2)]
    jobs, pids = [], []
    try:
        for prompt, seed in recipes:  # the second once the first holds its replica
            jobs.append(generate(Client(front.url, verbose=False), prompt, seed, **FAST))
            pids += held_pids(front.holds, prompt, 1)
            first_preview(jobs[-1])
        assert pids[0] != pids[1]
        kill(pids[0])
        with pytest.raises(AppError, match="replica was lost"):
            jobs[0].result(timeout=60)
    finally:
        for prompt, _ in recipes:
            release(front.holds, prompt)
    other = jobs[1].result(timeout=120)
    expected = reference(*recipes[1], manager)[0]
    assert captions(other) == ["seed 2"]
    np.testing.assert_array_equal(pixels(other[2][0]["image"]), expected)
    assert kept(front, recipes[0][0]) == []
    [saved] = kept(front, recipes[1][0])
    np.testing.assert_array_equal(saved, expected)
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

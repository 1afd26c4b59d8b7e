"""Ray Serve replicas (`app.py --ray`): requests per minute with 1 and 2 replicas for the
same load, and the start-up time of the Ray path.

    python -m bench.serve [--requests 8] [--steps 20] [--replicas 1,2]

Tiny models on CPU, on a local Ray instance of this machine's cores. The load is
`--requests` text2im requests (batch 1, `--steps` base steps, the upsampler with 3 steps)
sent at once from as many threads through the page's runner (what the page's handlers
call), after one warm-up request per replica (the first request of a replica builds its
models). Each replica gets cores / replicas torch threads, so the replicas do not fight
over cores. For comparison the same load runs in this process, one request at a time, as
the single-process app does, with all the cores.

Start-up: `ray.init` of a local instance, then each deployment from `serve.run` to all
replicas ready (what `--ray` adds to the app's start-up).
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor

import ray
import torch
from ray import serve

from glide_ui.models import ModelManager
from glide_ui.pipelines import Text2ImRequest, text2im
from glide_ui.replicas import APP_NAME, ReplicaSettings, start


def load(count: int, steps: int) -> list[Text2ImRequest]:
    return [Text2ImRequest(prompt=f"request {n}", seed=n, base_respacing=str(steps),
                           upsample_respacing="3") for n in range(count)]


def per_minute(run, requests: list[Text2ImRequest], workers: int) -> float:
    """Requests per minute for `requests` run by `workers` threads, each `run(request)`."""
    started = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(run, requests):
            pass
    return len(requests) / (time.monotonic() - started) * 60


def single_process(requests: list[Text2ImRequest]) -> float:
    manager = ModelManager(model_set="tiny", device="cpu")
    list(text2im(requests[0], manager))  # warm-up: build the models
    return per_minute(lambda request: list(text2im(request, manager)), requests, 1)


def replicated(replicas: int, requests: list[Text2ImRequest]) -> tuple[float, float]:
    """(seconds to deploy, requests per minute) with `replicas` replicas."""
    started = time.monotonic()
    runner = start(ReplicaSettings(replicas=replicas, models="tiny", device="cpu"))
    deployed = time.monotonic() - started
    warm = load(replicas, 2)
    per_minute(lambda request: list(runner.run(text2im, request)), warm, replicas)
    rate = per_minute(lambda request: list(runner.run(text2im, request)), requests,
                      len(requests))
    serve.delete(APP_NAME)
    return deployed, rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--replicas", default="1,2", help="replica counts to measure")
    args = parser.parse_args()
    requests = load(args.requests, args.steps)
    cores = os.cpu_count() or 1
    print(f"load: {args.requests} text2im requests, tiny models, {args.steps} base + 3 "
          f"upsampler steps; {cores} cores; load average {os.getloadavg()[0]:.2f}")
    started = time.monotonic()
    ray.init(num_cpus=cores, include_dashboard=False, object_store_memory=100 * 2**20)
    print(f"ray.init (local instance): {time.monotonic() - started:.1f} s")
    for replicas in (int(n) for n in args.replicas.split(",")):
        deployed, rate = replicated(replicas, requests)
        threads = ReplicaSettings(replicas=replicas).torch_threads()
        print(f"{replicas} replica(s) x {threads} thread(s): deployed in {deployed:.1f} s, "
              f"{rate:.1f} requests/min")
    serve.shutdown()
    ray.shutdown()
    print(f"single process ({torch.get_num_threads()} threads, one at a time): "
          f"{single_process(requests):.1f} requests/min")


if __name__ == "__main__":
    main()

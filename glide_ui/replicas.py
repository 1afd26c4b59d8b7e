"""Serve the pipelines on Ray Serve replicas: many requests at once, on one machine's GPUs or
a cluster's (`glide-ui serve --ray`, `python app.py --ray`).

Each replica owns a `ModelManager` on its device and runs the same pipeline generators as
one process does, streaming their events back (Serve's streaming responses); the page keeps
its queue, history and HTTP API and hands every run to a `RayRunner`. Ray places the
replicas, routes each request to a free one (one request per replica at a time) and starts
a new replica when one dies. Needs the `serve` extra: `pip install "glide-ui[serve]"`.

A pipeline travels as a reference to its function (module and name, as pickle sends a
function), so any generator in `glide_ui.pipelines` that takes `manager=` runs on a replica
without code here.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import ray
import torch
from ray import serve
from ray.exceptions import RayActorError, RayTaskError

from glide_ui.errors import GlideUIError
from glide_ui.models import ModelManager
from glide_ui.pipelines.events import Event

log = logging.getLogger("glide_ui.replicas")

APP_NAME = "glide-ui"
DEPLOYMENT_NAME = "pipelines"
PIPELINE_PACKAGE = "glide_ui.pipelines"
LOST = ("The worker running this request stopped (its replica was lost), so the request "
        "ended. Run it again: the other workers go on and a new one is starting.")


class ReplicaLost(GlideUIError):
    """The replica running a request died (a crash, out of memory, a lost node)."""


@dataclass(frozen=True)
class ReplicaSettings:
    """How many replicas, what each holds, and what it may use.

    `gpus` per replica (0: CPU replicas); `threads`: torch's intra-op threads per replica
    (0: this machine's cores shared out among CPU replicas, 1 for a GPU replica, so that
    replicas do not fight over cores). `models`, `device`, `dtype`, `max_memory`,
    `checkpoints` are each replica's `ModelManager` settings.
    """

    replicas: int = 1
    gpus: float = 0.0
    threads: int = 0
    models: str = "official"
    device: str | None = None
    dtype: str | None = None
    max_memory: str | None = None
    checkpoints: str | None = None

    def torch_threads(self) -> int:
        if self.threads > 0:
            return self.threads
        if self.gpus > 0:
            return 1
        return max(1, (os.cpu_count() or 1) // max(1, self.replicas))


@dataclass(frozen=True)
class Served:
    """The first item of every stream: which replica runs the request (for the log, and to
    reach the replica's actor: `ray.kill(served.actor)`)."""

    actor_name: str
    actor: Any  # ray.actor.ActorHandle
    pid: int


@dataclass(frozen=True)
class Refused:
    """A stream's last item when the pipeline refused the request or failed: its error,
    sent as data (the replica is fine; no traceback in its log for a user's mistake)."""

    error: GlideUIError


class PipelineReplica:
    """The Serve deployment's class: one `ModelManager`, one request at a time."""

    def __init__(self, settings: ReplicaSettings) -> None:
        threads = settings.torch_threads()
        torch.set_num_threads(threads)
        self.manager = ModelManager(model_set=settings.models, device=settings.device,
                                    dtype=settings.dtype, max_memory=settings.max_memory,
                                    checkpoints_dir=settings.checkpoints)
        # One thread runs the pipeline: a step at a time, so that a cancelled call closes
        # the generator between two steps (a thread cannot be interrupted mid-step).
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="pipeline",
                                         initializer=torch.set_num_threads, initargs=(threads,))

    async def stream(self, pipeline: Callable[..., Iterator[Event]], args: tuple,
                     kwargs: dict) -> Any:
        """`pipeline(*args, manager=..., **kwargs)`'s events, after a `Served` marker.

        Serve cancels this call when the caller stops reading (Stop): the pipeline's
        generator is then closed on its thread, which unwinds the sampler and frees the
        replica."""
        _check_pipeline(pipeline)
        context = ray.get_runtime_context()
        yield Served(context.get_actor_name() or "", context.current_actor, os.getpid())
        loop = asyncio.get_running_loop()
        events = pipeline(*args, manager=self.manager, **kwargs)
        try:
            while (event := await loop.run_in_executor(self.worker, next, events, None)) \
                    is not None:
                yield event
        except GlideUIError as error:
            yield Refused(error)
        finally:  # after the step in flight, on the thread that ran it
            await asyncio.shield(loop.run_in_executor(self.worker, events.close))

    def call(self, function: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        """`function(*args, manager=..., **kwargs)`: a pipeline helper that returns a value
        (CLIP scores of images)."""
        _check_pipeline(function)
        return function(*args, manager=self.manager, **kwargs)


def _check_pipeline(function: Callable) -> None:
    if not getattr(function, "__module__", "").startswith(PIPELINE_PACKAGE):
        raise GlideUIError(f"Replicas run the pipelines of {PIPELINE_PACKAGE} only, not "
                           f"{getattr(function, '__qualname__', function)!r}.")


class RayRunner:
    """Runs pipelines on the replicas of the deployment behind `handle` (see `start`).

    `run` streams a pipeline's events; a request whose replica dies before any event came
    back is sent once more (to another replica, or the restarted one); one that dies later
    ends with `ReplicaLost`. An error the pipeline raises comes back as itself (a
    `RequestError` stays one). Closing the stream (the page's Stop) cancels the call on its
    replica.
    """

    shares_files = False  # replicas may run on other machines: images travel as pixels

    def __init__(self, handle: Any, replicas: int) -> None:
        self.handle = handle
        self.slots = replicas
        self.running: dict[int, tuple[Served, tuple]] = {}  # stream id -> replica, arguments

    def run(self, pipeline: Callable[..., Iterator[Event]], *args: Any, **kwargs: Any) \
            -> Iterator[Event]:
        streamed = False
        for attempt in (1, 2):
            try:
                with closing(self._stream(pipeline, args, kwargs)) as events:
                    for event in events:
                        streamed = True
                        yield event
                return
            except RayActorError:
                if streamed or attempt == 2:
                    raise ReplicaLost(LOST) from None
                log.warning("replica lost before %s streamed anything; sending it again",
                            pipeline.__name__)

    def _stream(self, pipeline: Callable, args: tuple, kwargs: dict) -> Iterator[Event]:
        response = self.handle.options(stream=True).stream.remote(pipeline, args, kwargs)
        key = id(response)
        try:
            for item in response:
                if isinstance(item, Served):
                    self.running[key] = (item, args)
                    log.info("%s runs on %s (pid %d)", pipeline.__name__, item.actor_name,
                             item.pid)
                elif isinstance(item, Refused):
                    raise item.error
                else:
                    yield item
        except RayTaskError as error:
            raise _cause(error) from None
        finally:
            self.running.pop(key, None)
            response.cancel()  # Stop (the generator closed); nothing once it has finished

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return self._call(function, args, kwargs)
        except RayActorError:  # nothing came back: once more
            log.warning("replica lost during %s; sending it again", function.__name__)
        try:
            return self._call(function, args, kwargs)
        except RayActorError:
            raise ReplicaLost(LOST) from None

    def _call(self, function: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        try:
            return self.handle.call.remote(function, args, kwargs).result()
        except RayTaskError as error:
            raise _cause(error) from None


def _cause(error: RayTaskError) -> BaseException:
    """The exception the pipeline raised on the replica (its message is the user's)."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, Exception) else error


def start(settings: ReplicaSettings, address: str | None = None, **init: Any) -> RayRunner:
    """Join the Ray cluster at `address` ("auto", "ray://head:10001"; None: start a local
    one unless this process already joined one, `init` going to `ray.init`), deploy the
    replicas and wait until they are up. Serve's HTTP proxy stays off: the page is the
    front."""
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, **init)
    serve.start(proxy_location="Disabled")
    threads = settings.torch_threads()
    deployment = serve.deployment(
        PipelineReplica, name=DEPLOYMENT_NAME, num_replicas=settings.replicas,
        max_ongoing_requests=1,
        ray_actor_options={"num_cpus": 1 if settings.gpus else threads,
                           "num_gpus": settings.gpus,
                           "runtime_env": {"env_vars": {"OMP_NUM_THREADS": str(threads)}}})
    handle = serve.run(deployment.bind(settings), name=APP_NAME, route_prefix=None)
    return RayRunner(handle, settings.replicas)

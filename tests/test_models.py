"""ModelManager: lazy loading, tiny weights, the memory budget, pinning, threads, status."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import threading
import time
from pathlib import Path

import pytest
import torch
from test_checkpoints import FileServer, _RunsCode, server  # noqa: F401 (fixture)

from glide_ui import checkpoints as ckpt
from glide_ui import model_build, models
from glide_ui.compute import ComputePath
from glide_ui.errors import GlideUIError
from glide_ui.glide.nn import (
    PREPACKED_DTYPES,
    packed_bytes,
    prepack_allowance,
    released_bytes,
    resident_bytes,
)
from glide_ui.glide.options import clip_config, tiny_options
from glide_ui.models import ModelManager, ModelMemoryError

GLIDE = ("base", "upsample", "base-inpaint", "upsample-inpaint", "clip/image-enc",
         "clip/text-enc")
MB = 1_000_000


@pytest.fixture(scope="module")
def sizes() -> dict[str, int]:
    """Bytes of each tiny model in fp32, as the manager reports them."""
    manager = ModelManager("tiny", device="cpu", dtype="fp32")
    for name in ("base", "upsample", "base-inpaint"):
        manager.get(name)
    return {m.name: m.bytes for m in manager.status().loaded}


def _tiny(budget: int | str | None = None, **kwargs: object) -> ModelManager:
    kwargs.setdefault("dtype", "fp32")  # the sizes above
    return ModelManager("tiny", device="cpu", max_memory=budget, **kwargs)


def _loaded(manager: ModelManager) -> set[str]:
    return {m.name for m in manager.status().loaded}


# ----------------------------------------------------------------------------- settings


@pytest.mark.parametrize("text, value", [
    ("8GB", 8 * 10**9), ("8 gb", 8 * 10**9), ("6GiB", 6 * 2**30), ("512M", 512 * 10**6),
    ("1.5G", 1_500_000_000), ("123", 123), ("2048 KiB", 2048 * 1024), (77, 77),
])
def test_parse_memory(text: str | int, value: int) -> None:
    assert models.parse_memory(text) == value


def test_parse_memory_refuses_nonsense() -> None:
    with pytest.raises(GlideUIError, match="lots"):
        models.parse_memory("lots")


def test_budget_from_argument_env_or_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(models.MEMORY_ENV, raising=False)
    machine = _tiny().max_memory
    import psutil

    assert 0.5 * psutil.virtual_memory().total < machine < psutil.virtual_memory().total
    monkeypatch.setenv(models.MEMORY_ENV, "3GB")
    assert _tiny().max_memory == 3 * 10**9
    assert _tiny("1GiB").max_memory == 2**30


def test_unknown_model_set_or_name() -> None:
    with pytest.raises(GlideUIError, match="huge"):
        ModelManager("huge")
    with pytest.raises(GlideUIError, match="nope"):
        _tiny().get("nope")


# ----------------------------------------------------------------------------- tiny set


def test_get_returns_a_ready_model_loaded_once() -> None:
    manager = _tiny()
    model = manager.get("base")
    assert not model.training
    assert all(not p.requires_grad for p in model.parameters())
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert manager.get("base") is model
    assert manager.checkpoint_id("base") == "tiny-random-seed-0"
    assert manager.options("base") == tiny_options("base")
    assert manager.info("clip/text-enc") == models.ModelInfo(
        "clip/text-enc", "tiny-random-seed-5", clip_config(tiny=True))


def test_tiny_weights_are_deterministic_and_nonzero() -> None:
    first, second = _tiny().get("base"), _tiny().get("base")
    a, b = first.state_dict(), second.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all((t != 0).all() for t in a.values() if t.is_floating_point())
    other = _tiny().get("base-inpaint").state_dict()
    key = "time_embed.0.weight"
    assert a[key].shape == other[key].shape and not torch.equal(a[key], other[key])


def test_every_tiny_model_loads_and_bf16_is_honoured() -> None:
    manager = _tiny(dtype="bf16")
    for name in (*GLIDE, "ViT-B/32"):
        model = manager.get(name)
        norms = {id(p) for m in model.modules() if isinstance(m, torch.nn.LayerNorm)
                 for p in m.parameters()}
        dtypes = {p.dtype for p in model.parameters() if id(p) not in norms}
        assert dtypes == {torch.bfloat16}, name
        assert {p.dtype for p in model.parameters() if id(p) in norms} <= {torch.float32}
    status = manager.status()
    assert status.dtype == "bfloat16" and status.notice.startswith(models.TINY_NOTICE)
    assert {m.name for m in status.loaded} == {*GLIDE, "ViT-B/32"}
    assert status.used_bytes == sum(m.bytes for m in status.loaded)


def test_unet_runs_after_loading() -> None:
    model = _tiny().get("base")
    x = torch.randn(1, 3, 64, 64)
    out = model(x, torch.tensor([10]), tokens=torch.zeros(1, 128, dtype=torch.long),
                mask=torch.ones(1, 128, dtype=torch.bool))
    assert out.shape == (1, 6, 64, 64) and torch.isfinite(out).all()


# ----------------------------------------------------------------------------- budget


def test_least_recently_used_model_is_evicted(sizes: dict[str, int]) -> None:
    manager = _tiny(sizes["base"] + sizes["upsample"] + MB)
    manager.get("base")
    manager.get("upsample")
    manager.get("base")  # base is now the most recently used
    manager.get("base-inpaint")
    assert _loaded(manager) == {"base", "base-inpaint"}
    assert manager.status().used_bytes <= manager.max_memory


def test_model_in_use_is_not_evicted(sizes: dict[str, int]) -> None:
    manager = _tiny(sizes["base"] + sizes["upsample"] + MB)
    with manager.use("base") as (base,):
        manager.get("upsample")
        manager.get("base-inpaint")  # must evict upsample, not the older but pinned base
        assert _loaded(manager) == {"base", "base-inpaint"}
        assert manager.get("base") is base
        assert {m.name: m.in_use for m in manager.status().loaded}["base"] == 1
    assert all(m.in_use == 0 for m in manager.status().loaded)


def test_no_room_while_models_are_in_use_is_a_clear_error(sizes: dict[str, int]) -> None:
    manager = _tiny(sizes["base"] + sizes["upsample"] + MB)
    with manager.use("base", "upsample") as (base, up):
        assert base is manager.get("base") and up is manager.get("upsample")
        with pytest.raises(ModelMemoryError, match=r"base-inpaint.*in use \(base, upsample\)"):
            manager.get("base-inpaint")
    manager.get("base-inpaint")  # free again once the request ended
    assert _loaded(manager) == {"upsample", "base-inpaint"}


def test_model_larger_than_the_budget_is_refused(sizes: dict[str, int]) -> None:
    manager = _tiny(sizes["base"] // 2)
    with pytest.raises(ModelMemoryError, match="--max-memory"):
        manager.get("base")
    assert _loaded(manager) == set()


def test_failed_use_releases_what_it_pinned(sizes: dict[str, int]) -> None:
    manager = _tiny(sizes["base"] + MB)
    with pytest.raises(ModelMemoryError), manager.use("base", "upsample"):
        pass
    assert [(m.name, m.in_use) for m in manager.status().loaded] == [("base", 0)]
    assert manager.release("base") and _loaded(manager) == set()


# ----------------------------------------------------------------------------- threads


def test_two_threads_asking_for_one_model_load_it_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_build = models.build_tiny

    def slow_build(name: str, options: dict, path: ComputePath) -> torch.nn.Module:
        calls.append(name)
        time.sleep(0.3)  # both threads are inside get() meanwhile
        return real_build(name, options, path)

    monkeypatch.setattr(models, "build_tiny", slow_build)
    manager = _tiny()
    results: list[torch.nn.Module] = []
    barrier = threading.Barrier(2)

    def ask() -> None:
        barrier.wait()
        results.append(manager.get("clip/image-enc"))

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == ["clip/image-enc"]
    assert len(results) == 2 and results[0] is results[1]


# ----------------------------------------------------------------------------- official files


@pytest.fixture
def tiny_architecture(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Make the official set build tiny networks, so real files of tiny size load."""
    monkeypatch.setattr(model_build, "full_options", tiny_options)
    monkeypatch.setattr(model_build, "clip_config", lambda tiny=False: clip_config(tiny=True))
    monkeypatch.delenv(ckpt.CHECKPOINTS_ENV, raising=False)
    path = tmp_path / "weights.pt"
    torch.save(_tiny().get("base").state_dict(), path)
    return path


def test_official_model_downloads_with_status_and_loads(
        tiny_architecture: Path, server: FileServer, tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    data = tiny_architecture.read_bytes()
    server.files["/base.pt"] = data
    spec = dataclasses.replace(ckpt.REGISTRY["base"], url=server.url("/base.pt"))
    monkeypatch.setitem(ckpt.REGISTRY, "base", spec)
    seen: list[models.Fetching] = []
    manager = ModelManager(cache_dir=tmp_path / "cache", device="cpu", dtype="bf16",
                           on_progress=lambda event: seen.extend(manager.status().fetching))
    model = manager.get("base")
    assert seen and seen[-1] == models.Fetching("base", "base.pt", len(data), len(data))
    assert manager.status().fetching == []
    assert (tmp_path / "cache" / "base.pt").read_bytes() == data
    expected = torch.load(tiny_architecture, weights_only=True)
    actual = model.state_dict()
    assert all(torch.equal(actual[k], v.to(torch.bfloat16)) for k, v in expected.items())
    assert not any(t.is_meta for t in actual.values())
    assert manager.checkpoint_id("base") == hashlib.sha256(data).hexdigest()
    assert manager.info("base").options == tiny_options("base")


def test_official_model_prefers_the_explicit_directory(tiny_architecture: Path,
                                                       tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "base.pt").write_bytes(tiny_architecture.read_bytes())
    manager = ModelManager(checkpoints_dir=mine, cache_dir=tmp_path / "cache", device="cpu",
                           dtype="fp32")
    assert manager.get("base").time_embed[0].weight.dtype == torch.float32
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("damage, message", [("truncate", "truncated or corrupt"),
                                             ("code", "run code")])
def test_bad_cached_file_is_refused_moved_aside_and_fetched_again(
        tiny_architecture: Path, server: FileServer, tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch, damage: str, message: str) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    cached = cache / "base.pt"
    _RunsCode.marker = tmp_path / "code-ran"
    if damage == "truncate":
        cached.write_bytes(tiny_architecture.read_bytes()[:-1000])
    else:
        torch.save({"time_embed.0.weight": torch.zeros(2), "x": _RunsCode()}, cached)
    server.files["/base.pt"] = b"still not a checkpoint"
    spec = dataclasses.replace(ckpt.REGISTRY["base"], url=server.url("/base.pt"))
    monkeypatch.setitem(ckpt.REGISTRY, "base", spec)
    manager = ModelManager(cache_dir=cache, device="cpu")
    with pytest.raises(ckpt.CorruptCheckpointError, match=message) as info:
        manager.get("base")
    assert str(cached) in str(info.value) and "moved" in str(info.value)
    assert not cached.exists() and (cache / "base.pt.corrupt").exists()
    assert not _RunsCode.marker.exists()
    assert server.requests == []
    with pytest.raises(ckpt.CorruptCheckpointError, match=re.escape(str(cached))):
        manager.get("base")  # the next try downloads it again
    assert server.requests == [("/base.pt", None)]
    assert manager.status().loaded == []


def test_tiny_models_leave_the_global_rng_alone() -> None:
    before = torch.random.get_rng_state()
    for name in (*GLIDE, "clip/image-enc"):
        _tiny().get(name)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_tiny_noise_aware_clip_norm_gains_are_near_one() -> None:
    encoder = _tiny().get("clip/image-enc")
    gains = [t for k, t in encoder.state_dict().items() if k.endswith(".g")]
    assert gains and all((g - 1).abs().mean() < 0.5 for g in gains)


def test_openai_clip_ranks_in_bf16() -> None:
    clip = _tiny(dtype="bf16").get("ViT-B/32")
    scores = clip.similarity(torch.zeros(2, 3, 64, 64), "a grey square")
    assert scores.shape == (2,) and torch.isfinite(scores.float()).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_the_budget_counts_one_copy_of_each_weight(dtype: torch.dtype) -> None:
    """Before its first forward a model holds its weights; after it, where this CPU packs
    `dtype`, it holds the packed copies in place of the plain ones, and the manager counts
    what is held (a second input shape's copies included)."""
    manager = ModelManager("tiny", device="cpu", dtype=dtype)
    base = manager.get("base")
    weights = models.model_bytes(base)
    assert manager.status().used_bytes == weights == resident_bytes(base)
    options = base.options
    x = torch.zeros(2, 3, options["image_size"], options["image_size"])
    tokens = torch.zeros(2, options["text_ctx"], dtype=torch.long)
    with torch.no_grad():
        base(x, torch.tensor([10, 10]), tokens=tokens, mask=tokens == 0)
    path = f"{torch.backends.cpu.get_cpu_capability()} CPU, {manager.status().compute_path}"
    assert prepack_allowance(base, dtype, torch.device("cpu")) == 0, path
    if dtype not in PREPACKED_DTYPES:
        assert packed_bytes(base) == released_bytes(base) == 0, path
        assert manager.status().used_bytes == weights, path
        return
    first = base.input_blocks[0][0]  # takes the image itself, NCHW: not packed
    convolutions = sum(m.weight.numel() * m.weight.element_size() for m in base.modules()
                       if isinstance(m, torch.nn.Conv2d) and m is not first)
    assert released_bytes(base) >= convolutions > 0, path  # bf16: the linears too
    # oneDNN pads the narrow first and last convolutions (3 and 6 channels) to its blocks.
    assert weights <= resident_bytes(base) <= weights + packed_bytes(base) // 10, path
    assert manager.status().used_bytes == resident_bytes(base), path
    with torch.no_grad():  # a second input shape makes a second set of copies: counted too
        base(x[:1], torch.tensor([10]), tokens=tokens[:1], mask=tokens[:1] == 0)
    assert manager.status().used_bytes == resident_bytes(base) > weights, path


def test_the_manager_counts_what_the_process_holds() -> None:
    """The manager's figure for a loaded model that has run is within 5 % of the process's
    RSS growth (measured in a fresh process, bench.rss, on this CPU's fp32 path with
    prepacked weights where oneDNN runs, which every x86 CPU does). The base model at a
    third of its width (64 channels, 0.42 GiB of weights) keeps the test to a few tens of
    seconds while 5 % is 20 MB, three times what the process itself varies by once it has
    run a tiny model (what a process pays once, oneDNN's kernels and MKL's buffers, is
    not the model's)."""
    from bench.rss import run_child

    result = run_child("base", "fp32", channels=64, warm=True)
    assert result["weights_bytes"] > 0.4 * 2**30
    assert abs(result["manager_bytes"] / result["after_growth"] - 1) <= 0.05, result

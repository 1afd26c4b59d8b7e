"""Checkpoints: where files are found, verified resumable downloads, safe loading.

Downloads come from an HTTP server on 127.0.0.1 run by the tests (no network needed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from file_server import FileServer, serving
from torch import nn

from glide_ui import checkpoints as ckpt
from glide_ui.checkpoints import hashes

PAYLOAD = random.Random(0).randbytes(3_000_000)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FileServer]:
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with serving({"/model.pt": PAYLOAD}) as srv:
        yield srv


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------- registry


def test_registry_holds_the_official_files() -> None:
    files = {name: ckpt.REGISTRY[name].filename for name in ckpt.GLIDE_NAMES}
    assert files == {"base": "base.pt", "upsample": "upsample.pt",
                     "base-inpaint": "base_inpaint.pt", "upsample-inpaint": "upsample_inpaint.pt",
                     "clip/image-enc": "clip_image_enc.pt", "clip/text-enc": "clip_text_enc.pt"}
    for name in ckpt.GLIDE_NAMES:
        assert ckpt.REGISTRY[name].url == ckpt.GLIDE_URL + files[name]
    vit = ckpt.REGISTRY["ViT-B/32"]
    assert vit.filename == "ViT-B-32.pt" and vit.format == "torchscript"
    assert vit.url.split("/")[-2] == vit.sha256  # the OpenAI CLIP URLs carry their hash
    assert vit.size == 353_976_522
    total = sum(ckpt.REGISTRY[name].approx_size for name in ckpt.GLIDE_NAMES)
    assert 6.8e9 < total < 7.0e9  # "about 6.9 GB in fp32"


def test_registry_agrees_with_the_reference_key_lists(ref_dir: Path) -> None:
    import json
    import math

    for name in ckpt.GLIDE_NAMES:
        lines = (ref_dir / "keys" / f"{name.replace('/', '-')}.txt").read_text().splitlines()
        numel = sum(math.prod(json.loads(line.split("\t")[1])) for line in lines)
        assert ckpt.REGISTRY[name].approx_size == 4 * numel


def test_unknown_name_is_a_checkpoint_error() -> None:
    with pytest.raises(ckpt.CheckpointError, match="nope"):
        ckpt.get_spec("nope")


# ----------------------------------------------------------------------------- resolution


def test_explicit_dir_then_cache_then_download(tmp_path: Path, server: FileServer) -> None:
    spec = server.spec()
    mine, cache = tmp_path / "mine", tmp_path / "cache"
    mine.mkdir()
    cache.mkdir()
    (cache / spec.filename).write_bytes(b"cached")
    (mine / spec.filename).write_bytes(b"mine")
    assert ckpt.fetch(spec, mine, cache) == mine / spec.filename
    (mine / spec.filename).unlink()
    assert ckpt.fetch(spec, mine, cache) == cache / spec.filename
    assert server.requests == []
    (cache / spec.filename).unlink()
    assert ckpt.fetch(spec, mine, cache) == cache / spec.filename
    assert (cache / spec.filename).read_bytes() == PAYLOAD
    assert not (mine / spec.filename).exists()
    assert len(server.requests) == 1


def test_directories_from_arguments_env_and_default(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ckpt.CHECKPOINTS_ENV, raising=False)
    monkeypatch.delenv(ckpt.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert ckpt.checkpoints_dir() is None
    assert ckpt.cache_dir() == tmp_path / "xdg" / "glide-ui"
    monkeypatch.setenv(ckpt.CHECKPOINTS_ENV, str(tmp_path / "env-ckpt"))
    monkeypatch.setenv(ckpt.CACHE_ENV, str(tmp_path / "env-cache"))
    assert ckpt.checkpoints_dir() == tmp_path / "env-ckpt"
    assert ckpt.cache_dir() == tmp_path / "env-cache"
    assert ckpt.checkpoints_dir(tmp_path / "arg") == tmp_path / "arg"
    assert ckpt.cache_dir(tmp_path / "arg2") == tmp_path / "arg2"


# ----------------------------------------------------------------------------- download


def test_download_reports_progress_and_renames_only_when_verified(
        tmp_path: Path, server: FileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = server.spec(sha256=_sha(PAYLOAD))
    final = tmp_path / spec.filename
    events: list[ckpt.DownloadProgress] = []

    def on_progress(event: ckpt.DownloadProgress) -> None:
        assert not final.exists() and (tmp_path / (spec.filename + ".part")).exists()
        events.append(event)

    real_hash = hashes.hash_file

    def hash_before_rename(path: Path) -> str:
        assert not final.exists()
        return real_hash(path)

    monkeypatch.setattr(hashes, "hash_file", hash_before_rename)
    assert ckpt.download(spec, tmp_path, on_progress) == final
    assert final.read_bytes() == PAYLOAD
    assert not (tmp_path / (spec.filename + ".part")).exists()
    done = [e.done for e in events]
    assert done == sorted(done) and done[-1] == len(PAYLOAD) and len(done) >= 2
    assert {(e.name, e.total) for e in events} == {(spec.name, len(PAYLOAD))}
    monkeypatch.setattr(hashes, "hash_file", lambda path: pytest.fail("hashed again"))
    assert ckpt.file_sha256(final) == _sha(PAYLOAD)  # remembered from the download


def test_cut_connection_leaves_a_part_file_that_resumes(tmp_path: Path,
                                                        server: FileServer) -> None:
    spec = server.spec(sha256=_sha(PAYLOAD))
    server.cuts = [1_000_000]
    with pytest.raises(ckpt.DownloadError) as info:
        ckpt.download(spec, tmp_path, retries=0)
    assert spec.filename in str(info.value) and spec.url in str(info.value)
    part = tmp_path / (spec.filename + ".part")
    assert part.stat().st_size == 1_000_000
    assert not (tmp_path / spec.filename).exists()
    ckpt.download(spec, tmp_path)
    assert (tmp_path / spec.filename).read_bytes() == PAYLOAD
    assert server.requests[-1] == ("/model.pt", "bytes=1000000-")


def test_cut_connection_is_resumed_within_one_call(tmp_path: Path, server: FileServer) -> None:
    server.cuts = [700_000, 900_000]
    path = ckpt.download(server.spec(), tmp_path, retries=2)
    assert path.read_bytes() == PAYLOAD
    assert [r for _, r in server.requests] == [None, "bytes=700000-", "bytes=1600000-"]


def test_server_ignoring_range_restarts_from_zero(tmp_path: Path, server: FileServer) -> None:
    server.honor_range = False
    spec = server.spec()
    (tmp_path / (spec.filename + ".part")).write_bytes(b"x" * 5000)
    assert ckpt.download(spec, tmp_path).read_bytes() == PAYLOAD
    assert server.requests == [("/model.pt", "bytes=5000-")]


def test_complete_part_file_is_finished_without_transfer(tmp_path: Path,
                                                         server: FileServer) -> None:
    spec = server.spec(sha256=_sha(PAYLOAD))
    (tmp_path / (spec.filename + ".part")).write_bytes(PAYLOAD)
    assert ckpt.download(spec, tmp_path).read_bytes() == PAYLOAD
    assert server.requests == [("/model.pt", f"bytes={len(PAYLOAD)}-")]


@pytest.mark.parametrize("change, message", [
    ({"size": len(PAYLOAD) + 1}, "bytes"),
    ({"sha256": "0" * 64}, "sha256"),
])
def test_wrong_size_or_hash_is_refused(tmp_path: Path, server: FileServer,
                                       change: dict[str, object], message: str) -> None:
    spec = server.spec(**change)
    with pytest.raises(ckpt.DownloadError, match=message) as info:
        ckpt.download(spec, tmp_path)
    assert spec.filename in str(info.value)
    assert list(tmp_path.iterdir()) == [tmp_path / (spec.filename + ".lock")]


def test_no_network_names_file_url_and_where_to_put_it(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = ckpt.CheckpointSpec("base", "base.pt", f"http://127.0.0.1:{port}/base.pt", 10)
    with pytest.raises(ckpt.DownloadError) as info:
        ckpt.download(spec, tmp_path / "cache")
    text = str(info.value)
    assert "base.pt" in text and spec.url in text and str(tmp_path / "cache" / "base.pt") in text


def test_http_error_is_a_download_error(tmp_path: Path, server: FileServer) -> None:
    spec = dataclasses.replace(server.spec(), url=server.url("/missing.pt"))
    with pytest.raises(ckpt.DownloadError, match="404"):
        ckpt.download(spec, tmp_path)


def test_concurrent_downloads_of_one_file_transfer_it_once(tmp_path: Path,
                                                           server: FileServer) -> None:
    spec = server.spec()
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(ckpt.download(spec, tmp_path)))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [tmp_path / spec.filename] * 3
    assert len(server.requests) == 1
    assert (tmp_path / spec.filename).read_bytes() == PAYLOAD


# ----------------------------------------------------------------------------- hashes


def test_file_hash_is_cached_and_refreshed_when_the_file_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "f.pt"
    path.write_bytes(b"one")
    assert ckpt.file_sha256(path) == _sha(b"one")
    calls = []
    real_hash = hashes.hash_file
    monkeypatch.setattr(hashes, "hash_file", lambda p: calls.append(p) or real_hash(p))
    assert ckpt.file_sha256(path) == _sha(b"one") and calls == []
    path.write_bytes(b"two!")
    assert ckpt.file_sha256(path) == _sha(b"two!") and calls == [path]


def test_verify_local_checks_known_size_and_hash(tmp_path: Path) -> None:
    path = tmp_path / "f.pt"
    path.write_bytes(b"abc")
    ckpt.verify_local(ckpt.CheckpointSpec("m", "f.pt", "u", 3, 3, _sha(b"abc")), path)
    with pytest.raises(ckpt.CorruptCheckpointError, match="bytes"):
        ckpt.verify_local(ckpt.CheckpointSpec("m", "f.pt", "u", 4, 4), path)
    with pytest.raises(ckpt.CorruptCheckpointError, match=re.escape(str(path))):
        ckpt.verify_local(ckpt.CheckpointSpec("m", "f.pt", "u", 3, None, "0" * 64), path)


# ----------------------------------------------------------------------------- loading


def _state() -> dict[str, torch.Tensor]:
    return nn.Linear(4, 3).state_dict()


class _RunsCode:
    marker: Path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(self.marker),))


def test_state_dict_loads_memory_mapped(tmp_path: Path) -> None:
    path = tmp_path / "ok.pt"
    torch.save(_state(), path)
    state = ckpt.load_state_dict(path)
    assert set(state) == {"weight", "bias"}
    model = ckpt.load_into(_meta_linear(), state, path)
    assert torch.equal(model.weight, state["weight"]) and not model.weight.is_meta


def test_legacy_format_loads_without_mmap(tmp_path: Path) -> None:
    path = tmp_path / "legacy.pt"
    torch.save(_state(), path, _use_new_zipfile_serialization=False)
    assert set(ckpt.load_state_dict(path)) == {"weight", "bias"}


def test_safetensors_loads(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "m.safetensors"
    save_file(_state(), str(path))
    assert set(ckpt.load_state_dict(path)) == {"weight", "bias"}


def test_truncated_file_is_refused_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "cut.pt"
    torch.save(_state(), path)
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(ckpt.CorruptCheckpointError, match=re.escape(str(path))):
        ckpt.load_state_dict(path)


@pytest.mark.parametrize("zip_format", [True, False])
def test_pickle_that_would_run_code_is_refused(tmp_path: Path, zip_format: bool) -> None:
    _RunsCode.marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"weight": torch.zeros(3, 4), "x": _RunsCode()}, path,
               _use_new_zipfile_serialization=zip_format)
    with pytest.raises(ckpt.CorruptCheckpointError, match="run code") as info:
        ckpt.load_state_dict(path)
    assert str(path) in str(info.value)
    assert not _RunsCode.marker.exists()


def test_non_state_dict_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(ckpt.CorruptCheckpointError, match="state dict"):
        ckpt.load_state_dict(path)


def _meta_linear() -> nn.Module:
    with torch.device("meta"):
        return nn.Linear(4, 3)


def test_mismatched_state_dict_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    with pytest.raises(ckpt.CorruptCheckpointError, match="does not fit"):
        ckpt.load_into(_meta_linear(), nn.Linear(5, 3).state_dict(), path)
    with pytest.raises(ckpt.CorruptCheckpointError, match="does not fit"):
        ckpt.load_into(_meta_linear(), {"weight": torch.zeros(3, 4)}, path)


def test_bad_cached_file_is_moved_aside_but_a_users_file_is_not(tmp_path: Path) -> None:
    cache, mine = tmp_path / "cache", tmp_path / "mine"
    for directory in (cache, mine):
        directory.mkdir()
        (directory / "base.pt").write_bytes(b"not a checkpoint")
        (directory / "base.pt.sha256").write_text("{}")
    for directory in (cache, mine):
        path = directory / "base.pt"
        with pytest.raises(ckpt.CorruptCheckpointError, match=re.escape(str(path))), \
                ckpt.set_aside_if_cached(path, cache):
            ckpt.load_state_dict(path)
    assert sorted(os.listdir(cache)) == ["base.pt.corrupt"]
    assert sorted(os.listdir(mine)) == ["base.pt", "base.pt.sha256"]


def test_meta_device_builds_without_weights_and_skips_only_meta_init() -> None:
    outside = torch.zeros(1000)
    with ckpt.meta_device():
        model = nn.Embedding(10, 4)
        torch.nn.init.normal_(outside)
    assert model.weight.is_meta
    assert outside.std() > 0.5  # a real tensor still gets its random values

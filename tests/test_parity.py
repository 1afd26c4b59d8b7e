"""Every file of the reference-fixture manifest, checked within its manifest tolerance.

The fixture directory is `GLIDE_REFERENCE_DIR` (default: the committed copy). Files are
dispatched to a producer by their folder and kind, never by a case name, so another
directory of the same schema is checked the same way.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import reference_dir
from parity.compare import compare

# (glob over the manifest's relative path, producer module in tests/parity/)
PRODUCERS = [
    ("keys/*.txt", "keys"),
    ("keys/*.json", "keys"),
    ("tokenizer.json", "tokenizer"),
    ("schedules.pt", "schedules"),
    ("models/*.pt", "models"),
    ("clip/*.pt", "clip"),
    ("diffusion/*.pt", "diffusion"),
]


def _manifest() -> dict[str, Any]:
    return json.loads((reference_dir() / "manifest.json").read_text(encoding="utf-8"))


def load_fixture(path: Path) -> Any:
    if path.suffix == ".txt":
        return [(key, json.loads(shape)) for key, shape in
                (line.split("\t") for line in path.read_text(encoding="utf-8").splitlines())]
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    return torch.load(path, weights_only=True)


def _producer(rel: str):
    for pattern, module in PRODUCERS:
        if fnmatch.fnmatch(rel, pattern):
            return importlib.import_module(f"parity.{module}").produce
    raise LookupError(f"no producer for manifest file {rel!r}")


@pytest.mark.parametrize("rel", sorted(_manifest()["files"]))
def test_manifest_file(rel: str) -> None:
    spec = _manifest()["files"][rel]
    ref = reference_dir()
    if spec["compare"] == "n/a":  # prose (the contract itself): present and readable
        assert (ref / rel).read_text(encoding="utf-8").strip()
        return
    if rel == "manifest.json":  # the list itself: exactly the files that are there
        on_disk = {p.relative_to(ref).as_posix() for p in ref.rglob("*") if p.is_file()}
        assert on_disk == set(_manifest()["files"])
        return
    expected = load_fixture(ref / rel)
    with torch.no_grad():
        actual = _producer(rel)(rel, expected, ref)
    if spec["compare"] == "exact":
        assert actual == expected
        return
    float64_atol = spec["atol"] if "float64" in spec["compare"] else 0.0
    problems = compare(actual, expected, spec.get("atol_by_key", {}), float64_atol)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("rel", sorted(r for r in _manifest()["files"] if r.startswith("models/")))
def test_model_fixture_in_the_apps_cpu_layout(rel: str) -> None:
    """The app runs CPU models channels_last (prepacked oneDNN kernels where the CPU has
    them): the same outputs within the contract's tolerances, on whatever CPU this is."""
    from parity import models

    spec = _manifest()["files"][rel]
    expected = load_fixture(reference_dir() / rel)
    with torch.no_grad():
        actual = models.produce(rel, expected, reference_dir(), channels_last=True)
    problems = compare(actual, expected, spec.get("atol_by_key", {}), 0.0)
    assert not problems, f"{torch.backends.cpu.get_cpu_capability()} CPU: " + "\n".join(problems)


def test_every_manifest_file_exists() -> None:
    ref = reference_dir()
    missing = [rel for rel in _manifest()["files"] if not (ref / rel).is_file()]
    assert not missing

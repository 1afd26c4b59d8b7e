"""The history field cases of issue #21 through the app (`app.py --outputs <copy>`: HTTP, the
page's notice, the log) and the installed command line (`python -m glide_ui history`):

- `outputs_damaged_index/`, an index whose images page is overwritten: the app starts and
  serves, the file is kept aside and the index rebuilt from the PNGs, said once on the page
  and in the log; a damage met later is repaired the same way; `--rebuild` and
  `--search corgi` work; the PNGs are untouched.
- `outputs_index_v1/`, an index of the schema before, holding "一只可爱的猫": the first start
  migrates it and `可爱`, `猫` find it over HTTP; `corg` still finds the corgi.
- a full disk at start: the app starts, History lists the folder from memory with a notice,
  and a result made then is saved and listed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from app_server import ROOT, running_app
from fault_app import FAULTS_ENV
from gradio_client import Client
from index_faults import (
    DAMAGED_FOLDER,
    SCHEMA_1_FOLDER,
    copied,
    fingerprints,
    scramble_full_text,
)
from robust_api import FAST

INDEX = "history.sqlite3"
DAMAGED = "The history index was damaged ("
IN_MEMORY = "The history index cannot be written (database or disk is full)"


def notice(app) -> str:
    """The History tab's notice line as the page gets it."""
    with urllib.request.urlopen(app.url + "config", timeout=30) as response:
        config = json.load(response)
    return next(str(c["props"]["value"]) for c in config["components"]
                if c.get("props", {}).get("elem_id") == "history-notice")


def found(client: Client, query: str = "") -> list[str]:
    return [item["prompt"] for item in
            client.predict(query=query, page_size=200, api_name="/history")["items"]]


# --- the damaged index --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def damaged(tmp_path_factory) -> dict:
    folder = copied(DAMAGED_FOLDER, tmp_path_factory.mktemp("damaged"))
    return {"folder": folder, "pictures": fingerprints(folder),
            "index": (folder / INDEX).read_bytes()}


@pytest.fixture(scope="module")
def damaged_app(damaged):
    with running_app("--outputs", str(damaged["folder"])) as running:
        yield running


def test_the_app_starts_on_a_damaged_index_and_serves_it_rebuilt(damaged, damaged_app):
    client = Client(damaged_app.url, verbose=False)
    assert sorted(found(client)) == ["a corgi on the beach", "a red lighthouse at dusk"]
    assert found(client, "corgi") == ["a corgi on the beach"]
    folder = damaged["folder"]
    [aside] = folder.glob(f"{INDEX}.damaged-*")
    assert aside.read_bytes() == damaged["index"]  # kept, as it was
    said = notice(damaged_app)
    assert f"⚠️ {DAMAGED}" in said and f"kept as {aside.name}" in said
    assert damaged_app.log_tail(100_000).count(DAMAGED) == 1
    assert fingerprints(folder) == damaged["pictures"]


def test_a_damage_met_while_it_serves_is_repaired_and_answered(damaged, damaged_app):
    """After the test above: the full-text blocks of the new index turn to noise."""
    scramble_full_text(damaged["folder"] / INDEX)
    client = Client(damaged_app.url, verbose=False)
    assert found(client, "corgi") == ["a corgi on the beach"]  # this very request
    assert found(client, "lighthouse") == ["a red lighthouse at dusk"]
    assert damaged_app.log_tail(100_000).count(DAMAGED) == 2  # once more, once
    assert len(list(damaged["folder"].glob(f"{INDEX}.damaged-*"))) == 2
    assert fingerprints(damaged["folder"]) == damaged["pictures"]


def cli(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """`glide-ui history --outputs folder ...`, as installed (`python -m glide_ui`)."""
    return subprocess.run([sys.executable, "-m", "glide_ui", "history", "--outputs",
                           str(folder), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("first", ["--rebuild", "--search"])
def test_the_command_line_rebuilds_and_searches_the_damaged_folder(tmp_path, first):
    folder = copied(DAMAGED_FOLDER, tmp_path)
    pictures, index = fingerprints(folder), (folder / INDEX).read_bytes()
    actions = [("--rebuild",), ("--search", "corgi")]
    runs = [cli(folder, *action) for action in (actions if first == "--rebuild"
                                                 else actions[::-1])]
    rebuilt, searched = runs if first == "--rebuild" else runs[::-1]
    assert rebuilt.returncode == 0 and searched.returncode == 0, rebuilt.stderr + searched.stderr
    assert rebuilt.stdout == (f"2 picture(s) indexed in {folder}; 0 PNG(s) without a recipe "
                              "left out.\n")
    assert searched.stdout.count("\n") == 1 and "\ta corgi on the beach\n" in searched.stdout
    assert "1 of 1 picture(s)." in searched.stderr
    said = [run.stderr for run in runs if DAMAGED in run.stderr]
    assert len(said) == 1 and said[0].startswith(f"glide-ui history: {DAMAGED}")  # the first
    [aside] = folder.glob(f"{INDEX}.damaged-*")
    assert aside.read_bytes() == index and fingerprints(folder) == pictures


# --- an index of the schema before ---------------------------------------------------------------


def test_the_first_start_migrates_an_old_index_and_finds_words_inside(tmp_path):
    folder = copied(SCHEMA_1_FOLDER, tmp_path)
    pictures = fingerprints(folder)
    with running_app("--outputs", str(folder)) as app:
        client = Client(app.url, verbose=False)
        assert len(found(client)) == 3
        assert found(client, "可爱") == found(client, "猫") == ["一只可爱的猫"]
        assert found(client, "タワー") == ["東京タワー at night"]
        assert found(client, "corg") == ["a corgi on the beach"]
        assert "⚠️" not in notice(app)
    assert fingerprints(folder) == pictures and not list(folder.glob("*.damaged-*"))


# --- a full disk ---------------------------------------------------------------------------------


def test_on_a_full_disk_the_app_starts_and_history_lists_from_memory(tmp_path):
    folder = copied(DAMAGED_FOLDER, tmp_path)
    (folder / INDEX).unlink()  # to be made at this start, on a full disk
    pictures = fingerprints(folder)
    with running_app("--outputs", str(folder), script=ROOT / "tests" / "fault_app.py",
                     env={FAULTS_ENV: "index_full"}) as app:
        assert f"⚠️ {IN_MEMORY}" in notice(app)
        client = Client(app.url, verbose=False)
        assert found(client, "corgi") == ["a corgi on the beach"]
        client.predict(prompt="a hedgehog made on a full disk", seed=3, api_name="/generate",
                       **FAST)
        assert found(client, "hedgehog") == ["a hedgehog made on a full disk"]
        assert app.log_tail(100_000).count(IN_MEMORY) == 1
    made = set(fingerprints(folder)) - set(pictures)
    assert len(made) == 1  # its PNG is in the folder
    assert {k: v for k, v in fingerprints(folder).items() if k in pictures} == pictures

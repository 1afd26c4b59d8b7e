"""A damaged or unwritable history index never stops the History (issue #21): any damage,
found when the index is opened or while it is used, moves the file aside (kept) and makes
the index anew from the PNGs, said once on the page and in the log, the request answered
from the new index; `--rebuild` works on any damaged or missing index; a full disk at the
start keeps the index in memory with a notice; the PNGs are never touched. Python
(History), the page's handlers and the command line here; the app (HTTP, the page's
notice, its log) in tests/test_history_field.py.
"""

from __future__ import annotations

import logging
import signal
import sqlite3
import subprocess
import sys
import threading
import warnings
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from app_server import ROOT
from index_faults import (
    DAMAGED_FOLDER,
    DAMAGES,
    copied,
    damage,
    fingerprints,
    full_disk,
)
from PIL import Image

from glide_ui.history import History, HistoryError, Query, rebuild, result_png, saving_policy
from glide_ui.history import index as index_module
from glide_ui.history.__main__ import main as history_cli
from glide_ui.recipe import Recipe
from glide_ui.ui.results import ResultStore

NOW = datetime(2026, 12, 1, 9, 30).astimezone()
PROMPTS = ("a corgi on the beach", "一只可爱的猫", "a red lighthouse at dusk")
INDEX = "history.sqlite3"


def save(history: History, prompt: str, seed: int, user: str | None = None) -> None:
    made = Recipe(pipeline="text2im", prompt=prompt, seed=seed, settings={}, models={})
    created = NOW + timedelta(seconds=seed)
    image = Image.new("RGB", (8, 8), (seed % 256, 40, 90))
    history.save([(result_png(image, made, created), made)], user, created)


def rows(history: History) -> list[tuple]:
    """What the index holds, ids aside (a new index numbers anew)."""
    return sorted((e.file, e.owner, e.prompt, e.seed, e.created) for e in history.index.entries())


def kept_aside(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"{INDEX}.damaged-*"))


def warnings_of(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.name == "glide_ui.history" and record.levelno == logging.WARNING]


@pytest.fixture
def folder(tmp_path) -> Path:
    """An outputs folder of 9 pictures (two users) and its sound index, closed."""
    root = tmp_path / "outputs"
    history = History.open(root)
    for seed in range(9):
        save(history, PROMPTS[seed % 3], seed, user="ann" if seed >= 7 else None)
    history.close()
    return root


@pytest.fixture
def expected(folder) -> list[tuple]:
    history = History(folder)
    try:
        return rows(history)
    finally:
        history.close()


# --- found when opened ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", DAMAGES)
def test_any_damage_found_at_open_is_moved_aside_and_made_anew(folder, expected, kind, caplog):
    pictures = fingerprints(folder)
    damaged_bytes = damage(folder / INDEX, kind)
    history = History.open(folder)
    assert rows(history) == expected
    assert [e.prompt for e in history.page(None, Query("可爱")).entries] == ["一只可爱的猫"] * 2
    assert history.page(None, Query("corg")).total == 3 and history.page("ann", Query()).total == 2
    [aside] = kept_aside(folder)
    assert aside.read_bytes() == damaged_bytes  # kept as it was, never deleted
    assert history.notice.startswith("The history index was damaged (")
    assert f"kept as {aside.name}" in history.notice
    assert warnings_of(caplog) == [history.notice]  # the log says it once
    assert history.take_news() == []  # the page says it in its notice, not again
    history.close()
    again = History.open(folder)  # the new index is sound: nothing more to say
    assert again.notice == "" and kept_aside(folder) == [aside] and rows(again) == expected
    again.close()
    assert fingerprints(folder) == pictures


def test_the_field_folder_opens_rebuilt_from_its_pngs(tmp_path):
    folder = copied(DAMAGED_FOLDER, tmp_path)
    pictures, damaged_bytes = fingerprints(folder), (folder / INDEX).read_bytes()
    history = History.open(folder)
    assert sorted(e.prompt for e in history.index.entries()) == \
        ["a corgi on the beach", "a red lighthouse at dusk"]
    assert [e.prompt for e in history.page(None, Query("corgi")).entries] == \
        ["a corgi on the beach"]
    assert "database disk image is malformed" in history.notice
    [aside] = kept_aside(folder)
    assert aside.read_bytes() == damaged_bytes
    history.close()
    assert fingerprints(folder) == pictures


def test_a_locked_index_is_not_taken_for_damaged(folder, monkeypatch):
    monkeypatch.setattr(index_module, "BUSY_TIMEOUT_S", 0.2)
    other = sqlite3.connect(folder / INDEX, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process writing for longer than we wait
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            History.open(folder)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert kept_aside(folder) == []


# --- found while in use ------------------------------------------------------------------------

IN_USE = {  # damage done while the app runs -> how a later request meets it
    "cut in half": lambda history: history.page(None, Query("corgi")),
    "full-text blocks scrambled": lambda history: history.page(None, Query("corgi")),
    # the images table's page (the field case), seen once another process has written
    "images table page": lambda history: history.page(None, Query("corgi")),
}


def _damage_in_use(folder: Path, kind: str) -> None:
    damage(folder / INDEX, kind)
    if kind == "images table page":  # another process writes: the open one reads anew
        with sqlite3.connect(folder / INDEX) as other:
            other.execute("PRAGMA user_version = 2")
        other.close()


@pytest.mark.parametrize("kind", IN_USE)
def test_damage_found_in_use_is_repaired_and_the_request_answered(folder, expected, kind,
                                                                  caplog):
    pictures = fingerprints(folder)
    history = History.open(folder)
    _damage_in_use(folder, kind)
    page = history.page(None, Query("corgi"))  # answered from the new index
    assert [e.prompt for e in page.entries] == ["a corgi on the beach"] * 3
    assert rows(history) == expected
    [news] = history.take_news()
    assert news.startswith("The history index was damaged (") and "kept as" in news
    assert history.take_news() == [] and warnings_of(caplog) == [news]  # once each
    assert len(kept_aside(folder)) == 1
    save(history, "a corgi after the repair", 50)  # and it goes on
    assert history.page(None, Query("corgi")).total == 4
    history.close()
    assert History.open(folder).notice == ""
    assert {k: v for k, v in fingerprints(folder).items() if k in pictures} == pictures


def test_threads_meeting_the_damage_at_once_repair_it_once(folder, expected, caplog):
    history = History.open(folder)
    damage(folder / INDEX, "cut in half")
    totals, errors = [], []

    def search() -> None:
        try:
            totals.append(history.page(None, Query("corgi")).total)
        except Exception as error:  # noqa: BLE001 (any failure fails the test)
            errors.append(error)

    threads = [threading.Thread(target=search) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and totals == [3] * 8
    assert len(history.take_news()) == 1 and len(warnings_of(caplog)) == 1
    assert len(kept_aside(folder)) == 1 and rows(history) == expected
    history.close()


class _ShortOfMemory:
    """A connection whose full-text searches run out of memory, as a loaded machine's can."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def execute(self, sql: str, *params):
        if "MATCH" in sql:
            raise MemoryError
        return self.db.execute(sql, *params)

    def __getattr__(self, name: str):
        return getattr(self.db, name)


def test_running_out_of_memory_on_a_sound_index_is_no_damage(folder, expected):
    history = History.open(folder)
    history.index._db = _ShortOfMemory(history.index._db)
    with pytest.raises(MemoryError):
        history.page(None, Query("corgi"))
    assert kept_aside(folder) == [] and history.take_news() == []
    mine = [row for row in expected if row[1] == ""]
    assert history.page(None, Query()).total == len(mine)  # the file still in use
    history.close()


def test_running_out_of_memory_on_a_damaged_index_repairs_it(folder, expected):
    history = History.open(folder)
    damage(folder / INDEX, "full-text blocks sized beyond memory")
    history.index._db = _ShortOfMemory(history.index._db)
    assert history.page(None, Query("corgi")).total == 3  # answered from the new index
    [news] = history.take_news()
    assert "claim more memory than there is" in news and len(kept_aside(folder)) == 1
    assert rows(history) == expected
    history.close()


def test_a_save_that_meets_the_damage_is_indexed_and_says_so(folder, tmp_path):
    from glide_ui.pipelines.events import Result

    history = History.open(folder)
    damage(folder / INDEX, "cut in half")
    made = Recipe(pipeline="text2im", prompt="a corgi saved now", seed=77, settings={},
                  models={})
    saved = ResultStore(tmp_path / "page", history=history).save(
        Result([Image.new("RGB", (8, 8))], [made]))
    assert saved.problem.startswith("The history index was damaged (")
    assert history.page(None, Query("saved now")).total == 1
    assert history.page(None, Query("corgi")).total == 4 and history.take_news() == []
    history.close()


def test_the_page_says_it_once_and_lists(folder, tmp_path, monkeypatch):
    from glide_ui.ui.backend import Backend
    from glide_ui.ui.history import HistoryView

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    history = History.open(folder)
    view = HistoryView(Backend(manager=None, history=history,
                               saving=saving_policy(folder)))
    damage(folder / INDEX, "full-text blocks scrambled")
    with pytest.warns(UserWarning, match="The history index was damaged") as said:
        items, pager, _ids, _number = view.list_page("corgi", "", None, None, 1)
    assert len(said) == 1 and pager == "Page 1 of 1 · 3 picture(s)" and len(items) == 3
    with warnings.catch_warnings(record=True) as later:
        warnings.simplefilter("always")
        assert view.api_list(query="可爱")["total"] == 2
    assert [str(w.message) for w in later] == []  # said once
    history.close()


def test_the_page_notice_says_a_damage_found_at_start(folder, tmp_path, monkeypatch):
    from glide_ui.ui.backend import Backend
    from glide_ui.ui.history import HistoryView

    damage(folder / INDEX, "images table page")
    history = History.open(folder)
    view = HistoryView(Backend(manager=None, history=history, saving=saving_policy(folder)))
    assert view.notice.startswith(saving_policy(folder).notice)
    assert "⚠️ The history index was damaged" in view.notice
    history.close()


# --- rebuild, whatever the state of the index ----------------------------------------------------


@pytest.mark.parametrize("kind", [*DAMAGES, "missing"])
def test_rebuild_works_on_any_damaged_or_missing_index(folder, expected, kind, capsys):
    pictures = fingerprints(folder)
    if kind == "missing":
        (folder / INDEX).unlink()
    else:
        damage(folder / INDEX, kind)
    assert history_cli(["--outputs", str(folder), "--rebuild"]) == 0
    out, err = capsys.readouterr()
    assert out == f"9 picture(s) indexed in {folder}; 0 PNG(s) without a recipe left out.\n"
    if kind == "missing":
        assert err == "" and kept_aside(folder) == []
    else:
        assert err.startswith("glide-ui history: The history index was damaged (")
        assert err.count("\n") == 1 and len(kept_aside(folder)) == 1
    assert rebuild(folder).added == 9  # the Python function, on the sound index now
    history = History(folder)
    assert rows(history) == expected
    history.close()
    assert fingerprints(folder) == pictures


def test_the_command_line_searches_a_damaged_index(folder, capsys):
    damage(folder / INDEX, "full-text data page")
    assert history_cli(["--outputs", str(folder), "--search", "corgi"]) == 0
    out, err = capsys.readouterr()
    assert out.count("\n") == 3 and out.count("a corgi on the beach") == 3
    assert err.count("The history index was damaged") == 1 and "3 of 3 picture(s)." in err


# --- a full disk ---------------------------------------------------------------------------------


def test_a_full_disk_at_start_keeps_the_index_in_memory(folder, expected, monkeypatch,
                                                         caplog):
    pictures = fingerprints(folder)
    (folder / INDEX).unlink()  # made anew at this start: on a full disk
    with full_disk(monkeypatch):
        history = History.open(folder)
        assert history.index.in_memory == "database or disk is full"
        assert history.notice.startswith(
            "The history index cannot be written (database or disk is full)")
        assert warnings_of(caplog) == [history.notice]
        assert rows(history) == expected  # everything already in the folder is listed
        assert history.page(None, Query("猫")).total == 2
        save(history, "a corgi saved on a full disk", 60)  # the PNG went (the disk had room)
        assert history.page(None, Query("full disk")).total == 1
        entry = history.page(None, Query("lighthouse")).entries[0]
        history.delete(None, entry.id)
        with pytest.raises(HistoryError, match="cannot be written"):
            history.require_file()
        history.close()
    again = History.open(folder)  # room again: the file is made, with what came meanwhile
    assert again.index.in_memory == "" and again.notice == ""
    assert again.page(None, Query("full disk")).total == 1
    assert len(again.index.entries()) == len(expected)  # one saved, one deleted
    again.close()
    assert set(pictures) - set(fingerprints(folder)) == {entry.file}  # only the deleted one


def test_a_damaged_index_on_a_full_disk_is_kept_aside_and_the_history_in_memory(tmp_path,
                                                                                monkeypatch):
    folder = copied(DAMAGED_FOLDER, tmp_path)
    pictures = fingerprints(folder)
    with full_disk(monkeypatch):
        history = History.open(folder)
    assert "was damaged" in history.notice and "cannot be written" in history.notice
    assert history.page(None, Query("corgi")).total == 1 and len(kept_aside(folder)) == 1
    history.close()
    assert fingerprints(folder) == pictures


def test_the_command_line_on_a_full_disk(folder, monkeypatch, capsys):
    (folder / INDEX).unlink()
    with full_disk(monkeypatch):
        assert history_cli(["--outputs", str(folder), "--search", "corgi"]) == 0
        out, err = capsys.readouterr()
        assert out.count("\n") == 3 and "cannot be written (database or disk is full)" in err
        for action in ("--rebuild", "--sync"):
            assert history_cli(["--outputs", str(folder), action]) == 1
            out, err = capsys.readouterr()
            said, failed = err.splitlines()  # what happened, then what could not be done
            assert out == "" and "listed from memory until the next start" in said, action
            assert failed == (f"glide-ui history: {folder}: The index file cannot be written "
                              "(database or disk is full)."), action


def test_the_page_notice_says_the_index_is_in_memory(folder, monkeypatch):
    from glide_ui.ui.backend import Backend
    from glide_ui.ui.history import HistoryView

    (folder / INDEX).unlink()
    with full_disk(monkeypatch):
        history = History.open(folder)
    view = HistoryView(Backend(manager=None, history=history, saving=saving_policy(folder)))
    assert "⚠️ The history index cannot be written" in view.notice
    history.close()


def test_a_disk_that_refuses_to_grow_any_file_keeps_the_history_listing(folder, expected):
    """No seam: the process may not write past 1,000 bytes of any file (RLIMIT_FSIZE), so
    the operating system itself refuses the new index file's pages."""
    resource = pytest.importorskip("resource")  # POSIX
    (folder / INDEX).unlink()

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a refused write fails, not kills
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))

    script = ("import sys; from glide_ui.history import History, Query\n"
              "history = History.open(sys.argv[1])\n"
              "print(history.index.in_memory, history.page(None, Query('corgi')).total, "
              "len(history.index.entries()), sep='|')\n")
    run = subprocess.run([sys.executable, "-c", script, str(folder)], cwd=ROOT,
                         preexec_fn=limited, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    why, corgis, listed = run.stdout.strip().split("|")
    assert why in ("disk I/O error", "database or disk is full")  # EFBIG, or a short write
    assert (int(corgis), int(listed)) == (3, len(expected))
    assert "The history index cannot be written" in run.stderr

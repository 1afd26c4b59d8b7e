"""The outputs folder and its index (glide_ui.history), without the app: saving, search,
rebuild, repair after a crash or changes by hand, concurrent writers, per-user privacy,
the saving rules, and a failure to save shown on the page.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from app_server import ROOT
from PIL import Image
from writers import file_in_the_way, unwritable_folder

from glide_ui.history import (
    History,
    HistoryError,
    Query,
    SavingPolicy,
    rebuild,
    result_png,
    saving_policy,
)
from glide_ui.history.folder import OUTPUTS_ENV, default_outputs_dir
from glide_ui.history.tables import SCHEMA_VERSION
from glide_ui.history.words import match_expression
from glide_ui.images import read_recipe
from glide_ui.pipelines.events import Result
from glide_ui.recipe import Recipe
from glide_ui.ui.results import ResultStore
from glide_ui.ui.streaming import render

NOW = datetime(2025, 3, 14, 15, 9, 26, 535897).astimezone()


def recipe(prompt: str = "an oil painting of a corgi", seed: int = 1,
           pipeline: str = "text2im") -> Recipe:
    return Recipe(pipeline=pipeline, prompt=prompt, seed=seed,
                  settings={"guidance_scale": 3.0, "base_respacing": "4", "upsample": False},
                  models={"base": "sha-of-base"})


def picture(seed: int, size: int = 64) -> Image.Image:
    return Image.new("RGB", (size, size), (seed * 37 % 256, seed * 11 % 256, 90))


def save(history: History, user: str | None = None, created: datetime = NOW,
         **fields) -> list:
    made = recipe(**fields)
    return history.save([(result_png(picture(made.seed), made, created), made)], user,
                        created)


def pngs(root: Path) -> list[str]:
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*.png"))


@pytest.fixture
def history(tmp_path):
    history = History.open(tmp_path / "outputs")
    yield history
    history.close()


# --- saving ----------------------------------------------------------------------------------


def test_a_result_is_a_png_with_its_recipe_in_the_day_folder_and_a_row(history):
    made = [recipe(seed=seed) for seed in (41, 42)]
    entries = history.save([(result_png(picture(r.seed), r, NOW), r) for r in made], None, NOW)
    assert pngs(history.root) == ["2025-03-14/150926-generate-an-oil-painting-of-a-corgi-41.png",
                                  "2025-03-14/150926-generate-an-oil-painting-of-a-corgi-42.png"]
    for entry, expected in zip(entries, made, strict=True):
        path = history.path(entry)
        assert read_recipe(path) == expected
        with Image.open(path) as image:
            assert image.info["Creation Time"] == NOW.isoformat()
            assert image.convert("RGB").tobytes() == picture(expected.seed).tobytes()
        assert (entry.tab, entry.pipeline, entry.prompt, entry.seed) == \
            ("generate", "text2im", expected.prompt, expected.seed)
        assert entry.settings == expected.settings and entry.models == expected.models
        assert entry.created == NOW.timestamp() and entry.owner == "" and entry.id is not None
    assert history.index.entries() == entries


def test_each_tab_names_its_files_and_a_name_is_never_reused(history):
    for pipeline in ("text2im", "clip_guided", "inpaint"):
        save(history, prompt="Ünïcode & punctuation!", seed=7, pipeline=pipeline)
    save(history, prompt="Ünïcode & punctuation!", seed=7)  # same second, same everything
    assert [Path(name).name for name in pngs(history.root)] == [
        "150926-clip_guided-ünïcode-punctuation-7.png",
        "150926-generate-ünïcode-punctuation-7-2.png",
        "150926-generate-ünïcode-punctuation-7.png",
        "150926-inpaint-ünïcode-punctuation-7.png"]
    assert sorted(e.tab for e in history.index.entries()) == \
        ["clip_guided", "generate", "generate", "inpaint"]


def test_each_user_has_a_folder_of_their_own_inside_the_outputs(history):
    for user in ("ann", "../../escape", ".", "a/b"):
        save(history, user=user)
    files = pngs(history.root)
    assert all(file.startswith("users/") and file.count("/") == 3 for file in files), files
    assert all((history.root / file).resolve().is_relative_to(history.root) for file in files)
    assert sorted(e.owner for e in history.index.entries()) == \
        sorted(["ann", "../../escape", ".", "a/b"])


def test_the_default_folder_is_the_per_user_data_folder_unless_the_env_says(monkeypatch):
    from platformdirs import user_data_path

    monkeypatch.delenv(OUTPUTS_ENV, raising=False)
    assert default_outputs_dir() == user_data_path("glide-ui", appauthor=False) / "outputs"
    monkeypatch.setenv(OUTPUTS_ENV, "/somewhere/else")
    assert default_outputs_dir() == Path("/somewhere/else")


def test_the_test_suite_saves_into_a_temporary_folder():
    from platformdirs import user_data_path

    assert Path(os.environ[OUTPUTS_ENV]).name.startswith("glide-ui-test-outputs-")
    assert not default_outputs_dir().is_relative_to(user_data_path("glide-ui"))


# --- listing and search ----------------------------------------------------------------------


def test_search_by_words_of_the_prompt(history):
    save(history, prompt="an oil painting of a corgi", seed=1)
    save(history, prompt="A crayon drawing of a space elevator", seed=2)
    save(history, prompt="un café au lait, peinture à l'huile", seed=3)
    save(history, prompt="a corgi in space", seed=4, pipeline="clip_guided")

    def seeds(words: str, tab: str = "") -> list[int]:
        return [e.seed for e in history.page(None, Query(words, tab)).entries]

    assert seeds("corgi") == [4, 1]  # newest first (same time: the later row first)
    assert seeds("CORGI space") == [4]  # every word must match, any case
    assert seeds("spa") == [4, 2]  # a word prefix matches
    assert seeds("cafe") == [3] and seeds("huile") == [3]  # accents and apostrophes
    assert seeds("corgi", tab="generate") == [1]
    assert seeds("dragon") == []
    assert seeds("") == [4, 3, 2, 1]
    for odd in ('"', "corgi AND", "NEAR(", "*", "a OR b -", "'; DROP TABLE images; --"):
        history.page(None, Query(odd))  # no input is an FTS syntax error
    assert len(history.index.entries()) == 4
    assert match_expression("Corgi's  space-elevator!") == '"corgi"* "s"* "space"* "elevator"*'


def test_pages_newest_first_and_a_date_filter(history):
    day = timedelta(days=1)
    for n in range(7):
        save(history, seed=n, created=NOW - n * day)
    page = history.page(None, number=1, size=3)
    assert [e.seed for e in page.entries] == [0, 1, 2] and (page.total, page.pages) == (7, 3)
    assert [e.seed for e in history.page(None, number=3, size=3).entries] == [6]
    assert history.page(None, number=99, size=3).number == 3  # past the end: the last page
    today = NOW.date()
    since_until = Query(since=today - 3 * day, until=today - day)
    assert [e.seed for e in history.page(None, since_until).entries] == [1, 2, 3]
    assert [e.seed for e in history.page(None, Query(since=today)).entries] == [0]
    assert history.page(None, Query(until=date(2000, 1, 1))).total == 0


# --- the PNGs are the truth ------------------------------------------------------------------


def test_the_rebuilt_index_equals_the_one_built_as_they_came(history, tmp_path):
    for n, user in enumerate(["", "ann", "bob", ""]):
        for pipeline in ("text2im", "clip_guided", "inpaint"):
            save(history, user=user, seed=n, pipeline=pipeline, prompt=f"picture {n} {pipeline}",
                 created=NOW + timedelta(seconds=n))
    live = history.index.entries()
    rebuilt = History(history.root, index_path=tmp_path / "rebuilt.sqlite3")
    report = rebuilt.rebuild()
    assert report.added == 12 and report.skipped == 0
    assert rebuilt.index.entries() == live
    history.rebuild()  # in place, too
    assert history.index.entries() == live
    assert [e.seed for e in history.page("ann", Query("inpaint")).entries] == [1]


def test_files_added_or_deleted_by_hand_are_taken_in_at_the_next_open(tmp_path):
    root = tmp_path / "outputs"
    first = History.open(root)
    kept, deleted = save(first, seed=1)[0], save(first, seed=2)[0]
    first.close()
    first.path(deleted).unlink()
    elsewhere = History.open(tmp_path / "other-machine")
    copied = save(elsewhere, seed=3, prompt="brought from elsewhere")[0]
    (root / "2025-03-15").mkdir()
    (root / "2025-03-15" / "copied.png").write_bytes(elsewhere.path(copied).read_bytes())
    Image.new("RGB", (8, 8)).save(root / "2025-03-15" / "not-made-here.png")
    (root / "2025-03-15" / "notes.txt").write_text("not a picture")

    again = History.open(root)
    entries = again.index.entries()
    assert [e.file for e in entries] == ["2025-03-14/" + Path(kept.file).name,
                                         "2025-03-15/copied.png"]
    assert again.page(None, Query("elsewhere")).total == 1
    with pytest.raises(HistoryError, match="no picture"):
        again.get(None, deleted.id)


def test_a_file_deleted_while_running_drops_out_when_opened(history):
    entry = save(history)[0]
    history.path(entry).unlink()
    with pytest.raises(HistoryError, match="is gone"):
        history.get(None, entry.id)
    assert history.index.entries() == []


def test_a_missing_damaged_or_older_index_is_made_anew(tmp_path):
    root = tmp_path / "outputs"
    history = History.open(root)
    expected = save(history, seed=1) + save(history, seed=2, user="ann")
    history.close()
    index = root / "history.sqlite3"

    for damage in ("delete", "garbage", "old schema"):
        for suffix in ("-wal", "-shm"):
            Path(f"{index}{suffix}").unlink(missing_ok=True)
        if damage == "delete":
            index.unlink()
        elif damage == "garbage":
            index.write_bytes(b"this is not a database" * 100)
        else:
            with sqlite3.connect(index) as db:
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
            db.close()
        reopened = History.open(root)
        assert reopened.index.entries() == expected, damage
        reopened.close()
    assert list(root.glob("history.sqlite3.damaged-*")), "the damaged file is kept aside"


def test_the_command_line_rebuilds_and_searches(tmp_path):
    root = tmp_path / "outputs"
    history = History.open(root)
    save(history, prompt="a lighthouse at dusk", seed=5)
    save(history, prompt="a corgi", seed=6)
    (root / "history.sqlite3").unlink()  # the open connection keeps its own

    def cli(*args: str) -> subprocess.CompletedProcess:  # `glide-ui history ...`
        return subprocess.run([sys.executable, "-m", "glide_ui", "history", "--outputs",
                               str(root), *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=120)

    rebuilt = cli("--rebuild")
    assert rebuilt.returncode == 0 and "2 picture(s) indexed" in rebuilt.stdout, rebuilt.stderr
    found = cli("--search", "lighthouse")
    assert found.returncode == 0 and found.stdout.count("\n") == 1
    assert "a lighthouse at dusk" in found.stdout and "\t5\t" in found.stdout
    assert rebuild(root).added == 2  # the function a `glide-ui history` command calls
    history.close()


# --- concurrency and crashes ------------------------------------------------------------------


def test_concurrent_threads_index_without_loss(history):
    def worker(n: int) -> None:
        for k in range(10):
            save(history, seed=100 * n + k, prompt=f"thread {n}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    entries = history.index.entries()
    assert len(entries) == 80 == len(pngs(history.root))
    assert sorted(e.seed for e in entries) == sorted(100 * n + k for n in range(8)
                                                     for k in range(10))
    assert history.page(None, Query("thread 3")).total == 10


CONCURRENT_WRITER = """
import sys, time
from datetime import datetime
from pathlib import Path
from PIL import Image
from glide_ui.history import History, result_png
from glide_ui.recipe import Recipe

root, n = Path(sys.argv[1]), int(sys.argv[2])
history = History.open(root)
(root.parent / f"ready-{n}").touch()
while not (root.parent / "go").exists():  # all start writing at once
    time.sleep(0.01)
for k in range(15):
    made = Recipe("text2im", f"process {n}", 1000 * n + k)
    now = datetime.now().astimezone()
    history.save([(result_png(Image.new("RGB", (64, 64), (k, n, 0)), made, now), made)],
                 None, now)
"""


def test_concurrent_processes_index_without_loss(tmp_path):
    root = tmp_path / "outputs"
    processes = [subprocess.Popen([sys.executable, "-c", CONCURRENT_WRITER, str(root), str(n)],
                                  cwd=ROOT) for n in range(4)]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    (tmp_path / "go").touch()
    assert [process.wait(timeout=120) for process in processes] == [0] * 4
    history = History(root)  # no sync: the index as the writers left it
    assert len(history.index.entries()) == 60 == len(pngs(root))
    assert history.page(None, Query("process 2")).total == 15
    history.close()


KILLED_WRITER = """
import os, signal, sys
from datetime import datetime
from PIL import Image
from glide_ui.history import History, result_png
from glide_ui.history.index import HistoryIndex
from glide_ui.recipe import Recipe

root, moment = sys.argv[1], sys.argv[2]
history = History.open(root)
kill = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
if moment == "before-index":  # the third PNG is on disk, its row not yet
    add = HistoryIndex.add
    HistoryIndex.add = lambda self, entries: (kill() if len(self.entries()) == 2
                                              else add(self, entries))
else:  # while the third PNG is being written
    fsync, calls = os.fsync, []
    os.fsync = lambda fd: (calls.append(fd), kill() if len(calls) == 3 else fsync(fd))
for seed in range(5):
    made = Recipe("text2im", "killed mid-run", seed)
    now = datetime.now().astimezone()
    history.save([(result_png(Image.new("RGB", (64, 64), (seed, 0, 0)), made, now), made)],
                 None, now)
"""


@pytest.mark.parametrize("moment", ["before-index", "mid-write"])
def test_a_killed_process_loses_no_finished_png_and_the_next_open_repairs(tmp_path, moment):
    root = tmp_path / "outputs"
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(root),
                             moment], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    finished = 3 if moment == "before-index" else 2
    files = pngs(root)
    assert len(files) == finished
    for file in files:  # whole pictures, never half-written ones
        with Image.open(root / file) as image:
            image.load()
    with sqlite3.connect(root / "history.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM images").fetchone()[0] == 2
    db.close()
    leftovers = list(root.glob("*/.*.tmp"))
    assert len(leftovers) == (1 if moment == "mid-write" else 0)

    history = History.open(root)
    assert sorted(e.seed for e in history.index.entries()) == list(range(finished))
    assert history.page(None, Query("killed")).total == finished
    history.close()


# --- privacy -----------------------------------------------------------------------------------


def test_a_user_lists_opens_and_deletes_only_their_own(history):
    anns = save(history, user="ann", prompt="ann's secret garden")[0]
    bobs = save(history, user="bob", prompt="bob's secret garden")[0]
    nobody = save(history, user=None, prompt="a secret garden without a login")[0]
    assert [e.id for e in history.page("ann", Query("secret")).entries] == [anns.id]
    assert [e.id for e in history.page("bob").entries] == [bobs.id]
    assert [e.id for e in history.page(None).entries] == [nobody.id]
    for user, other in (("bob", anns), ("ann", bobs), (None, anns), ("ann", nobody)):
        with pytest.raises(HistoryError, match=f"no picture #{other.id} in your history"):
            history.get(user, other.id)
        with pytest.raises(HistoryError, match=f"no picture #{other.id} in your history"):
            history.delete(user, other.id)
    assert len(pngs(history.root)) == 3
    history.delete("ann", anns.id)
    assert not history.path(anns).exists() and history.page("ann").total == 0
    assert history.page("bob").total == 1


@pytest.mark.parametrize("flags, env, enabled, says", [
    ({}, {}, True, "Every result is saved in"),
    ({"auth": True}, {}, True, "Each user sees only their own pictures"),
    ({"save": False}, {}, False, "--no-save"),
    ({"share": True}, {}, False, "shared with `--share` and no `--auth`"),
    ({"share": True, "auth": True}, {}, True, "Each user sees only their own"),
    ({"share": True, "save": True}, {}, True, "everyone who opens it sees one shared history"),
    ({}, {"SPACE_ID": "someone/glide"}, False, "Hugging Face Space"),
    ({"auth": True}, {"SPACE_ID": "someone/glide"}, False, "Hugging Face Space"),
    ({"save": True, "auth": True}, {"SPACE_ID": "x/y"}, True, "Each user sees only"),
])
def test_the_saving_rules(tmp_path, flags, env, enabled, says):
    policy = saving_policy(tmp_path, environ=env, **flags)
    assert isinstance(policy, SavingPolicy) and policy.folder == tmp_path
    assert policy.enabled is enabled and says in policy.notice


# --- a failure to save ------------------------------------------------------------------------


def _result() -> Result:
    made = [recipe(seed=seed) for seed in (1, 2)]
    return Result([picture(r.seed) for r in made], made)


def test_a_full_disk_is_said_on_the_page_and_the_pictures_still_shown(history, monkeypatch):
    store = ResultStore(history.root.parent / "page", history=history)

    def no_space(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(type(history.folder), "write", no_space)
    updates = list(render(iter([_result()]), store, "ann"))
    _, progress, gallery, notes = updates[-1]
    assert "No space left on device" in notes and "shown but not kept" in notes
    assert "Done: 2 image(s)" in progress and len(gallery) == 2
    for path, _caption in gallery:
        assert read_recipe(path).seed in (1, 2)  # the page's copies are whole PNGs
    assert pngs(history.root) == []


def test_a_failing_index_keeps_the_pngs_and_says_it_is_repaired_later(history, monkeypatch):
    store = ResultStore(history.root.parent / "page", history=history)

    def full(self, entries):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(type(history.index), "add", full)
    saved = store.save(_result(), None)
    assert "saved in" in saved.problem and "repaired at the next start" in saved.problem
    assert len(saved.paths) == 2 and len(pngs(history.root)) == 2
    monkeypatch.undo()
    assert history.sync().added == 2 and len(history.index.entries()) == 2


def test_an_outputs_folder_that_cannot_be_made_is_said_too(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    history = History(blocked / "outputs", index_path=tmp_path / "index.sqlite3")
    saved = ResultStore(tmp_path / "page", history=history).save(_result(), None)
    assert "Could not save to the outputs folder" in saved.problem
    assert all(path.is_file() for path in saved.paths)


APP_AT_START = """
import runpy, sys
sys.argv = ["app.py", *sys.argv[1:]]
try:
    runpy.run_path("app.py", run_name="__main__")
finally:
    print("torch" in sys.modules, "gradio" in sys.modules)
"""
BAD_OUTPUTS = {  # the folder, and the reason given
    "under a file": (lambda tmp: file_in_the_way(tmp) / "sub",
                     lambda tmp: f"{tmp / 'a-file'} is a file, not a folder"),
    "not writable": (unwritable_folder, lambda tmp: "Permission denied"),
}


@pytest.mark.parametrize("given", ["--outputs", "$GLIDE_OUTPUTS"])
@pytest.mark.parametrize("case", BAD_OUTPUTS)
def test_an_app_that_cannot_write_its_outputs_folder_refuses_to_start(tmp_path, given, case):
    """One line, exit status 2, before the page's and the models' imports (torch)."""
    folder_of, reason = BAD_OUTPUTS[case]
    folder = folder_of(tmp_path)
    flags = ["--outputs", str(folder)] if given == "--outputs" else []
    env = {**os.environ, OUTPUTS_ENV: str(folder) if given != "--outputs" else ""}
    started = time.monotonic()
    finished = subprocess.run([sys.executable, "-c", APP_AT_START, "--models", "tiny", *flags],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    wall = time.monotonic() - started
    assert finished.returncode == 2, finished.stderr
    assert finished.stderr == f"glide-ui: Cannot save into {given} {folder}: " \
                              f"{reason(tmp_path)}. Choose another folder with --outputs, or " \
                              "run with --no-save.\n"
    assert finished.stdout.split() == ["False", "False"], wall  # neither torch nor gradio


@pytest.mark.parametrize("flags", [["--no-save"], ["--share"]])
def test_an_app_that_saves_nothing_needs_no_writable_folder(tmp_path, flags):
    from glide_ui.cli import parse_serve_args
    from glide_ui.server import checked_saving

    folder = file_in_the_way(tmp_path) / "sub"
    saving = checked_saving(parse_serve_args(["--outputs", str(folder), *flags]), None)
    assert not saving.enabled and saving.folder == folder


def test_the_history_command_refuses_a_folder_it_cannot_write(tmp_path, capsys):
    from glide_ui.cli import main

    folder = file_in_the_way(tmp_path) / "sub"
    assert main(["history", "--sync", "--outputs", str(folder)]) == 2
    assert capsys.readouterr().err == f"glide-ui history: Cannot save into --outputs " \
                                      f"{folder}: {tmp_path / 'a-file'} is a file, not a folder.\n"


@pytest.mark.parametrize("flags, says", [(["--share"], "shared with `--share` and no `--auth`"),
                                         (["--no-save"], "--no-save")])
def test_an_app_that_saves_nothing_says_so_on_the_page(tmp_path, flags, says):
    import app as app_module

    outputs = tmp_path / "outputs"
    demo, _launch = app_module.build(app_module.parse_args(
        ["--models", "tiny", "--outputs", str(outputs), *flags]))
    texts = {c["props"].get("elem_id"): str(c["props"].get("value"))
             for c in demo.get_config_file()["components"] if "props" in c}
    assert says in texts["history-notice"] and "Saving is off" in texts["history-notice"]
    assert "Saving is off" in texts["models-outputs"]
    assert not outputs.exists()
    demo.close()


def test_the_tab_lists_thumbnails_and_drops_pictures_deleted_by_hand(history, tmp_path,
                                                                     monkeypatch):
    from glide_ui.ui.backend import Backend
    from glide_ui.ui.history import HistoryView

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    big = recipe(prompt="a large inpainted photo", seed=9, pipeline="inpaint")
    history.save([(result_png(picture(9, size=600), big, NOW), big)], None, NOW)
    small, deleted = save(history, seed=1)[0], save(history, seed=2)[0]
    history.path(deleted).unlink()
    view = HistoryView(Backend(manager=None, history=history,
                               saving=saving_policy(history.root)))
    items, pager, ids, number = view.list_page("", "", None, None, 1)
    assert pager == "Page 1 of 1 · 2 picture(s)" and number == 1
    assert ids == [small.id, ids[1]] and len(items) == 2  # newest first, the gone one left out
    with Image.open(items[1][0]) as thumbnail:
        assert max(thumbnail.size) == 256 and items[1][1] == "a large inpainted photo · seed 9"
    assert Path(items[0][0]).read_bytes() == history.path(small).read_bytes()
    assert Path(items[0][0]).is_relative_to(tmp_path / "gradio")  # served from Gradio's dir
    assert deleted.file not in {e.file for e in history.index.entries()}
    assert view.list_page("corgi", "inpaint", None, None, 1)[1] == "Nothing matches."


def test_python_m_glide_ui_history_runs_the_command(tmp_path):
    """`python -m glide_ui.history` is the same command as `glide-ui history` (it had run
    nothing and exited 0)."""
    found = subprocess.run([sys.executable, "-m", "glide_ui.history", "--search", "",
                            "--outputs", str(tmp_path)], cwd=ROOT, capture_output=True,
                           text=True, timeout=120)
    assert (found.returncode, found.stdout) == (0, "")
    assert found.stderr == "0 of 0 picture(s).\n"
    bad = subprocess.run([sys.executable, "-m", "glide_ui", "history", "--limit", "many"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1, bad.stderr
    assert "--limit: invalid int value: 'many'" in bad.stderr

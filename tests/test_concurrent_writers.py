"""Writers saving different pictures under the same name into one folder at the same
moment, in threads and in processes: every picture is kept, whole, under a name of its
own (GlideOutput.save, a sweep's output, History, the page's copies and filmstrips; the
CLI's path is in test_cli.py).

Each trial starts its writers on a barrier right before they write, many trials over; a
trial fails when any picture is lost, kept twice or kept in part.
"""

from __future__ import annotations

import itertools
import multiprocessing
from dataclasses import replace
from pathlib import Path

from PIL import Image
from writers import (
    MOMENT,
    PROCESS_KINDS,
    PROCESS_SIZE,
    RECIPE,
    TRIALS,
    WRITERS,
    at_once,
    losses,
    picture,
    pixels,
    process_writer,
    trial_folder,
)

from glide_ui.api import GlideOutput, with_recipe
from glide_ui.history import History, result_png
from glide_ui.images import make_grid
from glide_ui.pipelines.events import Filmstrips, Result
from glide_ui.pipelines.filmstrip import animation
from glide_ui.ui.results import ResultStore

PROCESS_TRIALS, PROCESSES = 40, 4
SWEEP = 3  # images of one name in each sweep output


def failed_trials(tmp_path, writer_of, expected) -> list[str]:
    """Run `TRIALS` trials of `WRITERS` threads, each trial in a folder of its own:
    writer_of(folder, trial) gives the write(writer, barrier) they run; then
    losses(folder, expected(trial)). The trials that lost anything."""
    failed = []
    for trial in range(TRIALS):
        folder = tmp_path / f"trial-{trial}"
        folder.mkdir()
        at_once(WRITERS, writer_of(folder, trial))
        problems = losses(folder, expected(trial))
        if problems:
            failed.append(f"trial {trial}: {', '.join(problems)}")
    return failed


def one_each(trial: int) -> list[Image.Image]:
    return [picture(writer, trial) for writer in range(WRITERS)]


def output_writer(folder, trial):
    def write(writer, barrier):
        output = GlideOutput([with_recipe(picture(writer, trial), RECIPE)], [RECIPE])
        barrier.wait()
        return output.save(folder)

    return write


def test_threads_saving_outputs_under_one_name_keep_every_picture(tmp_path):
    failed = failed_trials(tmp_path, output_writer, one_each)
    assert not failed, f"{len(failed)} of {TRIALS} trials lost pictures: {failed[:3]}"
    names = sorted(path.name for path in (tmp_path / "trial-0").glob("*.png"))
    stem = "glide-text2im-a-corgi-at-the-same-moment-7"
    assert names == sorted([f"{stem}.png"] + [f"{stem}-{n}.png" for n in range(2, WRITERS + 1)])


def sweep_pictures(writer: int, trial: int) -> list[Image.Image]:
    return [picture(WRITERS * k + writer, trial) for k in range(SWEEP)]


def sweep_writer(folder, trial):
    """Sweeps' outputs: one seed and prompt (so one name) for every image, and a grid."""
    def write(writer, barrier):
        images = sweep_pictures(writer, trial)
        recipes = [replace(RECIPE, settings={"guidance_scale": float(k)}) for k in range(SWEEP)]
        output = GlideOutput([with_recipe(i, r) for i, r in zip(images, recipes, strict=True)],
                             recipes, [f"guidance {k}" for k in range(SWEEP)], make_grid(images))
        barrier.wait()
        return output.save(folder)

    return write


def test_threads_saving_sweeps_under_one_name_keep_every_picture(tmp_path):
    failed = failed_trials(tmp_path, sweep_writer, lambda trial: [
        image for writer in range(WRITERS) for image in sweep_pictures(writer, trial)])
    assert not failed, f"{len(failed)} of {TRIALS} trials lost pictures: {failed[:3]}"


def history_writer(folder, trial):
    history = History(folder)

    def write(writer, barrier):
        data = result_png(picture(writer, trial), RECIPE, MOMENT)
        barrier.wait()
        return history.save([(data, RECIPE)], None, MOMENT)

    return write


def test_threads_saving_to_history_under_one_name_keep_every_picture(tmp_path):
    failed = failed_trials(tmp_path, history_writer, one_each)
    assert not failed, f"{len(failed)} of {TRIALS} trials lost pictures: {failed[:3]}"
    history = History(tmp_path / "trial-0")
    assert len(history.index.entries()) == WRITERS
    history.close()


def test_threads_saving_results_keep_every_picture_and_page_copy(tmp_path):
    """The page's path: the outputs folder (History) and the copies the page shows."""
    def result_writer(folder, trial):
        store = ResultStore(tmp_path / "page" / folder.name, history=History(folder))

        def write(writer, barrier):
            result = Result([picture(writer, trial)], [RECIPE])
            barrier.wait()
            return store.save(result)

        return write

    failed = failed_trials(tmp_path, result_writer, one_each)
    assert not failed, f"{len(failed)} of {TRIALS} trials lost pictures: {failed[:3]}"
    for trial in range(TRIALS):
        assert losses(tmp_path / "page" / f"trial-{trial}", one_each(trial)) == [], trial


def test_threads_saving_filmstrips_keep_every_animation_and_sheet(tmp_path):
    """Each call writes into a folder of its own; every file must still be whole."""
    store = ResultStore(tmp_path / "page", keep=TRIALS * WRITERS)
    sheets = [make_grid([picture(writer, frame) for frame in range(4)], cols=2)
              for writer in range(WRITERS)]
    webps = [animation([picture(writer, frame) for frame in range(4)])
             for writer in range(WRITERS)]

    def write(writer, barrier):
        film = Filmstrips([webps[writer]], [sheets[writer]], [RECIPE.seed])
        barrier.wait()
        return store.save_filmstrips(film)

    for _ in range(TRIALS):
        for writer, items in enumerate(at_once(WRITERS, write)):
            (webp, _), (sheet, _) = items
            assert Path(webp).read_bytes() == webps[writer]
            assert pixels(Path(sheet)) == pixels(sheets[writer])


def test_processes_saving_under_one_name_keep_every_picture(tmp_path):
    """Separate processes, started once, meet at a barrier before each write of each
    trial: GlideOutput.save, then History.save."""
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(PROCESSES)
    workers = [spawn.Process(target=process_writer,
                             args=(str(tmp_path), writer, PROCESS_TRIALS, barrier))
               for writer in range(PROCESSES)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=600)
    assert [worker.exitcode for worker in workers] == [0] * PROCESSES
    failed = {kind: [] for kind in PROCESS_KINDS}
    for trial, kind in itertools.product(range(PROCESS_TRIALS), PROCESS_KINDS):
        problems = losses(trial_folder(kind, tmp_path, trial),
                          [picture(writer, trial, PROCESS_SIZE) for writer in range(PROCESSES)])
        if problems:
            failed[kind].append(f"trial {trial}: {', '.join(problems)}")
    assert failed == {kind: [] for kind in PROCESS_KINDS}, \
        {kind: f"{len(lost)} of {PROCESS_TRIALS} trials lost pictures" for kind, lost in
         failed.items()}

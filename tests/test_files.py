"""glide_ui.files and the file names: folders checked before the work, files written whole
under a name no one else takes, and prompts of any script kept in the names."""

from __future__ import annotations

import errno
import random
import re
import string
import unicodedata

import pytest
from writers import MOMENT, RECIPE, file_in_the_way, picture, unwritable_folder

from glide_ui import GlideUIError
from glide_ui.api import GlideOutput, with_recipe
from glide_ui.files import FolderError, writable_folder, write_new, write_replacing
from glide_ui.history import History, result_png
from glide_ui.history.folder import USERS_DIR
from glide_ui.recipe import SLUG_BYTES, SLUG_CHARACTERS, Recipe, slug

WINDOWS_RESERVED = set('<>:"/\\|?*')


def ascii_slug_before_unicode(text: str) -> str:
    """The names of glide-ui 0.x (ASCII letters and digits only), which ASCII prompts keep."""
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return words[:40].rstrip("-") or "untitled"


def test_ascii_prompts_keep_their_names():
    rng = random.Random(21)
    for _ in range(20_000):
        text = "".join(rng.choice(string.printable) for _ in range(rng.randint(0, 70)))
        assert slug(text) == ascii_slug_before_unicode(text), text
    assert Recipe("text2im", "a corgi", 3).file_stem() == "glide-text2im-a-corgi-3"
    assert slug("An oil painting of a corgi!") == "an-oil-painting-of-a-corgi"


@pytest.mark.parametrize(("prompt", "name"), [
    ("一只可爱的猫", "一只可爱的猫"),
    ("Кот в сапогах", "кот-в-сапогах"),
    ("नमस्ते दुनिया", "नमस्ते-दुनिया"),  # the vowel signs (marks) stay in their words
    ("café au lait", "café-au-lait"),
    ("Ｆｕｌｌ　ｗｉｄｔｈ", "full-width"),  # NFKC
    ("😀 🐈", "untitled"),
    ("../../etc/passwd", "etc-passwd"),
    ('a<b>c:d"e/f\\g|h?i*j', "a-b-c-d-e-f-g-h-i-j"),
])
def test_prompts_of_any_script_keep_their_letters(prompt, name):
    assert slug(prompt) == name


def test_every_slug_is_a_short_safe_file_name(tmp_path):
    rng = random.Random(7)
    for _ in range(3_000):
        text = "".join(chr(rng.choice([rng.randint(0, 0x2FFF), rng.randint(0x3000, 0x10FFFF)]))
                       for _ in range(rng.randint(0, 200)))
        part = slug(text)
        assert part and len(part) <= SLUG_CHARACTERS and len(part.encode()) <= SLUG_BYTES
        assert not WINDOWS_RESERVED & set(part) and part[0] not in ".-" and part[-1] != "-"
        assert all(unicodedata.category(c)[0] in "LMN" or c == "-" for c in part), text
    longest = "\U00020000" * 100  # 4 bytes each in UTF-8
    part = slug(longest)
    assert len(part.encode()) == SLUG_BYTES
    # The longest names written: History's (time, tab, prompt, seed, a number) and the
    # CLI's, under the 255-byte limit of Linux and macOS file names.
    stem = f"235959-clip_guided-{part}-{-2**31}-9999.png"
    assert len(stem.encode()) < 255
    write_new(tmp_path, Recipe("clip_guided", longest, -2**31).file_stem(), ".png", b"x")


def test_a_missing_folder_is_made_and_left_empty(tmp_path):
    folder = writable_folder(tmp_path / "a" / "b" / "c")
    assert folder.is_dir() and list(folder.iterdir()) == []


@pytest.mark.parametrize("where", ["file", "under a file"])
def test_a_file_in_the_way_is_named(tmp_path, where):
    blocker = file_in_the_way(tmp_path)
    folder = blocker if where == "file" else blocker / "sub" / "deeper"
    with pytest.raises(FolderError) as raised:
        writable_folder(folder, "--out")
    assert str(raised.value) == f"Cannot save into --out {folder}: {blocker} is a file, " \
                                "not a folder."
    assert isinstance(raised.value, GlideUIError) and isinstance(raised.value, OSError)
    assert blocker.read_text() == "not a folder"


def test_a_folder_that_cannot_be_written_is_refused(tmp_path):
    folder = unwritable_folder(tmp_path)
    with pytest.raises(FolderError, match=re.escape(f"Cannot save into {folder}: Permission "
                                                    "denied.")):
        writable_folder(folder)


def test_write_new_takes_the_next_free_name_and_never_replaces(tmp_path):
    (tmp_path / "x.png").write_bytes(b"mine")
    assert write_new(tmp_path, "x", ".png", b"one") == tmp_path / "x-2.png"
    assert write_new(tmp_path, "x", ".png", b"two") == tmp_path / "x-3.png"
    assert write_new(tmp_path, "y", ".webp", b"three") == tmp_path / "y.webp"
    assert [(p.name, p.read_bytes()) for p in sorted(tmp_path.iterdir())] == [
        ("x-2.png", b"one"), ("x-3.png", b"two"), ("x.png", b"mine"), ("y.webp", b"three")]


def test_write_replacing_replaces_in_one_step(tmp_path):
    path = tmp_path / "page.png"
    write_replacing(path, b"old")
    write_replacing(path, b"new")
    assert [p.name for p in tmp_path.iterdir()] == ["page.png"]  # no temporary file left
    assert path.read_bytes() == b"new"


def test_glide_output_save_says_why_a_folder_cannot_hold_the_pictures(tmp_path):
    blocker = file_in_the_way(tmp_path)
    output = GlideOutput([with_recipe(picture(1), RECIPE)], [RECIPE])
    with pytest.raises(GlideUIError) as raised:
        output.save(blocker / "pictures")
    assert str(raised.value) == f"Cannot save into {blocker / 'pictures'}: {blocker} is a " \
                                "file, not a folder."
    assert output.save(tmp_path / "elsewhere")[0].name == \
        "glide-text2im-a-corgi-at-the-same-moment-7.png"  # the images are still there


def test_a_full_disk_while_saving_is_a_glide_ui_error(tmp_path, monkeypatch):
    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("glide_ui.outputs.write_new", full)
    output = GlideOutput([with_recipe(picture(1), RECIPE)], [RECIPE])
    with pytest.raises(FolderError, match=re.escape(f"Cannot save into {tmp_path}: No space "
                                                    "left on device.")):
        output.save(tmp_path)


def test_history_names_keep_the_prompts_letters(tmp_path):
    made = Recipe("text2im", "一只可爱的猫", 1)
    history = History(tmp_path)
    (entry,) = history.save([(result_png(picture(1), made, MOMENT), made)], "ann", MOMENT)
    history.close()
    assert entry.file == f"{USERS_DIR}/ann/2025-03-14/150926-generate-一只可爱的猫-1.png"

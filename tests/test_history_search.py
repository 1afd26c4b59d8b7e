"""History search in every script (issue #21): a word typed in the box finds every prompt
that holds it, in languages written without spaces (Chinese, Japanese, Korean, Thai, Lao,
Khmer, Myanmar) as anywhere in a run of characters, one-character words included; words of
spaced scripts keep their prefix match and the order stays newest first; an index made by
the schema before migrates itself on its first open. Python (History), the page's handler
and the command line here; HTTP in tests/test_history_field.py.
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import unicodedata
from datetime import datetime, timedelta

import pytest
import regex
from app_server import ROOT
from index_faults import SCHEMA_1_FOLDER, SCHEMA_1_PROMPTS, copied, fingerprints
from PIL import Image

from glide_ui.history import History, Query, result_png, saving_policy
from glide_ui.history.__main__ import main as history_cli
from glide_ui.history.tables import SCHEMA_VERSION
from glide_ui.history.words import match_expression
from glide_ui.recipe import Recipe

NOW = datetime(2026, 12, 1, 9, 30).astimezone()

# prompt -> words inside it that must find it; words that must not
FOUND = {
    "一只可爱的猫": (["猫", "可爱", "只可", "的", "一只可爱的猫"], ["猫狗", "爱可"]),
    "東京タワー at night": (["タワー", "タ", "京タ", "ー", "東京 night", "タワー nig"],
                           ["タワー day", "ワタ"]),
    "귀여운 고양이가 잔다": (["고양이", "양이", "이가", "잔", "귀여운"], ["고양이다"]),
    "แมวน่ารักนอนหลับ": (["น่ารัก", "แมว", "หลับ", "นอน"], ["แมวหลับ"]),
    "ແມວນ້ອຍນອນ": (["ນ້ອຍ", "ແມວ", "ນອນ"], ["ນອນແມວ"]),
    "ឆ្មាគួរឱ្យស្រលាញ់": (["គួរ", "ស្រលាញ់", "ឆ្មា"], ["ស្រលាញ់ឆ្មា"]),
    "ကြောင်လေးချစ်စရာ": (["ချစ်စရာ", "လေး", "ကြောင်"], ["စရာချစ်"]),
    "a corgi on the beach": (["corg", "CORGI", "beach", "be", "on", "ｃｏｒｇｉ"],
                             ["rgi", "orgi", "dog"]),
    "un café au lait": (["cafe", "café", "cafe\u0301", "lai"], ["afe"]),
}


def save(history: History, prompt: str, seed: int, created: datetime = NOW) -> None:
    made = Recipe(pipeline="text2im", prompt=prompt, seed=seed, settings={}, models={})
    image = Image.new("RGB", (8, 8), (seed % 256, 40, 90))
    history.save([(result_png(image, made, created), made)], None, created)


def found(history: History, words: str) -> list[str]:
    return [entry.prompt for entry in history.page(None, Query(words), 1, 200).entries]


@pytest.fixture
def history(tmp_path):
    history = History.open(tmp_path / "outputs")
    for seed, prompt in enumerate(FOUND):
        save(history, prompt, seed, NOW + timedelta(minutes=seed))
    yield history
    history.close()


@pytest.mark.parametrize("prompt", FOUND)
def test_a_word_inside_a_prompt_of_any_script_finds_it(history, prompt):
    finding, missing = FOUND[prompt]
    for word in finding:
        assert found(history, word) == [prompt], word
    for word in missing:
        assert prompt not in found(history, word), word


def test_words_of_spaced_scripts_keep_prefix_match_and_newest_first(history):
    save(history, "a corgi in space", 90, NOW + timedelta(hours=1))
    save(history, "猫和corgi", 91, NOW + timedelta(hours=2))
    assert found(history, "corg") == ["猫和corgi", "a corgi in space", "a corgi on the beach"]
    assert found(history, "corgi spa") == ["a corgi in space"]  # every word must match
    assert found(history, "猫") == ["猫和corgi", "一只可爱的猫"]  # newest first here too
    assert found(history, "和corg") == ["猫和corgi"]
    assert match_expression("Corgi's  space-elevator!") == '"corgi"* "s"* "space"* "elevator"*'
    assert match_expression("一只猫 at") == '"一 只 猫"* "at"*'


def test_search_text_of_no_input_is_an_fts_syntax_error(history):
    for odd in ('"', "「猫」", "猫、", "NEAR(猫", "*", "猫 OR -", "'; DROP TABLE images; --",
                "\u0301", "ー*", "　"):  # the last: an ideographic space
        history.page(None, Query(odd))
    assert found(history, "「可爱」") == ["一只可爱的猫"]  # brackets are not part of the word
    assert len(found(history, "　")) == len(FOUND)  # no word: everything


def _graphemes(text: str) -> list[str]:
    return regex.findall(r"\X", unicodedata.normalize("NFKC", text))


VOCABULARY = {  # script -> words; unspaced ones are run together, spaced ones are not
    "zh": ["猫", "可爱", "小狗", "东京", "铁塔", "夜晚", "海滩", "灯塔", "红色", "油画"],
    "ja": ["ねこ", "タワー", "東京", "夜景", "かわいい", "コーギー", "桜"],
    "ko": ["고양이", "귀여운", "바닷가", "등대", "밤"],
    "th": ["แมว", "น่ารัก", "ทะเล", "ประภาคาร", "กลางคืน"],
    "km": ["ឆ្មា", "គួរ", "សមុទ្រ"],
    "my": ["ကြောင်", "လေး", "ပင်လယ်"],
    "latin": ["corgi", "lighthouse", "beach", "dusk", "painting", "crayon", "red", "night"],
}
TRIALS = 1500


def test_random_words_of_random_prompts_are_all_found(tmp_path):
    """TRIALS searches: a run of characters from an unspaced part of a prompt, or a prefix of
    one of its spaced words. The prompt is always among the results, and every result
    holds the run (spaces aside) or a word with the prefix."""
    rng = random.Random(21)
    history = History.open(tmp_path / "outputs")
    prompts = []
    for seed in range(80):
        parts = []
        for script in rng.sample(sorted(VOCABULARY), rng.randint(1, 3)):
            words = rng.sample(VOCABULARY[script], rng.randint(1, 3))
            parts.append(" ".join(words) if script == "latin" else "".join(words))
        prompts.append(" ".join(parts))
        save(history, prompts[-1], seed, NOW + timedelta(seconds=seed))
    for _ in range(TRIALS):
        prompt = rng.choice(prompts)
        latin = [word for word in prompt.split() if word.isascii()]
        runs = [word for word in prompt.split() if not word.isascii()]
        if latin and (not runs or rng.random() < 0.3):
            word = rng.choice(latin)
            query = word[:rng.randint(1, len(word))]
            holds = lambda text, q=query: any(w.startswith(q) for w in text.split())  # noqa: E731
        else:
            characters = _graphemes(rng.choice(runs))
            start = rng.randrange(len(characters))
            query = "".join(characters[start:start + rng.randint(1, 4)])
            holds = lambda text, q=query: q in "".join(text.split())  # noqa: E731
        results = found(history, query)
        assert prompt in results, (query, prompt)
        assert all(holds(result) for result in results), (query, results)
    history.close()


# --- an index of the schema before migrates itself ---------------------------------------------


def test_an_index_of_schema_1_migrates_on_its_first_open(tmp_path):
    folder = copied(SCHEMA_1_FOLDER, tmp_path)
    pictures = fingerprints(folder)
    with sqlite3.connect(folder / "history.sqlite3") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1 < SCHEMA_VERSION
        old_ids = [row[0] for row in db.execute("SELECT id FROM images")]
    db.close()
    history = History.open(folder)
    assert sorted(found(history, "")) == sorted(SCHEMA_1_PROMPTS)
    assert found(history, "可爱") == found(history, "猫") == ["一只可爱的猫"]
    assert found(history, "タワー") == ["東京タワー at night"]
    assert found(history, "corg") == ["a corgi on the beach"]
    assert min(entry.id for entry in history.index.entries()) > max(old_ids)  # ids go on
    assert history.notice == "" and not list(folder.glob("*.damaged-*"))
    history.close()
    assert fingerprints(folder) == pictures


def test_the_command_line_finds_a_word_inside_and_migrates_the_index(tmp_path, capsys):
    folder = copied(SCHEMA_1_FOLDER, tmp_path)
    assert history_cli(["--outputs", str(folder), "--search", "可爱"]) == 0
    out, err = capsys.readouterr()
    assert out.count("\n") == 1 and "一只可爱的猫" in out and "1 of 1 picture(s)." in err
    listed = subprocess.run([sys.executable, "-m", "glide_ui", "history", "--outputs",
                             str(folder), "--search", "タワー"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("\n") == 1 and "東京タワー at night" in listed.stdout
    assert history_cli(["--outputs", str(folder), "--search", "corg"]) == 0
    assert "a corgi on the beach" in capsys.readouterr().out


def test_the_page_finds_a_word_inside(history, tmp_path, monkeypatch):
    from glide_ui.ui.backend import Backend
    from glide_ui.ui.history import HistoryView

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    view = HistoryView(Backend(manager=None, history=history,
                               saving=saving_policy(history.root)))
    items, pager, _ids, _number = view.list_page("可爱", "", None, None, 1)
    assert pager == "Page 1 of 1 · 1 picture(s)" and items[0][1] == "一只可爱的猫 · seed 0"
    assert view.list_page("猫", "", None, None, 1)[1] == "Page 1 of 1 · 1 picture(s)"
    assert view.api_list(query="タワー")["items"][0]["prompt"] == "東京タワー at night"

"""Prompts from a file or stdin on the command line, each run in turn, and CLIP
re-ranking that keeps each prompt's best K of its N images."""

from __future__ import annotations

import io

from glide_ui.cli import main
from glide_ui.images import read_recipe

FAST = ["--models", "tiny", "--device", "cpu", "--steps", "2", "--no-upsample", "--quiet"]


def test_each_line_of_a_file_is_a_prompt_and_keep_writes_the_best(tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red fox\n\n  a blue car  \n", encoding="utf-8")
    code = main(["generate", "--prompts", str(prompts), "--batch-size", "3", "--seed", "4",
                 "--rank", "--keep", "1", "--out", str(tmp_path / "out"), *FAST])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 2  # one kept image per prompt, with its CLIP score
    assert [read_recipe(line.split("\t")[0]).prompt for line in lines] == ["a red fox",
                                                                          "a blue car"]
    assert all("\t" in line for line in lines)


def test_kept_images_are_the_best_of_the_ranked_batch(tmp_path, capsys):
    args = ["generate", "a red fox", "--batch-size", "3", "--seed", "4", "--rank", *FAST]
    assert main([*args, "--out", str(tmp_path / "all")]) == 0
    ranked = capsys.readouterr().out.strip().splitlines()
    assert main([*args, "--keep", "2", "--out", str(tmp_path / "best")]) == 0
    kept = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[1] for line in kept] == [line.split("\t")[1]
                                                      for line in ranked[:2]]
    assert [read_recipe(line.split("\t")[0]).seed for line in kept] == \
        [read_recipe(line.split("\t")[0]).seed for line in ranked[:2]]


def test_prompts_from_stdin(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("a lighthouse\na corgi\n"))
    assert main(["clip", "--prompts", "-", "--seed", "1", "--out", str(tmp_path),
                 *FAST]) == 0
    paths = capsys.readouterr().out.split()
    assert [read_recipe(path).prompt for path in paths] == ["a lighthouse", "a corgi"]


def test_a_prompt_and_a_file_an_empty_file_or_keep_without_rank_are_refused(tmp_path,
                                                                          capsys):
    prompts = tmp_path / "p.txt"
    prompts.write_text("a fox\n", encoding="utf-8")
    assert main(["generate", "a fox", "--prompts", str(prompts), *FAST]) == 2
    assert "not allowed with argument" in capsys.readouterr().err
    prompts.write_text("\n  \n", encoding="utf-8")
    assert main(["generate", "--prompts", str(prompts), *FAST]) == 1
    assert "holds no prompt: write one per line" in capsys.readouterr().err
    assert main(["generate", "a fox", "--keep", "2", *FAST]) == 1
    assert "give --rank as well" in capsys.readouterr().err

"""The settings schema, walked: every setting of every job is in its request with the
declared default, a keyword of its `Glide` method, a flag of its command (same choices,
the default in its help), a parameter of its HTTP endpoint (the app's API info: same
default and choices where the page holds it), and restored from a recipe into the widget
the schema names."""

from __future__ import annotations

import argparse
import inspect
import re
from dataclasses import MISSING, fields
from pathlib import Path

import pytest
from app_server import running_app
from gradio_client import Client

from glide_ui.api import Glide, _request
from glide_ui.checkpoints import OPENAI_CLIP_NAMES
from glide_ui.cli import build_parser
from glide_ui.cli.jobs import cli_settings, given_settings
from glide_ui.pipelines.jobs import JOBS, job
from glide_ui.pipelines.solvers import SOLVERS
from glide_ui.recipe import Recipe
from glide_ui.settings import (
    CALL_SETTINGS,
    OPENAI_CLIP_MODELS,
    REQUIRED,
    SETTINGS,
    SOLVER_NAMES,
    Setting,
    canonical,
    settings_of,
)
from glide_ui.ui.settings import restore_plan

PAIRS = [(name, setting) for name in JOBS for setting in settings_of(name)]
IDS = [f"{name}-{setting.name}" for name, setting in PAIRS]


def other_value(setting: Setting, job: str):
    """A valid value of `setting` other than its default for `job`."""
    default = setting.default_for(job)
    if setting.kind == "bool":
        return not default
    if setting.kind == "choice":
        return next(c for c in setting.choices_for(job) if c != default)
    if setting.kind in ("int", "float"):
        low, high = setting.range
        step = 1 if setting.kind == "int" else 0.5
        return default + step if default + step <= high else default - step
    if setting.kind == "respacing":
        return "ddim7"
    return {"aspect_ratio": "16:9", "mask_shape": "rect:1,1,9,9"}.get(setting.name, "blurry")


def test_the_schema_agrees_with_the_code_it_names():
    assert SOLVER_NAMES == tuple(SOLVERS)
    assert OPENAI_CLIP_MODELS == OPENAI_CLIP_NAMES
    aliases = [alias for setting in SETTINGS.values() for alias in setting.aliases]
    assert len(aliases) == len(set(aliases)) and not set(aliases) & set(SETTINGS)
    assert canonical("steps") == "base_respacing"
    assert canonical("upsample_steps") == "upsample_respacing"
    assert job("generate") is job("text2im") and job("clip").name == "clip_guided"


@pytest.mark.parametrize("name", list(JOBS))
def test_requests_are_declared_by_the_schema(name):
    info = JOBS[name].info
    declared = {key: default for key, default in info.fields}
    declared.update({s.name: s.default_for(name) for s in settings_of(name)
                     if s.name not in declared})
    made = {f.name: (REQUIRED if f.default is MISSING else f.default)
            for f in fields(JOBS[name].request)}
    assert made == declared
    assert list(made)[:len(info.fields)] == [key for key, _ in info.fields]


@pytest.mark.parametrize(("name", "setting"), PAIRS, ids=IDS)
def test_python_takes_every_setting_by_name(name, setting):
    method = inspect.signature(getattr(Glide, name))
    parameters = method.parameters
    assert setting.name in parameters or \
        inspect.Parameter.VAR_KEYWORD in {p.kind for p in parameters.values()}
    if setting.name in parameters and setting.name not in CALL_SETTINGS:
        assert parameters[setting.name].default == setting.default_for(name)
    leading = {key: None for key, _ in JOBS[name].info.fields}
    value = other_value(setting, name)
    for key in (setting.name, *setting.aliases):  # what the method's **settings reach
        request = _request(name, **{**leading, "prompt": "p", key: value})
        assert getattr(request, setting.name) == value
    if setting.name not in CALL_SETTINGS:
        assert getattr(_request(name, **{**leading, "prompt": "p"}), setting.name) == \
            setting.default_for(name)


@pytest.fixture(scope="module")
def commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


@pytest.mark.parametrize(("name", "setting"), [p for p in PAIRS if p[1] in
                                               cli_settings(p[0])],
                         ids=[i for i, p in zip(IDS, PAIRS, strict=True)
                              if p[1] in cli_settings(p[0])])
def test_the_command_line_has_every_setting(commands, name, setting):
    command = commands[JOBS[name].info.command]
    action = next(a for a in command._actions if a.dest == setting.name)
    assert setting.cli_flag in action.option_strings
    for alias in setting.aliases:
        assert "--" + alias.replace("_", "-") in action.option_strings
    if setting.kind == "choice":
        assert tuple(action.choices) == setting.choices_for(name)
    default = setting.default_for(name)
    shown = repr(default) if default == "" else f"{default:g}" \
        if isinstance(default, float) else str(default)
    assert f"(default {shown})" in action.help
    value = other_value(setting, name)
    if setting.kind == "bool":
        given = [setting.cli_flag if value else "--no-" + setting.cli_flag[2:]]
    else:
        given = [setting.cli_flag, str(value)]
    args = command.parse_args([*POSITIONAL[name], *given])
    assert given_settings(args)[setting.name] == value


# The pictures of the commands that take them: any existing file parses.
POSITIONAL = {"text2im": ["p"], "clip_guided": ["p"], "inpaint": [__file__, __file__, "p"],
              "outpaint": [__file__, "p"], "sketch": [__file__, __file__, "p"],
              "variations": [__file__, "p"], "upscale": [__file__, "p"]}


def test_the_fast_preset_on_the_command_line(commands):
    args = commands["generate"].parse_args(["a corgi", "--preset", "fast", "--steps", "20"])
    assert given_settings(args) | {"seed": None} == {
        "sampler": "dpmpp_2m", "base_respacing": "20", "upsample_sampler": "dpmpp_2m",
        "upsample_respacing": "10", "seed": None, "batch_size": None}
    assert not any(a.dest == "preset" for a in commands["clip"]._actions)


@pytest.mark.parametrize(("name", "setting"), [p for p in PAIRS if p[1].record != "never"],
                         ids=[i for i, p in zip(IDS, PAIRS, strict=True)
                              if p[1].record != "never"])
def test_a_recipe_holding_a_setting_restores_it(name, setting):
    recorded = {s.name: s.default_for(name) for s in settings_of(name)
                if s.record == "always"}
    value = other_value(setting, name)
    values, left = restore_plan(Recipe(name, "a prompt", 3, {**recorded,
                                                               setting.name: value}))
    assert left == []
    if setting.name == "base_respacing":
        assert (values["steps"], values["base_respacing"]) == (7, value)
    else:
        assert values[setting.widget] == value


@pytest.fixture(scope="module")
def api() -> dict:
    with running_app() as app:
        yield Client(app.url, verbose=False).view_api(return_format="dict",
                                                      print_info=False)["named_endpoints"]


def page_default(setting: Setting, name: str):
    """The default the page shows for `setting` (in its widget's terms)."""
    default = setting.page_defaults.get(name, setting.default_for(name))
    if setting.name == "base_respacing":
        return int(default)  # the Base steps slider (the exact-spacing box starts empty)
    if setting.name == "filmstrip_frames":
        return bool(default)  # the "Keep a filmstrip" checkbox
    return default


@pytest.mark.parametrize("name", list(JOBS))
def test_every_setting_is_a_parameter_of_its_endpoint(api, name):
    parameters = {p["parameter_name"]: p for p in api[f"/{JOBS[name].info.tab}"]["parameters"]}
    for setting in settings_of(name):
        if setting.widget is None:  # declared as not on the page
            assert setting.name not in parameters and not set(setting.aliases) & set(
                parameters), setting.name
            continue
        widget = "steps" if setting.name == "base_respacing" else setting.widget
        assert widget in parameters, setting.name
        parameter = parameters[widget]
        if setting.kind == "seed" or setting.name == "prompt":
            continue
        assert parameter["parameter_default"] == page_default(setting, name), setting.name
        limits = re.fullmatch(r"numeric value between (\S+) and (\S+)",
                              parameter.get("type", {}).get("description", ""))
        if setting.range and limits and setting.kind != "respacing":  # a slider's ends
            assert tuple(map(float, limits.groups())) == setting.range, setting.name
        enum = parameter.get("type", {}).get("enum")
        if setting.kind == "choice" and enum is not None:
            assert tuple(enum) == setting.choices_for(name), setting.name


# Widgets whose label on the page says more than the declared one (still hand-written).
PAGE_LABELS = {"prompt", "seed", "mask_grow", "mask_feather", "left", "top", "right", "bottom",
               "upsample", "filmstrip_frames", "aspect_ratio", "mask_invert", "mask_shape",
               "clip_source"}


@pytest.mark.parametrize("name", list(JOBS))
def test_every_widget_shows_its_declared_label(api, name):
    parameters = {p["parameter_name"]: p for p in api[f"/{JOBS[name].info.tab}"]["parameters"]}
    for setting in settings_of(name):
        if setting.widget is None or setting.name in PAGE_LABELS:
            continue
        widget = "steps" if setting.name == "base_respacing" else setting.widget
        assert parameters[widget]["label"] == setting.label, setting.name


def settings_rows() -> list[str]:
    """The README's settings table, one row per setting, from the schema."""
    rows = []
    for setting in SETTINGS.values():
        jobs = "all" if len(setting.jobs) == len(JOBS) else ", ".join(setting.jobs)
        limits = f"{setting.range[0]:g} to {setting.range[1]:g}" if setting.range else \
            ", ".join(setting.choices or ())
        limits += "".join(f" ({job}: {', '.join(choices)})"
                          for job, choices in setting.job_choices.items())
        flags = [setting.cli_flag, *("--" + a.replace("_", "-") for a in setting.aliases)]
        flag = ", ".join(f"`{f}`" for f in flags if f)
        page = f"`{setting.widget}`" if setting.widget else "(not on the page)"
        rows.append(f"| `{setting.name}` | {jobs} | {_defaults(setting)} | {limits} | "
                    f"{flag} | {page} |")
    return rows


def _defaults(setting: Setting) -> str:
    """"3.0" or, where jobs differ, "text2im, variations: 3.0; inpaint, ...: 5.0"."""
    if not isinstance(setting.default, dict):
        return _shown_value(setting.default)
    by_value: dict[str, list[str]] = {}
    for job_name, value in setting.default.items():
        by_value.setdefault(_shown_value(value), []).append(job_name)
    return "; ".join(f"{', '.join(jobs)}: {value}" for value, jobs in by_value.items())


def _shown_value(value) -> str:
    return "required" if value is REQUIRED else f'`"{value}"`' if isinstance(value, str) \
        else f"`{value}`"


def test_the_readme_lists_every_setting_as_declared():
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    table = [line for line in text.splitlines() if line.startswith("| `")]
    assert [row for row in table if row.split("`")[1] in SETTINGS] == settings_rows()

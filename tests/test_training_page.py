"""The Train tab and the Models tab's fine-tunes: a run streams its loss, samples beside
the base model's and a status line; Stop keeps the last checkpoint and Resume goes on;
bad data and settings give a message; a public page trains only when its owner allows
it, for logged-in users; the result is used by every job from the Models tab."""

from __future__ import annotations

import threading

import gradio as gr
import pytest
from training_data import colour_folder

from glide_ui.finetunes import find_finetunes
from glide_ui.models import ModelManager
from glide_ui.training.policy import TrainingPolicy, training_policy
from glide_ui.ui import Backend, build_demo
from glide_ui.ui.models_panel import use_finetune, use_none
from glide_ui.ui.streaming import user_errors
from glide_ui.ui.train import train_run

VALUES = {"uploads": None, "data_path": "", "name": "colours", "model": "base",
          "kind": "LoRA", "lora_rank": 2, "steps": 4, "lr": 1e-2, "batch_size": 2,
          "sample_every": 2, "sample_steps": 2, "seed": 0, "sample_prompts": "",
          "resume": False}


@pytest.fixture(scope="module")
def manager():
    return ModelManager("tiny", device="cpu", dtype="fp32")


@pytest.fixture
def backend(manager, tmp_path):
    return Backend(manager, runs=tmp_path / "runs")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return colour_folder(tmp_path_factory.mktemp("colours"))


def test_a_run_streams_loss_samples_and_status_and_its_result_is_used(backend, data):
    updates = list(train_run({**VALUES, "data_path": str(data)}, backend, threading.Event(),
                             None))
    status, plot, gallery, result = updates[-1]
    assert "Done: 4 steps" in status
    assert plot["step"].tolist() == [1, 2, 3, 4] and plot["loss"].notna().all()
    assert any("steps/s" in u[0] and "left" in u[0] for u in updates if isinstance(u[0], str))
    captions = [caption for _, caption in gallery]  # each prompt: base beside the latest
    assert captions == ["base · a blue square", "step 4 · a blue square",
                        "base · a green square", "step 4 · a green square"]
    path = backend.runs / "local" / "colours" / "colours.safetensors"
    assert str(path) in result and path.is_file()
    assert [info.path for info in find_finetunes(backend.runs)] == [path]
    panel = use_finetune(backend.manager, str(path), 0.5)  # the Models tab's choice
    assert "colours" in panel and backend.manager.finetune_record("base")["scale"] == 0.5
    assert "colours" not in use_none(backend.manager)
    assert backend.manager.finetune_record("base") is None


def test_stop_keeps_the_last_checkpoint_and_resume_goes_on(backend, data):
    stop = threading.Event()
    values = {**VALUES, "data_path": str(data), "steps": 6}
    updates = []
    for update in train_run(values, backend, stop, None):
        updates.append(update)
        frame = update[1]
        if hasattr(frame, "empty") and not frame.empty and frame["step"].max() >= 3:
            stop.set()
    status, plot, _, result = updates[-1]
    assert "Stopped at step 3" in status and "step 2 is kept" in status
    assert "Stopped" in result
    with pytest.raises(gr.Error, match="exists"):
        list(train_run(values, backend, threading.Event(), None))
    resumed = list(train_run({**values, "resume": True}, backend, threading.Event(), None))
    assert resumed[-1][1]["step"].tolist() == [3, 4, 5, 6]
    assert "Done: 6 steps" in resumed[-1][0]


@pytest.mark.parametrize(("change", "says"), [
    ({"data_path": ""}, "Upload the pictures"),
    ({"lr": 0}, "learning rate must be positive"),
    ({"name": "../up"}, "Name the run"),
    ({"data_path": "EMPTY"}, "No usable picture|no usable|nothing"),
])
def test_bad_data_and_settings_give_a_message(backend, data, tmp_path, change, says):
    if change.get("data_path") == "EMPTY":
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "a.txt").write_text("a caption without a picture")
        change = {"data_path": str(tmp_path / "empty")}
    run = user_errors(lambda: train_run({**VALUES, "data_path": str(data), **change},
                                        backend, threading.Event(), None))
    with pytest.raises(gr.Error, match=f"(?i){says}"):
        list(run())


def test_training_on_a_public_page_needs_the_owner_and_a_login():
    space = {"SPACE_ID": "someone/glide"}
    assert training_policy(environ={}).enabled and training_policy(environ={}).server_paths
    for share, environ in ((True, {}), (False, space)):
        off = training_policy(share, auth=True, environ=environ)
        assert not off.enabled and "--allow-training" in off.message
        no_login = training_policy(share, allow=True, environ=environ)
        assert not no_login.enabled and "--auth" in no_login.message
        on = training_policy(share, auth=True, allow=True, environ=environ)
        assert on.enabled and on.needs_login and not on.server_paths


def test_a_page_without_training_says_why_and_has_no_train_endpoint(manager, tmp_path,
                                                                     data):
    off = training_policy(share=True, environ={})
    demo = build_demo(Backend(manager, training=off, runs=tmp_path))
    names = {d.api_name for d in demo.fns.values()}
    assert "train" not in names and "use_finetune" not in names
    texts = [c.get("props", {}).get("value") for c in demo.config["components"]]
    assert any(isinstance(t, str) and off.message in t for t in texts)
    uploads_only = Backend(manager, runs=tmp_path,
                           training=TrainingPolicy(True, "", needs_login=True))
    with pytest.raises(gr.Error, match="Log in"):
        list(train_run({**VALUES, "data_path": str(data)}, uploads_only, threading.Event(),
                       None))
    with pytest.raises(gr.Error, match="uploaded pictures only"):
        list(train_run({**VALUES, "data_path": str(data)}, uploads_only, threading.Event(),
                       "ann"))

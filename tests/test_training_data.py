"""Fine-tuning, without training: the data scan and its report, the objective's terms,
precision choices, fine-tune files merged by the model manager, recipes naming them, and
bad data refused on the CLI and in Python."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from training_data import COLOURS, caption, colour_folder, colour_shard

import glide_ui
from glide_ui import cli
from glide_ui.errors import GlideUIError, RequestError
from glide_ui.finetunes import FinetuneError, apply_finetune, load_finetune, save_finetune
from glide_ui.glide.diffusion import create_diffusion
from glide_ui.models import ModelManager
from glide_ui.training.data import DataError, prepare, scan
from glide_ui.training.lora import add_lora, lora_targets, trainable_state
from glide_ui.training.objective import hybrid_loss
from glide_ui.training.precision import choose_precision, make_optimizer

# --- data ---------------------------------------------------------------------------------------


def test_the_scan_reports_each_skipped_picture_and_why(tmp_path):
    colour_folder(tmp_path)
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    (tmp_path / "broken.txt").write_text("x")
    Image.new("RGB", (32, 80)).save(tmp_path / "small.png")
    (tmp_path / "small.txt").write_text("x")
    Image.new("RGB", (64, 64)).save(tmp_path / "alone.png")
    Image.new("RGB", (64, 64)).save(tmp_path / "blank.png")
    (tmp_path / "blank.txt").write_text("  \n")
    report = scan(tmp_path, 64)
    assert sorted(item.caption for item in report.items) == sorted(map(caption, COLOURS))
    reasons = {s.source: s.reason for s in report.skipped}
    assert reasons["broken.png"].startswith("unreadable")
    assert reasons["small.png"] == "too small (32 x 80 px; the short side needs at least 64 px)"
    assert reasons["alone.png"].startswith("no caption")
    assert reasons["blank.png"] == "empty caption"
    assert report.summary().splitlines()[0] == \
        f"{tmp_path}: 7 pictures found, 3 usable, 4 skipped."


def test_lists_and_webdataset_shards_give_the_same_pictures(tmp_path):
    folder = colour_folder(tmp_path / "pictures")
    (tmp_path / "list.csv").write_text(
        "path,caption\n" + "".join(f"pictures/{n}.png,{caption(n)}\n" for n in COLOURS))
    (tmp_path / "list.jsonl").write_text("".join(
        json.dumps({"path": f"pictures/{n}.png", "caption": caption(n)}) + "\n"
        for n in COLOURS))
    (tmp_path / "shards").mkdir()
    shard = colour_shard(tmp_path / "shards" / "000.tar")
    reports = [scan(source, 64) for source in (folder, tmp_path / "list.csv",
                                               tmp_path / "list.jsonl", shard,
                                               shard.parent)]
    expected = {caption(n): torch.tensor(rgb) / 127.5 - 1 for n, rgb in COLOURS.items()}
    for report in reports:
        assert not report.skipped
        assert sorted(item.caption for item in report.items) == sorted(expected)
        for item in report.items:
            x = prepare(item, 64)
            assert x.shape == (3, 64, 64)
            torch.testing.assert_close(x[:, 10, 10], expected[item.caption])


def test_pictures_are_turned_upright_and_centre_cropped(tmp_path):
    # Stored 40 x 100 (red top, blue bottom) with EXIF "rotate 90 CW": shown 100 x 40 with
    # red on the right. The centre crop keeps the middle 40 x 40 across the red/blue seam.
    image = Image.new("RGB", (40, 100), (255, 0, 0))
    image.paste((0, 0, 255), (0, 50, 40, 100))
    exif = Image.Exif()
    exif[0x0112] = 6
    image.save(tmp_path / "turned.jpg", exif=exif, quality=100)
    (tmp_path / "turned.txt").write_text("turned")
    (item,) = scan(tmp_path, 32).items
    x = prepare(item, 32)
    left, right = x[:, 16, 2], x[:, 16, -3]
    assert left[2] > 0.8 and left[0] < -0.8  # blue on the left
    assert right[0] > 0.8 and right[2] < -0.8  # red on the right
    assert prepare(item, 32, flip=True).flip(-1).equal(x)


@pytest.mark.parametrize("make", ["empty", "missing", "no captions", "all broken"])
def test_unusable_data_is_refused_in_python_and_on_the_cli(tmp_path, make, capsys):
    data = tmp_path / "data"
    if make != "missing":
        data.mkdir()
    if make == "no captions":
        Image.new("RGB", (64, 64)).save(data / "a.png")
    if make == "all broken":
        (data / "a.png").write_bytes(b"nope")
        (data / "a.txt").write_text("a")
    with pytest.raises(DataError) as raised:
        glide_ui.train(data, tmp_path / "run", models="tiny", steps=1, progress=False)
    assert isinstance(raised.value, GlideUIError)
    message = str(raised.value)
    assert str(data) in message
    code = cli.main(["train", str(data), "--out", str(tmp_path / "run2"), "--models", "tiny"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == cli.EXIT_USAGE
    assert err == [f"glide-ui: error: {message}"]


def test_bad_settings_are_refused_before_any_work(tmp_path):
    data = colour_folder(tmp_path / "data")
    for settings, words in (({"steps": 0}, "steps must be at least 1"),
                            ({"caption_dropout": 1.5}, "caption_dropout"),
                            ({"model": "huge"}, "model must be one of"),
                            ({"learning_rate": 1}, "Unknown training setting")):
        with pytest.raises(RequestError, match=words):
            glide_ui.train(data, tmp_path / "run", models="tiny", progress=False, **settings)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


# --- objective, precision -------------------------------------------------------------------------


def test_the_variance_term_trains_only_the_variance_and_mse_only_eps():
    diffusion = create_diffusion(1000, "squaredcos_cap_v2", "")
    g = torch.Generator().manual_seed(0)
    x_start = torch.rand(2, 3, 8, 8, generator=g) * 2 - 1
    noise = torch.randn(2, 3, 8, 8, generator=g)
    indices = [0, 500]  # the decoder's likelihood at 0, a KL elsewhere
    x_t = torch.cat([diffusion.q_sample(x_start[j:j + 1], i, noise[j:j + 1])
                     for j, i in enumerate(indices)])
    output = torch.randn(2, 6, 8, 8, generator=g, requires_grad=True)
    losses = hybrid_loss(diffusion, output, x_start, x_t, noise, indices)
    (vb_grad,) = torch.autograd.grad(losses.vb.sum(), output, retain_graph=True)
    (mse_grad,) = torch.autograd.grad(losses.mse.sum(), output)
    assert vb_grad[:, :3].abs().max() == 0 and vb_grad[:, 3:].abs().min() > 0
    assert mse_grad[:, 3:].abs().max() == 0
    assert torch.all(losses.vb > 0)
    torch.testing.assert_close(losses.mse, ((output[:, :3] - noise) ** 2).mean((1, 2, 3)))


def test_precision_follows_the_hardware():
    assert choose_precision("auto", "cuda", bf16_ok=False).scaled  # fp16 + loss scaling
    assert choose_precision("auto", "cuda", bf16_ok=True).autocast == torch.bfloat16
    assert choose_precision("auto", "cpu", bf16_ok=True).autocast == torch.bfloat16
    assert choose_precision("auto", "cpu", bf16_ok=False).autocast is None
    with pytest.raises(RequestError, match="does not compute in bf16"):
        choose_precision("bf16", "cpu", bf16_ok=False)
    from glide_ui.training.config import TrainConfig

    with pytest.raises(RequestError, match="CUDA only"):
        make_optimizer([], TrainConfig("d", "o", optimizer="adamw8bit"), torch.device("cpu"))


# --- fine-tune files and the manager ------------------------------------------------------------


def _random_adapter(manager: ModelManager, tmp_path, convs: bool = True):
    """A LoRA on the tiny base with random (non-zero) B matrices: (peft model, file)."""
    model = manager.training_copy("base").eval()
    add_lora(model, 2, 4.0, lora_targets(convs), seed=1)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    path = save_finetune(tmp_path / "adapter.safetensors", trainable_state(model, True),
                         model="base", kind="lora", options=model.options,
                         recipe={"steps": 1}, rank=2, alpha=4.0,
                         base_checkpoint=manager.checkpoint_id("base"))
    return model, path


def _forward(model):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 3, 64, 64, generator=g)
    tokens = torch.randint(0, 100, (1, model.options["text_ctx"]), generator=g)
    with torch.no_grad():
        return model(x, torch.tensor([300]), tokens=tokens,
                     mask=torch.ones_like(tokens, dtype=torch.bool))


def test_a_merged_adapter_computes_what_the_trained_layers_did(tmp_path):
    manager = ModelManager("tiny", device="cpu", dtype="fp32")
    peft_model, path = _random_adapter(manager, tmp_path)
    finetune = load_finetune(path)
    assert (finetune.kind, finetune.model, finetune.rank, finetune.alpha) == \
        ("lora", "base", 2, 4.0)
    assert finetune.recipe == {"steps": 1}
    merged = manager.training_copy("base").eval()
    apply_finetune(merged, finetune, 1.0)
    plain = manager.training_copy("base").eval()
    torch.testing.assert_close(_forward(merged), _forward(peft_model), atol=2e-5, rtol=1e-4)
    assert (_forward(merged) - _forward(plain)).abs().max() > 1e-3


def test_the_manager_uses_a_finetune_and_scale_zero_is_the_base_model(tmp_path):
    manager = ModelManager("tiny", device="cpu", dtype="fp32")
    _, path = _random_adapter(manager, tmp_path)
    base = _forward(manager.get("base"))
    manager.use_finetune("base", path, 0.0)
    assert not manager.is_loaded("base")  # released: the next use loads it with the adapter
    assert torch.equal(_forward(manager.get("base")), base)
    half = ModelManager("tiny", device="cpu", dtype="fp32", finetunes=[f"{path}:0.5"])
    full = ModelManager("tiny", device="cpu", dtype="fp32", finetunes={"base": path})
    d_half = (_forward(half.get("base")) - base).abs().mean()
    d_full = (_forward(full.get("base")) - base).abs().mean()
    assert 0 < d_half < d_full
    record = full.finetune_record("base")
    assert record["name"] == "adapter" and record["scale"] == 1.0
    assert len(record["sha256"]) == 64


def test_a_finetune_for_another_model_or_a_foreign_file_is_refused(tmp_path):
    manager = ModelManager("tiny", device="cpu", dtype="fp32")
    _, path = _random_adapter(manager, tmp_path, convs=False)
    with pytest.raises(FinetuneError, match="is a fine-tune of base, not of upsample"):
        manager.use_finetune("upsample", path)
    official = ModelManager("official", device="cpu", dtype="fp32")
    with pytest.raises(FinetuneError, match="other options"):
        official.use_finetune("base", path)
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(FinetuneError, match="not a glide-ui fine-tune"):
        manager.use_finetune("base", tmp_path / "other.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(FinetuneError, match="not a readable safetensors file"):
        manager.use_finetune("base", tmp_path / "junk.safetensors")


def test_recipes_name_the_finetune_and_a_rerun_without_it_says_so(tmp_path):
    manager = ModelManager("tiny", device="cpu", dtype="fp32")
    _, path = _random_adapter(manager, tmp_path)
    settings = {"upsample": False, "base_respacing": "2", "seed": 5}
    tuned = glide_ui.Glide("tiny", device="cpu", dtype="fp32", progress=False,
                           finetunes={"base": (path, 0.0)})
    plain = glide_ui.Glide("tiny", device="cpu", dtype="fp32", progress=False)
    at_zero = tuned.text2im("a red square", **settings)
    assert at_zero.images[0].tobytes() == plain.text2im("a red square", **settings) \
        .images[0].tobytes()  # scale 0: the base model's pixels exactly
    tuned.manager.use_finetune("base", path, 1.0)
    output = tuned.text2im("a red square", **settings)
    record = output.recipes[0].settings["finetunes"]["base"]
    assert record == {"name": "adapter", "sha256": load_finetune(path).sha256,
                      "kind": "lora", "scale": 1.0}
    assert output.images[0].tobytes() != at_zero.images[0].tobytes()
    notes = []
    plain.on_status = lambda status: notes.append(status.text)
    plain.rerun(output.recipes[0])
    assert any("fine-tune adapter" in note and "does not use" in note for note in notes)
    assert not any("These differ" in note for note in notes)

"""The Models tab: what is loaded, on which device and dtype, memory, downloads in progress,
and the fine-tunes every job runs with (chosen here from the runs folder)."""

from __future__ import annotations

import html
from dataclasses import dataclass

import gradio as gr

from glide_ui.errors import GlideUIError
from glide_ui.models import ManagerStatus, ModelManager

TAB_ID = "models"
REFRESH_SECONDS = 2.0


def megabytes(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / 2**30:.2f} GB" if n >= 2**30 else f"{n / 2**20:.1f} MB"


def _row(cells: list[str]) -> str:
    return "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in cells) + "</tr>"


def _table(head: list[str], rows: list[list[str]]) -> str:
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    return f'<table class="glide-table"><tr>{header}</tr>{"".join(_row(r) for r in rows)}</table>'


def render_status(status: ManagerStatus) -> str:
    """The panel's HTML for one `ModelManager.status()` snapshot."""
    parts = [
        f"<p><b>Model set:</b> {html.escape(status.model_set)} &nbsp; "
        f"<b>Device:</b> {html.escape(status.device)} &nbsp; "
        f"<b>dtype:</b> {html.escape(status.dtype)} &nbsp; "
        f"<b>Memory:</b> {megabytes(status.used_bytes)} of "
        f"{megabytes(status.budget_bytes)} budget</p>",
        f"<p><b>Compute path:</b> {html.escape(status.compute_path)}</p>",
    ]
    if status.notice:
        parts.append(f"<p>⚠️ {html.escape(status.notice)}</p>")
    if status.loaded:
        parts.append(_table(["Model", "Device", "dtype", "Memory", "Running now"],
                            [[m.name, m.device, m.dtype, megabytes(m.bytes),
                              "yes" if m.in_use else ""] for m in status.loaded]))
    else:
        parts.append("<p>No model loaded yet: each is loaded the first time a tab needs it.</p>")
    if status.finetunes:
        parts.append("<p><b>Fine-tunes in use</b> (every job runs with them):</p>")
        parts.append(_table(["Model", "Fine-tune", "Kind", "Scale"],
                            [[model, f["name"], f["kind"], f"{f['scale']:g}"]
                             for model, f in status.finetunes.items()]))
    for name in status.loading:
        parts.append(f"<p>Loading <b>{html.escape(name)}</b>…</p>")
    for fetch in status.fetching:
        fraction = fetch.done / fetch.total if fetch.total else 0.0
        parts.append(
            f'<div class="glide-download"><b>Downloading {html.escape(fetch.filename)}</b> '
            f"({html.escape(fetch.name)}): {megabytes(fetch.done)} of "
            f"{megabytes(fetch.total)}"
            f'<div class="glide-progress"><div class="glide-bar" '
            f'style="width:{fraction * 100:.1f}%"></div></div></div>')
    return "\n".join(parts)


@dataclass
class ModelsHandles:
    panel: gr.HTML
    finetune: gr.Dropdown | None  # None: this page cannot change the fine-tunes


def finetune_choices(backend) -> list[tuple[str, str]]:
    """(label, path) of the fine-tune files in the page's runs folder, newest first."""
    from glide_ui.finetunes import find_finetunes

    return [(info.label, str(info.path)) for info in find_finetunes(backend.runs)]


def why_fixed(backend) -> str:
    """Why this page cannot change the fine-tunes ("" when it can)."""
    if backend.runner is not None:
        return ("The models run on Ray Serve replicas: start the app with `--finetune "
                "FILE[:SCALE]` to use a fine-tune there.")
    if not backend.training.enabled:
        return ("Fine-tunes are chosen by the app's owner here (`glide-ui serve --finetune "
                "FILE[:SCALE]`): " + backend.training.message)
    return ""


def use_finetune(manager: ModelManager, path: str | None, scale: float) -> str:
    """Run every job with the fine-tune at `path` (its model named by the file); the new
    status. gr.Error for a file that does not fit or a model in use."""
    from glide_ui.finetunes import finetune_model

    if not path:
        raise gr.Error("Choose a fine-tune first (train one in the Train tab).")
    try:
        manager.use_finetune(finetune_model(path), path, float(scale))
    except GlideUIError as error:
        raise gr.Error(str(error)) from None
    return render_status(manager.status())


def use_none(manager: ModelManager) -> str:
    """Every model back to its published weights; the new status."""
    try:
        for name in list(manager.status().finetunes):
            manager.use_finetune(name, None)
    except GlideUIError as error:
        raise gr.Error(str(error)) from None
    return render_status(manager.status())


def _finetune_controls(backend, panel: gr.HTML) -> gr.Dropdown | None:
    gr.Markdown("### Fine-tunes")
    fixed = why_fixed(backend)
    if fixed:
        gr.Markdown(fixed, elem_id="finetunes-fixed")
        return None
    manager = backend.manager
    with gr.Row(equal_height=True):
        choice = gr.Dropdown(finetune_choices(backend), value=None, label="Fine-tune",
                             info=f"Made in the Train tab (runs in {backend.runs}).",
                             scale=3, elem_id="finetune-choice")
        scale = gr.Slider(0.0, 2.0, 1.0, step=0.05, label="Scale", scale=2,
                          info="LoRA strength; 0 is the published model")
    with gr.Row():
        use = gr.Button("Use this fine-tune", size="sm", scale=0)
        none = gr.Button("Published models only", size="sm", scale=0)
        listed = gr.Button("Refresh the list", size="sm", scale=0)
    use.click(lambda path, s: use_finetune(manager, path, s), [choice, scale], panel,
              api_name="use_finetune")
    none.click(lambda: use_none(manager), None, panel, api_name="use_no_finetune")
    listed.click(lambda: gr.Dropdown(choices=finetune_choices(backend)), None, choice,
                 api_visibility="private")
    return choice


def build(backend) -> ModelsHandles:
    manager = backend.manager
    panel = gr.HTML(render_status(manager.status()), elem_id="models-panel")
    with gr.Row():
        refresh = gr.Button("Refresh", size="sm", scale=0)
    gr.Markdown(
        "Weights come from OpenAI's public GLIDE release and are cached on first use. "
        "Offline, put the files (`base.pt`, `upsample.pt`, `base_inpaint.pt`, "
        "`upsample_inpaint.pt`, `clip_image_enc.pt`, `clip_text_enc.pt`, `ViT-B-32.pt`) "
        "in the folder given with `--checkpoints`.")
    timer = gr.Timer(REFRESH_SECONDS)

    def update() -> str:
        return render_status(manager.status())

    for trigger in (refresh.click, timer.tick):
        trigger(update, None, panel, queue=False, show_progress="hidden",
                api_visibility="private")
    return ModelsHandles(panel, _finetune_controls(backend, panel))


def banner(manager: ModelManager) -> str:
    """A line at the top of the page when the models cannot make pictures, or run on a
    slow path the user chose (emulated bf16)."""
    notice = manager.status().notice
    return f"⚠️ **{notice}**" if notice else ""

"""The Models tab: what is loaded, on which device and dtype, memory, downloads in progress."""

from __future__ import annotations

import html

import gradio as gr

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


def build(manager: ModelManager) -> gr.HTML:
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
    return panel


def banner(manager: ModelManager) -> str:
    """A line at the top of the page when the models cannot make pictures, or run on a
    slow path the user chose (emulated bf16)."""
    notice = manager.status().notice
    return f"⚠️ **{notice}**" if notice else ""

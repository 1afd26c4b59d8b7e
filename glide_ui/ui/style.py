"""Theme and CSS of the page (handed to `launch()`)."""

from __future__ import annotations

import gradio as gr


def theme() -> gr.themes.Base:
    # System fonts only: the page must not fetch web fonts (offline machines, privacy).
    return gr.themes.Soft(primary_hue="indigo", secondary_hue="slate",
                          font=["system-ui", "sans-serif"],
                          font_mono=["ui-monospace", "monospace"])


CSS = """
.glide-banner { background: #fff4e5; border: 1px solid #f5a623; border-radius: 8px;
                padding: 6px 12px; }
.glide-progress { position: relative; height: 28px; border-radius: 6px; overflow: hidden;
                  background: var(--block-background-fill);
                  border: 1px solid var(--border-color-primary); }
.glide-bar { position: absolute; inset: 0 auto 0 0; background: var(--color-accent-soft);
             border-right: 2px solid var(--color-accent); transition: width 0.2s linear; }
.glide-label { position: relative; display: flex; justify-content: space-between;
               align-items: center; height: 100%; padding: 0 10px; font-size: 0.9em; }
.glide-eta { opacity: 0.75; }
.glide-download { margin: 6px 0; }
.glide-table { border-collapse: collapse; margin: 8px 0; }
.glide-table td, .glide-table th { border: 1px solid var(--border-color-primary);
                                   padding: 4px 10px; text-align: left; }
.glide-notes:empty { display: none; }
"""

"""Pipelines: one request in, a stream of events out. No gradio here.

Kept free of imports: `glide_ui.images` imports `pipelines.recipe` (plain data), so
importing the pipeline modules from here would make a cycle. Import them by module path
(`from glide_ui.pipelines.text2im import text2im`).
"""

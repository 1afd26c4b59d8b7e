"""Pipelines: one request in, a stream of events out. No gradio here."""

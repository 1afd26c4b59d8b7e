"""What the robustness tests share when they drive the app's HTTP API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from gradio_client import Client, handle_file

FAST = {"steps": 2, "upsample": False}  # tiny models, two steps, no upsampler: ~1 s a request


def said(error: BaseException, limit: int = 90, verb: str = "refused") -> str:
    """`refused: '<the message>'` for the table (shortened)."""
    text = " ".join(str(error).split())
    return f"{verb}: '{text[:limit]}{'...' if len(text) > limit else ''}'"


def editor(background: Path | None, *layers: Path) -> dict:
    """The /inpaint `mask_editor` value: a picture and painted layers (transparent PNGs)."""
    return {"background": handle_file(str(background)) if background else None,
            "layers": [handle_file(str(layer)) for layer in layers], "composite": None}


class RawApi:
    """The HTTP API without gradio_client, for values it refuses to send (NaN, infinity,
    unpaired surrogates): POST /gradio_api/call/<name>, then read the event stream."""

    def __init__(self, url: str, client: Client, cookies: dict | None = None) -> None:
        self.url = url.rstrip("/") + "/gradio_api"
        self.http = httpx.Client(cookies=cookies, timeout=120)
        endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
        self.params = {name: [(p["parameter_name"], p.get("parameter_default"))
                              for p in info["parameters"]]
                       for name, info in endpoints.items()}

    def upload(self, path: Path) -> dict:
        """Upload a file as the page does; the FileData value that refers to it."""
        with open(path, "rb") as file:
            response = self.http.post(self.url + "/upload", files={"files": (path.name, file)})
        response.raise_for_status()
        return {"path": response.json()[0], "orig_name": path.name,
                "meta": {"_type": "gradio.FileData"}}

    def call(self, endpoint: str, **values: Any) -> tuple[str, Any]:
        """("complete", outputs) or ("error", message); unnamed parameters take their
        defaults. The body is written by `json.dumps`, which lets NaN through."""
        data = [values.get(name, default) for name, default in self.params[endpoint]]
        body = json.dumps({"data": data})
        response = self.http.post(f"{self.url}/call{endpoint}", content=body,
                                  headers={"Content-Type": "application/json"})
        response.raise_for_status()
        event_id = response.json()["event_id"]
        kind, payload = "", None
        with self.http.stream("GET", f"{self.url}/call{endpoint}/{event_id}") as stream:
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    kind = line.removeprefix("event:").strip()
                elif line.startswith("data:") and kind in ("complete", "error"):
                    payload = json.loads(line.removeprefix("data:"))
        if kind == "error":
            return kind, (payload or {}).get("error") if isinstance(payload, dict) else payload
        return kind, payload

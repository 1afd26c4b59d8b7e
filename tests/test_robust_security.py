"""Security (issue #7, item 5): login on every route, files outside the app's folders,
upload size, --share without --auth, checkpoints that would run code.

The app runs with `--auth` through tests/fault_app.py, which loads the noise-aware CLIP's
image encoder from the --checkpoints folder the way official weights are loaded (and
changes nothing else); that file is a pickle that would run code.
"""

from __future__ import annotations

import pickle
import urllib.parse

import httpx
import pytest
import torch
from app_server import ASSETS, ROOT, running_app
from fault_app import FAULTS_ENV
from gradio_client import Client
from gradio_client.exceptions import AppError
from robust_api import FAST, RawApi
from robust_cases import record
from robust_files import big_file, rgb_png

USER, PASSWORD = "ann", "correct horse"


class RunsCode:
    """Unpickling this would run `open(marker, "w")` on the server."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("security")
    checkpoints = folder / "checkpoints"
    checkpoints.mkdir()
    marker = folder / "pwned"
    torch.save({"weight": torch.zeros(3), "payload": RunsCode(str(marker))},
               checkpoints / "clip_image_enc.pt")
    with pytest.raises(pickle.UnpicklingError):  # the file is what it claims to be:
        torch.load(checkpoints / "clip_image_enc.pt", weights_only=True)
    with running_app("--auth", f"{USER}:{PASSWORD}", "--checkpoints", str(checkpoints),
                     script=ROOT / "tests" / "fault_app.py",
                     env={FAULTS_ENV: "files=clip/image-enc"}) as running:
        running.marker = marker
        running.checkpoints = checkpoints
        yield running


@pytest.fixture(scope="module")
def session(app):
    """An HTTP session logged in through the login form."""
    http = httpx.Client(base_url=app.url, timeout=60, follow_redirects=False)
    response = http.post("login", data={"username": USER, "password": PASSWORD})
    assert response.status_code == 200, response.text
    yield http
    http.close()


@pytest.fixture(scope="module")
def client(app):
    return Client(app.url, auth=(USER, PASSWORD), verbose=False)


# --- --auth -----------------------------------------------------------------------------------

PROTECTED = [("GET", "config"), ("GET", "gradio_api/info"), ("GET", "gradio_api/openapi.json"),
             ("POST", "gradio_api/queue/join"), ("GET", "gradio_api/queue/data?session_hash=x"),
             ("GET", "gradio_api/queue/status"), ("POST", "gradio_api/call/generate"),
             ("POST", "gradio_api/call/inpaint"), ("POST", "gradio_api/run/models_status"),
             ("POST", "gradio_api/run/png_info"), ("POST", "gradio_api/upload"),
             ("GET", "gradio_api/upload_progress?upload_id=x"),
             ("GET", f"gradio_api/file={ASSETS / 'chelsea.png'}")]


def test_every_route_needs_the_login(app, session):
    anonymous = httpx.Client(base_url=app.url, timeout=60, follow_redirects=False)
    for method, route in PROTECTED:
        response = anonymous.request(method, route, json={"data": []})
        assert response.status_code == 401, (route, response.status_code)
        assert "Not authenticated" in response.text
    record("security", f"--auth: {len(PROTECTED)} routes without a login (config, info, "
           "queue, call, run, upload, file=)", "401 'Not authenticated' on every one",
           len(PROTECTED))

    page = anonymous.get("").text
    assert '"auth_required":true' in page and '"components":[]' in page
    assert "GLIDE" not in page.split("gradio_api_info")[0]  # no title, tabs or widgets
    record("security", "--auth: GET / without a login",
           "the login form, no app config (Gradio still embeds the API's parameter list, "
           "as the README documents it)")

    wrong = anonymous.post("login", data={"username": USER, "password": "guess"})
    assert wrong.status_code in (400, 401) and "Incorrect credentials" in wrong.text
    record("security", "--auth: wrong password", f"HTTP {wrong.status_code} 'Incorrect "
           "credentials'")
    for method, route in PROTECTED[:3]:
        assert session.request(method, route).status_code == 200, route
    record("security", "--auth: the same routes after logging in", "200", 3)


def test_the_python_client_needs_the_login(app, client):
    with pytest.raises(Exception, match="(?i)login|auth|401"):
        Client(app.url, verbose=False)
    result = client.predict(prompt="with a login", seed=3, api_name="/generate", **FAST)
    assert result[2][0]["caption"] == "seed 3"
    record("security", "--auth: gradio_client without / with auth=(user, password)",
           "refused / ran", 2)


# --- files outside the app's folders ------------------------------------------------------------


def test_no_file_outside_the_temp_dir_and_assets_is_served(app, session):
    cache = app.temp_dir / "cache"
    cache.mkdir(exist_ok=True)
    (cache / "base.pt").write_bytes(b"weights")
    temp = app.temp_dir / "gradio"
    outside = ["/etc/passwd", str(ROOT / "app.py"), "app.py", "../../../../etc/passwd",
               f"{ASSETS}/../app.py", f"{temp}/../app.log", str(app.temp_dir / "app.log"),
               str(cache / "base.pt"), str(app.checkpoints / "clip_image_enc.pt"),
               "%2e%2e/%2e%2e/%2e%2e/etc/passwd", urllib.parse.quote("/etc/passwd", safe=""),
               "file:///etc/passwd", "http://127.0.0.1:1/x", str(ROOT / ".git" / "config")]
    for path in outside:
        response = session.get(f"gradio_api/file={path}")
        assert response.status_code in (403, 404), (path, response.status_code)
        assert b"root:" not in response.content and b"weights" not in response.content
    record("security", "/gradio_api/file= outside the temp dir and assets (/etc/passwd, app.py, "
           "../ and %2e%2e tricks, the cache and --checkpoints files, file:// and "
           "http://127.0.0.1 URLs, .git/config)", "403 on every one", len(outside))
    assert session.get(f"gradio_api/file={ASSETS / 'chelsea.png'}").status_code == 200
    record("security", "/gradio_api/file= of an example picture in assets/", "200 (allowed)")


def test_file_paths_in_api_payloads_are_refused(app, client, session):
    raw = RawApi(app.url, client, cookies=dict(session.cookies))
    injected = {"path": str(ROOT / "app.py"), "meta": {"_type": "gradio.FileData"}}
    etc = {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}
    cases = [("/inpaint", {"mask_editor": {"background": etc, "layers": [],
                                           "composite": None}, "prompt": "x"}),
             ("/rank", {"images": [{"image": injected}], "prompt": "x"}),
             ("/png_info", {"path": etc})]
    for endpoint, values in cases:
        kind, _ = raw.call(endpoint, **values)
        assert kind == "error", endpoint
    assert app.log_tail(100_000).count("was not uploaded by a user") >= len(cases)
    record("security", "server file paths (/etc/passwd, app.py) sent as FileData to /inpaint, "
           "/rank, /png_info", "refused by Gradio before any handler ('not uploaded by a user')",
           len(cases))


def test_uploads_over_25_mb_are_refused(session, tmp_path):
    path = big_file(tmp_path)
    with open(path, "rb") as file:
        response = session.post("gradio_api/upload", files={"files": (path.name, file)})
    assert response.status_code == 413, response.status_code
    assert "exceeded maximum allowed size of 26214400 bytes" in response.text, response.text
    ok = session.post("gradio_api/upload", files={"files": ("ok.png", rgb_png(tmp_path)
                                                             .read_bytes())})
    assert ok.status_code == 200
    record("security", f"upload of {path.stat().st_size / 1e6:.0f} MB (limit 25 MB)",
           f"HTTP 413 '{' '.join(response.text.split())[:60]}'; a small upload: 200")


# --- checkpoints that would run code -------------------------------------------------------------


def test_a_checkpoint_that_would_run_code_is_refused(app, client):
    with pytest.raises(AppError, match="would run code") as error:
        client.predict(prompt="a cube", seed=1, api_name="/clip_guided", **FAST)
    assert not app.marker.exists(), "the pickle's code ran on the server"
    message = str(error.value)
    record("security", "clip_image_enc.pt that runs code when unpickled, /clip_guided",
           f"refused: '...{message[message.index('clip_image_enc.pt'):][:95]}...'; no code "
           "ran (marker file absent)")


# --- --share without --auth -----------------------------------------------------------------------


def test_share_without_auth_warns_and_the_launch_is_locked_down(capsys):
    import app as app_module
    from glide_ui.ui.backend import ASSETS_DIR

    demo, launch = app_module.build(app_module.parse_args(["--share", "--models", "tiny"]))
    warning = capsys.readouterr().err
    assert "--share without --auth makes this app public" in warning
    assert launch["share"] is True and launch["auth"] is None
    assert launch["allowed_paths"] == [str(ASSETS_DIR)]
    assert launch["max_file_size"] == "25mb" and launch["show_error"] is False
    record("security", "--share without --auth (build())",
           "stderr: 'WARNING: --share without --auth makes this app public...'")
    record("security", "launch settings", "allowed_paths = [assets/] only, max_file_size "
           "25mb, show_error off (no tracebacks to the page)")
    app_module.warn_if_public(True, app_module.read_auth(f"{USER}:{PASSWORD}"))
    assert capsys.readouterr().err == ""
    record("security", "--share with --auth", "no warning")
    demo.close()

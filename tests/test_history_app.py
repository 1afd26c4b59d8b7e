"""The outputs folder and History through the app: `app.py --auth <two users> --outputs DIR`.

Results of every tab land in the folder and the index; search finds them; the index
rebuilt from the folder equals the live one; neither user can list, open or delete the
other's pictures (HTTP API and page); in a browser: generate, find in History by a word of
the prompt, restore, send to Inpaint, delete; a killed app loses no PNG and the next start
repairs the index. The tests run in file order and share the app and its folder.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from app_server import ASSETS, ROOT, running_app
from gradio_client import Client
from gradio_client.exceptions import AppError
from page_helpers import chromium, generate, open_page, panel
from playwright.sync_api import expect
from robust_api import FAST, editor

from glide_ui.history import History
from glide_ui.images import read_recipe

USERS = {"ann": "ann's long password", "bob": "bob's long password"}
PHOTO, PHOTO_MASK = ASSETS / "chelsea.png", ASSETS / "masks" / "chelsea-eyes.png"
SCREENSHOTS = ROOT / "docs" / "screenshots"


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("history") / "outputs"


@pytest.fixture(scope="module")
def users_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("auth") / "users.txt"
    path.write_text("\n".join(f"{user}:{password}" for user, password in USERS.items()))
    return path


@pytest.fixture(scope="module")
def app(outputs, users_file):
    with running_app("--auth", str(users_file), "--outputs", str(outputs)) as running:
        yield running


def client(app, user: str) -> Client:
    return Client(app.url, auth=(user, USERS[user]), verbose=False)


@pytest.fixture(scope="module")
def ann(app) -> Client:
    return client(app, "ann")


@pytest.fixture(scope="module")
def bob(app) -> Client:
    return client(app, "bob")


@pytest.fixture(scope="module")
def made(ann) -> dict:
    """ann runs every tab once (each prompt names its tab); her /history afterwards."""
    ann.predict(prompt="a corgi from generate", batch_size=2, seed=10, api_name="/generate",
                **FAST)
    ann.predict(prompt="a lighthouse from sweep", sweep_param="guidance_scale",
                sweep_values="1, 4", seed=20, api_name="/sweep", **FAST)
    ann.predict(prompt="a hedgehog from clip", seed=30, compare_with_cfg=True,
                api_name="/clip_guided", **FAST)
    ann.predict(mask_editor=editor(PHOTO, PHOTO_MASK), prompt="sunglasses from inpaint",
                seed=40, api_name="/inpaint", **FAST)
    return ann.predict(page_size=200, api_name="/history")


def pngs(root: Path) -> set[str]:
    return {path.relative_to(root).as_posix() for path in root.rglob("*.png")}


def test_results_of_every_tab_land_in_the_folder_and_the_index(made, outputs):
    items = made["items"]
    assert made["total"] == len(items) == 7
    found = sorted((item["tab"], item["pipeline"], item["seed"]) for item in items)
    assert found == [("clip_guided", "clip_guided", 30), ("generate", "text2im", 10),
                     ("generate", "text2im", 11), ("generate", "text2im", 20),
                     ("generate", "text2im", 20), ("generate", "text2im", 30),
                     ("inpaint", "inpaint", 40)]
    today = date.today().isoformat()
    assert pngs(outputs) == {item["file"] for item in items}
    for item in items:
        assert item["file"].startswith(f"users/ann/{today}/"), item["file"]
        assert f"-{item['tab']}-" in item["file"] and item["file"].endswith(
            (f"-{item['seed']}.png", f"-{item['seed']}-2.png"))
        recipe = read_recipe(outputs / item["file"])
        assert (recipe.pipeline, recipe.prompt, recipe.seed, recipe.settings) == \
            (item["pipeline"], item["prompt"], item["seed"], item["settings"])
        assert item["models"] and item["created"].startswith(today)
    times = [item["created"] for item in items]
    assert times == sorted(times, reverse=True)  # newest first


def test_search_by_a_prompt_word_finds_them(made, ann):
    def count(**query) -> int:
        return ann.predict(api_name="/history", **query)["total"]

    assert [count(query=word) for word in ("corgi", "lighthouse", "hedgehog", "sunglasses")] \
        == [2, 2, 2, 1]
    assert count(query="Hedge", tab="clip_guided") == 1
    assert count(query="from", tab="generate") == 5
    today = date.today()
    assert count(since=today.isoformat(), until=today.isoformat()) == 7
    assert count(until=(today - timedelta(days=1)).isoformat()) == 0
    page = ann.predict(page=2, page_size=3, api_name="/history")
    assert (page["page"], page["pages"], len(page["items"])) == (2, 3, 3)
    for bad, message in ((dict(since="yesterday-ish"), "give a date as YYYY-MM-DD"),
                         (dict(tab="nope"), "Tab must be one of"),
                         (dict(page_size=10_000), "page_size must be from 1 to 200")):
        with pytest.raises(AppError, match=message):
            ann.predict(api_name="/history", **bad)


def test_the_index_rebuilt_from_the_folder_equals_the_live_one(made, outputs, tmp_path):
    live = History(outputs)  # the app's own index file, read as it is
    rebuilt = History(outputs, index_path=tmp_path / "rebuilt.sqlite3")
    try:
        assert rebuilt.rebuild().added == 7
        assert rebuilt.index.entries() == live.index.entries()
    finally:
        live.close()
        rebuilt.close()


def test_neither_user_can_list_open_or_delete_the_others_pictures_by_api(made, ann, bob):
    anns = [item["id"] for item in made["items"]]
    assert bob.predict(api_name="/history")["total"] == 0
    assert bob.predict(query="corgi", api_name="/history")["total"] == 0
    for image_id in anns[:3]:
        for endpoint in ("/history_open", "/history_delete"):
            with pytest.raises(AppError, match=f"no picture #{image_id} in your history"):
                bob.predict(image_id=image_id, api_name=endpoint)
    bob.predict(prompt="bob's own corgi", seed=50, api_name="/generate", **FAST)
    bobs = bob.predict(api_name="/history")["items"]
    assert [item["prompt"] for item in bobs] == ["bob's own corgi"]
    assert bobs[0]["file"].startswith("users/bob/")
    assert ann.predict(api_name="/history")["total"] == 7
    with pytest.raises(AppError, match="no picture"):
        ann.predict(image_id=bobs[0]["id"], api_name="/history_open")
    opened = ann.predict(image_id=anns[0], api_name="/history_open")
    assert read_recipe(opened[0]).seed == made["items"][0]["seed"]  # the PNG, recipe and all


def test_the_page_routes_check_the_user_too(app, made, outputs):
    """The page's own (unnamed) delete event, sent by bob with one of ann's ids."""
    page = PageSession(app, "bob")
    victim = made["items"][0]
    message = page.call("history-delete", [victim["id"], "", "", None, None, 1])
    assert f"no picture #{victim['id']} in your history" in message
    assert (outputs / victim["file"]).is_file()


class PageSession:
    """One logged-in browser session's events sent by hand, as the page's script does
    (POST /gradio_api/queue/join, then the event stream)."""

    def __init__(self, app, user: str) -> None:
        self.http = httpx.Client(base_url=app.url, timeout=60)
        login = self.http.post("login", data={"username": user, "password": USERS[user]})
        assert login.status_code == 200
        self.config = self.http.get("config").json()
        self.session = uuid.uuid4().hex

    def call(self, elem_id: str, data: list) -> str:
        """The error message (or "" on success) of the click event of the button `elem_id`."""
        button = next(c["id"] for c in self.config["components"]
                      if c.get("props", {}).get("elem_id") == elem_id)
        event = next(d for d in self.config["dependencies"]
                     if [button, "click"] in [list(t) for t in d["targets"]])
        joined = self.http.post("gradio_api/queue/join", json={
            "data": data, "fn_index": event["id"], "trigger_id": button,
            "session_hash": self.session, "event_data": None})
        assert joined.status_code == 200, joined.text
        with self.http.stream("GET", f"gradio_api/queue/data?session_hash={self.session}") \
                as stream:
            for line in stream.iter_lines():
                message = json.loads(line.removeprefix("data:")) if line.startswith("data:") \
                    else {}
                if message.get("msg") == "process_completed":
                    output = message.get("output") or {}
                    return "" if message.get("success") else str(output.get("error"))
        raise AssertionError("the event did not complete")


def test_in_a_browser_generate_find_in_history_restore_send_and_delete(app, made, outputs):
    with chromium() as browser, open_page(browser, app.url, login=("ann", USERS["ann"])) as page:
        tab, _ = generate(page, "a watercolor of a lighthouse at dusk", seed=77)
        tab.get_by_label("Prompt", exact=True).fill("something else")
        tab.get_by_label("Seed (-1 = random)").fill("-1")

        models = panel(page, "Models")
        expect(models.locator("#models-outputs")).to_contain_text(str(outputs))
        history = panel(page, "History")
        expect(history.locator("#history-notice")).to_contain_text("only their own pictures")
        expect(history.locator("#history-pager")).to_contain_text("8 picture(s)")
        history.get_by_label("Search prompts").fill("watercolor")
        history.get_by_label("Search prompts").press("Enter")
        expect(history.locator("#history-pager")).to_contain_text("1 picture(s)")
        history.locator("#history-gallery .thumbnail-item").first.click()
        expect(history.locator("#history-info")).to_contain_text("seed 77")
        expect(history.locator("#history-image img")).to_be_visible()
        page.mouse.move(0, 0)
        page.screenshot(path=SCREENSHOTS / "history.png", full_page=True)

        history.get_by_role("button", name="Restore settings").click()
        expect(page.get_by_role("tab", name="Generate", exact=True)).to_have_attribute(
            "aria-selected", "true")
        restored = page.locator(".tabitem:visible").first
        expect(restored.get_by_label("Prompt", exact=True)).to_have_value(
            "a watercolor of a lighthouse at dusk")
        expect(restored.get_by_label("Seed (-1 = random)")).to_have_value("77")
        expect(restored.get_by_label("number input for Base steps")).to_have_value("4")

        history = panel(page, "History")
        history.get_by_role("button", name="Send to Inpaint").click()
        expect(page.get_by_role("tab", name="Inpaint", exact=True)).to_have_attribute(
            "aria-selected", "true")
        expect(page.locator("#inpaint-editor")).not_to_contain_text("Upload an image")

        history = panel(page, "History")
        history.get_by_role("button", name="Delete").click()
        expect(history.locator("#history-pager")).to_contain_text("Nothing matches")
        assert not [file for file in pngs(outputs) if "watercolor" in file]

    bobs = client(app, "bob").predict(api_name="/history")["total"]
    with chromium() as browser, open_page(browser, app.url, login=("bob", USERS["bob"])) as page:
        history = panel(page, "History")
        expect(history.locator("#history-pager")).to_contain_text(
            f"{bobs} picture(s)" if bobs else "No pictures yet")  # his own only
        history.get_by_label("Search prompts").fill("lighthouse")
        history.get_by_label("Search prompts").press("Enter")
        expect(history.locator("#history-pager")).to_contain_text("Nothing matches")


def test_a_killed_app_loses_no_png_and_the_next_start_repairs_the_index(app, outputs,
                                                                       users_file):
    """Last: it kills the module's app."""
    before = pngs(outputs)
    os.kill(app.pid, signal.SIGKILL)
    time.sleep(1)
    assert pngs(outputs) == before
    gone = sorted(file for file in before if "corgi-from-generate" in file)[0]
    (outputs / gone).unlink()  # deleted by hand while the app was down
    (outputs / "history.sqlite3").unlink()  # and the index lost
    with running_app("--auth", str(users_file), "--outputs", str(outputs)) as again:
        listed = client(again, "ann").predict(page_size=200, api_name="/history")["items"]
        bobs = client(again, "bob").predict(api_name="/history")["items"]
    assert {item["file"] for item in listed + bobs} == before - {gone}
    assert "indexed" in again.log_tail(100_000)

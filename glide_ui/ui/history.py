"""The History tab and its HTTP endpoints: saved pictures, newest first, searchable; open one
full size with its recipe, restore it, send it to Inpaint, download or delete it.

Every handler asks the history for the pictures of the request's user only
(`gr.Request.username` with --auth), so nobody lists, opens or deletes anyone else's.
The outputs folder is not served: the page gets copies in Gradio's temp dir.
"""

from __future__ import annotations

import functools
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder
from PIL import Image

from glide_ui.errors import GlideUIError
from glide_ui.files import write_replacing
from glide_ui.history import Entry, History, HistoryError, Page, Query
from glide_ui.images import png_bytes
from glide_ui.recipe import Recipe
from glide_ui.settings import JOBS
from glide_ui.ui.backend import Backend, user_of

TAB_ID = "history"
PAGE_SIZE = 24
MAX_PAGE_SIZE = 200
THUMB_SIZE = 256  # larger pictures are listed as thumbnails of this size
TAB_CHOICES = [("All tabs", ""), *((job.label, job.tab) for job in JOBS.values())]
TAB_TITLES = {value: title for title, value in TAB_CHOICES if value}
CAPTION_CHARS = 60


@dataclass
class HistoryHandles:
    """What the page wires across tabs: restore (from the recipe JSON) and send to Inpaint
    (from the picked picture's id)."""

    recipe_json: gr.Textbox
    restore: gr.Button
    send_to_inpaint: gr.Button
    picked: gr.Number
    view: HistoryView


def user_messages(handler: Callable) -> Callable:
    """Show a GlideUIError raised by `handler` as a message on the page / in the API."""

    @functools.wraps(handler)
    def guarded(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except GlideUIError as error:
            message = str(error)
        raise gr.Error(message)

    return guarded


def with_news(handler: Callable) -> Callable:
    """A HistoryView handler under `user_messages` that also says, once, what the history
    has to tell (an index found damaged and made anew) as a warning on the page."""

    @functools.wraps(handler)
    def telling(view: HistoryView, *args, **kwargs):
        try:
            return handler(view, *args, **kwargs)
        finally:
            for line in view.history.take_news() if view.history else ():
                gr.Warning(line)

    return user_messages(telling)


def parse_day(text: str | float | None, label: str) -> date | None:
    """A date from the page's date field or the API ("2025-01-31", also with a time)."""
    if text is None or not str(text).strip():
        return None
    try:
        return date.fromisoformat(str(text).strip()[:10])
    except ValueError:
        raise HistoryError(f"{label}: give a date as YYYY-MM-DD, got {text!r}.") from None


def make_query(words: str | None, tab: str | None, since: str | None,
               until: str | None) -> Query:
    if tab and tab not in TAB_TITLES:
        raise HistoryError(f"Tab must be one of {', '.join(TAB_TITLES)} (or empty for all); "
                           f"got {tab!r}.")
    return Query(str(words or ""), tab or "", parse_day(since, "From"),
                 parse_day(until, "To"))


def caption(entry: Entry) -> str:
    prompt = entry.prompt if len(entry.prompt) <= CAPTION_CHARS else \
        entry.prompt[:CAPTION_CHARS - 1] + "…"
    return f"{prompt or '(no prompt)'} · seed {entry.seed}"


def pager_text(page: Page, query: Query) -> str:
    if not page.total:
        return "Nothing matches." if query != Query() else \
            "No pictures yet: what you make is saved here."
    return f"Page {page.number} of {page.pages} · {page.total} picture(s)"


def describe(entry: Entry) -> str:
    return (f"**#{entry.id}** · {TAB_TITLES.get(entry.tab, entry.tab)} · seed {entry.seed} · "
            f"{entry.created_at():%Y-%m-%d %H:%M:%S} · {entry.width} x {entry.height} px · "
            f"`{entry.file}`")


def recipe_of(entry: Entry) -> Recipe:
    return Recipe(pipeline=entry.pipeline, prompt=entry.prompt, seed=entry.seed,
                  settings=entry.settings, models=entry.models, version=entry.version)


class PageFiles:
    """Copies of history pictures (and thumbnails of large ones) in Gradio's temp dir,
    from where the page may serve them, under a folder name no one can guess."""

    def __init__(self, history: History) -> None:
        self.history = history
        self.root = Path(get_upload_folder()) / f"glide-ui-history-{secrets.token_hex(8)}"

    def full(self, entry: Entry) -> str:
        """The picture as saved (its recipe included). Raises OSError if it is gone."""
        return self._made(entry, Path(entry.file).name,
                          lambda: self.history.path(entry).read_bytes())

    def thumbnail(self, entry: Entry) -> str:
        if max(entry.width, entry.height) <= THUMB_SIZE:
            return self.full(entry)

        def shrink() -> bytes:
            with Image.open(self.history.path(entry)) as image:
                image.thumbnail((THUMB_SIZE, THUMB_SIZE))
                return png_bytes(image)

        return self._made(entry, "thumbnail.png", shrink)

    def forget(self, entry: Entry) -> None:
        shutil.rmtree(self._folder(entry), ignore_errors=True)

    def _folder(self, entry: Entry) -> Path:
        return self.root / f"{entry.id}-{entry.mtime_ns}"  # a changed file gets new copies

    def _made(self, entry: Entry, name: str, data: Callable[[], bytes]) -> str:
        target = self._folder(entry) / name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            write_replacing(target, data())
        return str(target)


class HistoryView:
    """The tab's and the API's handlers over `backend.history` (None: saving is off)."""

    def __init__(self, backend: Backend) -> None:
        self.history = backend.history
        self.notice = backend.saving.notice if backend.saving else "Saving is off."
        if self.history is not None and self.history.notice:
            self.notice += f"\n\n⚠️ {self.history.notice}"
        self.files = PageFiles(self.history) if self.history else None

    def _history(self) -> History:
        if self.history is None:
            raise HistoryError(f"There is no history: {self.notice}")
        return self.history

    # --- the page --------------------------------------------------------------------------

    @with_news
    def list_page(self, words: str, tab: str, since: str, until: str, number: int,
                  request: gr.Request = None):
        """(gallery items, pager line, the page's picture ids, page number)."""
        history, query = self._history(), make_query(words, tab, since, until)
        page = history.page(user_of(request), query, int(number or 1), PAGE_SIZE)
        items, ids, gone = [], [], []
        for entry in page.entries:
            try:
                items.append((self.files.thumbnail(entry), caption(entry)))
                ids.append(entry.id)
            except OSError:  # deleted by hand since the last sync
                gone.append(entry.file)
        if gone:  # listed again: the count and the page without them
            history.forget(gone)
            return self.list_page(words, tab, since, until, page.number, request)
        return items, pager_text(page, query), ids, page.number

    def turn(self, step: int) -> Callable:
        """A handler listing the page `step` pages away from the current one."""

        def turned(words: str, tab: str, since: str, until: str, number: int,
                   request: gr.Request = None):
            return self.list_page(words, tab, since, until, int(number or 1) + step, request)

        return turned

    @with_news
    def rescan(self, words: str, tab: str, since: str, until: str, number: int,
               request: gr.Request = None):
        report = self._history().sync()
        gr.Info(f"Folder rescanned: {report.added} picture(s) taken in, {report.removed} "
                "dropped.")
        return self.list_page(words, tab, since, until, number, request)

    @staticmethod
    def pick(ids: list[int], event: gr.SelectData) -> int:
        if not 0 <= event.index < len(ids):
            raise gr.Error("That picture is no longer listed; search again.")
        return ids[event.index]

    @with_news
    def open_picture(self, image_id: int, request: gr.Request = None):
        """(picture, description, parameters, recipe JSON, download) of one of the user's
        pictures: the PNG as saved, recipe included (the "/history_open" endpoint)."""
        if image_id is None:
            raise HistoryError("Pick a picture first.")
        entry = self._history().get(user_of(request), int(image_id))
        recipe = recipe_of(entry)
        path = self.files.full(entry)
        return path, describe(entry), recipe.parameters_line(), recipe.to_json(), \
            gr.DownloadButton(value=path, interactive=True)

    def inpaint_path(self, image_id: int | None, request: gr.Request | None) -> str:
        """A servable copy of one of the user's pictures, for the Inpaint editor."""
        if image_id is None:
            raise HistoryError("Pick a picture first.")
        return self.files.full(self._history().get(user_of(request), int(image_id)))

    @with_news
    def delete_picture(self, image_id: int, words: str, tab: str, since: str, until: str,
                       number: int, request: gr.Request = None):
        """Delete the picked picture; the list again, the detail emptied."""
        entry = self._delete(image_id, request)
        gr.Info(f"Deleted picture #{entry.id} ({entry.file}).")
        listing = self.list_page(words, tab, since, until, number, request)
        cleared = (None, None, "", "", "", gr.DownloadButton(value=None, interactive=False))
        return *listing, *cleared  # picked id, then the detail

    def _delete(self, image_id: int | None, request: gr.Request | None) -> Entry:
        if image_id is None:
            raise HistoryError("Pick a picture first.")
        entry = self._history().delete(user_of(request), int(image_id))
        self.files.forget(entry)
        return entry

    # --- the HTTP API ------------------------------------------------------------------------

    @with_news
    def api_list(self, query: str = "", tab: str = "", since: str = "", until: str = "",
                 page: int = 1, page_size: int = PAGE_SIZE,
                 request: gr.Request = None) -> dict:
        """The user's saved pictures, newest first: `query` = words of the prompt (each a
        word prefix; all must match), `tab` = generate | clip_guided | inpaint | outpaint |
        sketch | variations ('' = all), `since` / `until` = first and last day (YYYY-MM-DD, local
        time). Gives the page, the number of pages and matches, and each picture's id,
        file, tab, prompt, seed, settings, model hashes and time. Open one with /history_open."""
        if not 1 <= int(page_size) <= MAX_PAGE_SIZE:
            raise HistoryError(f"page_size must be from 1 to {MAX_PAGE_SIZE}, got {page_size}.")
        result = self._history().page(user_of(request), make_query(query, tab, since, until),
                                      int(page), int(page_size))
        return {"page": result.number, "pages": result.pages, "total": result.total,
                "items": [entry.to_dict() for entry in result.entries]}

    @with_news
    def api_delete(self, image_id: int, request: gr.Request = None) -> dict:
        """Delete one of the user's saved pictures (file and index row)."""
        entry = self._delete(image_id, request)
        return {"deleted": entry.id, "file": entry.file}


def build(backend: Backend, tab: gr.Tab) -> HistoryHandles:
    """The tab's widgets and events (listed again whenever the tab is opened), and the
    "/history", "/history_open" and "/history_delete" endpoints."""
    view = HistoryView(backend)
    enabled = view.history is not None
    gr.Markdown(view.notice, elem_id="history-notice")
    with gr.Column(visible=enabled):
        with gr.Row(equal_height=True):
            words = gr.Textbox(label="Search prompts", placeholder="words of the prompt",
                               scale=4, elem_id="history-search")
            tab_filter = gr.Dropdown(TAB_CHOICES, value="", label="Tab", scale=2)
            since = gr.DateTime(include_time=False, type="string", label="From", scale=2)
            until = gr.DateTime(include_time=False, type="string", label="To", scale=2)
            search = gr.Button("Search", variant="primary", scale=1)
        with gr.Row(equal_height=False):
            with gr.Column(scale=6, min_width=340):
                gallery = gr.Gallery(label="Saved pictures, newest first", columns=6,
                                     fit_columns=False, height="auto", object_fit="contain",
                                     allow_preview=False, interactive=False,
                                     elem_id="history-gallery")
                with gr.Row(equal_height=True):
                    newer = gr.Button("◀ Newer", size="sm", scale=0, min_width=90)
                    pager = gr.Markdown("", elem_id="history-pager")
                    older = gr.Button("Older ▶", size="sm", scale=0, min_width=90)
                    rescan = gr.Button("Rescan folder", size="sm", scale=0, min_width=120)
            with gr.Column(scale=5, min_width=320):
                image = gr.Image(label="Picture", format="png", interactive=False, height=360,
                                 buttons=["download", "fullscreen"], elem_id="history-image")
                info = gr.Markdown("", elem_id="history-info")
                parameters = gr.Textbox(label="Parameters", lines=3, interactive=False,
                                        buttons=["copy"])
                recipe_json = gr.Textbox(label="Recipe (JSON)", lines=4, interactive=False,
                                         buttons=["copy"], elem_id="history-recipe")
                with gr.Row():
                    restore = gr.Button("Restore settings", variant="primary",
                                        elem_id="history-restore")
                    send = gr.Button("Send to Inpaint")
                    download = gr.DownloadButton("Download PNG", interactive=False)
                    delete = gr.Button("Delete", variant="stop", elem_id="history-delete")
        picked = gr.Number(None, precision=0, visible=False, label="Picture id")
    ids, number = gr.State([]), gr.State(1)

    filters = [words, tab_filter, since, until]
    listing = [gallery, pager, ids, number]
    detail = [image, info, parameters, recipe_json, download]
    hidden = dict(api_visibility="private", show_progress="hidden")
    first_page = [*filters, gr.State(1)]
    # Opening the tab lists it anew (with saving off there is nothing to list).
    for trigger in ((tab.select,) if enabled else ()) + (search.click, words.submit,
                                                          tab_filter.change):
        trigger(view.list_page, first_page, listing, **hidden)
    newer.click(view.turn(-1), [*filters, number], listing, **hidden)
    older.click(view.turn(+1), [*filters, number], listing, **hidden)
    rescan.click(view.rescan, [*filters, number], listing, **hidden)
    gallery.select(view.pick, ids, picked, **hidden).success(
        view.open_picture, picked, detail, api_name="history_open", show_progress="hidden")
    delete.click(view.delete_picture, [picked, *filters, number], [*listing, picked, *detail],
                 **hidden)
    gr.api(view.api_list, api_name="history")
    gr.api(view.api_delete, api_name="history_delete")
    return HistoryHandles(recipe_json, restore, send, picked, view)

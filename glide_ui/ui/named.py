"""Handlers that receive their widgets' values by name.

One table (parameter name -> widget) gives both the event's inputs list and the handler's
parameters. Gradio reads a handler's parameter names (the HTTP API's keyword names) and
defaults from `inspect.signature`, which honours `__signature__`: the handler built here
shows the table's names while its body receives one dict.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

Body = Callable[[dict[str, Any], "gr.Request | None"], Iterator]
_PARAM = inspect.Parameter.POSITIONAL_OR_KEYWORD


def named_handler(body: Body, controls: dict[str, gr.components.Component],
                  defaults: dict[str, Any] | None = None) -> tuple[Callable, list]:
    """(a generator handler taking `controls`' names as parameters, then `request`; the
    inputs list in the same order). `defaults`: parameters an API caller may leave out (each
    after the first one defaulted needs one too: the order is the table's). `body(values,
    request)` gets every parameter by name."""
    defaults = defaults or {}
    signature = inspect.Signature(
        [inspect.Parameter(name, _PARAM, default=defaults.get(name, inspect.Parameter.empty))
         for name in controls]
        + [inspect.Parameter("request", _PARAM, default=None, annotation=gr.Request)])

    def handler(*args: Any, **kwargs: Any) -> Iterator:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
        request = values.pop("request")
        yield from body(values, request)

    handler.__signature__ = signature  # type: ignore[attr-defined]
    handler.__annotations__ = {"request": gr.Request}
    handler.__name__ = handler.__qualname__ = body.__name__
    handler.__doc__ = body.__doc__
    return handler, list(controls.values())

"""Errors whose message is meant for the person using the app (page, HTTP API, Python)."""


class GlideUIError(Exception):
    """Base class: `str(error)` is a complete sentence a user can act on."""


class RequestError(GlideUIError, ValueError):
    """A request that cannot run as given: empty mask, batch size 0, scale out of range..."""


class Cancelled(GlideUIError):
    """The run was stopped before it finished."""

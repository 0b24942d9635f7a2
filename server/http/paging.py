"""The query arguments of job lists: a status filter, pages (``limit``, ``before``)
and the next page's URL (also a ``Link`` header)."""

from __future__ import annotations

from urllib.parse import urlencode

from .. import errors
from ..records import JobState
from .base import ApiHandler

STATES = tuple(state.value for state in JobState)
MAX_PAGE = 1000  # jobs in one list answer


def states_argument(handler: ApiHandler) -> list[str] | None:
    """The ``?status=a,b`` filter of a job list."""
    wanted = handler.get_query_argument("status", None)
    if wanted is None:
        return None
    states = [part for part in wanted.split(",") if part]
    for state in states:
        if state not in STATES:
            raise errors.ValidationError("status", f"Unknown status {state!r}; use "
                                         f"{', '.join(STATES)} (comma-separated).")
    return states


def page_arguments(handler: ApiHandler) -> tuple[int, str | None]:
    """``?limit=N`` (1 to 1000, default 1000) and ``?before=VSID``."""
    text = handler.get_query_argument("limit", str(MAX_PAGE))
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_PAGE):
        raise errors.ValidationError("limit", f"limit must be a whole number from 1 to "
                                              f"{MAX_PAGE}.")
    return int(text), handler.get_query_argument("before", None)


def next_page(handler: ApiHandler, more: str | None) -> str | None:
    """The URL of the page after the one whose last job is ``more``; sets ``Link``."""
    if more is None:
        return None
    query = [(key, values[-1].decode()) for key, values in
             handler.request.query_arguments.items() if key != "before"]
    following = f"{handler.request.path}?{urlencode([*query, ('before', more)])}"
    handler.set_header("Link", f'<{following}>; rel="next"')
    return following

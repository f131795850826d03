"""Messages that background work stores and people read later, in the reader's language.

A message raised inside a request is translated there (``gettext`` in the request's
language). A message the worker stores (a pipeline step's failure, a run's summary) is
read later by someone else, in their language: the worker stores the English text (what
an English reader sees, byte for byte) next to the message's English template (its
``msgid``) and its params, and the page or the API renders them in the reader's language
when it shows them.

``phrase(msgid, **params)`` is the message in the active language (a ``str``) that also
remembers its msgid and params; ``stored(message)`` is what to store for it (English text,
``{"msgid", "params"}`` JSON); ``render(text, data)`` is the stored message in the active
language. A param may be a phrase of its own (stored nested, rendered first); any other
param (a name, a number, an engine's own text) is shown as it is. A stored message with no
usable msgid, params that do not fill the template, or a reader whose language has no
translation of it: the stored text is shown as stored.

Wrap the msgid in ``gettext_noop`` where ``phrase`` is called so ``makemessages`` extracts
it (``phrase(gettext_noop("Cancelled by %(user)s."), user=name)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.utils.translation import gettext

#: How deep phrases may nest in stored JSON (hostile or corrupt JSON stops here).
MAX_DEPTH = 4


class Phrase(str):
    """A message in the active language that remembers its English ``msgid`` and
    ``params`` (each a plain value or a ``Phrase``)."""

    msgid: str
    params: dict[str, Any]

    def __new__(cls, msgid: str, params: Mapping[str, Any]) -> Phrase:
        params = dict(params)
        text = _fill(gettext(msgid), params)
        if text is None:
            text = _fill(msgid, params) or msgid
        made = super().__new__(cls, text)
        made.msgid = msgid
        made.params = params
        return made

    @property
    def english(self) -> str:
        values = {k: v.english if isinstance(v, Phrase) else v for k, v in self.params.items()}
        return _fill(self.msgid, values) or self.msgid

    def to_json(self) -> dict[str, Any]:
        return {
            "msgid": self.msgid,
            "params": {
                k: v.to_json() if isinstance(v, Phrase) else _plain(v)
                for k, v in self.params.items()
            },
        }


def phrase(msgid: str, **params: Any) -> Phrase:
    """The message ``msgid`` with ``params`` in the active language (see the module)."""
    return Phrase(msgid, params)


def stored(message: Any) -> tuple[str, dict[str, Any]]:
    """(English text, JSON) to store for ``message``: a ``Phrase`` keeps its msgid and
    params; any other text is stored as it is, with empty JSON."""
    if isinstance(message, Phrase):
        return message.english, message.to_json()
    return str(message), {}


def render(text: str, data: Any) -> str:
    """A stored message (``text``, and ``data`` from ``stored``) in the active language;
    ``text`` as stored when ``data`` cannot be rendered."""
    shown = _render(data, 0)
    return text if shown is None else shown


def _render(data: Any, depth: int) -> str | None:
    if depth > MAX_DEPTH or not isinstance(data, Mapping):
        return None
    msgid, params = data.get("msgid"), data.get("params")
    if not isinstance(msgid, str) or not msgid or not isinstance(params, Mapping):
        return None
    values: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, Mapping):
            value = _render(value, depth + 1)
            if value is None:
                return None
        values[name] = value
    return _fill(gettext(msgid), values)


def _fill(template: str, params: Mapping[str, Any]) -> str | None:
    if not params:
        return template if "%" not in template else _percent_only(template)
    try:
        return template % params
    except (KeyError, TypeError, ValueError):
        return None


def _percent_only(template: str) -> str | None:
    """A template with no params may still hold ``%%``."""
    try:
        return template % {}
    except (KeyError, TypeError, ValueError):
        return None


def _plain(value: Any) -> Any:
    return value if isinstance(value, int | float | bool) or value is None else str(value)

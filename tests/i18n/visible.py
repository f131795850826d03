"""The text of an HTML page that a reader sees (or hears from a screen reader), in blocks.

Left out: ``<script>``, ``<style>``, ``<template>``, ``<code>``, ``<pre>``, ``<kbd>``,
``<samp>``, ``<textarea>`` (SQL, commands, logs, editor content: the user's own text), and
any element marked ``translate="no"`` (HTML's own "do not translate this" marker, which
the templates put on user data such as names) or declared in another language with
``lang`` (the language switcher names each language in itself: "English"). Attributes a
reader meets are kept: ``title``, ``placeholder``, ``aria-label``, ``alt``, a button's
``value`` and a form's ``data-confirm`` (the question of its confirm dialog).

Text inside inline elements (a link in a sentence) stays in its sentence; a block element
starts a new block, so words of neighbouring cells never make a sentence together.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any

HIDDEN = {"script", "style", "template", "code", "pre", "kbd", "samp", "textarea", "noscript"}
INLINE = {
    "a", "abbr", "b", "bdi", "bdo", "cite", "data", "dfn", "em", "i", "mark", "q", "s",
    "small", "span", "strong", "sub", "sup", "time", "u", "var", "wbr", "br",
}  # fmt: skip
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}  # fmt: skip
ATTRIBUTES = ("title", "placeholder", "aria-label", "alt", "data-confirm")


class _Visible(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool]] = []  # (tag, hides its content)
        self.blocks: list[str] = []
        self.current: list[str] = []
        self.fragments: list[str] = []  # single text nodes and attribute values

    @property
    def hidden(self) -> bool:
        return any(hides for _, hides in self.stack)

    def _break(self) -> None:
        text = " ".join(" ".join(self.current).split())
        if text:
            self.blocks.append(text)
        self.current = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        hides = (
            tag in HIDDEN
            or values.get("translate") == "no"
            or (values.get("lang") or "ja").split("-")[0] != "ja"
        )
        if tag not in INLINE:
            self._break()
        if not self.hidden and not hides:
            for name in ATTRIBUTES:
                if values.get(name):
                    self.fragments.append(str(values[name]))
                    self.blocks.append(" ".join(str(values[name]).split()))
            button = tag == "input" and values.get("type") in {"submit", "button", "reset"}
            if button and values.get("value"):
                self.fragments.append(str(values["value"]))
                self.blocks.append(str(values["value"]))
        if tag not in VOID:
            self.stack.append((tag, hides))

    def handle_endtag(self, tag: str) -> None:
        if tag not in INLINE:
            self._break()
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index][0] == tag:
                del self.stack[index:]
                break

    def handle_data(self, data: str) -> None:
        if self.hidden or not data.strip():
            return
        self.current.append(data)
        self.fragments.append(data)


def visible_text(html: str) -> tuple[list[str], list[str]]:
    """(blocks of running text, single text nodes and attribute values) of ``html``."""
    parser = _Visible()
    parser.feed(html)
    parser.close()
    parser._break()
    return parser.blocks, [" ".join(f.split()) for f in parser.fragments]


_JSON_SCRIPT = re.compile(
    r'<script[^>]*\bid="([^"]+)"[^>]*type="application/json"[^>]*>(.*?)</script>'
    r'|<script[^>]*type="application/json"[^>]*\bid="([^"]+)"[^>]*>(.*?)</script>',
    re.S,
)
# Keys whose strings scripts show as they are (labels, messages); the rest of a config is
# data (SQL, table and column names, warehouses, numbers).
SHOWN_KEYS = {"labels", "strings", "label", "y_label", "title", "message", "messages", "text"}


def script_strings(html: str) -> list[tuple[str, str]]:
    """(script id, text) for the texts that scripts show from the page's JSON blocks
    (``json_script``): every string of a ``*-strings`` block, and the strings under
    :data:`SHOWN_KEYS` in the others."""
    found: list[tuple[str, str]] = []
    for match in _JSON_SCRIPT.finditer(html):
        name = match.group(1) or match.group(3)
        data = json.loads(match.group(2) or match.group(4))
        _collect(data, name, name.endswith("-strings"), found)
    return found


def _collect(value: Any, name: str, shown: bool, found: list[tuple[str, str]]) -> None:
    if isinstance(value, str):
        if shown:
            found.append((name, value))
    elif isinstance(value, dict):
        for key, inner in value.items():
            _collect(inner, name, shown or key in SHOWN_KEYS, found)
    elif isinstance(value, list):
        for inner in value:
            _collect(inner, name, shown, found)

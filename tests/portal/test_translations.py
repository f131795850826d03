"""The UI speaks Japanese: every message has a translation, and the compiled catalog has it."""

from __future__ import annotations

import ast
import gettext
from pathlib import Path

PO = Path(__file__).resolve().parents[2] / "locale" / "ja" / "LC_MESSAGES" / "django.po"


def _unquote(line: str) -> str:
    return ast.literal_eval(line)


PLURAL: set[str] = set()  # msgids with plural forms (Japanese has one: msgstr[0])


def _po_entries() -> dict[str, str]:
    """msgid -> msgstr, read line by line (blank lines between entries are not relied on)."""
    entries: dict[str, str] = {}
    msgid = msgstr = None
    field = None
    fuzzy = fuzzy_of_previous = False
    for raw in [*PO.read_text(encoding="utf-8").splitlines(), 'msgid ""']:
        line = raw.strip()
        if line.startswith("#,") and "fuzzy" in line:
            fuzzy = True
        elif line.startswith("msgid "):
            if msgid:
                assert not fuzzy_of_previous, f"fuzzy translation for {msgid!r}"
                entries[msgid] = msgstr or ""
            msgid, msgstr, field = _unquote(line[6:]), None, "msgid"
            fuzzy_of_previous, fuzzy = fuzzy, False
        elif line.startswith("msgid_plural "):
            PLURAL.add(msgid)
            field = None
        elif line.startswith("msgstr "):
            msgstr, field = _unquote(line[7:]), "msgstr"
        elif line.startswith("msgstr[0] "):
            msgstr, field = _unquote(line[10:]), "msgstr"
        elif line.startswith('"') and field == "msgid":
            msgid += _unquote(line)
        elif line.startswith('"') and field == "msgstr":
            msgstr = (msgstr or "") + _unquote(line)
    return entries


def test_every_message_is_translated_to_japanese():
    entries = _po_entries()
    assert len(entries) > 30
    untranslated = [msgid for msgid, msgstr in entries.items() if not msgstr]
    assert untranslated == []


def test_compiled_catalog_matches_the_source():
    catalog = gettext.GNUTranslations(PO.with_suffix(".mo").open("rb"))
    entries = _po_entries()
    stale = [
        msgid
        for msgid in entries
        if (catalog.ngettext(msgid, msgid, 1) if msgid in PLURAL else catalog.gettext(msgid))
        == msgid
    ]
    assert stale == [], "run `make messages` to recompile locale/ja"

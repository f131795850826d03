"""Fill Japanese translations into locale/ja/LC_MESSAGES/django.po from a table.

Used by `make messages` after `makemessages`: entries whose msgid is in `scripts/ja.json`
get that translation (new, fuzzy, or changed in the table: the table is the source of
truth); the script lists what is still
missing so a person can add it to the table. Plural entries take the same text for all
forms (Japanese has one form).
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PO = ROOT / "locale" / "ja" / "LC_MESSAGES" / "django.po"
TABLE = Path(__file__).with_name("ja.json")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _msgid(lines: list[str]) -> str:
    text, on = "", False
    for line in lines:
        if line.startswith("msgid "):
            text, on = ast.literal_eval(line[6:]), True
        elif on and line.startswith('"'):
            text += ast.literal_eval(line)
        elif on:
            break
    return text


def fill(block: str, table: dict[str, str]) -> tuple[str, str | None]:
    lines = block.split("\n")
    msgid = _msgid(lines)
    if not msgid:
        return block, None
    fuzzy = any(line.startswith("#,") and "fuzzy" in line for line in lines)
    plural = any(line.startswith("msgid_plural") for line in lines)
    head = [line for line in lines if line.startswith("#")]
    head = [line.replace(", fuzzy", "").replace("#, fuzzy", "") for line in head]
    head = [line for line in head if line not in ("#,", "")]
    body_start = next(i for i, line in enumerate(lines) if line.startswith("msgid "))
    body = lines[body_start:]
    str_at = next(i for i, line in enumerate(body) if line.startswith("msgstr"))
    translated = "".join(
        ast.literal_eval(line.split(" ", 1)[1])
        if line.startswith("msgstr")
        else ast.literal_eval(line)
        for line in body[str_at:]
        if line.startswith(("msgstr", '"'))
    )
    if translated and not fuzzy and (msgid not in table or table[msgid] == translated):
        return block, None  # the table is the source of truth for what it holds
    if msgid not in table:
        return block, msgid
    text = table[msgid]
    new_tail = [f"msgstr[0] {_quote(text)}"] if plural else [f"msgstr {_quote(text)}"]
    return "\n".join([*head, *body[:str_at], *new_tail]), None


def main() -> int:
    table = json.loads(TABLE.read_text(encoding="utf-8"))
    blocks = PO.read_text(encoding="utf-8").rstrip("\n").split("\n\n")
    missing = []
    out = []
    for block in blocks:
        new, miss = fill(block, table)
        out.append(new)
        if miss:
            missing.append(miss)
    PO.write_text("\n\n".join(out) + "\n", encoding="utf-8")
    for msgid in missing:
        print(f"untranslated: {msgid!r}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())

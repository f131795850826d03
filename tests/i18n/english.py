"""What a Japanese reader must never see: an English sentence, or an untranslated catalog entry.

Two checks, shared by the page walk and the API error walk (``tests/i18n/test_walk_*.py``):

- :func:`untranslated_entries`: the text is an English msgid of ``locale/ja``'s catalog that
  has a Japanese translation (whole text, placeholders such as ``%(name)s`` matching any
  text): the page showed the msgid, so the string was not passed through ``gettext`` in the
  reader's language (a module-level ``_()``, a JS literal, a string built by hand).

- :func:`english_sentences`: a run of at least :data:`RUN` consecutive *dictionary words*.
  The detector is deliberately small and explainable:

  1. The text is cut into tokens at whitespace; punctuation at a token's ends is dropped.
  2. A token is *word-shaped* when it is letters only, all lower case or capitalised
     (``the``, ``Only``, ``don't``). Not word-shaped, so never part of a sentence:
     acronyms (``GPU``, ``SQL``, ``CPU``), names with digits or hyphens (``tesla-01``,
     ``p50``, ``500m``), camel case product names (``JupyterLab``), Japanese text.
  3. A word-shaped token is a *dictionary word* when it is in :data:`COMMON_WORDS` (English
     function words and everyday words) or in the vocabulary of the English msgids of the
     Japanese catalogs: the portal's own (``booking``, ``queued``, ``warehouse`` ...) and
     those of Django, its contrib apps and DRF (thousands of ordinary English words, and
     the words of the framework messages a page or an API error can show).
  4. :data:`RUN` (3) dictionary words in a row, with nothing else between them, is an
     English sentence (or a phrase of one). Two words (``Vision Lab``) are not enough, so
     names of teams and people, which the walk's data chooses outside the dictionary
     anyway, do not trip it.

  It finds English that never reached the catalog (a hard-coded label), which the catalog
  check cannot. It cannot find a single English word; the catalog check does that for the
  portal's own words.
"""

from __future__ import annotations

import gettext
import re
from functools import cache
from pathlib import Path

CATALOG = Path(__file__).resolve().parents[2] / "locale" / "ja" / "LC_MESSAGES" / "django.mo"

RUN = 3

# English function words, auxiliaries and everyday words (a message's glue); the portal's
# own vocabulary comes from the catalog.
_COMMON = """
    a about above after again against all almost already also although always am an and
    another any anyone anything are aren't around as ask at away back be because been before
    being below between both but by can can't cannot could couldn't did didn't do does doesn't
    doing don't done down during each either else enough even ever every few first for from
    further get gets give given gives go goes going gone got had hadn't has hasn't have
    haven't having he her here hers him his how however i if in into is isn't it it's its
    itself just keep kept last least less let like made make makes many may maybe me might
    mine more most much must my need needs never new next no nobody none nor not nothing now
    of off often old on once one only onto or other others our ours out over own please put
    rather really said same say says see seen shall she should shouldn't since so some
    someone something soon still such take taken than that that's the their theirs them then
    there these they this those though through till to too took under until up upon us use
    used uses using very was wasn't we well were weren't what when where whether which while
    who whom whose why will with within without won't would wouldn't yet you your yours
    able allowed already asked belongs change changed changes check choose chosen come
    comes could holder holds left right set try tried wait want wants work works wrong
    found known failed free full long short time times later earlier today tomorrow
"""
COMMON_WORDS = frozenset(_COMMON.split())

_WORD = re.compile(r"^(?:[A-Z]?[a-z]+)(?:'[a-z]+)?$")
_EDGE = "\"'`.,:;!?()[]{}<>«»“”\u2018\u2019…—–-*/|"
_JAPANESE = "\u3000-\u30ff\u3400-\u9fff\uf900-\ufaff\uff00-\uffef"
_PLACEHOLDER = re.compile(r"%\([a-zA-Z_][a-zA-Z0-9_]*\)[sdrf]|%[sdrf]|\{[a-zA-Z_0-9]*\}")


@cache
def catalog() -> dict[str, str]:
    """English msgid -> Japanese msgstr, for entries whose translation differs from the msgid."""
    with CATALOG.open("rb") as handle:
        raw = gettext.GNUTranslations(handle)._catalog  # type: ignore[attr-defined]
    entries: dict[str, str] = {}
    for key, value in raw.items():
        msgid = key[0] if isinstance(key, tuple) else key
        if not msgid or "\x00" in msgid:
            continue
        msgid = msgid.split("\x04", 1)[-1]  # a context prefix
        if value and value != msgid:
            entries[_squash(msgid)] = value
    return entries


def _framework_catalogs() -> list[Path]:
    import django
    import rest_framework

    roots = [Path(django.__file__).parent, Path(rest_framework.__file__).parent]
    return [mo for root in roots for mo in root.glob("**/locale/ja/LC_MESSAGES/django.mo")]


@cache
def _vocabulary() -> frozenset[str]:
    words = set(COMMON_WORDS)
    msgids = list(catalog())
    for path in _framework_catalogs():
        with path.open("rb") as handle:
            raw = gettext.GNUTranslations(handle)._catalog  # type: ignore[attr-defined]
        msgids += [key[0] if isinstance(key, tuple) else key for key in raw]
    for msgid in msgids:
        words.update(w.lower() for w in re.findall(r"[A-Za-z]+(?:'[a-z]+)?", msgid))
    return frozenset(words)


@cache
def _msgid_patterns() -> tuple[dict[str, str], list[tuple[re.Pattern[str], str]]]:
    """Plain msgids (exact match) and placeholder msgids (as patterns)."""
    plain: dict[str, str] = {}
    patterns: list[tuple[re.Pattern[str], str]] = []
    for msgid in catalog():
        if _PLACEHOLDER.search(msgid):
            # A msgid that is only placeholders and punctuation would match anything.
            if len(re.sub(r"[\W\d_]", "", _PLACEHOLDER.sub("", msgid))) < 3:
                continue
            parts = _PLACEHOLDER.split(msgid)
            # A placeholder stands for a value (a number, a name), never for Japanese text:
            # "%(n)s GPU" must not match "現在使用中の GPU".
            pattern = rf"[^{_JAPANESE}]+?".join(re.escape(part) for part in parts)
            patterns.append((re.compile(rf"^{pattern}$", re.S), msgid))
        else:
            plain[msgid] = msgid
    return plain, patterns


def _squash(text: str) -> str:
    return " ".join(text.split())


def is_dictionary_word(token: str) -> bool:
    token = token.strip(_EDGE)
    return bool(_WORD.match(token)) and token.lower() in _vocabulary()


def english_sentences(text: str) -> list[str]:
    """The runs of :data:`RUN` or more consecutive dictionary words in ``text``."""
    found: list[str] = []
    run: list[str] = []
    for token in [*text.split(), ""]:
        if token and is_dictionary_word(token):
            run.append(token)
            continue
        if len(run) >= RUN:
            found.append(" ".join(run))
        run = []
    return found


def untranslated_entry(text: str) -> str | None:
    """The catalog msgid that ``text`` shows untranslated, if it is one."""
    text = _squash(text)
    if not text or not re.search(r"[A-Za-z]", text):
        return None
    plain, patterns = _msgid_patterns()
    if text in plain:
        return text
    for pattern, msgid in patterns:
        if pattern.match(text):
            return msgid
    return None


def problems(text: str) -> list[str]:
    """Every reason ``text`` must not be shown to a Japanese reader (empty when fine)."""
    reasons = []
    msgid = untranslated_entry(text)
    if msgid is not None:
        reasons.append(f"untranslated catalog entry {msgid!r}")
    for sentence in english_sentences(text):
        if msgid is None:
            reasons.append(f"English {sentence!r}")
    return reasons

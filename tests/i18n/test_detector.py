"""The English detector itself (tests/i18n/english.py): what it must catch and must not."""

from __future__ import annotations

import pytest

from tests.i18n import english


@pytest.mark.parametrize(
    "text",
    [
        "Only the holder can change this booking.",
        "You do not have permission to perform this action.",
        "Authentication credentials were not provided.",
        "ジョブ 12: The job has not started yet.",
    ],
)
def test_english_sentences_are_caught(text):
    assert english.english_sentences(text), text


@pytest.mark.parametrize(
    "text",
    [
        "GPU",
        "SQL",
        "tesla-01",
        "p50",
        "JupyterLab",
        "CPU 500m",
        "GPU 2 基 · tesla-01 · p50 12 ms",
        "Vision Lab",
        "このブッキングは保有者だけが変更できます。",
        "SELECT l_orderkey FROM lineitem",
        "NVIDIA-A100-SXM4-80GB",
    ],
)
def test_names_units_and_japanese_are_not_sentences(text):
    assert english.english_sentences(text) == [], text


def test_a_translated_msgid_shown_as_is_is_an_untranslated_entry():
    msgid = next(m for m in english.catalog() if "%(" not in m and " " in m)
    assert english.untranslated_entry(msgid) == msgid
    assert english.untranslated_entry(english.catalog()[msgid]) is None


def test_a_msgid_with_placeholders_matches_its_filled_in_text():
    msgid = next(m for m in english.catalog() if "%(" in m and len(m) > 20)
    filled = english._PLACEHOLDER.sub("42", msgid)
    assert english.untranslated_entry(filled) == msgid

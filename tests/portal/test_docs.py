"""README stays true to the code: every environment variable settings.py reads is documented."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _variables_read_by_settings() -> set[str]:
    source = (REPO / "portal" / "settings.py").read_text()
    calls = re.findall(r'(?:env\.\w+|_strict_bool|_env_or_fail)\(\s*"([A-Z][A-Z0-9_]+)"', source)
    return set(calls)


def test_every_setting_variable_is_in_the_readme():
    variables = _variables_read_by_settings()
    assert {"DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "ALLOWED_HOSTS"} <= variables
    readme = (REPO / "README.md").read_text()
    undocumented = sorted(v for v in variables if f"`{v}`" not in readme)
    assert undocumented == []


def test_readme_quick_start_is_the_two_commands():
    readme = (REPO / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("##", 1)[0]
    assert "make run" in quick_start
    assert "make test" in quick_start

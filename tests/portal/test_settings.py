"""Settings come from the environment; production settings pass Django's deploy checks.

Each case starts a fresh `manage.py` process, because settings are read once at start.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STRONG_KEY = "k" * 20 + "Zq8-vX2_pL9mN4bR7tY1wE6uI3oA5sD0fG"  # 50+ chars, varied
PRODUCTION = {"DEBUG": "false", "SECRET_KEY": STRONG_KEY, "ALLOWED_HOSTS": "karimasu.example.com"}
# Variables a developer's shell may carry that would change what is being tested.
_SCRUB = {
    "DEBUG",
    "SECRET_KEY",
    "SECRET_KEY_FILE",
    "ALLOWED_HOSTS",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "DATABASE_URL",
    "DATABASE_URL_FILE",
    "CELERY_BROKER_URL",
    "CACHE_URL",
    "CELERY_RESULT_BACKEND",
}


def manage(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    clean["KARIMASU_VAR_DIR"] = str(tmp_path)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_production_settings_pass_check_deploy_without_warnings(tmp_path):
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION, tmp_path=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNINGS" not in result.stdout + result.stderr


def test_debug_settings_do_fail_check_deploy(tmp_path):
    """The deploy check is not vacuous: the demo defaults are flagged."""
    result = manage("check", "--deploy", "--fail-level", "WARNING", env={}, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "security.W018" in result.stderr + result.stdout  # DEBUG on


def test_secret_key_is_read_from_a_file(tmp_path):
    key_file = tmp_path / "secret"
    key_file.write_text(STRONG_KEY)
    env = {**PRODUCTION, "SECRET_KEY_FILE": str(key_file)}
    del env["SECRET_KEY"]
    result = manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.SECRET_KEY)",
        env=env,
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == STRONG_KEY


@pytest.mark.parametrize(
    "env, want_message",
    [
        pytest.param(
            {"DEBUG": "false", "ALLOWED_HOSTS": "x.example"},
            "SECRET_KEY",
            id="production-without-secret",
        ),
        pytest.param(
            {"DEBUG": "false", "SECRET_KEY": STRONG_KEY},
            "ALLOWED_HOSTS",
            id="production-without-hosts",
        ),
        pytest.param({"DEBUG": "maybe"}, "DEBUG must be true or false", id="bad-boolean"),
        pytest.param({"SECURE_HSTS_SECONDS": "a year"}, "SECURE_HSTS_SECONDS", id="bad-integer"),
        pytest.param({"DATABASE_URL": "nosuchdb://x"}, "DATABASE_URL", id="bad-database-url"),
    ],
)
def test_a_bad_value_stops_the_start_with_a_named_message(tmp_path, env, want_message):
    result = manage("check", env=env, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert want_message in result.stderr


@pytest.mark.parametrize(
    "env, want_message",
    [
        pytest.param(
            {"SECRET_KEY": "replace-me-with-50-random-characters"},
            "SECRET_KEY is a published example value",
            id="example-secret-key",
        ),
        pytest.param(
            {"SECRET_KEY": "django-insecure-karimasu-dev-only-never-in-production"},
            "SECRET_KEY is a published example value",
            id="dev-secret-key",
        ),
        pytest.param(
            {"DATABASE_URL": "postgres://karimasu:replace-me@db.example:5432/karimasu"},
            "DATABASE_URL carries an example password",
            id="example-database-password",
        ),
        pytest.param(
            {"CELERY_BROKER_URL": "redis://:demo-only-change-me@redis:6379/0"},
            "CELERY_BROKER_URL carries an example password",
            id="example-broker-password",
        ),
    ],
)
def test_production_refuses_to_start_with_a_placeholder(tmp_path, env, want_message):
    result = manage("check", env={**PRODUCTION, **env}, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert want_message in result.stderr


def test_the_demo_accepts_placeholders(tmp_path):
    """DEBUG on (the local demo): the example values do not stop the start."""
    env = {
        "DEBUG": "true",
        "SECRET_KEY": "replace-me-with-50-random-characters",
        "CELERY_BROKER_URL": "redis://:demo-only-change-me@127.0.0.1:1/0",
    }
    result = manage("check", env=env, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr


def test_a_real_password_is_accepted(tmp_path):
    env = {**PRODUCTION, "CELERY_BROKER_URL": "redis://:Zq8vX2pL9mN4bR7t@127.0.0.1:1/0"}
    result = manage("check", env=env, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr


def test_an_unknown_gpu_allocation_mode_is_refused_at_start(tmp_path):
    result = manage("check", env={"KARIMASU_GPU_ALLOCATION": "exact"}, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "KARIMASU_GPU_ALLOCATION='exact': expected auto, dra or device-plugin" in result.stderr

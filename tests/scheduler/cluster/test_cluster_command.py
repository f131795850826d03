"""`manage.py cluster sync` and `cluster emulate` as an operator runs them."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from scheduler.models import Node

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.django_db


def test_sync_reports_nodes_and_what_reconcile_did(emulator, settings):
    settings.KUBECONFIG = str(emulator.kubeconfig_path)
    out = io.StringIO()
    call_command("cluster", "sync", stdout=out)
    report = json.loads(out.getvalue())
    assert report["nodes"] == 4
    assert sorted(report["appeared"]) == ["tesla-01", "tesla-02", "tesla-03", "tesla-04"]
    assert Node.objects.count() == 4


def test_sync_without_a_cluster_fails_with_the_reason(settings, tmp_path):
    settings.KUBECONFIG = str(tmp_path / "missing")
    with pytest.raises(CommandError, match="does not exist"):
        call_command("cluster", "sync")


def test_emulate_prints_its_url_writes_a_kubeconfig_and_stops_on_sigterm(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    env = {**os.environ, "KARIMASU_VAR_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "cluster",
            "emulate",
            "--port",
            "0",
            "--kubeconfig",
            str(kubeconfig),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("Kubernetes API emulator at http://127.0.0.1:"), line
        deadline = time.monotonic() + 10
        while not kubeconfig.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "server: http://127.0.0.1:" in kubeconfig.read_text()
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0

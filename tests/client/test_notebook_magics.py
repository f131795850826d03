"""The notebook magics, executed as a real notebook (nbclient, an IPython kernel) against a
live server: ``%%sql`` runs through the gate, shows findings inline and returns a pandas
DataFrame; ``%gpu`` borrows, lists and releases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbclient
import nbformat
import pytest

from querygate import tasks as gate_tasks
from scheduler import tasks as scheduler_tasks
from scheduler.models import PriorityClass
from tests.scheduler.conftest import make_node

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]

CELLS = [
    "%load_ext karimasu_client.magics",
    "%%sql --warehouse demo --out nations\n"
    "SELECT n_name, n_regionkey FROM nation WHERE n_regionkey = 1 ORDER BY n_name LIMIT 10",
    "print(type(nations).__name__, len(nations), list(nations.columns), nations.iloc[0, 0])",
    "%%sql --warehouse demo\nSELECT * FROM '/etc/passwd'",
    "%%sql --warehouse demo\nSELECT count(*) FROM lineitem, orders",
    "b = %gpu borrow --team vision --gpus 1 --hours 1 --purpose notebook\n"
    "mine = %gpu list\n"
    "print('borrowed', len(mine), int(mine['id'].iloc[0]) == b['id'])\n"
    "r = %gpu release {b['id']}\n"
    "print('released', r['status'])",
]


def _outputs(cell: Any) -> str:
    # A print may reach the notebook as several stream chunks ("borrowed", " 1 True\n"):
    # stream text is joined as it came, other outputs on lines of their own.
    parts = []
    for output in cell.outputs:
        if output.get("output_type") == "stream":
            parts.append(output["text"])
        for key in ("text/html", "text/plain"):
            if key in output.get("data", {}):
                parts.append(f"\n{output['data'][key]}\n")
        if output.get("output_type") == "error":
            parts.append(f"\nERROR {output['ename']}: {output['evalue']}\n")
    return "".join(parts)


def test_sql_and_gpu_magics_in_a_real_notebook(
    live_server, alice, demo, settings, tmp_path, monkeypatch
) -> None:
    settings.QUERYGATE_RESULTS_DIR = tmp_path / "results"
    monkeypatch.setattr(gate_tasks.run_query, "delay", lambda query_id: None)
    monkeypatch.setattr(scheduler_tasks.schedule_cycle, "delay", lambda: None)
    PriorityClass.objects.get_or_create(name="normal", defaults={"value": 0, "is_default": True})
    make_node("tesla-01")
    demo.row_cap = 3  # the DataFrame still holds all 5 rows: %%sql streams the full export
    demo.save()
    monkeypatch.setenv("KARIMASU_URL", live_server.url)
    monkeypatch.setenv("KARIMASU_TOKEN", alice.token)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    client = nbclient.NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        allow_errors=False,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    out = [_outputs(cell) for cell in notebook.cells]

    assert "<th>n_name</th>" in out[1] and "succeeded, 5 rows" in out[1]
    assert out[2].strip() == "DataFrame 5 ['n_name', 'n_regionkey'] ARGENTINA"
    assert "refused" in out[3] and "file-path-table" in out[3]
    assert "warned: run again with --ack" in out[4] and "cartesian-join" in out[4]
    assert "borrowed 1 True" in out[5] and "released released" in out[5]
    (tmp_path / "executed.ipynb").write_text(json.dumps(notebook))

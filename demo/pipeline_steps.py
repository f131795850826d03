"""The demo pipeline's container steps, run by the emulated cluster as real processes
(``python -m demo.pipeline_steps prep|train``): what a team's preprocessing and training
images would do, in a few lines of DuckDB so the demo needs nothing more.

- ``prep`` reads the Parquet of ``$KARIMASU_INPUT_<DATASET>`` (the one input), keeps the
  customers with orders, adds ``avg_order`` and a ``churned`` label, and writes
  ``$KARIMASU_OUTPUT_DIR/part-0.parquet``.
- ``train`` fits ``spent ~ orders`` by least squares (DuckDB's ``regr_slope``) on its input and
  writes ``$KARIMASU_OUTPUT_DIR/model.json`` with the coefficients, the rows seen and the
  GPUs it was given (``CUDA_VISIBLE_DEVICES`` / ``NVIDIA_VISIBLE_DEVICES``).

``KARIMASU_DEMO_FAIL_ONCE=<path>``: the first run that finds no file there creates it and
exits 3 (a flaky step, for the retry and resume demos).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import duckdb


def _input() -> Path:
    inputs = sorted(v for k, v in os.environ.items() if k.startswith("KARIMASU_INPUT_"))
    if len(inputs) != 1:
        raise SystemExit(f"expected one input dataset, got {len(inputs)}")
    return Path(inputs[0])


def _parquet(directory: Path) -> str:
    return str(directory / "**" / "*.parquet")


def prep(output: Path) -> None:
    with duckdb.connect(":memory:") as con:
        con.execute(
            "COPY (SELECT *, spent / orders AS avg_order, orders < 10 AS churned "
            "FROM read_parquet(?) WHERE orders > 0) TO '"
            + str(output / "part-0.parquet").replace("'", "''")
            + "' (FORMAT parquet)",
            [_parquet(_input())],
        )


def train(output: Path) -> None:
    with duckdb.connect(":memory:") as con:
        row = con.execute(
            "SELECT regr_slope(spent, orders), regr_intercept(spent, orders), count(*) "
            "FROM read_parquet(?)",
            [_parquet(_input())],
        ).fetchone()
    assert row is not None
    model = {
        "slope": row[0],
        "intercept": row[1],
        "rows": row[2],
        "gpus": os.environ.get("CUDA_VISIBLE_DEVICES") or os.environ.get("NVIDIA_VISIBLE_DEVICES"),
    }
    (output / "model.json").write_text(json.dumps(model))


def main(argv: list[str]) -> int:
    marker = os.environ.get("KARIMASU_DEMO_FAIL_ONCE")
    if marker and not Path(marker).exists():
        Path(marker).write_text("failed once\n")
        print("failing on purpose (KARIMASU_DEMO_FAIL_ONCE)", flush=True)
        return 3
    output = Path(os.environ["KARIMASU_OUTPUT_DIR"])
    steps = {"prep": prep, "train": train}
    if len(argv) != 1 or argv[0] not in steps:
        print(f"usage: python -m demo.pipeline_steps {'|'.join(steps)}", file=sys.stderr)
        return 2
    steps[argv[0]](output)
    print(f"{argv[0]}: wrote {sorted(p.name for p in output.iterdir())}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

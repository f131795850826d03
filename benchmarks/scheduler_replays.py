"""Scheduler quality (issue 17): the ``default`` policy against ``fifo`` on lab-sized Philly
replays, every job replayed (jobs wider than a node as gangs of 8-GPU nodes).

Replays (whole virtual clusters of ``/work/shared/traces/philly.csv``, all their jobs, on
uniform 8-GPU nodes sized for a load of about 0.7 of the cluster's GPUs, then two windows):

- ``ee9e8c`` on 20 x 8 GPUs: 1,511 jobs, 119 wider than a node (up to 128 GPUs = 16 nodes);
- ``2869ce,e13805`` on 8 x 8 GPUs: 796 jobs of two teams, 69 wider than a node (up to 32);
- ``103959,0e4a51`` on 10 x 8 GPUs: 3,369 jobs of two teams, all within a node;
- ``11cb48,7f04ca``, the first 4,000 jobs, on 20 x 8 GPUs (held out: not used for tuning);
- ``b436b2,2869ce``, the first 3,000 jobs, on 20 x 8 GPUs (held out).

Declared runtime = actual x U[1, 2] (``runtime_error=1.0``, seed 0). Goals: average JCT
<= 0.3x FIFO's, GPU utilization >= FIFO's - 1 point, Jain fairness >= 0.9 across teams,
p99 wait <= FIFO's, nothing dropped. Each replay is the same as
``manage.py sched simulate --trace /work/shared/traces/philly.csv --trace-format philly
--clusters C --nodes N --gpus-per-node 8 --policy P [--limit L] --json``.

Needs no Django: ``python -c "from benchmarks import scheduler_replays as b; b.run()"``.
"""

from __future__ import annotations

from scheduler.sim.simulator import POLICIES, simulate
from scheduler.sim.traces import PHILLY, load_philly, uniform_nodes

REPLAYS: tuple[tuple[str, int, int | None], ...] = (
    ("ee9e8c", 20, None),
    ("2869ce,e13805", 8, None),
    ("103959,0e4a51", 10, None),
    ("11cb48,7f04ca", 20, 4000),
    ("b436b2,2869ce", 20, 3000),
)


def _row(name: str, m: dict[str, object]) -> str:
    return (
        f"  {name:<8} {m['jobs']:>5} {m['dropped']:>4} {m['multi_node_jobs']:>5} "
        f"{m['avg_jct_s']:>11,.0f} {m['p99_wait_s']:>11,.0f} {m['gpu_utilization']:>6.3f} "
        f"{m['jain_fairness']:>6.3f}"
    )


def run() -> None:
    if not PHILLY.exists():
        print("scheduler_replays: Philly trace not found, skipped")
        return
    for clusters, nodes, limit in REPLAYS:
        jobs = load_philly(clusters=frozenset(clusters.split(",")), limit=limit)
        first = f", first {limit}" if limit else ""
        print(
            f"scheduler_replays Philly {clusters}{first} on {nodes}x8 GPUs, "
            "declared = actual x U[1,2]"
        )
        print(
            f"  {'policy':<8} {'jobs':>5} {'drop':>4} {'gangs':>5} {'avg JCT s':>11} "
            f"{'p99 wait s':>11} {'util':>6} {'Jain':>6}"
        )
        got = {}
        for policy in ("fifo", "default"):
            m = simulate(jobs, uniform_nodes(nodes, 8), POLICIES[policy], runtime_error=1.0)
            got[policy] = m.as_dict()
            print(_row(policy, got[policy]))
        fifo, best = got["fifo"], got["default"]
        ratio = float(best["avg_jct_s"]) / float(fifo["avg_jct_s"])
        util_gap = float(best["gpu_utilization"]) - float(fifo["gpu_utilization"])
        print(
            f"  default/fifo avg JCT {ratio:.2f}x (goal <= 0.3), utilization "
            f"{util_gap * 100:+.1f} points (goal >= -1), p99 wait "
            f"{float(best['p99_wait_s']) / max(float(fifo['p99_wait_s']), 1.0):.2f}x (goal <= 1)"
        )


if __name__ == "__main__":
    run()

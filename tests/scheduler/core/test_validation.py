"""Submit-time validation: clear errors for jobs no node could ever run."""

from __future__ import annotations

import pytest

from scheduler.core.validation import validate_job
from tests.scheduler.core.builders import make_job, make_node

NODES = [make_node("n1").model("A100").build(), make_node("n2").model("T4").gpus(2).build()]


@pytest.mark.parametrize(
    ("job", "user_cap", "want_errors"),
    [
        pytest.param(make_job().gpus(8).models("A100"), None, [], id="fits the A100 node"),
        pytest.param(make_job().gpus(0), None, [], id="CPU-only job"),
        pytest.param(
            make_job().gpus(9), None,
            ["gpus must be between 0 and 8 (one node), not 9",
             "no node has 9 GPUs with 0m CPU and 0 MiB"],
            id="more than one node's worth",
        ),
        pytest.param(
            make_job().models("H100"), None,
            ["unknown GPU model: H100 (the cluster has A100, T4)"], id="unknown model",
        ),
        pytest.param(
            make_job().gpus(4).models("T4"), None,
            ["no node has 4 GPUs of model T4 with 0m CPU and 0 MiB"],
            id="the model exists but its nodes are too small",
        ),
        pytest.param(
            make_job().gpus(4), 2, ["4 GPUs is over your limit of 2 concurrent GPUs"],
            id="over the user's cap",
        ),
        pytest.param(
            make_job().runtime(0), None, ["max runtime must be positive"], id="no runtime",
        ),
    ],
)  # fmt: skip
def test_validate(job, user_cap, want_errors):
    assert validate_job(NODES, job.build(), user_cap) == want_errors

"""Label and field selectors: the parser on its own, then through the client."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from kube_emulator.selectors import labels_match, parse_label_selector

from .conftest import NS, make_pod

LABELS = {"app": "train", "team": "vision", "tier": "gpu"}


@pytest.mark.parametrize(
    ("selector", "want_match"),
    [
        pytest.param("", True, id="empty-matches-all"),
        pytest.param("app=train", True, id="equals"),
        pytest.param("app==train", True, id="double-equals"),
        pytest.param("app=serve", False, id="equals-other-value"),
        pytest.param("app!=serve", True, id="not-equals"),
        pytest.param("missing!=x", True, id="not-equals-matches-absent-label"),
        pytest.param("team", True, id="exists"),
        pytest.param("missing", False, id="exists-absent"),
        pytest.param("!missing", True, id="does-not-exist"),
        pytest.param("!team", False, id="does-not-exist-but-does"),
        pytest.param("team in (nlp, vision)", True, id="in-set"),
        pytest.param("team in (nlp)", False, id="in-other-set"),
        pytest.param("team notin (nlp,ops)", True, id="notin-set"),
        pytest.param("missing notin (a)", True, id="notin-matches-absent-label"),
        pytest.param("app=train,team in (vision),!missing", True, id="all-requirements-hold"),
        pytest.param("app=train,tier=cpu", False, id="one-requirement-fails"),
    ],
)
def test_label_selector(selector: str, want_match: bool) -> None:
    assert labels_match(parse_label_selector(selector), LABELS) is want_match


@pytest.fixture
def labelled_pods(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(NS, make_pod("a", {"app": "train", "team": "vision"}))
    core.create_namespaced_pod(NS, make_pod("b", {"app": "train", "team": "nlp"}))
    core.create_namespaced_pod(NS, make_pod("c", {"app": "serve"}))


@pytest.mark.parametrize(
    ("selector", "want_names"),
    [
        pytest.param("app=train", ["a", "b"], id="equality"),
        pytest.param("team!=nlp", ["a", "c"], id="inequality-includes-unlabelled"),
        pytest.param("team", ["a", "b"], id="exists"),
        pytest.param("!team", ["c"], id="not-exists"),
        pytest.param("team in (vision,ops)", ["a"], id="in"),
        pytest.param("app notin (train)", ["c"], id="notin"),
    ],
)
@pytest.mark.usefixtures("labelled_pods")
def test_label_selector_over_http(core: client.CoreV1Api, selector: str, want_names) -> None:
    pods = core.list_namespaced_pod(NS, label_selector=selector).items
    assert [p.metadata.name for p in pods] == want_names


@pytest.mark.usefixtures("labelled_pods")
def test_field_selectors_on_name_node_and_phase(emulator, core: client.CoreV1Api) -> None:
    emulator.settle()  # the bare pods get scheduled and start
    by_name = core.list_namespaced_pod(NS, field_selector="metadata.name=b").items
    assert [p.metadata.name for p in by_name] == ["b"]
    running = core.list_namespaced_pod(NS, field_selector="status.phase=Running").items
    assert len(running) == 3
    node = running[0].spec.node_name
    on_node = core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}").items
    assert {p.spec.node_name for p in on_node} == {node}
    elsewhere = core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName!={node}").items
    assert node not in {p.spec.node_name for p in elsewhere}
    assert len(on_node) + len(elsewhere) == len(core.list_pod_for_all_namespaces().items)


@pytest.mark.parametrize(
    ("kwargs", "want_in_message"),
    [
        pytest.param({"label_selector": "team in (a"}, "unable to parse", id="unclosed-set"),
        pytest.param({"field_selector": "spec.bogus=1"}, "not supported", id="unknown-field"),
    ],
)
def test_bad_selector_is_400(core: client.CoreV1Api, kwargs, want_in_message: str) -> None:
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_pod(NS, **kwargs)
    assert exc.value.status == 400
    assert want_in_message in exc.value.body

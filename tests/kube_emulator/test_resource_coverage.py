"""Every resource type the emulator serves (``resources.ALL``) is covered by every table built
per type: OpenAPI, Table printing, field selectors, protobuf, discovery, deletion.

A type added to ``resources.ALL`` and forgotten in one of them was a 500 on ``/openapi/v2``
and ``/openapi/v3`` (so kubectl's client-side validation, apply and explain all failed), and
DaemonSets escaped strict field validation. These tests fail for the type that was forgotten.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from kubernetes import client

from kube_emulator import deletion, openapi, protobuf, selectors, server, tables
from kube_emulator import resources as r

from .conftest import NS
from .test_daemonsets import _daemonset, _ds_pods

TYPES = [pytest.param(x, id=x.plural) for x in r.ALL]
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"  # kubectl's


def _call(emulator, method: str, path: str, body: object = None, **headers: str):
    data = json.dumps(body).encode() if body is not None else None
    headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(emulator.url + path, data, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _collection(rtype: r.ResourceType) -> str:
    base = f"/api/{rtype.version}" if not rtype.group else f"/apis/{rtype.api_version}"
    return (
        f"{base}/namespaces/{NS}/{rtype.plural}" if rtype.namespaced else f"{base}/{rtype.plural}"
    )


@pytest.mark.parametrize("rtype", TYPES)
def test_each_per_type_table_covers_the_type(rtype: r.ResourceType) -> None:
    root = openapi.ROOTS[rtype.plural]
    if openapi.available():
        definitions = openapi._definitions()
        assert {root, f"{root}List"} <= set(definitions)
        kinds = definitions[root]["x-kubernetes-group-version-kind"]
        assert {"group": rtype.group, "version": rtype.version, "kind": rtype.kind} in kinds
    assert len(tables.COLUMNS[rtype.plural]) == len(_table_cells_of_nothing(rtype.plural))
    assert "metadata.name" in selectors.FIELDS[rtype.plural]
    wire = (rtype.api_version, rtype.kind)
    assert (wire in protobuf.ROOTS) != (wire in protobuf.NOT_DECODED)
    listed = server._resource_list(rtype.api_version)["resources"]
    assert rtype.plural in {x["name"] for x in listed}


@pytest.mark.parametrize("rtype", TYPES)
def test_each_subresource_is_in_discovery_with_its_verbs(rtype: r.ResourceType) -> None:
    listed = {x["name"]: x for x in server._resource_list(rtype.api_version)["resources"]}
    for sub in rtype.subresources:
        assert listed[f"{rtype.plural}/{sub}"]["verbs"], sub
    if rtype is r.PODS:  # as upstream: pods/proxy is PodProxyOptions, pods/log is Pod
        assert listed["pods/proxy"]["kind"] == "PodProxyOptions"
        assert listed["pods/log"]["kind"] == "Pod"


def _table_cells_of_nothing(plural: str) -> list[object]:
    return tables._CELLS[plural]({"metadata": {"name": "x"}}, 0.0)


@pytest.mark.parametrize("rtype", TYPES)
def test_each_type_prints_as_a_table_and_has_its_openapi_paths(
    emulator, rtype: r.ResourceType
) -> None:
    status, table = _call(emulator, "GET", _collection(rtype), Accept=TABLE)
    assert (status, table["kind"]) == (200, "Table")
    assert len(table["columnDefinitions"]) == len(_table_cells_of_nothing(rtype.plural))
    if not openapi.available():
        pytest.skip("kubernetes-validate is not installed")
    status, v2 = _call(emulator, "GET", "/openapi/v2")
    path = _collection(rtype).replace(f"/namespaces/{NS}/", "/namespaces/{namespace}/")
    assert status == 200 and path in v2["paths"]
    group_version = f"api/{rtype.version}" if not rtype.group else f"apis/{rtype.api_version}"
    status, v3 = _call(emulator, "GET", f"/openapi/v3/{group_version}")
    assert status == 200 and f"{path}/{{name}}" in v3["paths"]


def test_the_owners_the_garbage_collector_watches_have_a_default_propagation() -> None:
    assert set(deletion.OWNERS) == {r.JOBS, r.DAEMONSETS}
    assert deletion.OWNERS[r.JOBS] == "Orphan"  # batch/v1, for compatibility
    assert deletion.OWNERS[r.DAEMONSETS] == "Background"  # apps/v1


def test_a_daemonset_with_an_unknown_field_is_refused_under_strict_validation(emulator) -> None:
    if not openapi.available():
        pytest.skip("kubernetes-validate is not installed")
    body = _daemonset("typo")
    body["spec"]["template"]["spec"]["containers"][0]["gpuCount"] = 1
    path = f"/apis/apps/v1/namespaces/{NS}/daemonsets?fieldValidation=Strict"
    status, answer = _call(emulator, "POST", path, body)
    assert status == 400
    assert 'unknown field "spec.template.spec.containers[0].gpuCount"' in answer["message"]


def test_a_daemonset_selector_is_immutable(emulator, core) -> None:
    apps = client.AppsV1Api(core.api_client)
    apps.create_namespaced_daemon_set(NS, _daemonset("agent"))
    with pytest.raises(client.ApiException) as caught:
        apps.patch_namespaced_daemon_set(
            "agent", NS, {"spec": {"selector": {"matchLabels": {"app": "other"}}}}
        )
    assert caught.value.status == 422
    apps.patch_namespaced_daemon_set("agent", NS, {"spec": {"minReadySeconds": 5}})


def test_deleting_a_namespace_deletes_its_daemonsets(emulator, core) -> None:
    apps = client.AppsV1Api(core.api_client)
    core.create_namespace({"metadata": {"name": "tools"}})
    apps.create_namespaced_daemon_set("tools", _daemonset("agent"))
    emulator.settle()
    assert len(_ds_pods(core, "agent")) == 4
    core.delete_namespace("tools")
    emulator.settle()
    assert apps.list_namespaced_daemon_set("tools").items == []
    emulator.advance(30)  # the Pods terminate for their grace period, then the namespace goes
    assert _ds_pods(core, "agent") == []
    assert "tools" not in {n.metadata.name for n in core.list_namespace().items}


# -- protobuf: a hand-written encoder for the few fields a typed client would send ---------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, value: bytes | str | int) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    raw = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(raw)) + raw


def _map(number: int, entries: dict[str, str]) -> bytes:
    return b"".join(_field(number, _field(1, k) + _field(2, v)) for k, v in entries.items())


def test_a_daemonset_in_protobuf_is_decoded() -> None:
    labels = {"app": "agent"}
    toleration = _field(1, "nvidia.com/gpu") + _field(2, "Exists") + _field(4, "NoSchedule")
    container = _field(1, "agent") + _field(2, "registry.local/agent:1")
    pod_spec = _field(2, container) + _field(22, toleration)
    template = _field(1, _map(11, labels)) + _field(2, pod_spec)
    spec = (
        _field(1, _map(1, labels))
        + _field(2, template)
        + _field(3, _field(1, "OnDelete"))
        + _field(6, 3)
    )
    ds = _field(1, _field(1, "agent") + _field(3, NS)) + _field(2, spec)
    type_meta = _field(1, "apps/v1") + _field(2, "DaemonSet")
    body = protobuf.MAGIC + _field(1, type_meta) + _field(2, ds)
    assert protobuf.decode(body) == {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": NS},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{"name": "agent", "image": "registry.local/agent:1"}],
                    "tolerations": [
                        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
                    ],
                },
            },
            "updateStrategy": {"type": "OnDelete"},
            "revisionHistoryLimit": 3,
        },
    }

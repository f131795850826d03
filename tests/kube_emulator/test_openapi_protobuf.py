"""``/openapi/v2`` in protobuf (gnostic's ``openapi.v2.Document``), what kubectl before 1.27
validates and explains with: decoded here with the field numbers of gnostic's
``openapiv2/OpenAPIv2.proto``, written out again independently of :mod:`kube_emulator.gnostic`,
it must be the JSON document, field for field."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
import yaml

from kube_emulator import gnostic, openapi
from kube_emulator.protobuf import read_fields, varint

DEPRECATED_PB = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"  # client-go's
PB = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"

pytestmark = pytest.mark.skipif(
    not openapi.available(), reason="kubernetes-validate is not installed"
)


def _get(emulator, accept: str | None) -> tuple[int, str, bytes]:
    headers = {"Accept": accept} if accept is not None else {}
    request = urllib.request.Request(emulator.url + "/openapi/v2", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


# -- a decoder of the parts of the message the emulator fills in ------------------------------


def _fields(data: bytes) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {}
    for number, _, value in read_fields(data):
        out.setdefault(number, []).append(value)
    return out


def _text(fields: dict[int, list[Any]], number: int) -> str | None:
    return fields[number][-1].decode() if number in fields else None


def _named(data: bytes) -> tuple[str, bytes]:
    """Named* {name 1, value 2}."""
    entry = _fields(data)
    return entry[1][0].decode(), entry[2][0]


def _any(data: bytes) -> Any:
    return yaml.safe_load(_fields(data)[2][0].decode())  # Any {value 1, yaml 2}


def _put(out: dict[str, Any], fields: dict[int, list[Any]], numbers: dict[int, str]) -> None:
    for number, key in numbers.items():
        value = _text(fields, number)
        if value is not None:
            out[key] = value


def _extensions(out: dict[str, Any], entries: list[bytes]) -> None:
    for entry in entries:  # repeated NamedAny
        name, value = _named(entry)
        out[name] = _any(value)


def _schema(data: bytes) -> dict[str, Any]:
    f = _fields(data)
    out: dict[str, Any] = {}
    _put(out, f, {1: "$ref", 2: "format", 4: "description"})
    if 19 in f:
        out["required"] = [v.decode() for v in f[19]]
    if 20 in f:
        out["enum"] = [_any(v) for v in f[20]]
    if 21 in f:  # AdditionalPropertiesItem {schema 1 | boolean 2}
        extra = _fields(f[21][0])
        out["additionalProperties"] = _schema(extra[1][0]) if 1 in extra else bool(extra[2][0])
    if 22 in f:  # TypeItem {repeated value 1}
        types = [v.decode() for v in _fields(f[22][0])[1]]
        out["type"] = types[0] if len(types) == 1 else types
    if 23 in f:  # ItemsItem {repeated schema 1}
        out["items"] = _schema(_fields(f[23][0])[1][0])
    if 25 in f:  # Properties {repeated NamedSchema 1}
        out["properties"] = _map(_fields(f[25][0]).get(1, []), _schema)
    _extensions(out, f.get(31, []))
    return out


def _map(entries: list[bytes], decode: Any) -> dict[str, Any]:
    return {name: decode(value) for name, value in map(_named, entries)}


def _parameter(data: bytes) -> dict[str, Any]:
    parameter = _fields(_fields(data)[1][0])  # ParametersItem {parameter 1}
    if 1 in parameter:  # BodyParameter {name 2, in 3, required 4, schema 5}
        body = _fields(parameter[1][0])
        out: dict[str, Any] = {}
        _put(out, body, {2: "name", 3: "in"})
        out["required"] = bool(body.get(4, [0])[0])
        out["schema"] = _schema(body[5][0])
        return out
    query = _fields(_fields(parameter[2][0])[3][0])  # NonBodyParameter {query 3}
    out = {}
    _put(out, query, {4: "name", 2: "in", 3: "description", 6: "type"})
    return out


def _response(data: bytes) -> dict[str, Any]:
    response = _fields(_fields(data)[1][0])  # ResponseValue {response 1}
    schema = _fields(response[2][0])[1][0]  # SchemaItem {schema 1}
    return {"description": _text(response, 1), "schema": _schema(schema)}


def _operation(data: bytes) -> dict[str, Any]:
    f = _fields(data)
    out: dict[str, Any] = {}
    _put(out, f, {5: "operationId"})
    for number, key in ((1, "tags"), (6, "produces"), (7, "consumes"), (10, "schemes")):
        out[key] = [v.decode() for v in f.get(number, [])]
    out["parameters"] = [_parameter(p) for p in f.get(8, [])]
    out["responses"] = _map(_fields(f[9][0]).get(1, []), _response)  # Responses {code 1}
    _extensions(out, f.get(13, []))
    return out


_VERBS = {2: "get", 3: "put", 4: "post", 5: "delete", 6: "options", 7: "head", 8: "patch"}


def _path_item(data: bytes) -> dict[str, Any]:
    f = _fields(data)
    return {verb: _operation(f[n][0]) for n, verb in _VERBS.items() if n in f}


def _document(data: bytes) -> dict[str, Any]:
    f = _fields(data)
    info = _fields(f[2][0])
    return {
        "swagger": _text(f, 1),
        "info": {"title": _text(info, 1), "version": _text(info, 2)},
        "paths": _map(_fields(f[8][0]).get(2, []), _path_item),  # Paths {path 2}
        "definitions": _map(_fields(f[9][0]).get(1, []), _schema),  # Definitions {1}
    }


# -- the tests ---------------------------------------------------------------------------------


def test_the_protobuf_answer_is_the_json_document(emulator) -> None:
    status, content_type, raw = _get(emulator, DEPRECATED_PB)
    assert (status, content_type) == (200, PB)  # Go's mime parser refuses the "@"
    status, content_type, text = _get(emulator, "application/json")
    assert (status, content_type) == (200, "application/json")
    document = json.loads(text)
    decoded = _document(raw)
    assert decoded["swagger"] == "2.0" and decoded["info"] == document["info"]
    assert decoded["definitions"] == document["definitions"]
    assert decoded["paths"] == document["paths"]
    # what kubectl reads: the kind of a definition, its patch strategy, list types
    pod = decoded["definitions"]["io.k8s.api.core.v1.Pod"]
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Pod", "version": "v1"}]
    containers = decoded["definitions"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert containers["x-kubernetes-list-type"] == "map"
    assert containers["items"]["$ref"] == "#/definitions/io.k8s.api.core.v1.Container"


def test_the_answer_is_encoded_once() -> None:
    assert openapi.v2_protobuf() is openapi.v2_protobuf()


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, (200, "application/json")),
        ("*/*", (200, "application/json")),
        (f"{DEPRECATED_PB}, application/json", (200, PB)),
        (f"application/json, {PB}", (200, "application/json")),
        (PB, (200, PB)),
        ("application/vnd.kubernetes.protobuf", (406, "application/json")),
    ],
)
def test_the_accept_header_chooses(emulator, accept: str | None, expected: tuple) -> None:
    status, content_type, _ = _get(emulator, accept)
    assert (status, content_type) == expected


def test_wire_format_and_yaml_values() -> None:
    assert varint(1) == b"\x01" and varint(300) == b"\xac\x02"
    assert len(varint(-1)) == 10  # an int64 below zero: ten bytes, as Go writes it
    assert gnostic.to_yaml("merge") == "merge\n"
    gvk = [{"group": "", "kind": "Pod", "version": "v1"}]
    assert yaml.safe_load(gnostic.to_yaml(gvk)) == gvk
    # a oneof's false and the union types
    schema = {"type": ["string", "integer"], "additionalProperties": False, "items": [{}, {}]}
    fields = _fields(gnostic._message("Schema", schema))
    assert [v.decode() for v in _fields(fields[22][0])[1]] == ["string", "integer"]
    assert _fields(fields[21][0]) == {2: [0]}
    assert len(_fields(fields[23][0])[1]) == 2

"""Reading the protobuf bodies kubectl's typed commands send (``kubectl create job``, ...).

kubectl sends JSON for everything it reads from files, but its generators (``kubectl create
job|namespace``, ``kubectl auth can-i``, ``kubectl drain``'s deletes) use typed clients that write
``application/vnd.kubernetes.protobuf``: the 4 bytes ``k8s\\0`` and a ``runtime.Unknown``
(``typeMeta`` 1, ``raw`` 2) around the object's message. They accept a JSON answer.

This decodes the wire format for the messages and fields those commands fill in (field numbers
from upstream's ``generated.proto``); other fields are skipped, empty strings dropped (Go
writes every non-pointer string). A kind not listed here is answered 415, as before.

The writing half (:func:`varint`, :func:`field_bytes`, ...) encodes the one protobuf answer the
emulator gives: ``/openapi/v2`` as gnostic's ``openapi.v2.Document`` (:mod:`.gnostic`).
"""

from __future__ import annotations

import struct
from typing import Any

MAGIC = b"k8s\x00"

# message -> {field number: (json name, type)}; a type is "string", "int", "bool",
# "[string]" (repeated), "{string}" (map of strings), "{quantity}", a message name, or
# "[Message]" (repeated message).
_META = {
    1: ("name", "string"),
    2: ("generateName", "string"),
    3: ("namespace", "string"),
    11: ("labels", "{string}"),
    12: ("annotations", "{string}"),
    14: ("finalizers", "[string]"),
}
SCHEMA: dict[str, dict[int, tuple[str, str]]] = {
    "Unknown": {1: ("typeMeta", "TypeMeta"), 2: ("raw", "bytes")},
    "TypeMeta": {1: ("apiVersion", "string"), 2: ("kind", "string")},
    "ObjectMeta": _META,
    "Job": {1: ("metadata", "ObjectMeta"), 2: ("spec", "JobSpec")},
    "JobSpec": {
        1: ("parallelism", "int"),
        2: ("completions", "int"),
        3: ("activeDeadlineSeconds", "int"),
        6: ("template", "PodTemplateSpec"),
        7: ("backoffLimit", "int"),
        8: ("ttlSecondsAfterFinished", "int"),
        9: ("completionMode", "string"),
        10: ("suspend", "bool"),
    },
    "DaemonSet": {1: ("metadata", "ObjectMeta"), 2: ("spec", "DaemonSetSpec")},
    "DaemonSetSpec": {
        1: ("selector", "LabelSelector"),
        2: ("template", "PodTemplateSpec"),
        3: ("updateStrategy", "DaemonSetUpdateStrategy"),
        4: ("minReadySeconds", "int"),
        6: ("revisionHistoryLimit", "int"),
    },
    "DaemonSetUpdateStrategy": {1: ("type", "string")},
    "LabelSelector": {
        1: ("matchLabels", "{string}"),
        2: ("matchExpressions", "[LabelSelectorRequirement]"),
    },
    "LabelSelectorRequirement": {
        1: ("key", "string"),
        2: ("operator", "string"),
        3: ("values", "[string]"),
    },
    "PodTemplateSpec": {1: ("metadata", "ObjectMeta"), 2: ("spec", "PodSpec")},
    "Pod": {1: ("metadata", "ObjectMeta"), 2: ("spec", "PodSpec")},
    "PodSpec": {
        2: ("containers", "[Container]"),
        3: ("restartPolicy", "string"),
        4: ("terminationGracePeriodSeconds", "int"),
        5: ("activeDeadlineSeconds", "int"),
        6: ("dnsPolicy", "string"),
        7: ("nodeSelector", "{string}"),
        8: ("serviceAccountName", "string"),
        10: ("nodeName", "string"),
        19: ("schedulerName", "string"),
        20: ("initContainers", "[Container]"),
        22: ("tolerations", "[Toleration]"),
        24: ("priorityClassName", "string"),
    },
    "Toleration": {
        1: ("key", "string"),
        2: ("operator", "string"),
        3: ("value", "string"),
        4: ("effect", "string"),
        5: ("tolerationSeconds", "int"),
    },
    "Container": {
        1: ("name", "string"),
        2: ("image", "string"),
        3: ("command", "[string]"),
        4: ("args", "[string]"),
        5: ("workingDir", "string"),
        7: ("env", "[EnvVar]"),
        8: ("resources", "ResourceRequirements"),
        13: ("terminationMessagePath", "string"),
        14: ("imagePullPolicy", "string"),
        20: ("terminationMessagePolicy", "string"),
    },
    "EnvVar": {1: ("name", "string"), 2: ("value", "string")},
    "ResourceRequirements": {1: ("limits", "{quantity}"), 2: ("requests", "{quantity}")},
    "Namespace": {1: ("metadata", "ObjectMeta")},
    "SelfSubjectAccessReview": {
        1: ("metadata", "ObjectMeta"),
        2: ("spec", "SelfSubjectAccessReviewSpec"),
    },
    "SelfSubjectAccessReviewSpec": {
        1: ("resourceAttributes", "ResourceAttributes"),
        2: ("nonResourceAttributes", "NonResourceAttributes"),
    },
    "ResourceAttributes": {
        1: ("namespace", "string"),
        2: ("verb", "string"),
        3: ("group", "string"),
        4: ("version", "string"),
        5: ("resource", "string"),
        6: ("subresource", "string"),
        7: ("name", "string"),
    },
    "NonResourceAttributes": {1: ("path", "string"), 2: ("verb", "string")},
    "DeleteOptions": {
        1: ("gracePeriodSeconds", "int"),
        2: ("preconditions", "Preconditions"),
        3: ("orphanDependents", "bool"),
        4: ("propagationPolicy", "string"),
        5: ("dryRun", "[string]"),
    },
    "Preconditions": {1: ("uid", "string"), 2: ("resourceVersion", "string")},
}
#: (apiVersion, kind) -> the root message.
ROOTS = {
    ("batch/v1", "Job"): "Job",
    ("apps/v1", "DaemonSet"): "DaemonSet",
    ("v1", "Pod"): "Pod",
    ("v1", "Namespace"): "Namespace",
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): "SelfSubjectAccessReview",
    ("v1", "DeleteOptions"): "DeleteOptions",
    ("meta.k8s.io/v1", "DeleteOptions"): "DeleteOptions",
}
#: Served kinds no client writes to the emulator in protobuf (kubectl has no generator for them;
#: the kubelet and controllers that would are the emulator itself): answered 415.
NOT_DECODED = frozenset(
    {
        ("v1", "Node"),
        ("v1", "Event"),
        ("v1", "Service"),
        ("resource.k8s.io/v1", "DeviceClass"),
        ("resource.k8s.io/v1", "ResourceSlice"),
        ("resource.k8s.io/v1", "ResourceClaim"),
    }
)


class ProtobufError(ValueError):
    """Not a Kubernetes protobuf body, or a kind this module does not read."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) of every field in one message."""
    out, pos = [], 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _map_entry(data: bytes, *, quantity: bool) -> tuple[str, str]:
    """(key, value) of one entry of a ``map<string, string>``, or of a
    ``map<string, Quantity>`` (the Quantity's ``string`` field 1) with ``quantity``."""
    entry = {n: v for n, _, v in _fields(data)}
    raw = entry.get(2, b"")
    if quantity:
        raw = {n: v for n, _, v in _fields(raw)}.get(1, b"")
    text = raw.decode()  # the value first: when both are bad, its error is the one raised
    return entry.get(1, b"").decode(), text


def _decode(data: bytes, message: str) -> dict[str, Any]:
    schema = SCHEMA[message]
    obj: dict[str, Any] = {}
    for number, wire, value in _fields(data):
        if number not in schema:
            continue
        name, kind = schema[number]
        if kind == "string":
            text = value.decode()
            if text:
                obj[name] = text
        elif kind == "bytes":
            obj[name] = value
        elif kind == "int" and wire == 0:
            obj[name] = _signed(value)
        elif kind == "bool" and wire == 0:
            obj[name] = bool(value)
        elif kind == "[string]":
            obj.setdefault(name, []).append(value.decode())
        elif kind in ("{string}", "{quantity}"):
            key, text = _map_entry(value, quantity=kind == "{quantity}")
            obj.setdefault(name, {})[key] = text
        elif kind.startswith("["):
            obj.setdefault(name, []).append(_decode(value, kind[1:-1]))
        elif kind in SCHEMA and wire == 2:
            obj[name] = _decode(value, kind)
    return obj


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf body; ProtobufError for anything it cannot read."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic number")
    envelope = _decode(body[len(MAGIC) :], "Unknown")
    type_meta = envelope.get("typeMeta") or {}
    key = (type_meta.get("apiVersion", ""), type_meta.get("kind", ""))
    if key not in ROOTS:
        raise ProtobufError(f"no protobuf decoding for {key[0]} {key[1]}")
    obj = _decode(envelope.get("raw", b""), ROOTS[key])
    return {"apiVersion": key[0], "kind": key[1], **obj}


# -- writing ----------------------------------------------------------------------------------


def varint(value: int) -> bytes:
    """The varint encoding of ``value`` (a negative int64 as its 64-bit two's complement)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field_bytes(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2): a string, bytes or an embedded message."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def field_string(number: int, text: str) -> bytes:
    return field_bytes(number, text.encode())


def field_varint(number: int, value: int) -> bytes:
    """An int64 or bool field (wire type 0)."""
    return varint(number << 3) + varint(value)


def field_double(number: int, value: float) -> bytes:
    """A double field (wire type 1, little-endian IEEE 754)."""
    return varint(number << 3 | 1) + struct.pack("<d", value)


def read_fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) of every field of one message, in wire order."""
    return _fields(data)

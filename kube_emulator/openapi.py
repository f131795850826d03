"""The emulator's OpenAPI: schemas of the kinds it serves, and the unknown-field check.

The schemas are not written here: they are upstream Kubernetes' own definitions, read from the
``kubernetes-validate`` package (a pinned dev dependency), which ships the API server's OpenAPI
definitions of every release as JSON Schema, with descriptions, ``required`` lists and the
``x-kubernetes-*`` extensions (group-version-kind, patch merge keys, list types). The emulator
takes the release it reports in ``/version`` (see :data:`~.nodes.KUBELET_VERSION`), keeps only
the definitions reachable from the kinds it serves, and converts them back to what the API
server publishes: OpenAPI v2 (``/openapi/v2``, in JSON and, through :mod:`.gnostic`, protobuf)
and v3 (``/openapi/v3`` and one document per group-version).

The same definitions drive :func:`unknown_fields`, the check behind ``fieldValidation``
(Strict, Warn, Ignore): a field that no schema declares is reported and never stored.

Without ``kubernetes-validate`` installed, :func:`available` is False: the OpenAPI paths answer
404 (kubectl then asks for ``--validate=false``, as against a server with OpenAPI disabled) and
unknown fields are kept.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any, cast

from . import gnostic
from . import resources as r
from .nodes import KUBELET_VERSION
from .resources import ResourceType

Obj = dict[str, Any]
META = "io.k8s.apimachinery.pkg.apis.meta.v1."

#: The definition of each served kind.
ROOTS: dict[str, str] = {
    "nodes": "io.k8s.api.core.v1.Node",
    "namespaces": "io.k8s.api.core.v1.Namespace",
    "pods": "io.k8s.api.core.v1.Pod",
    "events": "io.k8s.api.core.v1.Event",
    "jobs": "io.k8s.api.batch.v1.Job",
    "daemonsets": "io.k8s.api.apps.v1.DaemonSet",
    "deviceclasses": "io.k8s.api.resource.v1.DeviceClass",
    "resourceslices": "io.k8s.api.resource.v1.ResourceSlice",
    "resourceclaims": "io.k8s.api.resource.v1.ResourceClaim",
    "services": "io.k8s.api.core.v1.Service",
}
#: ``resource.k8s.io/v1`` is GA from 1.34, newer than the release the emulator reports: its
#: definitions (and only those) are read from 1.34's.
_NEWER = {"io.k8s.api.resource.v1.": "1.34.0"}
#: Each served kind has its definition (a KeyError here was a 500 on every OpenAPI path).
assert set(ROOTS) == {x.plural for x in r.ALL}, "every served resource needs its OpenAPI root"
_EXTRA = (
    META + "Status",
    META + "DeleteOptions",
    META + "APIResourceList",
    META + "WatchEvent",
    *(f"{root}List" for root in ROOTS.values()),
)
#: What JSON Schema spells with oneOf and the API server as one string type.
_STRINGLIKE = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
        "description": "IntOrString is a type that can hold an int32 or a string.",
        "format": "int-or-string",
        "type": "string",
    },
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {
        "description": "Quantity is a fixed-point representation of a number.",
        "type": "string",
    },
}


def _source_dir(release: str | None = None) -> Path | None:
    try:
        import kubernetes_validate
    except ImportError:
        return None
    base = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    wanted = release or f"{KUBELET_VERSION.removeprefix('v')}"
    for name in (f"v{wanted}-local", f"v{wanted.rsplit('.', 1)[0]}.0-local"):
        if (base / name / "_definitions.json").is_file():
            return base / name
    return None


def available() -> bool:
    """True when the upstream definitions could be read."""
    return bool(_definitions())


@functools.cache
def _definitions() -> dict[str, Obj]:
    """The definitions reachable from the served kinds, in upstream's OpenAPI v2 form."""
    source = _source_dir()
    if source is None:
        return {}
    raw = json.loads((source / "_definitions.json").read_text(encoding="utf-8"))["$defs"]
    for prefix, release in _NEWER.items():
        newer = _source_dir(release)
        if newer is None:
            return {}
        extra = json.loads((newer / "_definitions.json").read_text(encoding="utf-8"))["$defs"]
        raw |= {k: v for k, v in extra.items() if k.startswith(prefix)}
    wanted: dict[str, Obj] = {}
    todo = [*ROOTS.values(), *(name for name in _EXTRA if name in raw)]
    while todo:
        name = todo.pop()
        if name in wanted or name not in raw:
            continue
        wanted[name] = _STRINGLIKE.get(name) or _to_openapi(raw[name], todo)
    return dict(sorted(wanted.items()))


def _to_openapi(node: Any, refs: list[str]) -> Any:
    """JSON Schema (``type: [t, "null"]``, ``#/$defs/``) back to OpenAPI v2 form."""
    if isinstance(node, list):
        return [_to_openapi(x, refs) for x in node]
    if not isinstance(node, dict):
        return node
    out: Obj = {}
    for key, value in node.items():
        if key == "type" and isinstance(value, list):
            kinds = [v for v in value if v != "null"]
            out["type"] = kinds[0] if len(kinds) == 1 else kinds
        elif key == "$ref":
            name = value.rsplit("/", 1)[-1]
            refs.append(name)
            out["$ref"] = f"#/definitions/{name}"
        else:
            out[key] = _to_openapi(value, refs)
    return out


def _rewrite_refs(node: Any, prefix: str, *, all_of: bool) -> Any:
    if isinstance(node, list):
        return [_rewrite_refs(x, prefix, all_of=all_of) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _rewrite_refs(v, prefix, all_of=all_of) for k, v in node.items()}
    if "$ref" in out:
        ref = prefix + out["$ref"].rsplit("/", 1)[-1]
        if all_of and len(out) > 1:  # v3 puts siblings of a $ref beside an allOf, as upstream
            del out["$ref"]
            out["allOf"] = [{"$ref": ref}]
        else:
            out["$ref"] = ref
    return out


# -- unknown fields ---------------------------------------------------------------------------


def unknown_fields(rtype: ResourceType, obj: Obj, *, prune: bool) -> list[str]:
    """Paths of fields in ``obj`` that the kind's schema does not declare (``spec.foo``).

    With ``prune`` they are removed from ``obj`` as the API server drops them. Paths read like
    the API server's ``strict decoding error`` (list items as ``containers[0]``).
    """
    defs = _definitions()
    root = ROOTS.get(rtype.plural)
    if not defs or root is None:
        return []
    found: list[str] = []
    _walk(defs, defs[root], obj, "", found, prune)
    return found


def _resolve(defs: dict[str, Obj], schema: Obj) -> Obj:
    while "$ref" in schema:
        schema = defs.get(schema["$ref"].rsplit("/", 1)[-1], {})
    return schema


def _walk(
    defs: dict[str, Obj], schema: Obj, value: Any, path: str, found: list[str], prune: bool
) -> None:
    schema = _resolve(defs, schema)
    if isinstance(value, dict):
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        if properties is not None:
            for key in list(value):
                where = f"{path}.{key}" if path else key
                if key in properties:
                    _walk(defs, properties[key], value[key], where, found, prune)
                elif extra is None and not schema.get("x-kubernetes-preserve-unknown-fields"):
                    found.append(where)
                    if prune:
                        del value[key]
        elif isinstance(extra, dict):
            for key, item in value.items():
                _walk(defs, extra, item, f"{path}[{key}]", found, prune)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            _walk(defs, schema["items"], item, f"{path}[{index}]", found, prune)


# -- types ------------------------------------------------------------------------------------


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _go_type(defs: dict[str, Obj], schema: Obj) -> str:
    """The Go type upstream's decoder names in its message (``[]v1.Container``, ``int32``)."""
    if "$ref" in schema:
        name = cast(str, schema["$ref"]).rsplit("/", 1)[-1]
        if name in _STRINGLIKE:
            return name.rsplit(".", 1)[-1]
        parts = name.split(".")
        return f"{parts[-2]}.{parts[-1]}"
    kind = schema.get("type")
    if kind == "array":
        return "[]" + _go_type(defs, schema.get("items") or {})
    if kind == "object" or "additionalProperties" in schema:
        return "map[string]" + _go_type(defs, schema.get("additionalProperties") or {})
    if kind == "integer":
        return cast(str, schema.get("format", "int64"))
    return {"boolean": "bool", "number": "float64", "string": "string"}.get(str(kind), "object")


def _type_error(defs: dict[str, Obj], schema: Obj, value: Any) -> bool:
    """True when ``value`` cannot decode into ``schema`` (null decodes into anything)."""
    if value is None:
        return False
    if "$ref" in schema and schema["$ref"].rsplit("/", 1)[-1] in _STRINGLIKE:
        return _json_kind(value) not in ("string", "number")
    target = _resolve(defs, schema)
    kind = target.get("type")
    if "properties" in target or kind == "object" or "additionalProperties" in target:
        return not isinstance(value, dict)
    if kind == "array":
        return not isinstance(value, list)
    if kind == "string":
        return not isinstance(value, str)
    if kind == "integer":
        return isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        )
    if kind == "number":
        return isinstance(value, bool) or not isinstance(value, (int, float))
    if kind == "boolean":
        return not isinstance(value, bool)
    return False


def decoding_error(rtype: ResourceType, obj: Any) -> str | None:
    """The first value of ``obj`` of the wrong JSON type, worded like Go's decoder, or None.

    ``json: cannot unmarshal string into Go struct field PodSpec.spec.containers of type
    []v1.Container``: what the API server answers (400) before any validation.
    """
    defs = _definitions()
    root = ROOTS.get(rtype.plural)
    if not defs or root is None:
        return None
    return _first_type_error(defs, root, defs[root], obj, "")


def _first_type_error(
    defs: dict[str, Obj], owner: str, schema: Obj, value: Any, path: str
) -> str | None:
    if _type_error(defs, schema, value):
        kind = _json_kind(value)
        where = f"{owner.rsplit('.', 1)[-1]}.{path}" if path else owner.rsplit(".", 1)[-1]
        return (
            f"json: cannot unmarshal {kind} into Go struct field {where} of type "
            f"{_go_type(defs, schema)}"
        )
    if "$ref" in schema:
        owner = schema["$ref"].rsplit("/", 1)[-1]
    target = _resolve(defs, schema)
    if isinstance(value, dict):
        properties = target.get("properties")
        extra = target.get("additionalProperties")
        for key, item in value.items():
            child = (properties or {}).get(key) if properties is not None else extra
            if isinstance(child, dict):
                found = _first_type_error(
                    defs, owner, child, item, f"{path}.{key}" if path else key
                )
                if found:
                    return found
    elif isinstance(value, list) and isinstance(target.get("items"), dict):
        for item in value:
            found = _first_type_error(defs, owner, target["items"], item, path)
            if found:
                return found
    return None


# -- documents ----------------------------------------------------------------------------------

_WRITE_PARAMS = ("dryRun", "fieldManager", "fieldValidation")


def _param(name: str, description: str, type_: str = "string") -> Obj:
    return {"name": name, "in": "query", "description": description, "type": type_}


_PARAMS = {
    "dryRun": "When present, indicates that modifications should not be persisted.",
    "fieldManager": "fieldManager is a name associated with the actor or entity making changes.",
    "fieldValidation": "Ignore, Warn or Strict: what to do with unknown or duplicate fields.",
    "force": "Force is going to force Apply requests (apply patches only).",
    "gracePeriodSeconds": "The duration in seconds before the object should be deleted.",
    "propagationPolicy": "Orphan, Background or Foreground: what happens to dependents.",
    "labelSelector": "A selector to restrict the list of returned objects by their labels.",
    "fieldSelector": "A selector to restrict the list of returned objects by their fields.",
    "limit": "The maximum number of responses to return for a list call.",
    "continue": "The continue token returned by the previous page of a list.",
    "resourceVersion": "Which version of the resource list or watch may be served.",
    "resourceVersionMatch": "How resourceVersion is applied to list calls.",
    "watch": "Watch for changes to the described resources.",
    "timeoutSeconds": "Timeout for the list/watch call.",
}


def _operations(rtype: ResourceType) -> dict[str, Obj]:
    """Paths of one resource with their operations (what kubectl's param checks read)."""
    gvk = {"group": rtype.group, "version": rtype.version, "kind": rtype.kind}
    base = f"/api/{rtype.version}" if not rtype.group else f"/apis/{rtype.api_version}"
    collection = (
        f"{base}/namespaces/{{namespace}}/{rtype.plural}"
        if rtype.namespaced
        else f"{base}/{rtype.plural}"
    )
    ref = f"#/definitions/{ROOTS[rtype.plural]}"

    def op(verb: str, action: str, params: tuple[str, ...], *, body: bool = False) -> Obj:
        operation: Obj = {
            "operationId": f"{verb}{rtype.kind}",
            "consumes": ["*/*"]
            if verb != "patch"
            else [
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
                "application/apply-patch+yaml",
            ],
            "produces": ["application/json", "application/yaml"],
            "schemes": ["https"],
            "tags": [f"{rtype.group or 'core'}_{rtype.version}"],
            "parameters": [_param(p, _PARAMS[p]) for p in params],
            "responses": {"200": {"description": "OK", "schema": {"$ref": ref}}},
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
        }
        if body:
            operation["parameters"].insert(
                0, {"name": "body", "in": "body", "required": True, "schema": {"$ref": ref}}
            )
        return operation

    list_params = (
        "labelSelector",
        "fieldSelector",
        "limit",
        "continue",
        "resourceVersion",
        "resourceVersionMatch",
        "watch",
        "timeoutSeconds",
    )
    return {
        collection: {
            "get": op("list", "list", list_params),
            "post": op("create", "post", _WRITE_PARAMS, body=True),
        },
        f"{collection}/{{name}}": {
            "get": op("read", "get", ()),
            "put": op("replace", "put", _WRITE_PARAMS, body=True),
            "patch": op("patch", "patch", (*_WRITE_PARAMS, "force"), body=True),
            "delete": op("delete", "delete", ("dryRun", "gracePeriodSeconds", "propagationPolicy")),
        },
    }


def _v2() -> Obj:
    """The Swagger 2.0 document for every served resource."""
    paths: Obj = {}
    for rtype in r.ALL:
        paths.update(_operations(rtype))
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": KUBELET_VERSION},
        "paths": paths,
        "definitions": _definitions(),
    }


@functools.cache
def v2_document() -> bytes:
    """``/openapi/v2`` in JSON."""
    return json.dumps(_v2()).encode()


@functools.cache
def v2_protobuf() -> bytes:
    """``/openapi/v2`` in protobuf: the same document as gnostic's ``openapi.v2.Document``
    (what client-go's ``OpenAPISchema()`` asks for), encoded once."""
    return gnostic.encode(_v2())


def _v3_operation(operation: Obj) -> Obj:
    out = {k: v for k, v in operation.items() if k not in ("consumes", "produces", "schemes")}
    params = []
    body = None
    for param in operation["parameters"]:
        if param["in"] == "body":
            body = param["schema"]
            continue
        params.append(
            {
                "name": param["name"],
                "in": "query",
                "description": param["description"],
                "schema": {"type": param["type"], "uniqueItems": True},
            }
        )
    out["parameters"] = params
    content = {"application/json": {"schema": operation["responses"]["200"]["schema"]}}
    out["responses"] = {"200": {"description": "OK", "content": content}}
    if body is not None:
        types = operation["consumes"] if operation["consumes"] != ["*/*"] else ["*/*"]
        out["requestBody"] = {"content": {t: {"schema": body} for t in types}, "required": True}
    return cast(Obj, _rewrite_refs(out, "#/components/schemas/", all_of=False))


def v3_group_versions() -> list[str]:
    """The v3 paths, ``api/v1`` and ``apis/batch/v1``."""
    return sorted({f"api/{x.version}" if not x.group else f"apis/{x.api_version}" for x in r.ALL})


@functools.cache
def v3_document(group_version_path: str) -> bytes | None:
    """``/openapi/v3/<api/v1|apis/batch/v1>``; None for a group-version the emulator lacks."""
    served = [
        x
        for x in r.ALL
        if (f"api/{x.version}" if not x.group else f"apis/{x.api_version}") == group_version_path
    ]
    if not served or not _definitions():
        return None
    paths: Obj = {}
    for rtype in served:
        for path, operations in _operations(rtype).items():
            paths[path] = {verb: _v3_operation(op) for verb, op in operations.items()}
    schemas = {
        name: _rewrite_refs(schema, "#/components/schemas/", all_of=True)
        for name, schema in _definitions().items()
    }
    document = {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBELET_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    }
    return json.dumps(document).encode()


def v3_index() -> bytes:
    """``/openapi/v3``: each group-version's document, addressed with its content hash."""
    paths = {}
    for gv in v3_group_versions():
        document = v3_document(gv)
        if document is None:
            continue
        digest = hashlib.sha512(document).hexdigest()[:128].upper()
        paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest}"}
    return json.dumps({"paths": paths}).encode()

"""The three PATCH formats of the API server, for plain JSON objects.

- ``application/merge-patch+json``: RFC 7386 (``null`` deletes a key, lists are replaced).
- ``application/strategic-merge-patch+json``: like a merge patch, but lists of objects that
  Kubernetes declares with a merge key (containers by ``name``, taints by ``key``, ...) are
  merged item by item, and ``{"$patch": "delete"}`` inside such an item removes it. This covers
  the fields the backend patches; other directives (``$retainKeys``, ``$setElementOrder``) are
  dropped rather than interpreted.
- ``application/json-patch+json``: RFC 6902 (add, remove, replace, test, move, copy).
- ``application/apply-patch+yaml``: server-side apply, simplified (:func:`server_side_apply`):
  the applied configuration is merged like a strategic merge patch, its manager's fields are
  recorded in ``managedFields``, and fields it applied before and no longer applies are
  removed unless another applier owns them; conflicts between managers are not computed.

The official client sends a dict body as a strategic merge patch and a list body as a JSON
patch unless ``_content_type`` says otherwise.
"""

from __future__ import annotations

import copy
import json
from typing import Any, cast

from .clock import rfc3339
from .errors import ApiError, bad_request, unsupported_media_type

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE, APPLY, STRATEGIC)

#: List fields merged by key in a strategic merge patch (field name -> merge key).
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "ownerReferences": "uid",
    "conditions": "type",
    "taints": "key",
    "addresses": "type",
}
#: Primitive lists that a strategic merge patch unions instead of replacing.
UNION_LISTS = frozenset({"finalizers"})


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 merge of ``patch`` into ``target``; returns a new value."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """A strategic merge patch restricted to the keys in :data:`MERGE_KEYS`."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith("$")}
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and key in MERGE_KEYS:
            result[key] = _merge_list(result.get(key) or [], value, MERGE_KEYS[key])
        elif isinstance(value, list) and key in UNION_LISTS:
            merged = list(result.get(key) or [])
            result[key] = merged + [v for v in value if v not in merged]
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def _merge_list(current: list[Any], patch: list[Any], merge_key: str) -> list[Any]:
    result = copy.deepcopy(current)
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            raise bad_request(f"strategic merge patch: list item lacks merge key {merge_key!r}")
        index = next(
            (i for i, old in enumerate(result) if old.get(merge_key) == item[merge_key]), None
        )
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append({k: v for k, v in item.items() if not k.startswith("$")})
        else:
            result[index] = strategic_merge_patch(result[index], item)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"json patch: bad path {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, tokens: list[str]) -> Any:
    node = doc
    for token in tokens[:-1]:
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


def json_patch(target: Any, operations: list[dict[str, Any]]) -> Any:
    """Apply RFC 6902 ``operations``; raises ApiError(422) when one does not apply."""
    doc = copy.deepcopy(target)
    for op in operations:
        try:
            doc = _apply_operation(doc, op)
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise ApiError(422, "Invalid", f"json patch operation {op!r} failed: {exc}") from exc
    return doc


def _apply_operation(doc: Any, op: dict[str, Any]) -> Any:
    kind, tokens = op["op"], _pointer(op["path"])
    if kind in ("move", "copy"):
        source = _pointer(op["from"])
        value = copy.deepcopy(_get(doc, source))
        if kind == "move":
            doc = _remove(doc, source)
        return _add(doc, tokens, value)
    if kind == "test":
        if _get(doc, tokens) != op["value"]:
            raise ValueError("test failed")
        return doc
    if kind == "remove":
        return _remove(doc, tokens)
    if kind == "replace":
        _get(doc, tokens)  # must exist
        doc = _remove(doc, tokens)
        return _add(doc, tokens, copy.deepcopy(op["value"]))
    if kind == "add":
        return _add(doc, tokens, copy.deepcopy(op["value"]))
    raise ValueError(f"unknown op {kind!r}")


def _get(doc: Any, tokens: list[str]) -> Any:
    node = doc
    for token in tokens:
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent, last = _parent(doc, tokens), tokens[-1]
    if isinstance(parent, list):
        parent.insert(len(parent) if last == "-" else int(last), value)
    else:
        parent[last] = value
    return doc


def _remove(doc: Any, tokens: list[str]) -> Any:
    parent, last = _parent(doc, tokens), tokens[-1]
    if isinstance(parent, list):
        del parent[int(last)]
    else:
        del parent[last]
    return doc


def apply_patch(content_type: str, target: dict[str, Any], body: Any) -> dict[str, Any]:
    """Apply a PATCH body of ``content_type`` to ``target``; 400/415/422 on errors."""
    media = content_type.split(";")[0].strip().lower()
    if media == JSON_PATCH:
        if not isinstance(body, list):
            raise bad_request("json patch body must be a list of operations")
        result = json_patch(target, body)
    elif media in (MERGE, STRATEGIC):
        if not isinstance(body, dict):
            raise bad_request("merge patch body must be a JSON object")
        result = (
            merge_patch(target, body) if media == MERGE else strategic_merge_patch(target, body)
        )
    else:
        raise unsupported_media_type(PATCH_TYPES)
    if not isinstance(result, dict):
        raise bad_request("patch must leave an object")
    return result


def _field_set(value: Any, merge_key: str | None = None) -> dict[str, Any]:
    """A ``fieldsV1`` set for ``value`` (``f:`` for fields, ``k:`` for keyed list items)."""
    if isinstance(value, dict):
        return {f"f:{k}": _field_set(v, MERGE_KEYS.get(k)) for k, v in value.items()}
    if isinstance(value, list) and merge_key:
        return {
            "k:" + json.dumps({merge_key: item[merge_key]}, separators=(",", ":")): {
                ".": {},
                **_field_set({k: v for k, v in item.items() if k != merge_key}),
            }
            for item in value
            if isinstance(item, dict) and merge_key in item
        }
    return {}


def server_side_apply(
    live: dict[str, Any] | None, applied: dict[str, Any], manager: str, now: float
) -> dict[str, Any]:
    """The object after ``manager`` applies ``applied`` to ``live`` (None: creation)."""
    applied = copy.deepcopy(applied)
    applied_meta = applied.get("metadata") or {}
    applied_meta.pop("managedFields", None)
    fields = {k: v for k, v in applied.items() if k not in ("apiVersion", "kind")}
    fields["metadata"] = {
        k: v for k, v in applied_meta.items() if k in ("labels", "annotations", "finalizers")
    }
    entry = {
        "manager": manager,
        "operation": "Apply",
        "apiVersion": applied.get("apiVersion", ""),
        "time": rfc3339(now),
        "fieldsType": "FieldsV1",
        "fieldsV1": _field_set(fields),
    }
    result = cast(dict[str, Any], strategic_merge_patch(live or {}, applied))  # dict into dict
    meta = result.setdefault("metadata", {})
    managed = (live or {}).get("metadata", {}).get("managedFields") or []
    mine = [m for m in managed if m.get("manager") == manager and m.get("operation") == "Apply"]
    others = [m for m in managed if m not in mine]
    if mine:  # fields this manager applied before and applies no more go, unless others own them
        kept = _leaves(entry["fieldsV1"]) | {
            path for m in others for path in _leaves(m.get("fieldsV1") or {})
        }
        for path in sorted(_leaves(mine[0].get("fieldsV1") or {}) - kept, key=len, reverse=True):
            _remove_path(result, path)
    meta["managedFields"] = [*others, entry]
    return result


def _leaves(fields: dict[str, Any], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """The owned paths of a ``fieldsV1`` set: its leaves and its keyed list items."""
    found: set[tuple[str, ...]] = set()
    for key, sub in fields.items():
        if key == ".":
            continue
        path = (*prefix, key)
        if key.startswith("k:") or not sub:
            found.add(path)
        found |= _leaves(sub, path)
    return found


def _remove_path(obj: Any, path: tuple[str, ...]) -> None:
    """Remove the field or keyed list item a ``fieldsV1`` path names (if it is there)."""
    node = obj
    for step in path[:-1]:
        node = _step(node, step)
        if node is None:
            return
    last = path[-1]
    if last.startswith("f:") and isinstance(node, dict):
        node.pop(last[2:], None)
    elif last.startswith("k:") and isinstance(node, list):
        key = json.loads(last[2:])
        node[:] = [i for i in node if not (isinstance(i, dict) and _matches(i, key))]


def _matches(item: dict[str, Any], key: dict[str, Any]) -> bool:
    return all(item.get(k) == v for k, v in key.items())


def _step(node: Any, step: str) -> Any:
    if step.startswith("f:") and isinstance(node, dict):
        return node.get(step[2:])
    if step.startswith("k:") and isinstance(node, list):
        key = json.loads(step[2:])
        return next((i for i in node if isinstance(i, dict) and _matches(i, key)), None)
    return None

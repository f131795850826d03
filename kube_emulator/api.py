"""API semantics of the emulator, independent of HTTP: one method per verb.

Each method takes a resolved :class:`~.resources.Target` and the request's query parameters
(first value of each) and returns JSON-able data, or raises :class:`~.errors.ApiError`. The
streaming verbs (watch, follow logs) return generators the HTTP layer writes out chunk by chunk;
they end when ``stopping`` is set, on timeout, or when the thing watched ends.

Writes honour ``dryRun=All`` (everything is checked and answered, nothing is stored or run) and
``fieldValidation`` (Strict: 400 on an unknown or duplicate field; Warn, the default: a warning;
Ignore: silence). An unknown field is never stored. ``warnings`` lists collect the texts the
HTTP layer sends as ``Warning`` headers.
"""

from __future__ import annotations

import base64
import builtins
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from . import openapi
from . import resources as r
from .clock import rfc3339
from .controller import ClusterController
from .deletion import delete_namespace, delete_object, terminating_namespace
from .errors import ApiError, bad_request, method_not_allowed
from .patches import APPLY, apply_patch, server_side_apply
from .resources import ResourceType, Target
from .selectors import fields_match, labels_match, parse_field_selector, parse_label_selector
from .store import Store, WatchEvent, object_key
from .validation import check_update, prepare_new

Obj = dict[str, Any]
Query = dict[str, str]
DEFAULT_WATCH_SECONDS = 1800  # the apiserver's --min-request-timeout
MAX_FOLLOW_SECONDS = 3600
POLL_SECONDS = 0.1
FIELD_VALIDATION = ("Ignore", "Warn", "Strict")
DUPLICATES = "\x00duplicates"  # where the JSON decoder notes duplicate keys of an object


def _int_param(query: Query, name: str) -> int | None:
    if query.get(name) in (None, ""):
        return None
    try:
        return int(query[name])
    except ValueError:
        raise bad_request(f"invalid value for {name}: {query[name]!r}") from None


def is_true(value: str | None) -> bool:
    """Query booleans as the apiserver reads them (the official client sends ``True``)."""
    return (value or "").lower() in ("true", "1")


def dry_run(query: Query) -> bool:
    """``dryRun=All`` is True; absent is False; anything else is a 400, as upstream."""
    value = query.get("dryRun")
    if value in (None, ""):
        return False
    if value != "All":
        raise bad_request(f'Invalid value: "{value}": supported values: "All"')
    return True


def field_validation(query: Query) -> str:
    """The ``fieldValidation`` directive (default Warn, the API server's since 1.27)."""
    value = query.get("fieldValidation") or "Warn"
    if value not in FIELD_VALIDATION:
        raise bad_request(
            f"Invalid value for fieldValidation: {value} (must be one of Ignore, Warn, Strict)"
        )
    return value


def note_duplicates(pairs: builtins.list[tuple[str, Any]]) -> Obj:
    """``object_pairs_hook`` for json.loads: keeps the last value, notes repeated keys."""
    result: Obj = {}
    repeated: builtins.list[str] = []
    for key, value in pairs:
        if key in result and key not in repeated:
            repeated.append(key)
        result[key] = value
    if repeated:
        result[DUPLICATES] = repeated
    return result


def _pop_duplicates(value: Any, path: str, found: builtins.list[str]) -> None:
    if isinstance(value, dict):
        for key in value.pop(DUPLICATES, []):
            found.append(f"{path}.{key}" if path else key)
        for key, item in value.items():
            _pop_duplicates(item, f"{path}.{key}" if path else key, found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _pop_duplicates(item, f"{path}[{index}]", found)


def check_fields(
    rtype: ResourceType, obj: Any, directive: str, warnings: builtins.list[str] | None
) -> None:
    """400 for a value of the wrong type; drop unknown fields (Strict: 400, and duplicates)."""
    if not isinstance(obj, dict):
        return
    wrong = openapi.decoding_error(rtype, obj)
    if wrong is not None:
        raise bad_request(
            f'{rtype.kind} in version "{rtype.version}" cannot be handled as a {rtype.kind}: '
            f"{wrong}"
        )
    duplicates: builtins.list[str] = []
    _pop_duplicates(obj, "", duplicates)
    unknown = openapi.unknown_fields(rtype, obj, prune=True)
    problems = [f'unknown field "{f}"' for f in unknown]
    problems += [f'duplicate field "{f}"' for f in duplicates]
    if not problems or directive == "Ignore":
        return
    if directive == "Strict":
        raise bad_request(
            f'{rtype.kind} in version "{rtype.version}" cannot be handled as a {rtype.kind}: '
            f"strict decoding error: {', '.join(problems)}"
        )
    if warnings is not None:
        warnings.extend(problems)


def _encode_continue(version: int, key: str) -> str:
    token = json.dumps({"v": "meta.k8s.io/v1", "rv": version, "start": key + "\x00"})
    return base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        version, start = int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError):
        raise bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version "
            "meta.k8s.io/v1)"
        ) from None
    if version <= 0 or not start.endswith("\x00"):
        raise bad_request("continue key is not valid: the encoded position is invalid")
    return version, start[:-1]


class Api:
    """The verbs of the emulated API server over a :class:`Store` and its controller."""

    def __init__(self, store: Store, controller: ClusterController) -> None:
        self.store = store
        self.controller = controller

    # -- reads ---------------------------------------------------------------------------------

    def get(self, target: Target) -> Obj:
        """GET one object (or its ``status`` subresource, which is the whole object)."""
        assert target.name is not None
        return self.store.get(target.resource, target.namespace, target.name)

    def _matcher(self, target: Target, query: Query) -> Any:
        labels = parse_label_selector(query.get("labelSelector"))
        fields = parse_field_selector(target.resource.plural, query.get("fieldSelector"))
        if not labels and not fields:
            return None

        def matches(obj: Obj) -> bool:
            return labels_match(labels, obj["metadata"].get("labels")) and fields_match(fields, obj)

        return matches

    def _list_version(self, query: Query) -> int | None:
        """The version a list reads at (None: the latest), from resourceVersion(Match)."""
        rv, match = query.get("resourceVersion"), query.get("resourceVersionMatch")
        if match and match not in ("Exact", "NotOlderThan"):
            raise bad_request(
                f'resourceVersionMatch: Unsupported value: "{match}": supported values: '
                '"Exact", "NotOlderThan"'
            )
        if match and not rv:
            raise bad_request(
                "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless "
                "resourceVersion is provided"
            )
        if query.get("continue"):
            if rv or match:
                raise bad_request(
                    "resourceVersion: Forbidden: specifying resource version is not allowed "
                    "when using continue"
                )
            return None
        if not rv:
            return None
        try:
            version = int(rv)
        except ValueError:
            raise bad_request(f"resourceVersion: Invalid value: {rv!r}") from None
        if match == "Exact" and version == 0:
            raise bad_request(
                'resourceVersionMatch: Forbidden: resourceVersionMatch "exact" is forbidden '
                'for resourceVersion "0"'
            )
        current = self.store.resource_version
        if version > current:
            raise ApiError(
                504,
                "Timeout",
                f"Too large resource version: {version}, current: {current}",
                {
                    "causes": [
                        {
                            "reason": "ResourceVersionTooLarge",
                            "message": "Too large resource version",
                        }
                    ],
                    "retryAfterSeconds": 1,
                },
            )
        return version if match == "Exact" else None

    def list(self, target: Target, query: Query) -> Obj:
        """LIST a collection: selectors, resourceVersion(Match), consistent ``limit`` pages.

        A page and its continuation read the same snapshot (the version of the first page),
        so objects created or deleted meanwhile neither appear, vanish nor repeat; once that
        version is compacted away the continue token answers 410 Expired, as upstream.
        """
        rtype = target.resource
        matches = self._matcher(target, query)
        limit = _int_param(query, "limit")
        version = self._list_version(query)
        after = None
        if query.get("continue"):
            version, after = _decode_continue(query["continue"])
            try:
                items, read_at = self.store.list_at(
                    rtype, target.namespace, matches, version, after
                )
            except ApiError as error:
                if error.code != 410:
                    raise
                raise expired_continue(version) from None
        else:
            items, read_at = self.store.list_at(rtype, target.namespace, matches, version)
        meta: Obj = {"resourceVersion": str(read_at)}
        if limit and limit > 0 and len(items) > limit:
            rest = len(items) - limit
            items = items[:limit]
            meta["continue"] = _encode_continue(read_at, object_key(items[-1]))
            if matches is None:
                meta["remainingItemCount"] = rest
        for item in items:  # list items carry no kind/apiVersion on the real server either
            item.pop("kind", None)
            item.pop("apiVersion", None)
        return {
            "kind": rtype.list_kind,
            "apiVersion": rtype.api_version,
            "metadata": meta,
            "items": items,
        }

    # -- writes --------------------------------------------------------------------------------

    def _check_type(self, rtype: ResourceType, body: Any) -> None:
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        version, kind = body.get("apiVersion"), body.get("kind")
        if version not in (None, "", rtype.api_version):
            raise bad_request(
                f"the API version in the data ({version}) does not match the expected API "
                f"version ({rtype.api_version})"
            )
        if kind not in (None, "", rtype.kind):
            raise bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({rtype.kind})"
            )

    def create(
        self,
        target: Target,
        body: Any,
        query: Query | None = None,
        warnings: builtins.list[str] | None = None,
    ) -> Obj:
        """POST to a collection: default, validate and store a new object."""
        query = query or {}
        if target.name is not None or (target.resource.namespaced and target.namespace is None):
            raise method_not_allowed("POST")
        dry = dry_run(query)
        self._check_type(target.resource, body)
        check_fields(target.resource, body, field_validation(query), warnings)
        with self.store.lock:
            if target.namespace is not None:
                namespace = self.store.get(r.NAMESPACES, None, target.namespace)  # 404 if missing
                if namespace["metadata"].get("deletionTimestamp"):
                    name = (body.get("metadata") or {}).get("name") or ""
                    raise terminating_namespace(target.resource, name, namespace)
            obj = prepare_new(target.resource, body, target.namespace, str(uuid.uuid4()))
            return self.store.create(target.resource, obj, dry_run=dry)

    def replace(
        self,
        target: Target,
        body: Any,
        query: Query | None = None,
        warnings: builtins.list[str] | None = None,
    ) -> Obj:
        """PUT an object (or its status) with optimistic concurrency on resourceVersion."""
        query = query or {}
        dry = dry_run(query)
        self._check_type(target.resource, body)
        if not isinstance(body.get("metadata"), dict):
            raise bad_request("the body of the request must be an object with metadata")
        check_fields(target.resource, body, field_validation(query), warnings)
        with self.store.lock:
            old = self.get(target)
            return self._write(target, old, body, body["metadata"].get("resourceVersion"), dry)

    def patch(
        self,
        target: Target,
        content_type: str,
        body: Any,
        query: Query | None = None,
        warnings: builtins.list[str] | None = None,
    ) -> Obj:
        """PATCH an object (or its status): JSON, merge, strategic merge or apply patch.

        An apply patch (server-side apply) creates the object when it does not exist.
        """
        query = query or {}
        dry = dry_run(query)
        directive = field_validation(query)
        media = content_type.split(";")[0].strip().lower()
        if media == APPLY:
            return self._apply(target, body, query, directive, warnings, dry)
        with self.store.lock:
            old = self.get(target)
            new = apply_patch(content_type, old, body)
            check_fields(target.resource, new, directive, warnings)
            meta = body.get("metadata") if isinstance(body, dict) else None
            expect = meta.get("resourceVersion") if isinstance(meta, dict) else None
            return self._write(target, old, new, expect, dry)

    def _apply(
        self,
        target: Target,
        body: Any,
        query: Query,
        directive: str,
        warnings: builtins.list[str] | None,
        dry: bool,
    ) -> Obj:
        manager = query.get("fieldManager")
        if not manager:
            raise bad_request(
                "PATCH, application/apply-patch+yaml: fieldManager must be set for apply requests"
            )
        rtype = target.resource
        self._check_type(rtype, body)
        if not body.get("apiVersion") or not body.get("kind"):
            raise bad_request("apiVersion and kind must be set in an apply patch")
        check_fields(rtype, body, directive, warnings)
        with self.store.lock:
            old = self.store.find(rtype, target.namespace, target.name or "")
            if old is None:
                if target.subresource:
                    self.store.get(rtype, target.namespace, target.name or "")  # 404
                created = server_side_apply(None, body, manager, self.store.clock.now())
                created.setdefault("metadata", {})["name"] = target.name
                collection = Target(rtype, target.namespace, None, None)
                return self.create(collection, created, {"dryRun": "All"} if dry else {})
            new = server_side_apply(old, body, manager, self.store.clock.now())
            expect = (body.get("metadata") or {}).get("resourceVersion")
            return self._write(target, old, new, expect, dry)

    def _write(
        self, target: Target, old: Obj, new: Obj, expect_rv: str | None, dry: bool = False
    ) -> Obj:
        rtype = target.resource
        meta = new.setdefault("metadata", {})
        if meta.get("name", target.name) != target.name:
            raise bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL "
                f"({target.name})"
            )
        meta["name"] = target.name
        if rtype.namespaced:
            meta["namespace"] = target.namespace
        if "status" in rtype.subresources:
            if target.subresource == "status":  # /status writes status only
                new = {**old, "status": new.get("status", old.get("status"))}
            else:  # the main resource ignores status changes
                new["status"] = old.get("status", {})
        check_update(rtype, old, new)
        return self.store.replace(rtype, new, expect_rv=expect_rv, dry_run=dry)

    def delete(self, target: Target, query: Query, body: Any) -> Obj:
        """DELETE an object with DeleteOptions (query or body): see :mod:`.deletion`.

        Answers the object while it still exists (graceful deletion, finalizers), else, once
        gone, the object for Pods and Namespaces and a Success Status for the others.
        """
        rtype, name = target.resource, target.name
        if name is None or target.subresource:
            raise method_not_allowed("DELETE")
        options: Obj = dict(body) if isinstance(body, dict) else {}
        if query.get("propagationPolicy"):
            options["propagationPolicy"] = query["propagationPolicy"]
        grace = _int_param(query, "gracePeriodSeconds")
        if grace is not None:
            options["gracePeriodSeconds"] = grace
        dry = dry_run(query) or options.get("dryRun") == ["All"]
        if rtype is r.NAMESPACES:
            return delete_namespace(self.store, name, dry_run=dry)
        obj, gone = delete_object(self.store, rtype, target.namespace, name, options, dry_run=dry)
        if not gone or rtype is r.PODS:
            return obj
        return _success(rtype, name, obj["metadata"]["uid"])

    # -- watch ---------------------------------------------------------------------------------

    def watch(self, target: Target, query: Query, stopping: threading.Event) -> Iterator[Obj]:
        """Stream watch events (``{"type", "object"}``) until timeoutSeconds or ``stopping``.

        No resourceVersion (or "0"): first an ADDED event per existing object. A version older
        than the kept history: a single ERROR event carrying a 410 Expired Status, as the real
        server (its watch cache) answers, after which the stream ends.
        """
        matches = self._matcher(target, query)
        timeout = _int_param(query, "timeoutSeconds") or DEFAULT_WATCH_SECONDS
        start_rv = query.get("resourceVersion") or "0"
        try:
            cursor = int(start_rv)
        except ValueError:
            raise bad_request(f"invalid resourceVersion {start_rv!r}") from None
        return self._watch_events(
            target.resource, target.namespace, matches, cursor, timeout, query, stopping
        )

    def _watch_events(
        self,
        rtype: ResourceType,
        namespace: str | None,
        matches: Any,
        cursor: int,
        timeout: int,
        query: Query,
        stopping: threading.Event,
    ) -> Iterator[Obj]:
        deadline = time.monotonic() + timeout
        if cursor == 0:
            initial, cursor = self.store.list_at(rtype, namespace, matches)
            for obj in initial:
                yield {"type": "ADDED", "object": obj}
        while not stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                events = self.store.events_after(cursor, [rtype.plural], min(remaining, 0.25))
            except ApiError as error:
                yield {"type": "ERROR", "object": error.status()}
                return
            for event in events:
                cursor = event.rv
                if namespace and event.obj["metadata"].get("namespace") != namespace:
                    continue
                translated = _translate(event, matches)
                if translated is not None:
                    yield translated
        if is_true(query.get("allowWatchBookmarks")):
            yield {
                "type": "BOOKMARK",
                "object": {
                    "kind": rtype.kind,
                    "apiVersion": rtype.api_version,
                    "metadata": {"resourceVersion": str(cursor)},
                },
            }

    # -- logs ----------------------------------------------------------------------------------

    def log(self, target: Target, query: Query, stopping: threading.Event) -> Iterator[str]:
        """The Pod's log as text chunks; with ``follow`` it streams until the container ends.

        Supports ``container``, ``tailLines``, ``sinceSeconds``, ``timestamps``, ``limitBytes``.
        A Pod whose container has not started answers 400, like the kubelet does.
        """
        assert target.name is not None and target.namespace is not None
        pod = self.store.get(r.PODS, target.namespace, target.name)
        names = [c["name"] for c in pod["spec"]["containers"]]
        container = query.get("container")
        if container is None and len(names) > 1:
            raise bad_request(
                f"a container name must be specified for pod {target.name}, "
                f"choose one of: [{' '.join(names)}]"
            )
        if container is not None and container not in names:
            raise bad_request(f"container {container} is not valid for pod {target.name}")
        lines, ended = self.controller.log_lines(pod)
        state = (pod["status"].get("containerStatuses") or [{}])[0].get("state") or {}
        if not lines and not ("running" in state or "terminated" in state):
            waiting = state.get("waiting")
            why = "trying and failing to pull image" if waiting else "ContainerCreating"
            raise bad_request(
                f'container "{container or names[0]}" in pod "{target.name}" is waiting to '
                f"start: {why}"
            )
        tail = _int_param(query, "tailLines")
        since = _int_param(query, "sinceSeconds")
        if since is not None:
            cutoff = self.store.clock.now() - since
            lines = [line for line in lines if line[0] >= cutoff]
        if tail is not None:
            lines = lines[-tail:] if tail > 0 else []
        return self._log_chunks(pod, lines, ended, query, stopping)

    def _log_chunks(
        self,
        pod: Obj,
        lines: builtins.list[tuple[float, str]],
        ended: bool,
        query: Query,
        stopping: threading.Event,
    ) -> Iterator[str]:
        stamps = is_true(query.get("timestamps"))
        budget = _int_param(query, "limitBytes")

        def render(batch: builtins.list[tuple[float, str]]) -> str:
            return "".join(f"{rfc3339(t) + ' ' if stamps else ''}{text}\n" for t, text in batch)

        run_started = (self.controller.log_lines(pod)[0] or [(0.0, "")])[0][0]
        sent_count = len(self.controller.log_lines(pod)[0])
        text = render(lines)
        if budget is not None:
            text = text[:budget]
        yield text
        if not is_true(query.get("follow")):
            return
        deadline = time.monotonic() + MAX_FOLLOW_SECONDS
        while not ended and not stopping.is_set() and time.monotonic() < deadline:
            stopping.wait(POLL_SECONDS)
            current = self.store.find(r.PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
            if current is None or current["metadata"]["uid"] != pod["metadata"]["uid"]:
                return
            all_lines, ended = self.controller.log_lines(current)
            if not all_lines or all_lines[0][0] != run_started:
                return  # the container restarted: a new log, as after a real restart
            fresh = all_lines[sent_count:]
            sent_count = len(all_lines)
            if fresh:
                yield render(fresh)


def _translate(event: WatchEvent, matches: Any) -> Obj | None:
    """Map a store event to what a selector-filtered watcher sees (or None)."""
    if matches is None:
        return {"type": event.type, "object": event.obj}
    now = matches(event.obj)
    if event.type != "MODIFIED":
        return {"type": event.type, "object": event.obj} if now else None
    before = event.old is not None and matches(event.old)
    if now and before:
        return {"type": "MODIFIED", "object": event.obj}
    if now:
        return {"type": "ADDED", "object": event.obj}
    if before:
        return {"type": "DELETED", "object": event.obj}
    return None


def expired_continue(version: int) -> ApiError:
    """410 for a continue token whose snapshot was compacted (upstream's wording)."""
    return ApiError(
        410,
        "Expired",
        "The provided continue parameter is too old to display a consistent list result. You "
        "can start a new list without the continue parameter.",
    )


def _success(rtype: ResourceType, name: str, uid: str) -> Obj:
    details: Obj = {"name": name, "kind": rtype.plural, "uid": uid}
    if rtype.group:
        details["group"] = rtype.group
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }

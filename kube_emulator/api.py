"""API semantics of the emulator, independent of HTTP: one method per verb.

Each method takes a resolved :class:`~.resources.Target` and the request's query parameters
(first value of each) and returns JSON-able data, or raises :class:`~.errors.ApiError`. The
streaming verbs (watch, follow logs) return generators the HTTP layer writes out chunk by chunk;
they end when ``stopping`` is set, on timeout, or when the thing watched ends.
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

from . import resources as r
from .clock import rfc3339
from .controller import ClusterController
from .errors import ApiError, bad_request, method_not_allowed
from .jobs import delete_job
from .patches import apply_patch
from .resources import ResourceType, Target
from .selectors import fields_match, labels_match, parse_field_selector, parse_label_selector
from .store import Store, WatchEvent
from .validation import check_update, prepare_new

Obj = dict[str, Any]
Query = dict[str, str]
DEFAULT_WATCH_SECONDS = 1800  # the apiserver's --min-request-timeout
MAX_FOLLOW_SECONDS = 3600
POLL_SECONDS = 0.1


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

        def matches(obj: Obj) -> bool:
            meta = obj["metadata"]
            if target.namespace is not None and meta.get("namespace") != target.namespace:
                return False
            return labels_match(labels, meta.get("labels")) and fields_match(fields, obj)

        return matches

    def list(self, target: Target, query: Query) -> Obj:
        """LIST a collection with selectors and ``limit``/``continue`` paging."""
        rtype = target.resource
        matches = self._matcher(target, query)
        with self.store.lock:
            items = self.store.list(rtype, target.namespace, matches)
            rv = self.store.resource_version
        start = 0
        if query.get("continue"):
            try:
                start = int(json.loads(base64.b64decode(query["continue"]))["start"])
            except (ValueError, KeyError, TypeError):
                raise bad_request("invalid continue token") from None
        limit = _int_param(query, "limit")
        page = items[start : start + limit] if limit else items[start:]
        meta: Obj = {"resourceVersion": str(rv)}
        if limit and start + limit < len(items):
            token = json.dumps({"rv": rv, "start": start + limit}).encode()
            meta["continue"] = base64.b64encode(token).decode()
            meta["remainingItemCount"] = len(items) - start - limit
        for item in page:  # list items carry no kind/apiVersion on the real server either
            item.pop("kind", None)
            item.pop("apiVersion", None)
        return {
            "kind": rtype.list_kind,
            "apiVersion": rtype.api_version,
            "metadata": meta,
            "items": page,
        }

    # -- writes --------------------------------------------------------------------------------

    def create(self, target: Target, body: Any) -> Obj:
        """POST to a collection: default, validate and store a new object."""
        if target.name is not None or (target.resource.namespaced and target.namespace is None):
            raise method_not_allowed("POST")
        with self.store.lock:
            if target.namespace is not None:
                self.store.get(r.NAMESPACES, None, target.namespace)  # 404 for a missing namespace
            obj = prepare_new(target.resource, body, target.namespace, str(uuid.uuid4()))
            return self.store.create(target.resource, obj)

    def replace(self, target: Target, body: Any) -> Obj:
        """PUT an object (or its status) with optimistic concurrency on resourceVersion."""
        if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
            raise bad_request("the body of the request must be an object with metadata")
        with self.store.lock:
            old = self.get(target)
            return self._write(target, old, body, body["metadata"].get("resourceVersion"))

    def patch(self, target: Target, content_type: str, body: Any) -> Obj:
        """PATCH an object (or its status) with a merge, strategic merge or JSON patch."""
        with self.store.lock:
            old = self.get(target)
            new = apply_patch(content_type, old, body)
            meta = body.get("metadata") if isinstance(body, dict) else None
            expect = meta.get("resourceVersion") if isinstance(meta, dict) else None
            return self._write(target, old, new, expect)

    def _write(self, target: Target, old: Obj, new: Obj, expect_rv: str | None) -> Obj:
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
        return self.store.replace(rtype, new, expect_rv=expect_rv)

    def delete(self, target: Target, query: Query, body: Any) -> Obj:
        """DELETE an object; Jobs honour ``propagationPolicy`` (query or DeleteOptions body)."""
        rtype, name = target.resource, target.name
        if name is None or target.subresource:
            raise method_not_allowed("DELETE")
        policy = query.get("propagationPolicy") or (
            body.get("propagationPolicy") if isinstance(body, dict) else None
        )
        with self.store.lock:
            if rtype is r.JOBS:
                assert target.namespace is not None
                deleted = delete_job(self.store, target.namespace, name, policy)
            elif rtype is r.NAMESPACES:
                deleted = self._delete_namespace(name)
            else:
                deleted = self.store.delete(rtype, target.namespace, name)
        if rtype in (r.PODS, r.NAMESPACES):  # these return the object, as upstream
            return deleted
        return _success(rtype, name, deleted["metadata"]["uid"])

    def _delete_namespace(self, name: str) -> Obj:
        self.store.get(r.NAMESPACES, None, name)  # 404 before touching anything
        for rtype in (r.JOBS, r.PODS, r.EVENTS):
            for obj in self.store.list(rtype, name):
                self.store.delete(rtype, name, obj["metadata"]["name"])
        deleted = self.store.delete(r.NAMESPACES, None, name)
        deleted["status"] = {"phase": "Terminating"}
        return deleted

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
        return self._watch_events(target.resource, matches, cursor, timeout, query, stopping)

    def _watch_events(
        self,
        rtype: ResourceType,
        matches: Any,
        cursor: int,
        timeout: int,
        query: Query,
        stopping: threading.Event,
    ) -> Iterator[Obj]:
        deadline = time.monotonic() + timeout
        if cursor == 0:
            with self.store.lock:
                initial = self.store.list(rtype, None, matches)
                cursor = self.store.resource_version
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
        if not lines:
            waiting = ((pod["status"].get("containerStatuses") or [{}])[0].get("state") or {}).get(
                "waiting"
            )
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

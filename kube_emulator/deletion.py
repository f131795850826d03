"""Deletion as the API server and the garbage collector do it: graceful, with finalizers.

- ``DeleteOptions``: ``preconditions`` (uid, resourceVersion: 409 Conflict when stale),
  ``gracePeriodSeconds``, ``propagationPolicy`` (Orphan, Background, Foreground), ``dryRun``.
- An object with ``metadata.finalizers`` is not removed: it gets ``deletionTimestamp`` (and
  ``deletionGracePeriodSeconds: 0``) and stays until a client removes the last finalizer; the
  store then deletes it (watchers see MODIFIED, then DELETED).
- A Pod bound to a node and not finished terminates for its grace period
  (``gracePeriodSeconds``, else ``spec.terminationGracePeriodSeconds``, default 30): it keeps its
  phase with ``deletionTimestamp`` = now + grace, and :func:`finish_deletions` (the kubelet's
  final delete, run by the controller each step) removes it when the time has come. A Pod not
  yet bound, or finished, goes at once, as upstream.
- A namespace is Terminating (``deletionTimestamp``, phase) while its Jobs and Pods go, and
  refuses new content (403); it goes when it is empty.
- An owner's propagation (a Job's or a DaemonSet's, see :data:`OWNERS`): Orphan (the batch/v1
  default) frees its Pods of their ownerReference; Background (the apps/v1 default) removes the
  owner now and the garbage collector deletes the Pods (gracefully); Foreground gives the owner
  the ``foregroundDeletion`` finalizer and deletes its Pods first: the owner goes when the last
  of them is gone.
"""

from __future__ import annotations

from typing import Any

from . import resources as r
from .clock import parse_rfc3339
from .errors import ApiError, bad_request
from .resources import ResourceType
from .store import Store

Obj = dict[str, Any]
FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
POLICIES = ("Orphan", "Background", "Foreground")
DEFAULT_POD_GRACE = 30
#: The served types that own Pods, with the propagation a delete without one gets (upstream's
#: ``DefaultGarbageCollectionPolicy``: batch/v1 orphans for compatibility, apps/v1 deletes
#: dependents in the background). The garbage collector watches the same owners.
OWNERS: dict[ResourceType, str] = {r.JOBS: "Orphan", r.DAEMONSETS: "Background"}
#: What a namespace's deletion removes with its owners' propagation (Background): the rest.
_NAMESPACED = tuple(x for x in r.ALL if x.namespaced and x not in (r.PODS, r.EVENTS))


def _precondition_failed(
    rtype: ResourceType, name: str, what: str, want: str, got: str
) -> ApiError:
    qualified = f"{rtype.plural}.{rtype.group}" if rtype.group else rtype.plural
    details: Obj = {"name": name, "kind": rtype.plural}
    if rtype.group:
        details["group"] = rtype.group
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified} "{name}": Precondition failed: '
        f"{what} in precondition: {want}, {what} in object meta: {got}",
        details,
    )


def delete_object(
    store: Store,
    rtype: ResourceType,
    namespace: str | None,
    name: str,
    options: Obj,
    *,
    dry_run: bool = False,
) -> tuple[Obj, bool]:
    """Delete as the API server does; returns (the object, whether it is gone already)."""
    policy = _propagation_policy(options)
    requested_grace = _requested_grace(options)
    with store.lock:
        obj = store.get(rtype, namespace, name)
        _check_preconditions(rtype, name, obj["metadata"], options.get("preconditions") or {})
        grace = _grace(rtype, obj, requested_grace)
        if rtype in OWNERS:
            policy = policy or OWNERS[rtype]
            obj = _propagate(store, rtype, obj, policy, dry_run=dry_run)
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            return _delete_again(store, rtype, namespace, name, obj, grace, dry_run=dry_run)
        if grace == 0 and not meta.get("finalizers"):
            if dry_run:
                return obj, True
            return store.delete(rtype, namespace, name), True
        obj = store.mark_deleting(rtype, namespace, name, grace, dry_run=dry_run)
        if rtype in OWNERS and policy == "Foreground" and not dry_run:
            for pod in _dependents(store, obj):
                delete_object(store, r.PODS, namespace, pod["metadata"]["name"], {})
        if not dry_run and store._finished_deleting(obj):  # grace 0 with finalizers gone
            return store.delete(rtype, namespace, name), True
        return obj, False


def _propagation_policy(options: Obj) -> str | None:
    """``propagationPolicy`` (or the older ``orphanDependents``); 400 for an unknown one."""
    policy: str | None = options.get("propagationPolicy")
    if policy is None and options.get("orphanDependents") is not None:
        policy = "Orphan" if options["orphanDependents"] else "Background"
    if policy is not None and policy not in POLICIES:
        raise bad_request(
            f'Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan"'
        )
    return policy


def _requested_grace(options: Obj) -> int | None:
    """``gracePeriodSeconds`` as given (None when absent); 400 when it is not an integer."""
    grace = options.get("gracePeriodSeconds")
    if grace is None:
        return None
    if not isinstance(grace, int) or isinstance(grace, bool):
        raise bad_request(f"invalid gracePeriodSeconds: {grace!r}")
    return grace


def _check_preconditions(rtype: ResourceType, name: str, meta: Obj, pre: Obj) -> None:
    """409 Conflict when the ``preconditions`` (uid, resourceVersion) do not match ``meta``."""
    if pre.get("uid") and pre["uid"] != meta.get("uid"):
        raise _precondition_failed(rtype, name, "UID", pre["uid"], meta.get("uid", ""))
    rv = pre.get("resourceVersion")
    if rv and rv != meta.get("resourceVersion"):
        raise _precondition_failed(
            rtype, name, "ResourceVersion", rv, meta.get("resourceVersion", "")
        )


def _grace(rtype: ResourceType, obj: Obj, requested: int | None) -> int:
    """The grace period the deletion gets: only a bound, unfinished Pod has one."""
    if rtype is not r.PODS:
        return 0
    grace = requested
    if grace is None:
        grace = (obj.get("spec") or {}).get("terminationGracePeriodSeconds")
        grace = DEFAULT_POD_GRACE if grace is None else grace
    phase = (obj.get("status") or {}).get("phase")
    if not (obj.get("spec") or {}).get("nodeName") or phase in ("Succeeded", "Failed"):
        grace = 0
    return max(0, grace)


def _propagate(store: Store, rtype: ResourceType, owner: Obj, policy: str, *, dry_run: bool) -> Obj:
    """An owner's propagation before its deletion: Orphan frees its Pods, Foreground gives the
    owner the ``foregroundDeletion`` finalizer (once). Returns the owner as it now is."""
    meta = owner["metadata"]
    if policy == "Orphan":
        _orphan(store, owner, dry_run=dry_run)
    elif policy == "Foreground" and not meta.get("deletionTimestamp"):
        finalizers = [f for f in meta.get("finalizers") or [] if f != FOREGROUND]
        meta["finalizers"] = [*finalizers, FOREGROUND]
        if not dry_run:
            return store.replace(rtype, owner)
    return owner


def _delete_again(
    store: Store,
    rtype: ResourceType,
    namespace: str | None,
    name: str,
    obj: Obj,
    grace: int,
    *,
    dry_run: bool,
) -> tuple[Obj, bool]:
    """A delete of an object already being deleted: a Pod's grace may only get shorter, and
    grace 0 without finalizers (``--force``) removes the Pod now."""
    meta = obj["metadata"]
    if rtype is r.PODS and grace == 0 and not meta.get("finalizers"):  # --force
        return (obj, True) if dry_run else (store.delete(rtype, namespace, name), True)
    if rtype is r.PODS and grace < (meta.get("deletionGracePeriodSeconds") or 0):
        obj = store.mark_deleting(rtype, namespace, name, grace, dry_run=dry_run)
    return obj, False


def _dependents(store: Store, owner: Obj) -> list[Obj]:
    uid = owner["metadata"]["uid"]
    namespace = owner["metadata"].get("namespace")
    return store.list(
        r.PODS,
        namespace,
        lambda p: any(o.get("uid") == uid for o in p["metadata"].get("ownerReferences") or []),
    )


def _orphan(store: Store, owner: Obj, *, dry_run: bool) -> None:
    if dry_run:
        return
    uid = owner["metadata"]["uid"]
    for pod in _dependents(store, owner):
        refs = [o for o in pod["metadata"].get("ownerReferences") or [] if o.get("uid") != uid]
        if refs:
            pod["metadata"]["ownerReferences"] = refs
        else:
            pod["metadata"].pop("ownerReferences", None)
        store.replace(r.PODS, pod)


def delete_gracefully(store: Store, pod: Obj) -> None:
    """The garbage collector's delete of a Pod whose owner is gone (no-op if already going)."""
    meta = pod["metadata"]
    if meta.get("deletionTimestamp"):
        return
    delete_object(
        store, r.PODS, meta.get("namespace"), meta["name"], {"propagationPolicy": "Background"}
    )


def delete_namespace(store: Store, name: str, *, dry_run: bool) -> Obj:
    """Start a namespace's deletion: Terminating until its content is gone.

    Its Jobs and DaemonSets go at once (Background), its Pods gracefully, its Events at once;
    :func:`finish_deletions` removes the namespace once it is empty. Meanwhile nothing new may
    be created in it (403, see :func:`terminating_namespace`).
    """
    with store.lock:
        namespace = store.get(r.NAMESPACES, None, name)
        if dry_run:
            return namespace
        if not namespace["metadata"].get("deletionTimestamp"):
            namespace["status"] = {**(namespace.get("status") or {}), "phase": "Terminating"}
            store.replace(r.NAMESPACES, namespace)
            namespace = store.mark_deleting(r.NAMESPACES, None, name, 0, dry_run=False)
        for rtype in _NAMESPACED:
            for obj in store.list(rtype, name):
                delete_object(
                    store, rtype, name, obj["metadata"]["name"], {"propagationPolicy": "Background"}
                )
        for pod in store.list(r.PODS, name, lambda p: "deletionTimestamp" not in p["metadata"]):
            delete_object(store, r.PODS, name, pod["metadata"]["name"], {})
        _finish_namespace(store, namespace)
        return store.find(r.NAMESPACES, None, name) or namespace


def terminating_namespace(rtype: ResourceType, name: str, namespace: Obj) -> ApiError:
    """403 for a create in a namespace being deleted (upstream's wording)."""
    ns = namespace["metadata"]["name"]
    qualified = f"{rtype.plural}.{rtype.group}" if rtype.group else rtype.plural
    details: Obj = {"name": name, "kind": rtype.plural}
    if rtype.group:
        details["group"] = rtype.group
    details["causes"] = [
        {
            "reason": "NamespaceTerminating",
            "message": f"namespace {ns} is being terminated",
            "field": "metadata.namespace",
        }
    ]
    return ApiError(
        403,
        "Forbidden",
        f'{qualified} "{name}" is forbidden: unable to create new content in namespace {ns} '
        "because it is being terminated",
        details,
    )


def _finish_namespace(store: Store, namespace: Obj) -> None:
    name = namespace["metadata"]["name"]
    for event in store.list(r.EVENTS, name):
        store.delete(r.EVENTS, name, event["metadata"]["name"])
    if not any(store.list(rtype, name) for rtype in (*_NAMESPACED, r.PODS)):
        store.delete(r.NAMESPACES, None, name)


def finish_deletions(store: Store) -> None:
    """Remove Pods whose grace has run out, owners whose foreground deletion is complete, and
    namespaces being deleted once they are empty."""
    now = store.clock.now()
    with store.lock:
        for pod in store.list(r.PODS, predicate=lambda p: "deletionTimestamp" in p["metadata"]):
            meta = pod["metadata"]
            if not meta.get("finalizers") and parse_rfc3339(meta["deletionTimestamp"]) <= now:
                store.delete(r.PODS, meta.get("namespace"), meta["name"])
        for rtype in OWNERS:
            _finish_foreground(store, rtype)
        for namespace in store.list(
            r.NAMESPACES, predicate=lambda n: "deletionTimestamp" in n["metadata"]
        ):
            _finish_namespace(store, namespace)


def _finish_foreground(store: Store, rtype: ResourceType) -> None:
    """Drop ``foregroundDeletion`` from owners being deleted whose Pods are all gone."""
    waiting = store.list(
        rtype, predicate=lambda o: FOREGROUND in (o["metadata"].get("finalizers") or [])
    )
    for owner in waiting:
        if owner["metadata"].get("deletionTimestamp") and not _dependents(store, owner):
            owner["metadata"]["finalizers"] = [
                f for f in owner["metadata"]["finalizers"] if f != FOREGROUND
            ]
            store.replace(rtype, owner)

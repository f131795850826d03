"""Dynamic Resource Allocation (``resource.k8s.io/v1``, Kubernetes 1.34) with an emulated
NVIDIA DRA driver.

What is modelled:

- **DeviceClass** ``gpu.nvidia.com`` (cluster-scoped; selector
  ``device.driver == "gpu.nvidia.com"``) and one **ResourceSlice** per node whose nodes-file
  entry says ``dra: true``: driver ``gpu.nvidia.com``, pool = the node's name, devices
  ``gpu-0`` .. ``gpu-N-1`` with attributes ``uuid`` (:func:`gpu_uuid`, the same UUIDs the
  simulated node agent reports), ``index``, ``productName`` and capacity ``memory``.
- **ResourceClaim** (namespaced): ``spec.devices.requests[].exactly`` with
  ``deviceClassName``, ``allocationMode`` ``ExactCount`` (``count``, default 1) or ``All``,
  and CEL ``selectors`` in the subset :func:`compile_cel` reads. An expression outside it is
  refused with 422 on create, never ignored. ``firstAvailable`` and ``constraints`` are
  refused the same way (the emulator cannot evaluate them).
- **Allocation** by the scheduler (:func:`place`): a Pod's ``spec.resourceClaims`` name
  claims (``resourceClaimName``; templates are not served); an unallocated claim gets devices
  of one node's pool that satisfy every request and no other claim holds, and the Pod goes to
  that node; an allocated claim pins the Pod to its node. ``status.allocation.devices.results``
  lists ``{request, driver, pool, device}``; ``status.reservedFor`` the Pods using it.
- **Release** (:func:`release`): a Pod gone or finished leaves ``reservedFor``; a claim no
  Pod reserves is deallocated (as the resourceclaim controller does); a deleted claim holds
  nothing; claims whose owner (a Job) is gone are garbage-collected.
- Devices also count against the node's ``nvidia.com/gpu`` (the emulated node runs the device
  plugin too): a device held by a claim is not free for a device-plugin Pod and vice versa;
  a device-plugin Pod's devices are those of its ``karimasu.io/gpu-indices`` annotation.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from . import resources as r
from .errors import FieldCause
from .store import Store

Obj = dict[str, Any]
DRIVER = "gpu.nvidia.com"
DEVICE_CLASS = "gpu.nvidia.com"
INDICES_KEY = "karimasu.io/gpu-indices"
GPU = "nvidia.com/gpu"
#: What the resourceclaim controller puts on an allocated claim: deleting it while allocated
#: only marks it; it goes once deallocated (no pod reserves it any more).
PROTECTION = "resource.kubernetes.io/delete-protection"


def gpu_uuid(node: str, index: int) -> str:
    """The stable UUID of GPU ``index`` of ``node``: what ``nodeagent.simulated`` reports.

    >>> gpu_uuid("tesla-01", 0)[:4]
    'GPU-'
    """
    return f"GPU-{zlib.crc32(f'{node}/{index}'.encode()):08x}-sim0-4000-8000-{index:012d}"


# -- objects the cluster starts with -----------------------------------------------------------


def device_class() -> Obj:
    """The DeviceClass NVIDIA's DRA driver installs for whole GPUs."""
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "DeviceClass",
        "metadata": {"name": DEVICE_CLASS},
        "spec": {"selectors": [{"cel": {"expression": f'device.driver == "{DRIVER}"'}}]},
    }


def resource_slice(node: Obj) -> Obj | None:
    """The ResourceSlice the driver publishes for ``node`` (None for a node without GPUs)."""
    name = node["metadata"]["name"]
    labels = node["metadata"].get("labels") or {}
    count = int(labels.get("nvidia.com/gpu.count", "0"))
    if not count:
        return None
    product = labels.get("nvidia.com/gpu.product", "")
    memory = labels.get("nvidia.com/gpu.memory", "0")
    devices = [
        {
            "name": f"gpu-{i}",
            "attributes": {
                "uuid": {"string": gpu_uuid(name, i)},
                "index": {"int": i},
                "productName": {"string": product},
                "type": {"string": "gpu"},
            },
            "capacity": {"memory": {"value": f"{memory}Mi"}},
        }
        for i in range(count)
    ]
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {"name": f"{name}-{DRIVER}"},
        "spec": {
            "driver": DRIVER,
            "nodeName": name,
            "pool": {"name": name, "generation": 1, "resourceSliceCount": 1},
            "devices": devices,
        },
    }


# -- the CEL subset ----------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    |(?P<number>-?\d+)
    |(?P<op>==|!=|&&|\|\||<=|>=|<|>|\[|\]|\(|\)|,|\.)
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)


class CelError(ValueError):
    """An expression outside the subset the emulator evaluates."""


@dataclass(frozen=True)
class _Cmp:
    path: tuple[str, ...]  # ("driver",) or ("attributes", domain, name) or ("capacity", ...)
    op: str  # == != < <= > >= in
    value: Any


@dataclass(frozen=True)
class _Bool:
    op: str  # "&&" "||" or "lit"
    parts: tuple[Any, ...]


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise CelError(f"Syntax error: unexpected character at offset {pos}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise CelError("Syntax error: unexpected end of expression")
        token = self.tokens[self.pos]
        if expected is not None and token[1] != expected:
            raise CelError(f"Syntax error: expected {expected!r}, found {token[1]!r}")
        self.pos += 1
        return token

    def parse(self) -> Any:
        node = self.or_()
        if self.pos != len(self.tokens):
            raise CelError(f"Syntax error: unexpected {self.tokens[self.pos][1]!r}")
        return node

    def or_(self) -> Any:
        parts = [self.and_()]
        while self.peek() == "||":
            self.take()
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else _Bool("||", tuple(parts))

    def and_(self) -> Any:
        parts = [self.atom()]
        while self.peek() == "&&":
            self.take()
            parts.append(self.atom())
        return parts[0] if len(parts) == 1 else _Bool("&&", tuple(parts))

    def atom(self) -> Any:
        if self.peek() == "(":
            self.take()
            node = self.or_()
            self.take(")")
            return node
        if self.peek() in ("true", "false"):
            return _Bool("lit", (self.take()[1] == "true",))
        path = self.operand()
        _, op = self.take()
        if op not in ("==", "!=", "<", "<=", ">", ">=", "in"):
            raise CelError(f"unsupported operator {op!r}")
        value = self.literal_list() if op == "in" else self.literal()
        return _Cmp(path, op, value)

    def operand(self) -> tuple[str, ...]:
        kind, word = self.take()
        if word != "device":
            raise CelError(f"undeclared reference to {word!r} (only 'device' is supported)")
        self.take(".")
        kind, field = self.take()
        if field == "driver":
            return ("driver",)
        if field not in ("attributes", "capacity"):
            raise CelError(f"unsupported field device.{field}")
        self.take("[")
        domain = self.string()
        self.take("]")
        if self.peek() == ".":
            self.take()
            kind, name = self.take()
            if kind != "ident":
                raise CelError(f"Syntax error: expected a name, found {name!r}")
        else:
            self.take("[")
            name = self.string()
            self.take("]")
        if self.peek() == ".":
            raise CelError("unsupported function call (the emulator evaluates comparisons only)")
        return (field, domain, name)

    def string(self) -> str:
        kind, text = self.take()
        if kind != "string":
            raise CelError(f"Syntax error: expected a string, found {text!r}")
        if text.startswith("'"):  # a single-quoted string: unescape \' and quote any "
            text = '"' + re.sub(r'(?<!\\)"', '\\"', text[1:-1].replace("\\'", "'")) + '"'
        try:
            return str(json.loads(text))
        except ValueError as exc:
            raise CelError(f"Syntax error: bad string literal {text}") from exc

    def literal(self) -> Any:
        kind, text = self.tokens[self.pos] if self.pos < len(self.tokens) else ("", "")
        if kind == "string":
            return self.string()
        self.take()
        if kind == "number":
            return int(text)
        if text in ("true", "false"):
            return text == "true"
        raise CelError(f"Syntax error: expected a literal, found {text!r}")

    def literal_list(self) -> tuple[Any, ...]:
        self.take("[")
        values = []
        while self.peek() != "]":
            values.append(self.literal())
            if self.peek() == ",":
                self.take()
        self.take("]")
        return tuple(values)


def compile_cel(expression: str) -> Any:
    """Parse a device selector in the supported subset; CelError for anything else.

    Supported: comparisons (``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``in [...]``) of
    ``device.driver``, ``device.attributes["domain"].name`` (or ``["name"]``) and
    ``device.capacity[...]`` with string, integer and boolean literals, joined with ``&&``,
    ``||`` and parentheses; ``true``/``false``.

    >>> compile_cel('device.attributes["gpu.nvidia.com"].uuid in ["GPU-a", "GPU-b"]').op
    'in'
    """
    if not isinstance(expression, str) or not expression.strip():
        raise CelError("expression is empty")
    return _Parser(expression).parse()


def _attribute(device: Obj, driver: str, path: tuple[str, ...]) -> Any:
    if path == ("driver",):
        return driver
    field, domain, name = path
    if field == "capacity":
        value = ((device.get("capacity") or {}).get(name) or {}).get("value")
        return None if domain != driver else value
    if domain != driver:
        return None
    attribute = (device.get("attributes") or {}).get(name)
    if not isinstance(attribute, dict) or not attribute:
        return None
    return next(iter(attribute.values()))


def evaluate(node: Any, device: Obj, driver: str) -> bool:
    """The value of a compiled selector for one device (a missing attribute: no match)."""
    if isinstance(node, _Bool):
        if node.op == "lit":
            return bool(node.parts[0])
        results = (evaluate(part, device, driver) for part in node.parts)
        return all(results) if node.op == "&&" else any(results)
    value = _attribute(device, driver, node.path)
    if value is None:
        return False
    try:
        if node.op == "in":
            return bool(value in node.value)
        if node.op == "==":
            return bool(value == node.value)
        if node.op == "!=":
            return bool(value != node.value)
        if type(value) is not type(node.value):
            return False
        return bool(
            {
                "<": value < node.value,
                "<=": value <= node.value,
                ">": value > node.value,
                ">=": value >= node.value,
            }[node.op]
        )
    except TypeError:
        return False


# -- validation --------------------------------------------------------------------------------


def _selector_causes(selectors: Any, path: str) -> list[FieldCause]:
    causes: list[FieldCause] = []
    for i, selector in enumerate(selectors or []):
        expression = ((selector or {}).get("cel") or {}).get("expression")
        where = f"{path}[{i}].cel.expression"
        if expression is None:
            causes.append(FieldCause(where, "Required value", "FieldValueRequired"))
            continue
        try:
            compile_cel(expression)
        except CelError as exc:
            causes.append(
                FieldCause(
                    where, f"Invalid value: {json.dumps(expression)}: compilation failed: {exc}"
                )
            )
    return causes


def _request_causes(request: Any, where: str) -> list[FieldCause]:
    causes: list[FieldCause] = []
    if not isinstance(request, dict) or not request.get("name"):
        causes.append(FieldCause(f"{where}.name", "Required value", "FieldValueRequired"))
        return causes
    if request.get("firstAvailable"):
        causes.append(
            FieldCause(
                f"{where}.firstAvailable",
                "Unsupported value: not evaluated by the emulator",
                "FieldValueNotSupported",
            )
        )
        return causes
    exactly = request.get("exactly")
    if not isinstance(exactly, dict):
        causes.append(FieldCause(f"{where}.exactly", "Required value", "FieldValueRequired"))
        return causes
    if not exactly.get("deviceClassName"):
        causes.append(
            FieldCause(f"{where}.exactly.deviceClassName", "Required value", "FieldValueRequired")
        )
    mode = exactly.setdefault("allocationMode", "ExactCount")
    if mode == "ExactCount":
        count = exactly.setdefault("count", 1)
        if not isinstance(count, int) or count < 1:
            causes.append(
                FieldCause(
                    f"{where}.exactly.count",
                    f"Invalid value: {count!r}: must be greater than zero",
                )
            )
    elif mode != "All":
        causes.append(
            FieldCause(
                f"{where}.exactly.allocationMode",
                f'Unsupported value: "{mode}": supported values: "All", "ExactCount"',
                "FieldValueNotSupported",
            )
        )
    causes += _selector_causes(exactly.get("selectors"), f"{where}.exactly.selectors")
    return causes


def prepare(rtype: r.ResourceType, obj: Obj) -> list[FieldCause]:
    """Defaults and the 422 causes of a DeviceClass, ResourceSlice or ResourceClaim."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [FieldCause("spec", "Required value", "FieldValueRequired")]
    if rtype is r.DEVICECLASSES:
        return _selector_causes(spec.get("selectors"), "spec.selectors")
    if rtype is r.RESOURCESLICES:
        causes = []
        for field in ("driver", "pool"):
            if not spec.get(field):
                causes.append(FieldCause(f"spec.{field}", "Required value", "FieldValueRequired"))
        return causes
    obj["status"] = {}
    devices = spec.get("devices") or {}
    causes = []
    if devices.get("constraints"):
        causes.append(
            FieldCause(
                "spec.devices.constraints",
                "Unsupported value: not evaluated by the emulator",
                "FieldValueNotSupported",
            )
        )
    for i, request in enumerate(devices.get("requests") or []):
        causes += _request_causes(request, f"spec.devices.requests[{i}]")
    return causes


# -- allocation --------------------------------------------------------------------------------


def pod_claim_names(pod: Obj) -> list[tuple[str, str | None]]:
    """(name in the pod, ResourceClaim name or None for a template) of each pod claim."""
    out = []
    for entry in (pod.get("spec") or {}).get("resourceClaims") or []:
        out.append((str(entry.get("name", "")), entry.get("resourceClaimName")))
    return out


def _allocated_node(claim: Obj) -> str | None:
    allocation = (claim.get("status") or {}).get("allocation")
    if not allocation:
        return None
    for term in (allocation.get("nodeSelector") or {}).get("nodeSelectorTerms") or []:
        for field in term.get("matchFields") or []:
            if field.get("key") == "metadata.name" and field.get("values"):
                return str(field["values"][0])
    return None


def _held_devices(store: Store) -> set[tuple[str, str]]:
    """(pool, device) of every device an allocated claim holds."""
    held = set()
    for claim in store.list(r.RESOURCECLAIMS):
        allocation = (claim.get("status") or {}).get("allocation") or {}
        for result in (allocation.get("devices") or {}).get("results") or []:
            held.add((result.get("pool"), result.get("device")))
    return held


def _plugin_indices(pods: Iterable[Obj], node: str) -> set[int]:
    """Indices device-plugin Pods on ``node`` hold (their ``karimasu.io/gpu-indices``)."""
    from .scheduling import is_terminal

    taken: set[int] = set()
    for pod in pods:
        if (pod.get("spec") or {}).get("nodeName") != node or is_terminal(pod):
            continue
        if (pod.get("spec") or {}).get("resourceClaims"):
            continue
        text = ((pod["metadata"].get("annotations") or {}).get(INDICES_KEY)) or ""
        taken |= {int(x) for x in text.split(",") if x.strip().isdigit()}
    return taken


def _class_selectors(store: Store, name: str) -> list[Any] | None:
    dc = store.find(r.DEVICECLASSES, None, name)
    if dc is None:
        return None
    return [
        compile_cel(s["cel"]["expression"])
        for s in (dc.get("spec") or {}).get("selectors") or []
        if (s.get("cel") or {}).get("expression")
    ]


def _try_allocate(
    store: Store, claim: Obj, node: str, held: set[tuple[str, str]], plugin: set[int]
) -> list[Obj] | str:
    """The results allocating ``claim`` on ``node``'s pool, or why it cannot."""
    slices = [
        s for s in store.list(r.RESOURCESLICES) if (s.get("spec") or {}).get("nodeName") == node
    ]
    taken = set(held)
    results: list[Obj] = []
    for request in ((claim.get("spec") or {}).get("devices") or {}).get("requests") or []:
        exactly = request.get("exactly") or {}
        class_selectors = _class_selectors(store, exactly.get("deviceClassName", ""))
        if class_selectors is None:
            return f"device class {exactly.get('deviceClassName')} does not exist"
        selectors = class_selectors + [
            compile_cel(s["cel"]["expression"]) for s in exactly.get("selectors") or []
        ]
        fitting = []
        for slice_ in slices:
            spec = slice_["spec"]
            pool = spec["pool"]["name"]
            for device in spec.get("devices") or []:
                index = ((device.get("attributes") or {}).get("index") or {}).get("int")
                if (pool, device["name"]) in taken or index in plugin:
                    continue
                if all(evaluate(s, device, spec["driver"]) for s in selectors):
                    fitting.append((spec["driver"], pool, device["name"]))
        wanted = len(fitting) if exactly.get("allocationMode") == "All" else exactly.get("count", 1)
        if len(fitting) < wanted or not fitting:
            return "cannot allocate all claims"
        for driver, pool, device in fitting[:wanted]:
            taken.add((pool, device))
            results.append(
                {"request": request["name"], "driver": driver, "pool": pool, "device": device}
            )
    return results


@dataclass
class Placement:
    """What :func:`place` decided for a pending Pod with claims."""

    nodes: list[str] | None  # the nodes it may go to (None: no restriction, no claims)
    message: str = ""  # why it may go nowhere
    claims: list[Obj] | None = None


def place(store: Store, pod: Obj, node_names: list[str], pods: list[Obj]) -> Placement:
    """The nodes where ``pod``'s claims are (or can be) allocated."""
    named = pod_claim_names(pod)
    if not named:
        return Placement(None)
    namespace = pod["metadata"]["namespace"]
    claims = []
    for pod_name, claim_name in named:
        if claim_name is None:
            return Placement([], f'pod claim "{pod_name}": ResourceClaimTemplates are not served')
        claim = store.find(r.RESOURCECLAIMS, namespace, claim_name)
        if claim is None or claim["metadata"].get("deletionTimestamp"):
            return Placement([], f'resourceclaim.resource.k8s.io "{claim_name}" not found')
        claims.append(claim)
    pinned = {n for n in (_allocated_node(c) for c in claims) if n is not None}
    if len(pinned) > 1:
        return Placement([], "the pod's claims are allocated on different nodes")
    held = _held_devices(store)
    fitting = []
    for node in sorted(pinned) if pinned else node_names:
        plugin = _plugin_indices(pods, node)
        ok = all(
            _allocated_node(c) == node
            or isinstance(_try_allocate(store, c, node, held, plugin), list)
            for c in claims
        )
        if ok:
            fitting.append(node)
    if not fitting:
        n = len(node_names)
        return Placement([], f"0/{n} nodes are available: {n} cannot allocate all claims.")
    return Placement(fitting, "", claims)


def allocate(store: Store, pod: Obj, node: str, claims: list[Obj], pods: list[Obj]) -> list[int]:
    """Allocate ``claims`` on ``node`` for ``pod`` and reserve them; the device indices."""
    held = _held_devices(store)
    plugin = _plugin_indices(pods, node)
    indices: list[int] = []
    slices = {
        (s["spec"]["pool"]["name"], d["name"]): d
        for s in store.list(r.RESOURCESLICES)
        for d in s["spec"].get("devices") or []
    }
    for claim in claims:
        status = claim.setdefault("status", {})
        if not status.get("allocation"):
            results = _try_allocate(store, claim, node, held, plugin)
            if not isinstance(results, list):
                continue  # checked by place(): nothing changed in between (store lock held)
            held |= {(x["pool"], x["device"]) for x in results}
            status["allocation"] = {
                "devices": {"results": results},
                "nodeSelector": {
                    "nodeSelectorTerms": [
                        {
                            "matchFields": [
                                {"key": "metadata.name", "operator": "In", "values": [node]}
                            ]
                        }
                    ]
                },
            }
        finalizers = claim["metadata"].setdefault("finalizers", [])
        if PROTECTION not in finalizers:
            finalizers.append(PROTECTION)
        reserved = status.setdefault("reservedFor", [])
        uid = pod["metadata"]["uid"]
        if not any(x.get("uid") == uid for x in reserved):
            reserved.append({"resource": "pods", "name": pod["metadata"]["name"], "uid": uid})
        store.replace(r.RESOURCECLAIMS, claim)
        for result in status["allocation"]["devices"]["results"]:
            device = slices.get((result["pool"], result["device"])) or {}
            index = ((device.get("attributes") or {}).get("index") or {}).get("int")
            if isinstance(index, int):
                indices.append(index)
    return sorted(indices)


def device_env(store: Store, pod: Obj) -> dict[str, str]:
    """What NVIDIA's DRA driver (through CDI) gives the container for ``pod``'s allocated GPUs:
    ``NVIDIA_VISIBLE_DEVICES`` = the devices' UUIDs; inside the container they are CUDA
    devices ``0..k-1`` (``CUDA_VISIBLE_DEVICES``), as only those devices are mounted."""
    namespace = pod["metadata"]["namespace"]
    uuids = []
    slices = {
        (s["spec"]["pool"]["name"], d["name"]): d
        for s in store.list(r.RESOURCESLICES)
        for d in s["spec"].get("devices") or []
    }
    for _, claim_name in pod_claim_names(pod):
        claim = store.find(r.RESOURCECLAIMS, namespace, claim_name or "") if claim_name else None
        allocation = ((claim or {}).get("status") or {}).get("allocation") or {}
        for result in (allocation.get("devices") or {}).get("results") or []:
            if result.get("driver") != DRIVER:
                continue
            device = slices.get((result["pool"], result["device"])) or {}
            uuid = ((device.get("attributes") or {}).get("uuid") or {}).get("string")
            if uuid:
                uuids.append(uuid)
    if not uuids:
        return {}
    return {
        "NVIDIA_VISIBLE_DEVICES": ",".join(uuids),
        "CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in range(len(uuids))),
    }


def gpu_usage_by_node(store: Store) -> dict[str, Fraction]:
    """Per node (pool), the GPUs allocated claims hold (they count against ``nvidia.com/gpu``)."""
    used: dict[str, Fraction] = {}
    for pool, _ in _held_devices(store):
        used[pool] = used.get(pool, Fraction(0)) + 1
    return used


def release(store: Store) -> None:
    """The resourceclaim controller: Pods gone or finished leave ``reservedFor``; a claim no
    Pod reserves is deallocated; a claim whose owner Job is gone is deleted."""
    from .scheduling import is_terminal

    claims = store.list(r.RESOURCECLAIMS)
    if not claims:  # no copy of every pod per controller step on a cluster without claims
        return
    pods = {p["metadata"]["uid"]: p for p in store.list(r.PODS)}
    jobs = store.uids(r.JOBS)
    for claim in claims:
        owners = [
            o for o in claim["metadata"].get("ownerReferences") or [] if o.get("kind") == "Job"
        ]
        meta = claim["metadata"]
        orphan = owners and all(o.get("uid") not in jobs for o in owners)
        if orphan and not meta.get("deletionTimestamp"):  # the garbage collector deletes it
            from .deletion import delete_object

            namespace, name = meta["namespace"], meta["name"]
            claim = delete_object(store, r.RESOURCECLAIMS, namespace, name, {})[0]
            if store.find(r.RESOURCECLAIMS, namespace, name) is None:
                continue
        status = claim.get("status") or {}
        reserved = status.get("reservedFor") or []
        kept = [x for x in reserved if x.get("uid") in pods and not is_terminal(pods[x["uid"]])]
        if kept == reserved and (kept or not status.get("allocation")):
            continue
        status["reservedFor"] = kept
        if not kept:
            status.pop("reservedFor", None)
            status.pop("allocation", None)
            claim["metadata"]["finalizers"] = [
                f for f in claim["metadata"].get("finalizers") or [] if f != PROTECTION
            ]
        claim["status"] = status
        store.replace(r.RESOURCECLAIMS, claim)  # a claim being deleted goes with its finalizer

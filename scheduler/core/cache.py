"""The cycle's working state: which GPUs are busy until when, and who uses how much.

``ClusterUsage`` is built from a snapshot and then updated as the cycle admits and preempts.
Quota, user, sweep and node accounting change only through ``add_usage`` and
``remove_usage`` (Kueue's cache), so the numbers every gate reads agree with each other.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from scheduler.core.snapshot import Allocation, Booking, Node, Snapshot


@dataclass(frozen=True, slots=True)
class Block:
    """A time window on one GPU that only its holder may use.

    Bookings have a holder (user and/or team); a planned start of a waiting job has none and
    blocks everyone. ``soft`` blocks (plans beyond the protected depth) feed ETAs only.
    """

    start: float
    end: float
    team: str | None = None
    user: str | None = None
    soft: bool = False
    booking_id: str | None = None

    def excludes(self, start: float, end: float, team: str, user: str) -> bool:
        """True if a job of ``team``/``user`` running over ``[start, end)`` conflicts."""
        if not (self.start < end and start < self.end):
            return False
        holder = (self.user is not None and self.user == user) or (
            self.team is not None and self.team == team
        )
        # A holder may use its own booking but not run past its end (the next booking's).
        return not (holder and end <= self.end)


@dataclass(frozen=True, slots=True)
class Exclusions:
    """Spans sorted by start with the running maximum of their ends: a window ``[s, e)`` is
    free iff no span with start < e has end > s, one bisect away."""

    starts: list[float]
    max_ends: list[float]

    def free(self, start: float, end: float) -> bool:
        i = bisect_left(self.starts, end)
        return i == 0 or self.max_ends[i - 1] <= start

    def first_free(self, t: float) -> float:
        """The first instant at or after ``t`` that no span covers."""
        while True:
            i = bisect_right(self.starts, t)
            if i == 0 or self.max_ends[i - 1] <= t:
                return t
            t = self.max_ends[i - 1]

    @classmethod
    def of(cls, spans: list[tuple[float, float]]) -> Exclusions:
        spans.sort()
        ends: list[float] = []
        for _, end in spans:
            ends.append(max(end, ends[-1]) if ends else end)
        return cls([a for a, _ in spans], ends)


_NO_EXCLUSIONS = Exclusions([], [])


class NodeState:
    """One node's GPUs (usable ones only), free CPU/memory and blocks per GPU.

    Derived views are cached and invalidated by the only two writers, ``ClusterUsage.hold``
    (through ``set_busy``) and ``add_block``: ``exclusions`` per GPU as seen by a job that
    holds none of the node's bookings, and ``start_bounds`` per GPU.
    """

    __slots__ = (
        "at_start", "blocks", "booked", "bounds", "busy_until", "cache", "changes", "cpu_free",
        "earliest", "free", "gpu_bound", "holder_teams", "holder_users", "mem_free", "node",
        "open_at", "usable", "version",
    )  # fmt: skip

    def __init__(self, node: Node, now: float, changes: list[str] | None = None) -> None:
        self.node = node
        # The cluster's log of changed nodes (``ClusterUsage.changes``), appended on each change.
        self.changes: list[str] = [] if changes is None else changes
        self.usable: tuple[int, ...] = tuple(g.index for g in node.gpus if g.usable)
        self.busy_until: dict[int, float] = dict.fromkeys(self.usable, now)
        self.free: set[int] = set(self.usable)
        self.cpu_free = node.cpu_milli
        self.mem_free = node.memory_mib
        self.blocks: dict[int, list[Block]] = {}
        self.version = 0  # bumped on every change: invalidates ``bounds``
        self.bounds: tuple[int, list[float]] | None = None
        self.gpu_bound: dict[int, float] = {}  # per GPU, what ``start_bounds`` sorts
        # Placement's earliest starts by job shape, each with the version it was found at.
        self.earliest: dict[tuple[object, ...], tuple[int, float | None, float]] = {}
        # Preemption's GPUs free of hard blocks over a run, by (start, run, holder), likewise.
        self.open_at: dict[tuple[object, ...], tuple[int, list[int]]] = {}
        # Preemption's (version, start, GPUs free at start, GPUs busy then).
        self.at_start: tuple[int, float, int, frozenset[int]] | None = None
        self.booked: set[int] = set()  # GPUs with a booking: exclusions depend on the job
        # Who holds a booking on this node: a job of anyone else sees every block as a span.
        self.holder_teams: set[str] = set()
        self.holder_users: set[str] = set()
        self.cache: dict[tuple[int, bool], Exclusions] = {}

    def holds_any(self, team: str, user: str) -> bool:
        """True if a job of ``team``/``user`` holds some booking on this node."""
        return team in self.holder_teams or user in self.holder_users

    def exclusions(self, gpu: int, team: str, user: str, soft: bool) -> Exclusions:
        """``gpu``'s blocks as seen by a job of ``team``/``user``, for fast window checks.

        ``free(start, end)`` on the result is True iff no block on ``gpu`` (soft ones only
        when ``soft``) ``excludes`` the job's window. A holder's own booking only stops its
        window from crossing the booking's end, which is the same overlap test against the
        empty interval ``[end, end)``.
        """
        blocks = self.blocks.get(gpu)
        if blocks is None:
            return _NO_EXCLUSIONS
        # For a job holding no booking here, what a GPU excludes is the same for every job.
        outsider = gpu not in self.booked or not (
            team in self.holder_teams or user in self.holder_users
        )
        if outsider:
            found = self.cache.get((gpu, soft))
            if found is None:
                found = Exclusions.of([(b.start, b.end) for b in blocks if soft or not b.soft])
                self.cache[(gpu, soft)] = found
            return found
        spans = [
            (b.end, b.end)
            if (b.user is not None and b.user == user) or (b.team is not None and b.team == team)
            else (b.start, b.end)
            for b in blocks
            if soft or not b.soft
        ]
        return Exclusions.of(spans)

    def start_bounds(self) -> list[float]:
        """Per usable GPU, ascending: the earliest any window could start on it (when its
        work ends, then past every plan covering that instant). Bookings are left out, so
        these are lower bounds for every job; cached until the node changes."""
        if self.bounds is not None and self.bounds[0] == self.version:
            return self.bounds[1]
        per_gpu, blocks = self.gpu_bound, self.blocks
        for g in self.usable:
            if g in per_gpu:
                continue
            if g not in blocks:
                per_gpu[g] = self.busy_until[g]
                continue
            planned = [(b.start, b.end) for b in blocks[g] if b.team is b.user is None]
            per_gpu[g] = Exclusions.of(planned).first_free(self.busy_until[g])
        found = sorted(per_gpu.values())
        self.bounds = (self.version, found)
        return found

    def set_busy(self, gpu: int, until: float) -> None:
        """``gpu`` (a usable one) is busy until ``until``; ``ClusterUsage.hold`` keeps ``free``
        and has logged the node in ``changes``."""
        self.version += 1
        self.busy_until[gpu] = until
        self.gpu_bound.pop(gpu, None)

    def remove_block(self, gpu: int, block: Block) -> None:
        """Take back ``block`` (this very object) from ``gpu``: a reservation that lapses."""
        blocks = self.blocks.get(gpu, [])
        for i, b in enumerate(blocks):
            if b is block:
                del blocks[i]
                break
        else:
            return
        if not blocks:
            del self.blocks[gpu]
        self.version += 1
        self.changes.append(self.node.name)
        self.cache.pop((gpu, True), None)
        self.cache.pop((gpu, False), None)
        self.gpu_bound.pop(gpu, None)

    def add_block(self, gpu: int, block: Block) -> None:
        self.version += 1
        self.changes.append(self.node.name)
        self.blocks.setdefault(gpu, []).append(block)
        self.cache.pop((gpu, True), None)
        self.cache.pop((gpu, False), None)
        self.gpu_bound.pop(gpu, None)
        if block.team is not None or block.user is not None:
            self.booked.add(gpu)
            if block.team is not None:
                self.holder_teams.add(block.team)
            if block.user is not None:
                self.holder_users.add(block.user)


class BoundOrder:
    """One job shape's eligible nodes sorted by ``(start_bounds()[k - 1], inventory index)``,
    kept across a cycle's plans: only nodes logged in ``ClusterUsage.changes`` since the last
    read are re-keyed (a plan blocks one node, an admission holds one)."""

    __slots__ = ("bound", "index", "order", "seen", "states")

    def __init__(self, states: list[NodeState], k: int, seen: int) -> None:
        self.states = states
        self.index = {s.node.name: i for i, s in enumerate(states)}
        self.bound = [s.start_bounds()[k - 1] for s in states]
        self.order = sorted((b, i) for i, b in enumerate(self.bound))
        self.seen = seen

    def update(self, changes: list[str], k: int) -> list[tuple[float, int]]:
        """The order as of now: re-key the nodes changed since the last call."""
        if self.seen < len(changes):
            index, order, bound, states = self.index, self.order, self.bound, self.states
            for i in {index[n] for n in changes[self.seen :] if n in index}:
                new = states[i].start_bounds()[k - 1]
                if new != bound[i]:
                    del order[bisect_left(order, (bound[i], i))]
                    insort(order, (new, i))
                    bound[i] = new
            self.seen = len(changes)
        return self.order


class ClusterUsage:
    """Admitted usage per node, team, user and sweep, as of ``now``."""

    def __init__(self, snapshot: Snapshot, bookings: tuple[Booking, ...]) -> None:
        self.now = snapshot.now
        self.overdue_s = max(snapshot.config.preemption_grace_s, 1.0)
        # Every node change (a hold, a block) appends the node's name: caches that follow
        # many nodes (placement's order of nodes by start bound) re-read only those changed.
        self.changes: list[str] = []
        self.nodes: dict[str, NodeState] = {
            n.name: NodeState(n, self.now, self.changes) for n in snapshot.nodes
        }
        # Schedulable nodes with a free GPU: what a GPU job placed now has to look at.
        self.with_free: dict[str, NodeState] = {
            name: s for name, s in self.nodes.items() if s.free and s.node.schedulable
        }
        # The same nodes by how many GPUs they have free, each list sorted by name: placing
        # a job now visits nodes in packing order and stops at the first that fits.
        self.by_free: dict[int, list[str]] = defaultdict(list)
        for name, s in self.with_free.items():
            insort(self.by_free[len(s.free)], name)
        self.team_gpus: dict[str, int] = defaultdict(int)
        self.user_gpus: dict[str, int] = defaultdict(int)
        self.sweep_jobs: dict[str, int] = defaultdict(int)
        self.team_gpu_hours: dict[str, float] = defaultdict(float)
        self.running: dict[str, Allocation] = {}
        self.holds = 0  # counts ``hold`` calls: a result that reads only held GPUs, CPU and
        # memory stays valid while it is unchanged
        # Placement's per-shape filter of nodes that could ever hold a job (static per cycle).
        self.shape_nodes: dict[tuple[int, frozenset[str], int, int], dict[str, NodeState]] = {}
        # Placement's per-shape order of those nodes by start bound (see ``placement.plan``).
        self.bound_order: dict[tuple[int, frozenset[str], int, int], BoundOrder] = {}
        # Running work per node (gangs under each of their nodes): what preemption scans.
        self.on_node: dict[str, dict[str, Allocation]] = defaultdict(dict)
        # Bumped whenever a node's running work changes: preemption's per-node candidates
        # (``candidates``, by node and search key) stay valid while it is unchanged.
        self.running_version: dict[str, int] = defaultdict(int)
        self.candidates: dict[tuple[object, ...], dict[str, tuple[int, list[Any], float]]] = {}
        # A lower bound on running preemptible priorities: lets preemption skip hopeless jobs.
        self.lowest_preemptible = float("inf")
        for a in snapshot.allocations:
            if a.terminating_until is None:
                self.add_usage(a)
            elif a.terminating_until <= self.now and a.preempted_for is not None:
                continue  # its grace is over, it is gone: passed only for ``preempted_for``
            else:
                for node, gpus in a.pods:
                    self.hold(node, gpus, self._busy_until(a), a.cpu_milli, a.memory_mib)
        for b in bookings:
            state = self.nodes.get(b.node)
            if state is not None:
                block = Block(b.start, b.end, b.team, b.user, booking_id=b.id)
                for g in b.gpu_indices:
                    state.add_block(g, block)

    def _busy_until(self, a: Allocation) -> float:
        """When ``a``'s GPUs come free. Work past its deadline (or grace) is still on its GPUs
        until the cluster says it is gone, so it is assumed gone a grace period from now."""
        return a.expected_end if a.expected_end > self.now else self.now + self.overdue_s

    @property
    def free_gpus(self) -> int:
        return sum(len(s.free) for s in self.nodes.values() if s.node.schedulable)

    def add_usage(self, a: Allocation, admitted_now: bool = False) -> None:
        """Count ``a`` against its node, team, user and sweep; ``admitted_now`` (admitted by
        this cycle) also commits its GPU-hours against the team's weekly budget, since the
        snapshot's ``spent_gpu_hours`` cannot include it yet."""
        self.running[a.job_id] = a
        for node, _ in a.pods:
            self.on_node[node][a.job_id] = a
            self.running_version[node] += 1
        if a.preemptible:
            self.lowest_preemptible = min(self.lowest_preemptible, a.priority)
        for node, gpus in a.pods:
            self.hold(node, gpus, self._busy_until(a), a.cpu_milli, a.memory_mib)
        self.team_gpus[a.team] += a.gpus
        self.user_gpus[a.user] += a.gpus
        if a.sweep_id is not None:
            self.sweep_jobs[a.sweep_id] += 1
        if admitted_now:
            self.team_gpu_hours[a.team] += a.gpus * a.max_runtime_s / 3600.0

    def remove_usage(self, a: Allocation, busy_until: float | None = None) -> None:
        """Undo ``add_usage``; the GPUs stay held until ``busy_until`` (a grace period)."""
        del self.running[a.job_id]
        for node, _ in a.pods:
            self.on_node[node].pop(a.job_id, None)
            self.running_version[node] += 1
        self.team_gpus[a.team] -= a.gpus
        self.user_gpus[a.user] -= a.gpus
        if a.sweep_id is not None:
            self.sweep_jobs[a.sweep_id] -= 1
        for node, gpus in a.pods:  # a gang goes as a whole
            if busy_until is None or busy_until <= self.now:
                self.hold(node, gpus, self.now, -a.cpu_milli, -a.memory_mib)
            else:  # still running through its grace period: CPU and memory stay taken
                self.hold(node, gpus, busy_until, 0, 0)

    def hold(self, node: str, gpus: tuple[int, ...], until: float, cpu: int, mem: int) -> None:
        """Mark ``gpus`` busy until ``until`` and take ``cpu``/``mem`` off the node's free."""
        self.holds += 1
        state = self.nodes.get(node)
        if state is None:  # an allocation on a node that left the inventory
            return
        before = len(state.free) if node in self.with_free else 0
        state.version += 1
        self.changes.append(node)
        state.cpu_free -= cpu
        state.mem_free -= mem
        for g in gpus:
            if g in state.busy_until:
                state.set_busy(g, until)
                if until > self.now:
                    state.free.discard(g)
                else:
                    state.free.add(g)
        if state.free and state.node.schedulable:
            self.with_free[node] = state
            after = len(state.free)
        else:
            self.with_free.pop(node, None)
            after = 0
        if after != before:
            if before:
                bucket = self.by_free[before]
                del bucket[bisect_left(bucket, node)]
            if after:
                insort(self.by_free[after], node)

"""The DAG as a drawing: steps in columns by depth (longest path from a source), edges
between them; coordinates for an inline SVG. Pure; no Django.

>>> from pipelines.definition import parse
>>> d = parse({"steps": [
...     {"name": "q", "kind": "query", "warehouse": "w", "sql": "SELECT 1"},
...     {"name": "p", "kind": "container", "image": "x", "inputs": ["q"]},
...     {"name": "t", "kind": "container", "image": "x", "inputs": ["p"], "after": ["q"]}]})
>>> g = layout(d)
>>> [(n.name, n.column, n.row) for n in g.nodes]
[('q', 0, 0), ('p', 1, 0), ('t', 2, 0)]
>>> [(e.source, e.target, e.data) for e in g.edges]
[('q', 'p', True), ('p', 't', True), ('q', 't', False)]
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.definition import Definition

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 180, 56, 60, 24, 8


@dataclass(frozen=True)
class Node:
    name: str
    kind: str
    column: int
    row: int

    @property
    def x(self) -> int:
        return PAD + self.column * (NODE_W + GAP_X)

    @property
    def y(self) -> int:
        return PAD + self.row * (NODE_H + GAP_Y)


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    data: bool  # an input (data flows) rather than an ordering-only "after"
    x1: int
    y1: int
    x2: int
    y2: int


@dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    width: int
    height: int


def layout(definition: Definition) -> Graph:
    depth: dict[str, int] = {}
    for step in definition.steps:  # already in a run order: upstream first
        depth[step.name] = 1 + max((depth[u] for u in step.upstream), default=-1)
    rows: dict[int, int] = {}
    nodes: dict[str, Node] = {}
    for step in definition.steps:
        column = depth[step.name]
        nodes[step.name] = Node(step.name, step.kind, column, rows.get(column, 0))
        rows[column] = rows.get(column, 0) + 1
    edges = []
    for step in definition.steps:
        target = nodes[step.name]
        for name in step.upstream:
            source = nodes[name]
            edges.append(
                Edge(
                    name,
                    step.name,
                    name in step.inputs,
                    source.x + NODE_W,
                    source.y + NODE_H // 2,
                    target.x,
                    target.y + NODE_H // 2,
                )
            )
    columns = max(depth.values(), default=0) + 1
    height_rows = max(rows.values(), default=1)
    return Graph(
        tuple(nodes.values()),
        tuple(edges),
        2 * PAD + columns * NODE_W + (columns - 1) * GAP_X,
        2 * PAD + height_rows * NODE_H + (height_rows - 1) * GAP_Y,
    )

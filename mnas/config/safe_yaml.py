"""The one way mnas reads YAML: `yaml.safe_load` with two limits it lacks.

- Aliases: `&a [*b, *b, ...]` nested ten levels turns a 1 KiB file into billions of values once
  anything walks it (our loader converts every value), so a document whose aliases expand to
  more than `MAX_NODES` values, or refer to themselves, is refused before it is built.
- Depth: PyYAML composes recursively, so a document nested thousands of levels deep ends in a
  RecursionError; deeper than `MAX_DEPTH` levels is refused with the line it happens on.

Every refusal is a ValueError whose text says what the limit is (callers prefix the file).
"""
from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

#: Values (scalars, lists, mappings) a document may hold once its aliases are expanded.
MAX_NODES = 100_000
#: Nesting levels of lists and mappings (configs use fewer than 10).
MAX_DEPTH = 100


class _DepthLimitedLoader(yaml.SafeLoader):
    """SafeLoader whose composer stops at MAX_DEPTH levels instead of recursing on."""

    _depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise ValueError(f"nested deeper than {MAX_DEPTH} levels at line "
                                 f"{mark.line + 1}, column {mark.column + 1}")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def expanded_size(node: Node, limit: int = MAX_NODES) -> int:
    """How many values the document holds with every alias expanded (stops counting past
    `limit`); ValueError for an alias that refers to itself. Iterative and memoised by node, so
    a bomb is measured in time proportional to its *file* size."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Node, bool]] = [(node, False)]
    while stack:
        current, done = stack.pop()
        key = id(current)
        if done:
            on_path.discard(key)
            sizes[key] = min(limit + 1, 1 + sum(sizes[id(c)] for c in _children(current)))
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise ValueError("an alias refers to the value that contains it")
        on_path.add(key)
        stack.append((current, True))
        stack.extend((c, False) for c in _children(current) if id(c) not in sizes)
    return sizes[id(node)]


def safe_load(text: str) -> Any:
    """`yaml.safe_load(text)` within MAX_NODES and MAX_DEPTH. Raises yaml.YAMLError for invalid
    YAML and ValueError for a document over a limit."""
    loader = _DepthLimitedLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:  # not reachable within MAX_DEPTH, but never a traceback
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
        if node is None:
            return None
        if expanded_size(node) > MAX_NODES:
            raise ValueError(f"aliases expand to more than {MAX_NODES:,} values (an alias "
                             "bomb?); write the values out or use fewer aliases")
        return loader.construct_document(node)
    finally:
        loader.dispose()

"""YAML files read with a bound on what they expand to.

yaml.safe_load builds an alias bomb ("billion laughs": each level lists the previous one nine
times) in a blink, because aliases share one object; the blow-up comes later, when something
walks it: a repr in an error message, json.dumps, a copy. Nine levels are 387 million strings
from 300 bytes. So the document's node graph is composed first, its size with every alias
expanded is counted (each distinct node once, memoised), and a document whose aliases add more
than ALIAS_BUDGET values, or that refers to itself, is refused before anything is constructed.
Ordinary anchors (a shared block of settings) stay well within the budget. PyYAML's composer
recurses once per nesting level, so nesting too deep for it is refused too.
"""

from __future__ import annotations

from typing import Any

import yaml

ALIAS_BUDGET = 100_000  # values that aliases may add to a document
_CAP = 2**62  # counts stop growing here: a bomb of a hundred levels stays cheap to count


class YAMLTooLarge(yaml.MarkedYAMLError):
    """A document that expands past the budget, refers to itself, or nests too deeply. A
    yaml.YAMLError, so the callers' handlers report it as invalid YAML with its line."""

    def __init__(self, problem: str, mark: Any = None) -> None:
        super().__init__(problem=problem, problem_mark=mark)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def expanded_size(root: yaml.Node) -> tuple[int, int]:
    """(values with every alias expanded, capped at 2**62; distinct nodes). Raises YAMLTooLarge
    for a node that contains itself. Iterative: no recursion limit to meet."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            sizes[key] = min(_CAP, 1 + sum(sizes[id(c)] for c in _children(node)))
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise YAMLTooLarge("a recursive alias (a value that contains itself)", node.start_mark)
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    return sizes[id(root)], len(sizes)


def load_yaml(text: str) -> Any:
    """yaml.safe_load of one document, refusing documents that expand past the budget."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise YAMLTooLarge("nested too deep to read") from None
        if node is None:
            return None
        total, distinct = expanded_size(node)
        if total - distinct > ALIAS_BUDGET:
            raise YAMLTooLarge(
                f"aliases expand to more than {ALIAS_BUDGET} values (an alias bomb?); write the values out",
                node.start_mark,
            )
        try:
            return loader.construct_document(node)
        except RecursionError:
            raise YAMLTooLarge("nested too deep to read") from None
    finally:
        loader.dispose()

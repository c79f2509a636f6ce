"""Rule and unit documents as people write them: YAML or JSON holding plain data, nothing that expands."""

from __future__ import annotations

import json

import yaml

# A rules or units document is a few kilobytes; a megabyte is room for a province's whole set.
MAX_DOCUMENT_BYTES = 1 << 20
# Rules nest about six levels (rules → rule → tasks → template → to → units); twenty leaves plenty of room
# and keeps a crafted document far from the parsers' recursion limits.
MAX_DEPTH = 20

_NODE_STARTS = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_NODE_ENDS = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


class DocumentRefused(ValueError):
    """The document cannot be read as plain data; the message says what and where."""


def _where(event: yaml.Event) -> str:
    mark = event.start_mark
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "the document"


def _check_yaml_events(text: str) -> None:
    """Walks the parser's events, which never expand anything, before a single node is built.

    Anchors and aliases are refused outright: an alias repeats a whole subtree, so a few hundred bytes of
    nested aliases become megabytes once loaded or stored (the "billion laughs" of YAML), and nothing in a
    rule or unit needs them. Explicit tags and more than one document are refused for the same reason: a
    plain-data file has no use for them.
    """
    depth = 0
    documents = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise DocumentRefused(f"YAML aliases (*{event.anchor}) are not accepted, at {_where(event)}")
            if isinstance(event, yaml.NodeEvent) and event.anchor is not None:
                raise DocumentRefused(f"YAML anchors (&{event.anchor}) are not accepted, at {_where(event)}")
            tag = getattr(event, "tag", None)
            if tag is not None and isinstance(event, yaml.NodeEvent):
                raise DocumentRefused(f"explicit YAML tags ({tag}) are not accepted, at {_where(event)}")
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise DocumentRefused(f"one YAML document only, a second starts at {_where(event)}")
            if isinstance(event, _NODE_STARTS):
                depth += 1
                if depth > MAX_DEPTH:
                    raise DocumentRefused(f"nested deeper than {MAX_DEPTH} levels, at {_where(event)}")
            elif isinstance(event, _NODE_ENDS):
                depth -= 1
    except yaml.YAMLError as exc:
        raise DocumentRefused(str(exc)) from None


def read_yaml(text: str) -> object:
    """A YAML document of plain data: mappings, lists, strings, numbers, booleans, dates, null."""
    _check_yaml_events(text)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DocumentRefused(str(exc)) from None


def _depth(value: object) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, level + 1) for child in children)
    return deepest


def read_json(text: str) -> object:
    """A JSON document, as deep as a YAML one may be."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentRefused(str(exc)) from None
    except RecursionError:
        raise DocumentRefused(f"nested deeper than {MAX_DEPTH} levels") from None
    if _depth(value) > MAX_DEPTH:
        raise DocumentRefused(f"nested deeper than {MAX_DEPTH} levels")
    return value

"""YAML declarations (manifests, vocabularies) read safely, once, with the line of every key.

Safe loading only (no Python objects), through libyaml when PyYAML has it (several times
faster) and PyYAML's own safe loader otherwise; the document is composed once and both the data
and the key lines (for file:line messages) come from that one parse.
"""

from __future__ import annotations

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load(text: str) -> tuple[object, dict[tuple, int]]:
    """(data, lines): the document (None when empty) and the 1-based line of every mapping key
    and sequence item, keyed by its path (("parameters", "anc_min"), ("programs", 0)).
    Raises yaml.YAMLError for malformed YAML."""
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return data, key_lines(node)


def key_lines(node, prefix: tuple = ()) -> dict[tuple, int]:
    out: dict[tuple, int] = {}
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = prefix + (k.value,)
            out[key] = k.start_mark.line + 1
            out.update(key_lines(v, key))
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out[prefix + (i,)] = v.start_mark.line + 1
            out.update(key_lines(v, prefix + (i,)))
    return out

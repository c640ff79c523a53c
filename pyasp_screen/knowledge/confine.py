"""What a knowledge base may not do: run scripts or call functions.

A knowledge base is code that clingo runs, so it is read with clingo's own parser (which
executes nothing) before a solver sees it: :func:`refused_in` lists the refusals of one parsed
statement (``#script`` blocks, ``@function`` calls). Files outside the knowledge base's folders
are refused by :mod:`pyasp_screen.knowledge.resolve` before anything is parsed. Loading
(:mod:`pyasp_screen.knowledge.kb`) refuses a knowledge base with any refusal, and
``pyasp-screen check`` reports them with the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from clingo import ast


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


def _loc(node) -> tuple[str, int, int]:
    """file, line, column of a node (or of the first node below it that has a location)."""
    for n in walk(node):
        if "location" in n.keys():
            b = n.location.begin
            return b.filename, b.line, b.column
    return "<unknown>", 0, 0


def walk(node):
    """Every clingo AST node below (and including) node (a node, or a sequence of them)."""
    if isinstance(node, ast.AST):
        yield node
        for key in node.keys():
            yield from walk(getattr(node, key))
    elif not isinstance(node, (str, bytes, int)) and hasattr(node, "__iter__"):
        for item in node:
            yield from walk(item)


def refused_in(stm) -> list[Problem]:
    """The refusals of one parsed statement: a ``#script`` block, ``@function`` calls."""
    if stm.ast_type == ast.ASTType.Script:
        return [Problem(*_loc(stm), "#script is refused: a knowledge base may not run "
                        "Python or Lua; write the rule in ASP")]
    return [Problem(*_loc(node), f"@{node.name} is refused: a knowledge base may "
                    "not call Python or Lua functions (none is on the allow-list)")
            for node in walk(stm) if node.ast_type == ast.ASTType.Function and node.external]

"""What a knowledge base may not do: run scripts, call functions, read files outside its folders.

A knowledge base is code that clingo runs, so it is read with clingo's own parser (which
executes nothing) before a solver sees it. :func:`refusals` lists the security problems of a
set of programs; loading (:mod:`pyasp_screen.knowledge.kb`) refuses a knowledge base that has
any, and ``pyasp-screen check`` reports them with the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

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
    for n in _walk(node):
        if "location" in n.keys():
            b = n.location.begin
            return b.filename, b.line, b.column
    return "<unknown>", 0, 0


def _walk(node):
    """Every AST node below (and including) node."""
    if isinstance(node, ast.AST):
        yield node
        for key in node.keys():
            yield from _walk(getattr(node, key))
    elif not isinstance(node, (str, bytes, int)) and hasattr(node, "__iter__"):
        for item in node:
            yield from _walk(item)


def refused_in(stm) -> list[Problem]:
    """The refusals of one parsed statement: a ``#script`` block, ``@function`` calls."""
    if stm.ast_type == ast.ASTType.Script:
        return [Problem(*_loc(stm), "#script is refused: a knowledge base may not run "
                        "Python or Lua; write the rule in ASP")]
    return [Problem(*_loc(node), f"@{node.name} is refused: a knowledge base may "
                    "not call Python or Lua functions (none is on the allow-list)")
            for node in _walk(stm) if node.ast_type == ast.ASTType.Function and node.external]


INCLUDE = re.compile(r'#include\s+"([^"]+)"')
EXTERNAL_CALL = re.compile(r'@([a-z_][A-Za-z0-9_]*)\s*\(')


def _scan_refused(programs: list[Path]) -> list[Problem]:
    """#script and @function calls found in the text, outside strings and comments (used
    when the files cannot be parsed safely)."""
    out = []
    for p in programs:
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', line).split("%", 1)[0]
            if code.lstrip().startswith("#script"):
                out.append(Problem(str(p), n, code.index("#script") + 1, "#script is refused: a knowledge base may "
                                   "not run Python or Lua; write the rule in ASP"))
            for m in EXTERNAL_CALL.finditer(code):
                out.append(Problem(str(p), n, m.start() + 1, f"@{m.group(1)} is refused: a knowledge base may not "
                                   "call Python or Lua functions (none is on the allow-list)"))
    return out


def _includes(path: Path, roots: list[Path]) -> list[Problem]:
    """#include is allowed only for files inside the knowledge base's folders."""
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        for m in INCLUDE.finditer(line):
            target = (path.parent / m.group(1)).resolve()
            if not any(r in target.parents for r in roots):
                out.append(Problem(str(path), n, m.start() + 1,
                                   f"#include \"{m.group(1)}\" is refused: it points outside the knowledge "
                                   "base's folders"))
    return out


def refusals(programs: list[Path], roots: list[Path]) -> list[Problem]:
    """Only the security problems (#script, @functions, #include outside the roots), found
    by parsing: nothing is executed."""
    problems: list[Problem] = []
    for p in programs:
        problems += _includes(p, roots)
    suspects = [p for p in programs if re.search(r"#script|@", p.read_text(encoding="utf-8"))]
    if not suspects:  # neither can occur without its character: no need to parse
        return problems
    found: list[Problem] = []
    try:
        ast.parse_files([str(p) for p in suspects], lambda stm: found.extend(refused_in(stm)),
                        logger=lambda code, msg: None)
    except RuntimeError:
        return problems  # a syntax error: clingo will report it without running anything
    return problems + found

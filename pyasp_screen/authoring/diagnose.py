"""Why a knowledge base could not screen an author's records, in the author's words.

The engine says "no answer set" or "grounding took more than N MiB for a batch of n patients";
``check`` (its exactness records) and ``test`` (the example patients) turn that into the rule at
fault, at ``file:line:col``, from the compiled knowledge base (:class:`KnowledgeBase` ``rules``,
read with clingo's parser), never by searching program text:

- no answer set: every integrity constraint (a rule without a head, ``:- patient(P).``) is
  ground and solved as an atom of its own, so the model shows which ones the records set off;
- grounding without end: a rule that makes a new value from the atom it reads
  (``q(P,X+1) :- q(P,X).``, a head argument computed from a variable of a body atom of the same
  predicate).

When neither finds the rule, the message still names the knowledge base and says what
happened and on which records.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import clingo
from clingo import ast

from pyasp_screen.engine.engine import EngineError, GroundingStopped
from pyasp_screen.findings.derive import Findings
from pyasp_screen.knowledge.analysis import Rule, term_variables
from pyasp_screen.knowledge.confine import Problem
from pyasp_screen.knowledge.grounding import GroundingLimit, run_bounded
from pyasp_screen.knowledge.kb import KnowledgeBase

VIOLATED = "pyasp_screen_constraint_violated"


def explain_failure(kb: KnowledgeBase, error: EngineError, findings: Sequence[Findings], on: str) -> Problem:
    """The problem behind an engine failure on ``findings`` (``on``: what they are, as "the
    example patient anc-low" or "the exactness check's 427 generated records"): at the rule
    when it is found, else at the knowledge base's manifest, naming the knowledge base."""
    if isinstance(error, GroundingStopped):
        return grows_without_end(kb, on, str(error))
    if "no answer set" in str(error):
        return no_answer_set(kb, findings, on)
    return _at_manifest(kb, f"knowledge base {kb.name} cannot screen {on}: {error}")


def _at_manifest(kb: KnowledgeBase, message: str) -> Problem:
    return Problem(str(kb.directory / "manifest.yaml"), 1, 1, message)


def grows_without_end(kb: KnowledgeBase, on: str, detail: str = "") -> Problem:
    """The rule that makes new values without end, at file:line:col, or what happened."""
    limit = detail.split(": ")[1] if detail.count(": ") >= 2 else "grounding was stopped at its limit"
    limit = re.sub(r" for a batch of \d+ patients?", "", limit)
    for rule in kb.rules:
        grown = _grows(rule)
        if grown:
            return Problem(*rule.location, f"this rule makes new values without end ({grown}), so "
                           f"knowledge base {kb.name} never finishes grounding {on} ({limit}): bound "
                           "it, e.g. with a comparison such as X < 100 in its body")
    return _at_manifest(kb, f"knowledge base {kb.name} never finished grounding {on} ({limit}): a rule "
                        "makes new values without end, like q(P,X+1) :- q(P,X); bound it with a "
                        "comparison in its body")


def _grows(rule: Rule) -> str:
    """"q(P,X+1) from q(P,X)" if a head argument is computed (arithmetic or a function) from a
    variable of a positive body atom of the same predicate; else ""."""
    for head in rule.heads:
        for atom in rule.body:
            if atom.sign != 0 or atom.signature != head.signature:
                continue
            read = {v for arg in atom.args for v in term_variables(arg)}
            if any(arg[0] in ("bin", "un", "fun") and term_variables(arg) & read for arg in head.args):
                return f"each {_show(atom)} makes {_show(head)}"
    return ""


def _show(atom) -> str:
    return f"{atom.name}({','.join(_term(a) for a in atom.args)})"


def _term(t: tuple) -> str:
    kind = t[0]
    if kind in ("sym", "var"):
        return t[1]
    if kind == "num":
        return str(t[1])
    if kind == "str":
        return f'"{t[1]}"'
    if kind == "bin":
        return f"{_term(t[2])}{t[1]}{_term(t[3])}"
    if kind == "un":
        return f"{t[1]}{_term(t[2])}"
    if kind == "fun":
        return f"{t[1]}({','.join(_term(a) for a in t[2])})"
    return "_"


def no_answer_set(kb: KnowledgeBase, findings: Sequence[Findings], on: str) -> Problem:
    """The integrity constraint the records set off, at file:line:col, or what happened."""
    try:
        fired = fired_constraints(kb, findings)
    except (GroundingLimit, RuntimeError):
        fired = []
    if fired:
        where, text = fired[0]
        more = f" (and {len(fired) - 1} more constraint(s))" if len(fired) > 1 else ""
        return Problem(*where, f"the constraint `{text}` forbids {on} outright{more}, so knowledge base "
                       f"{kb.name} can decide nothing for them: to rule a patient out, derive "
                       'fails(P, "CRITERION") instead of a rule without a head')
    return _at_manifest(kb, f"knowledge base {kb.name}: its rules contradict each other on {on} (no answer "
                        "set: a rule without a head, or one that depends on its own negation, like "
                        "a :- not a)")


def fired_constraints(kb: KnowledgeBase, findings: Sequence[Findings]) -> list[tuple[tuple[str, int, int], str]]:
    """The integrity constraints that ``findings`` set off: (file, line, column) and the rule
    as clingo prints it, in program order. Each constraint ``:- B.`` is ground as
    ``violated(N) :- B.``, so the program has a model in which they show."""
    where: list[tuple[tuple[str, int, int], str]] = []
    ctl = clingo.Control(kb.clingo_args() + ["--warn=none"])
    facts = "".join(f.program(slot) for slot, f in enumerate(findings))

    def add(builder, stm) -> None:
        head = getattr(stm, "head", None)
        if stm.ast_type == ast.ASTType.Rule and head.ast_type == ast.ASTType.Literal \
                and head.atom.ast_type == ast.ASTType.BooleanConstant and not head.atom.value:
            loc = stm.location
            file, line = kb.source_line("<block>", loc.begin.line)
            text = " ".join(str(stm).split())
            where.append(((file, line, loc.begin.column), text.removeprefix("#false ")))
            number = ast.SymbolicTerm(loc, clingo.Number(len(where) - 1))
            atom = ast.SymbolicAtom(ast.Function(loc, VIOLATED, [number], False))
            stm = stm.update(head=ast.Literal(loc, ast.Sign.NoSign, atom))
        builder.add(stm)

    def ground_and_solve() -> list[int]:
        with ast.ProgramBuilder(ctl) as builder:
            ast.parse_string(kb.program_text(), lambda stm: add(builder, stm))
        ctl.add("base", [], facts)
        ctl.ground([("base", [])])
        with ctl.solve(yield_=True) as handle:
            for model in handle:
                return sorted(s.arguments[0].number for s in model.symbols(atoms=True) if s.name == VIOLATED)
        return []

    fired = run_bounded(ground_and_solve, kb=kb.name, patients=len(findings))
    return [where[i] for i in fired]

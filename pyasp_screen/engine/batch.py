"""How a batch of findings reaches clingo, and its one model comes back.

Shared by the compiled engine (:mod:`.engine`) and the reference engine (:mod:`.reference`),
which differ only in the program they ground and in how they read the model.

- :func:`batch_facts`: a batch of :class:`~pyasp_screen.findings.derive.Findings` as facts, a
  patient being its position in the batch;
- :func:`term_facts`: the findings stage's facts as clingo terms (the faster route);
- :func:`ground_and_solve`: one grounding and solve under the grounding limits of
  :mod:`pyasp_screen.knowledge.grounding`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import clingo

from pyasp_screen.engine.results import EngineError, GroundingStopped
from pyasp_screen.findings.derive import Findings, asp_string
from pyasp_screen.knowledge.grounding import GroundingLimit, run_bounded
from pyasp_screen.knowledge.vocabulary import FACT_PREDICATES

# The findings stage's predicates (docs/vocabulary.md): name -> arity.
VOCABULARY_ARITY = {sig.split("/")[0]: int(sig.split("/")[1]) for sig in FACT_PREDICATES}

T = TypeVar("T")


def is_vocabulary_fact(fact: str) -> bool:
    """Is ``fact`` (ASP text, without the final period) a vocabulary predicate with its
    arity? The knowledge base specialised to its static facts is exact for such facts
    (:mod:`pyasp_screen.knowledge.specialise`); anything else needs the programs as written."""
    try:
        sym = clingo.parse_term(fact, message_limit=0)
    except RuntimeError:
        return False
    return sym.type == clingo.SymbolType.Function and VOCABULARY_ARITY.get(sym.name) == len(sym.arguments)


def batch_facts(batch: list[Findings]) -> tuple[list[Findings], str, dict[str, list[str]]]:
    """The facts of a batch, each patient's ID replaced by its position (0, 1, ...).

    In the ground program a patient is its position, not its ID: clingo keeps every symbol
    it ever made for the life of the process (potassco/clingo#203), so ID-bearing atoms
    would grow memory with every patient screened, while position-bearing ones recur from
    batch to batch. Returns (hand-made findings, their facts as program text, the findings
    stage's facts by predicate name for :func:`term_facts`)."""
    groups: dict[str, list[str]] = {}
    handmade: list[Findings] = []
    text: list[str] = []
    for slot, f in enumerate(batch):
        if not f.vocabulary_only:
            handmade.append(f)
            text.append(f.program(slot))
            continue
        # Every fact's first argument is the quoted ID, and its first occurrence: a
        # predicate name before it cannot hold a quote.
        pid, term = asp_string(f.patient), str(slot)
        for finding in f.findings:
            fact = finding.fact.replace(pid, term, 1)
            name = fact[:fact.find("(")]
            if name in groups:
                groups[name].append(fact)
            else:
                groups[name] = [fact]
    return handmade, "".join(text), groups


def term_facts(groups: dict[str, list[str]]):
    """Facts as clingo terms instead of program text (facts of the vocabulary only, with
    its arities: see Findings.vocabulary_only).

    clingo parses every fact of a program as a statement of its own, at ~40,000 machine
    instructions each: for ~30 facts a patient that was a third of all clingo work. Parsed
    as the arguments of one term per predicate instead (clingo.parse_term), and handed
    to the grounder by one rule per predicate,
        quantity(X0,...,X4) :- quantity(X0,...,X4) = @engine_facts(quantity).
    the same atoms become facts at about half the cost. Returns (context, rules), or
    (None, "") if some fact does not parse as a term (then the caller adds them as text).
    """
    terms: dict[str, list[clingo.Symbol]] = {}
    rules = []
    for name, facts in groups.items():
        try:
            terms[name] = clingo.parse_term(f"engine_facts({','.join(facts)})",
                                            message_limit=0).arguments
        except RuntimeError:
            return None, ""
        xs = ",".join(f"X{i}" for i in range(VOCABULARY_ARITY[name]))
        rules.append(f"{name}({xs}) :- {name}({xs}) = @engine_facts({name}).")

    class Context:
        @staticmethod
        def engine_facts(name: clingo.Symbol) -> list[clingo.Symbol]:
            return terms[name.name]

    return Context(), "\n" + "\n".join(rules) + "\n"


def ground_and_solve(args: list[str], program: str, facts: str, vocabulary_facts: dict[str, list[str]] | None,
                     read: Callable[[clingo.Model], T], *, kb_name: str, patients: int = 1) -> T:
    """Ground ``program`` with ``facts`` (program text) and ``vocabulary_facts`` (by the
    route of :func:`term_facts`) and solve; ``read`` of the one model.

    ``patients``: how many patients the facts are of, which sets the grounding's time and
    memory limits. Raises EngineError (clingo's first message, or no answer set), or
    GroundingStopped past a limit."""
    messages: list[str] = []
    ctl = clingo.Control(args, logger=lambda code, msg: messages.append(msg))
    context = None
    if vocabulary_facts:
        context, rules = term_facts(vocabulary_facts)
        if context is None:  # a fact that is not a plain term: the text route for all
            facts += "".join(f + ".\n" for fs in vocabulary_facts.values() for f in fs)
        else:
            program += rules

    def run() -> tuple[T] | None:
        try:
            ctl.add("base", [], program)
            if facts:
                ctl.add("base", [], facts)
            ctl.ground([("base", [])], context=context)
        except RuntimeError as e:
            if "bad_alloc" in str(e):
                raise
            raise EngineError(" ".join(messages[0].split()) if messages else "grounding failed") from None
        with ctl.solve(yield_=True) as handle:
            for model in handle:
                return (read(model),)
        return None

    try:
        answer = run_bounded(run, kb=kb_name, patients=patients, interrupt=ctl.interrupt)
    except GroundingLimit as e:
        raise GroundingStopped(str(e)) from None
    if answer is None:
        raise EngineError(f"knowledge base {kb_name} has no answer set for these findings")
    return answer[0]

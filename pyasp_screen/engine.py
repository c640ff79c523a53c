"""Stages 3 and 4 of the pipeline: ground the knowledge base with findings, and solve.

Patients are independent, so many are screened in one clingo program: every fact carries
its patient, the knowledge base is grounded once per batch, and the one stable model of
the (stratified) program holds every patient's statuses and verdicts. One Control per
batch instead of one per patient is what makes cohort screening fast (bench/bench_screen.py
compares both).

The program's meaning (statuses met / not_met / unknown, verdicts eligible / ineligible /
undetermined, exact under the completion semantics of docs/semantics.md) is defined in
kb/lib/core.lp; this module only runs clingo and reads the answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import clingo

from pyasp_screen.findings import Findings
from pyasp_screen.kb import KnowledgeBase


class EngineError(Exception):
    """clingo failed on a knowledge base (a KB bug, not a patient's property)."""


@dataclass
class Result:
    """The screening result of one patient.

    statuses: criterion or component ID -> met | not_met | unknown;
    verdicts: population -> eligible | ineligible | undetermined; overall: the same words;
    contradictions: condition IDs both held and failed (a knowledge-base error).
    """

    patient: str
    statuses: dict[str, str] = field(default_factory=dict)
    verdicts: dict[str, str] = field(default_factory=dict)
    overall: str = "undetermined"
    contradictions: list[str] = field(default_factory=list)


class Engine:
    """Screens findings against one knowledge base. The KB text is read once."""

    def __init__(self, kb: KnowledgeBase):
        self.kb = kb
        self._program = kb.program_text()
        self._args = kb.clingo_args() + ["--warn=none"]

    def solve_program(self, facts: str) -> list[clingo.Symbol]:
        """Ground and solve the KB with ``facts``; the shown symbols of the one model."""
        messages: list[str] = []
        ctl = clingo.Control(self._args, logger=lambda code, msg: messages.append(msg))
        try:
            ctl.add("base", [], self._program)
            ctl.add("base", [], facts)
            ctl.ground([("base", [])])
        except RuntimeError:
            raise EngineError(messages[0].splitlines()[0] if messages else "grounding failed") from None
        symbols: list[clingo.Symbol] = []
        with ctl.solve(yield_=True) as handle:
            for model in handle:
                symbols = model.symbols(shown=True)
                break
            else:
                raise EngineError(f"knowledge base {self.kb.name} has no answer set for these findings")
        return symbols

    def screen(self, batch: Iterable[Findings]) -> list[Result]:
        """Screen a batch of patients in one grounding; results in input order."""
        batch = list(batch)
        if not batch:
            return []
        ids = [f.patient for f in batch]
        if len(set(ids)) != len(ids):
            raise ValueError("patient IDs must be unique within a batch")
        results = {pid: Result(pid) for pid in ids}
        symbols = self.solve_program("".join(f.program() for f in batch))
        for sym in symbols:
            args = sym.arguments
            res = results[args[0].string]
            if sym.name == "status":
                res.statuses[args[1].string] = args[2].name
            elif sym.name == "verdict":
                res.verdicts[args[1].name] = args[2].name
            elif sym.name == "overall":
                res.overall = args[1].name
            elif sym.name == "contradiction":
                res.contradictions.append(args[1].string)
        return [results[pid] for pid in ids]

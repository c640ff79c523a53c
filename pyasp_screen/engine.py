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
        self._conditions = [c for crit in kb.criteria for c in (crit.id, *crit.components)]
        self._populations = list(kb.populations)
        self._program = kb.program_text() + "\n" + self._row_rule()
        self._args = kb.clingo_args() + ["--warn=none"]

    def _row_rule(self) -> str:
        """One shown atom per patient carrying all its statuses and verdicts.

        Reading ~70 status/3 atoms per patient through the clingo API costs more than
        grounding them; the knowledge base's own status/3, verdict/3 and overall/2 atoms are
        projected here into a single row(P, S1, ..., Sn, V1, ..., Vm, Overall) instead, in the
        order of self._conditions and self._populations. Nothing is decided by this rule.
        """
        body = ["patient(P)"]
        body += [f'status(P,"{c}",S{i})' for i, c in enumerate(self._conditions)]
        body += [f"verdict(P,{pop},V{i})" for i, pop in enumerate(self._populations)]
        body.append("overall(P,O)")
        head = ",".join(["P"] + [f"S{i}" for i in range(len(self._conditions))]
                        + [f"V{i}" for i in range(len(self._populations))] + ["O"])
        return (f"#show.\n#show contradiction/2.\n"
                f"#show row({head}) : {', '.join(body)}.\n")

    def solve_program(self, facts: str) -> list[clingo.Symbol]:
        """Ground and solve the KB with ``facts``; the shown symbols of the one model."""
        messages: list[str] = []
        ctl = clingo.Control(self._args, logger=lambda code, msg: messages.append(msg))
        try:
            ctl.add("base", [], self._program)
            ctl.add("base", [], facts)
            ctl.ground([("base", [])])
        except RuntimeError:
            raise EngineError(" ".join(messages[0].split()) if messages else "grounding failed") from None
        symbols: list[clingo.Symbol] = []
        with ctl.solve(yield_=True) as handle:
            for model in handle:
                symbols = model.symbols(shown=True)
                break
            else:
                raise EngineError(f"knowledge base {self.kb.name} has no answer set for these findings")
        return symbols

    def screen(self, batch: Iterable[Findings]) -> list[Result]:
        """Screen a batch of patients in one grounding; results in input order.

        In the ground program a patient is its position in the batch (0, 1, ...), not its
        ID: clingo keeps every symbol it ever made for the life of the process
        (potassco/clingo#203), so ID-bearing atoms would grow memory with every patient
        screened, while position-bearing ones recur from batch to batch.
        """
        batch = list(batch)
        if not batch:
            return []
        ids = [f.patient for f in batch]
        if len(set(ids)) != len(ids):
            raise ValueError("patient IDs must be unique within a batch")
        results = [Result(pid) for pid in ids]
        symbols = self.solve_program("".join(f.program(slot) for slot, f in enumerate(batch)))
        n_cond, n_pop = len(self._conditions), len(self._populations)
        for sym in symbols:
            if sym.name == "contradiction":
                args = sym.arguments
                results[args[0].number].contradictions.append(args[1].string)
                continue
            # row(Slot,S1,...,Sn,V1,...,Vm,O): every field is a plain name or number.
            fields = str(sym)[4:-1].split(",")
            res = results[int(fields[0])]
            res.statuses = dict(zip(self._conditions, fields[1:1 + n_cond]))
            res.verdicts = dict(zip(self._populations, fields[1 + n_cond:1 + n_cond + n_pop]))
            res.overall = fields[-1]
        missing = [r.patient for r in results if not r.statuses]
        if missing:
            raise EngineError(f"knowledge base {self.kb.name} gave no statuses for {missing[0]}")
        return results

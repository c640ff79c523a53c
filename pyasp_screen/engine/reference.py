"""The reference engine: the knowledge base as written, grounded with a batch of findings.

This is the engine as it was before the compiled fast path of :mod:`.engine` (main at
4cc576f, with the grounding limits of issue 13), kept unchanged as the reference every
faster path is checked against (tests/test_engine_fast.py, bench/bench_screen.py) and as
the baseline of the benchmarks ("a fresh Control per patient" is this engine with batches
of one). It grounds the programs' own text, every rule as the author wrote it, and reads statuses through bitmask
projections of holds/2 and fails/2 (see ReferenceEngine._row_rule).

The program's meaning (statuses met / not_met / unknown, verdicts eligible / ineligible /
undetermined, exact under the completion semantics of docs/semantics.md) is defined in
kb/lib/core.lp; this module only runs clingo and reads the answer.
"""

from __future__ import annotations

from collections.abc import Iterable

import clingo

from pyasp_screen.engine.batch import batch_facts, ground_and_solve
from pyasp_screen.engine.results import EngineError, Result
from pyasp_screen.findings.derive import Findings, asp_string
from pyasp_screen.knowledge.kb import KnowledgeBase


class ReferenceEngine:
    """Screens findings against one knowledge base as written. The KB text is read once."""

    def __init__(self, kb: KnowledgeBase):
        self.kb = kb
        self._conditions = [c for crit in kb.criteria for c in (crit.id, *crit.components)]
        self._populations = list(kb.populations)
        self._program = kb.program_text() + "\n" + self._row_rule()
        self._args = kb.clingo_args() + ["--warn=none"]

    # Bits per status mask: clingo integers are 32-bit signed, so 30 bits keep every #sum
    # of distinct powers of two below 2**30.
    MASK_BITS = 30

    def _row_rule(self) -> str:
        """One shown atom per patient carrying all its statuses and verdicts.

        Reading ~70 status/3 atoms per patient through the clingo API costs more than
        grounding them, and so does joining them into one atom (a rule body of ~70 status
        literals per patient was a third of all grounding). Instead, condition number i of
        self._conditions is given the bit 2**(i mod 30) of mask i // 30, and the conditions
        of each status met and not_met are summed into masks:
            row(P, Met0, ..., Metk, NotMet0, ..., NotMetk, V1, ..., Vm, Overall)
        in the order of self._populations for the verdicts. A condition in neither mask is
        unknown (core.lp's status/3 gives exactly one of the three). Nothing is decided by these rules:
        they only project the knowledge base's own holds/2, fails/2, verdict/3 and overall/2.
        """
        w = self.MASK_BITS
        n_masks = max(1, -(-len(self._conditions) // w))
        self._masks = n_masks
        lines = [f"engine_condition_bit({asp_string(c)},{i // w},{2 ** (i % w)})."
                 for i, c in enumerate(self._conditions)]
        # met is holds/2 and not_met is fails/2 (kb/lib/core.lp); status/3 itself is in a
        # program part screening does not ground.
        lines.append(f"engine_mask(K) :- K = 0..{n_masks - 1}.")
        lines.append("engine_status_mask(P,met,K,M) :- patient(P), engine_mask(K),\n"
                     "    M = #sum{ B,C : holds(P,C), engine_condition_bit(C,K,B) }.")
        lines.append("engine_status_mask(P,not_met,K,M) :- patient(P), engine_mask(K),\n"
                     "    M = #sum{ B,C : fails(P,C), engine_condition_bit(C,K,B) }.")
        body = ["patient(P)"]
        body += [f"engine_status_mask(P,met,{k},M{k})" for k in range(n_masks)]
        body += [f"engine_status_mask(P,not_met,{k},N{k})" for k in range(n_masks)]
        body += [f"verdict(P,{pop},V{i})" for i, pop in enumerate(self._populations)]
        body.append("overall(P,O)")
        head = ",".join(["P"] + [f"M{k}" for k in range(n_masks)] + [f"N{k}" for k in range(n_masks)]
                        + [f"V{i}" for i in range(len(self._populations))] + ["O"])
        return ("\n".join(lines) + f"\n#show.\n#show contradiction/2.\n"
                f"#show row({head}) : {', '.join(body)}.\n")

    def _statuses(self, masks: list[str]) -> dict[str, str]:
        """Statuses from the row's met and not_met masks (as text), in condition order."""
        statuses = dict.fromkeys(self._conditions, "unknown")
        conditions, w, k = self._conditions, self.MASK_BITS, self._masks
        for offset, status in ((0, "met"), (k, "not_met")):
            for j in range(k):
                m = int(masks[offset + j])
                while m:
                    low = m & -m
                    statuses[conditions[j * w + low.bit_length() - 1]] = status
                    m ^= low
        return statuses

    def solve_program(self, facts: str, vocabulary_facts: dict[str, list[str]] | None = None,
                      patients: int = 1) -> list[clingo.Symbol]:
        """Ground and solve the KB with ``facts``; the shown symbols of the one model.

        ``vocabulary_facts`` (predicate name -> facts without the final period, every one of
        the vocabulary's arity) are more facts, passed by the faster route of _term_facts.
        ``patients``: how many patients the facts are of, which sets the grounding's time
        and memory limits (:mod:`pyasp_screen.knowledge.grounding`). Raises EngineError, or
        GroundingStopped past a limit.
        """
        return ground_and_solve(self._args, self._program, facts, vocabulary_facts,
                                lambda model: model.symbols(shown=True), kb_name=self.kb.name, patients=patients)

    def screen(self, batch: Iterable[Findings]) -> list[Result]:
        """Screen a batch of patients in one grounding; results in input order (a patient
        is its position in the batch: :func:`.batch.batch_facts`)."""
        batch = list(batch)
        if not batch:
            return []
        ids = [f.patient for f in batch]
        if len(set(ids)) != len(ids):
            raise ValueError("patient IDs must be unique within a batch")
        results = [Result(pid) for pid in ids]
        # Findings the findings stage wrote take the faster route of batch.term_facts; the
        # facts of hand-made findings are added as program text.
        _, text, groups = batch_facts(batch)
        symbols = self.solve_program(text, groups, patients=len(batch))
        n_masks, n_pop = 2 * self._masks, len(self._populations)
        for sym in symbols:
            if sym.name == "contradiction":
                args = sym.arguments
                results[args[0].number].contradictions.append(args[1].string)
                continue
            if sym.name != "row":
                continue  # an atom the knowledge base's own #show adds: not a status
            # row(Slot,Met0,...,NotMet0,...,V1,...,Vm,O): integers and plain names only.
            fields = str(sym)[4:-1].split(",")
            res = results[int(fields[0])]
            res.statuses = self._statuses(fields[1:1 + n_masks])
            res.verdicts = dict(zip(self._populations, fields[1 + n_masks:1 + n_masks + n_pop]))
            res.overall = fields[-1]
        missing = [r.patient for r in results if not r.statuses]
        if missing:
            raise EngineError(f"knowledge base {self.kb.name} gave no statuses for {missing[0]}")
        return results

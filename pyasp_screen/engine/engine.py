"""Stages 3 and 4 of the pipeline: ground the knowledge base with findings, and solve.

Patients are independent, so many are screened in one clingo program: every fact carries
its patient, the knowledge base is grounded once per batch, and the one stable model of
the (stratified) program holds every patient's statuses and verdicts. One Control per
batch instead of one per patient is what makes cohort screening fast (bench/bench_screen.py
compares both).

What a batch costs, and what this module does about it (profiles in docs/scale.md):

- the program is the knowledge base *specialised to its static facts*
  (:mod:`pyasp_screen.knowledge.specialise`, once per knowledge base and process): static
  atoms are facts, rules are instantiated for the static bindings they join with, and
  conditional literals over static conditions (all_of/2, any_of/2, a population's criteria)
  are plain conjunctions;
- statuses are read straight from the shown holds/2, fails/2, verdict/3 and overall/2 atoms,
  as clingo's integer symbol handles decoded once per distinct atom: a patient is its batch
  position, so the same atoms recur batch after batch;
- findings reach clingo as terms, not program text (:meth:`Engine._term_facts`).

The reference engine (:mod:`.reference`) grounds the programs as written; both give the same
results (tests/test_engine_fast.py, and bench/bench_screen.py on every run).

The program's meaning (statuses met / not_met / unknown, verdicts eligible / ineligible /
undetermined, exact under the completion semantics of docs/semantics.md) is defined in
kb/lib/core.lp; this module only runs clingo and reads the answer.
"""

from __future__ import annotations

from collections.abc import Iterable

import clingo

from pyasp_screen.engine.batch import VOCABULARY_ARITY, batch_facts, ground_and_solve, is_vocabulary_fact
from pyasp_screen.engine.results import EngineError, GroundingStopped, Result
from pyasp_screen.findings.derive import Findings
from pyasp_screen.knowledge.grounding import GroundingLimit
from pyasp_screen.knowledge.kb import KnowledgeBase
from pyasp_screen.knowledge.specialise import Specialised, Unsupported, specialise

__all__ = ["VOCABULARY_ARITY", "Engine", "EngineError", "GroundingStopped", "Result"]


# What screening reads: statuses (holds/2, fails/2) and verdicts. A contradiction (a
# knowledge-base error, core.lp's contradiction/2) is a condition both held and failed.
SHOWN = [("holds", 2), ("fails", 2), ("verdict", 3), ("overall", 2)]
SHOW = "\n#show.\n" + "".join(f"#show {n}/{a}.\n" for n, a in SHOWN)

# (program text, clingo arguments) -> Specialised, or the reason it is not specialised
_SPECIALISED: dict[tuple[str, tuple[str, ...]], Specialised | str] = {}
# (program, conditions) -> {symbol handle: decoded atom}: handles are process-wide
_DECODED: dict[tuple, dict] = {}

_MET, _NOT_MET, _VERDICT, _OVERALL, _OTHER = range(5)
_VERDICTS = frozenset({"eligible", "ineligible", "undetermined"})


def specialised(kb: KnowledgeBase) -> Specialised | str:
    """The knowledge base specialised to its static facts (cached per program and
    parameters), or the reason it could not be (then the programs are used as written)."""
    key = (kb.program_text(), tuple(kb.clingo_args()))
    if key not in _SPECIALISED:
        if len(_SPECIALISED) > 16:
            _SPECIALISED.clear()
        roots = [(n, a) for n, a in VOCABULARY_ARITY.items()]
        try:
            # Rules whose atoms screening never reads (contradiction/1 of every condition,
            # windows of codes no criterion compares) are dropped where that is exact: plain
            # Datalog, stratified among themselves (specialise._unread_rules_dropped). Any
            # other such rule is kept: it may ground without end, and the engine must then
            # stop at the grounding limit as the programs as written do
            # (tests/test_hardening.py). For CT1190B, 132 of 467 rules, 9% of clingo's
            # instructions a batch (docs/scale.md, "Fourth pass").
            _SPECIALISED[key] = specialise(key[0], key[1], roots, needed=SHOWN, kb_name=kb.name)
        except (Unsupported, RuntimeError, GroundingLimit) as e:
            _SPECIALISED[key] = f"not specialised: {e}"
    return _SPECIALISED[key]


def compiled(kbs: Iterable[KnowledgeBase]) -> dict:
    """The specialised programs of these knowledge bases (:func:`specialised`), as a mapping
    to hand to another process's :func:`adopt_compiled`: a worker process that adopts them
    does not specialise again (about half a CPU-second for CT1190B, paid by every worker
    that replaces one)."""
    out = {}
    for kb in kbs:
        specialised(kb)
        key = (kb.program_text(), tuple(kb.clingo_args()))
        out[key] = _SPECIALISED[key]
    return out


def adopt_compiled(programs: dict) -> None:
    """Use specialised programs made by :func:`compiled` (in another process) in this one."""
    _SPECIALISED.update(programs)


class Engine:
    """Screens findings against one knowledge base. The KB is compiled once per process."""

    def __init__(self, kb: KnowledgeBase):
        self.kb = kb
        self._conditions = [c for crit in kb.criteria for c in (crit.id, *crit.components)]
        self._index = {c: i for i, c in enumerate(self._conditions)}
        self._populations = list(kb.populations)
        self._pop_index = {p: i for i, p in enumerate(self._populations)}
        # A condition ID as clingo prints it, a quoted string with its escapes.
        self._quoted = {str(clingo.String(c)): c for c in self._conditions}
        self._args = kb.clingo_args() + ["--warn=none"]
        spec = specialised(kb)
        self.specialised = spec if isinstance(spec, Specialised) else None
        self.not_specialised = spec if isinstance(spec, str) else None
        self._as_written = kb.program_text() + SHOW
        self._program = (spec.text + spec.shown(SHOWN)) if self.specialised else self._as_written
        key = (self._program, tuple(self._conditions), tuple(self._populations))
        if key not in _DECODED and len(_DECODED) > 8:
            _DECODED.clear()
        self._decoded = _DECODED.setdefault(key, {})  # symbol handle (or Symbol) -> decoded atom
        # A split predicate of one argument (the patient): what its atoms stand for.
        self._by_name: dict[str, tuple] = {}
        for (name, arity), (orig, orig_arity, fixed) in (spec.origins.items() if self.specialised else ()):
            if arity == 1 and len(fixed) == orig_arity - 1 and 0 not in dict(fixed):
                args = [clingo.Number(0)] + [v for _, v in sorted(fixed)]
                kind, _, payload = self._decode_original(orig, args)
                self._by_name[name] = (kind, payload)

    def solve_program(self, facts: str, vocabulary_facts: dict[str, list[str]] | None = None,
                      program: str | None = None, patients: int = 1) -> tuple[list, object]:
        """Ground and solve the KB with ``facts``; (keys, symbols) of the one model's shown
        atoms, keys being clingo's symbol handles where the clingo module exposes them.

        ``vocabulary_facts`` (predicate name -> facts without the final period, every one of
        the vocabulary's arity) are more facts, passed by the faster route of _term_facts.
        ``patients``: how many patients the facts are of, which sets the grounding's time
        and memory limits (:mod:`pyasp_screen.knowledge.grounding`). Raises EngineError, or
        GroundingStopped past a limit.
        """
        def read(model: clingo.Model) -> tuple[list, object]:
            symbols = model.symbols(shown=True)
            raw = getattr(symbols, "_p_symbols", None)  # clingo's handles, read in one call
            return (list(raw) if raw is not None else list(symbols)), symbols

        return ground_and_solve(self._args, program or self._program, facts, vocabulary_facts, read,
                                kb_name=self.kb.name, patients=patients)

    def _decode(self, sym: clingo.Symbol) -> tuple:
        """(kind, slot, payload) of a shown atom: kind _MET/_NOT_MET with (condition ID,
        status), _VERDICT with (population index, verdict), _OVERALL with the verdict;
        _OTHER for an atom screening does not read.

        Read from the atom's text where its shape is one screening knows (a split atom
        ``name(slot)``, ``holds(slot,"ID")``, ``verdict(slot,pop,v)``, ``overall(slot,v)``):
        a new worker meets every atom of every batch position once, and reading a clingo
        Symbol's arguments costs about 20 times more. Any other shape is read from the
        Symbol."""
        text = str(sym)
        paren = text.find("(")
        name, inner = text[:paren], text[paren + 1:-1]
        entry = self._by_name.get(name)
        if entry is not None and inner.isdigit():  # split: name(slot)
            return (entry[0], int(inner), entry[1])
        slot, _, rest = inner.partition(",")
        if slot.isdigit():
            if name == "holds" or name == "fails":
                condition = self._quoted.get(rest)
                if condition is not None:
                    return (_MET, int(slot), (condition, "met")) if name == "holds" else \
                        (_NOT_MET, int(slot), (condition, "not_met"))
            elif name == "verdict":
                pop, _, verdict = rest.partition(",")
                if pop in self._pop_index and verdict in _VERDICTS:
                    return (_VERDICT, int(slot), (self._pop_index[pop], verdict))
            elif name == "overall" and rest in _VERDICTS:
                return (_OVERALL, int(slot), rest)
        if self.specialised:
            return self._decode_original(*self.specialised.original(sym))
        return self._decode_original(sym.name, sym.arguments)

    def _decode_original(self, name: str, args: list) -> tuple:
        if not args or args[0].type != clingo.SymbolType.Number or args[0].number < 0:
            return (_OTHER, 0, None)
        slot = args[0].number
        if name in ("holds", "fails") and len(args) == 2 and args[1].type == clingo.SymbolType.String:
            return (_MET, slot, (args[1].string, "met")) if name == "holds" else \
                (_NOT_MET, slot, (args[1].string, "not_met"))
        if name == "verdict" and len(args) == 3 and args[1].type == clingo.SymbolType.Function:
            p = self._pop_index.get(args[1].name)
            if p is not None and args[2].type == clingo.SymbolType.Function:
                return (_VERDICT, slot, (p, args[2].name))
        if name == "overall" and len(args) == 2 and args[1].type == clingo.SymbolType.Function:
            return (_OVERALL, slot, args[1].name)
        return (_OTHER, slot, None)

    def _facts_are_vocabulary(self, f: Findings) -> bool:
        """Whether every fact of hand-made findings is a vocabulary predicate with its arity
        (the specialised program is exact for those; anything else takes the KB as written)."""
        return all(is_vocabulary_fact(finding.fact) for finding in f.findings)

    def screen(self, batch: Iterable[Findings]) -> list[Result]:
        """Screen a batch of patients in one grounding; results in input order (a patient
        is its position in the batch: :func:`.batch.batch_facts`)."""
        batch = list(batch)
        if not batch:
            return []
        ids = [f.patient for f in batch]
        if len(set(ids)) != len(ids):
            raise ValueError("patient IDs must be unique within a batch")
        # Findings the findings stage wrote take the faster route of batch.term_facts; the
        # facts of hand-made findings are added as program text (and, unless every one is a
        # vocabulary fact, screened by the knowledge base as written).
        handmade, text, groups = batch_facts(batch)
        program = self._as_written if any(not self._facts_are_vocabulary(f) for f in handmade) else None
        keys, symbols = self.solve_program(text, groups, program, patients=len(ids))
        return self._results(ids, keys, symbols)

    def _results(self, ids: list[str], keys: list, symbols) -> list[Result]:
        """Results from the shown atoms (``keys``: their handles, ``symbols``: the atoms)."""
        n = len(ids)
        # One list per kind and slot; a decoded atom is (kind, slot, payload): a status atom's
        # payload is (condition ID, status), a verdict's (population index, verdict).
        lists = tuple([[] for _ in range(n + 1)] for _ in range(_OTHER + 1))
        decoded, decode = self._decoded, self._decode
        if len(decoded) > 1_000_000:  # bounded: atoms of batch positions recur, others may not
            decoded.clear()
        for i, key in enumerate(keys):
            d = decoded.get(key)
            if d is None:
                d = decoded[key] = decode(symbols[i])
            lists[d[0]][d[1] if d[1] < n else n].append(d[2])
        met, not_met, verdicts, overall = lists[_MET], lists[_NOT_MET], lists[_VERDICT], lists[_OVERALL]
        template = dict.fromkeys(self._conditions, "unknown")
        pops = self._populations
        n_pops = len(pops)
        results = []
        for slot, pid in enumerate(ids):
            if len(overall[slot]) != 1 or len({p for p, _ in verdicts[slot]}) != n_pops:
                raise EngineError(f"knowledge base {self.kb.name} gave no statuses for {pid}")
            statuses = template.copy()
            statuses.update(met[slot])
            statuses.update(not_met[slot])  # a contradiction reads not_met, as the reference does
            contradictions = []
            if met[slot] and not_met[slot]:
                contradictions = sorted({c for c, _ in met[slot]} & {c for c, _ in not_met[slot]})
            if len(statuses) != len(template):  # holds/fails of an ID that is no condition
                statuses = {c: statuses[c] for c in template}
            v = dict(verdicts[slot])
            results.append(Result(pid, statuses, {p: v[i] for i, p in enumerate(pops)},
                                  overall[slot][0], contradictions))
        return results

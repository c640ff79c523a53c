"""Cohort summaries and protocol-version comparisons, over screening results.

Plain functions over plain data (the screening results of :mod:`pyasp_screen.engine.screening`):
nothing here decides a criterion. Counts are accumulated one patient at a time, so a cohort
of any size is summarised in memory bounded by the number of criteria.

Terms as in cohort-definition tools (OHDSI ATLAS): *attrition* is the number of patients
remaining after each criterion, in protocol order; a criterion's *gain* is the number of
patients who would be eligible without it (it is their only failing criterion and every
other criterion is met).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from pyasp_screen.engine.engine import Result
from pyasp_screen.engine.screening import Screened
from pyasp_screen.inputs.record import RecordError
from pyasp_screen.knowledge.kb import Criterion, KnowledgeBase

VERDICTS = ("eligible", "ineligible", "undetermined")
#: the attrition step after the last criterion when some patients are ineligible with no
#: criterion failing: the verdict rules beside the criteria (kb/lib/core.lp: a deceased
#: patient is never eligible)
VERDICT_RULE_STEP = "deceased (verdict rule)"
MAX_LISTED_ERRORS = 10_000  # rejected records listed in a summary; every one is in --results


def failing(c: Criterion, status: str) -> bool:
    """Does this status exclude the patient (an inclusion not met, an exclusion met)?"""
    return status == ("not_met" if c.kind == "inclusion" else "met")


def passing(c: Criterion, status: str) -> bool:
    return status == ("met" if c.kind == "inclusion" else "not_met")


def criteria_of(kb: KnowledgeBase, population: str) -> list[Criterion]:
    """The criteria that apply to a population, in protocol order."""
    return [c for c in kb.criteria if c.population in (population, "all")]


@dataclass(kw_only=True)
class _Rejections:
    """Rejected records: all counted, the first MAX_LISTED_ERRORS listed (memory stays
    bounded; every one is in a --results file)."""

    rejected: list[RecordError] = field(default_factory=list)
    rejected_count: int = 0

    def reject(self, e: RecordError) -> None:
        self.rejected_count += 1
        if len(self.rejected) < MAX_LISTED_ERRORS:
            self.rejected.append(e)

    def _merge_rejections(self, other: "_Rejections") -> None:
        for e in other.rejected:
            self.reject(e)
        self.rejected_count += other.rejected_count - len(other.rejected)


@dataclass
class CohortSummary(_Rejections):
    """Counts over a cohort. statuses[criterion][status]; only_failing[population][criterion];
    gain[population][criterion]; attrition[population] = rows of (criterion, excluded at this
    step, remaining, remaining with every criterion so far met)."""

    kb: KnowledgeBase
    screened: int = 0
    overall: Counter = field(default_factory=Counter)
    verdicts: dict[str, Counter] = field(default_factory=dict)
    statuses: dict[str, Counter] = field(default_factory=dict)
    only_failing: dict[str, Counter] = field(default_factory=dict)
    gain: dict[str, Counter] = field(default_factory=dict)
    _excluded_at: dict[str, Counter] = field(default_factory=dict)
    _last_passing: dict[str, Counter] = field(default_factory=dict)
    # population -> patients the verdict rule removes (no criterion failing) who met every
    # criterion: the only ones still "all met so far" when they are removed, after the last
    _rule_all_met: Counter = field(default_factory=Counter)
    _by_population: dict[str, list[Criterion]] | None = None

    def __post_init__(self) -> None:
        for pop in self.kb.populations:
            self.verdicts[pop] = Counter()
            self.only_failing[pop] = Counter()
            self.gain[pop] = Counter()
            self._excluded_at[pop] = Counter()
            self._last_passing[pop] = Counter()
        for c in self.kb.criteria:
            self.statuses[c.id] = Counter()

    def add_row(self, row: dict) -> None:
        """Count one canonical results-file row (pyasp_screen.outputs.stream), as when resuming."""
        if (e := row_error(row)) is not None:
            self.reject(e)
            return
        self.add(Result(row["patient"], dict(row["criteria"]), dict(row["verdicts"]), row["overall"]))

    def merge(self, other: "CohortSummary") -> None:
        """Add the counts of another summary of the same knowledge base (one batch's, say)."""
        self.screened += other.screened
        self.overall.update(other.overall)
        for mine, theirs in ((self.verdicts, other.verdicts), (self.statuses, other.statuses),
                             (self.only_failing, other.only_failing), (self.gain, other.gain),
                             (self._excluded_at, other._excluded_at),
                             (self._last_passing, other._last_passing)):
            for key, counter in theirs.items():
                mine[key].update(counter)
        self._rule_all_met.update(other._rule_all_met)
        self._merge_rejections(other)

    def __getstate__(self) -> dict:
        # A batch's summary travels back from a worker without its knowledge base, which
        # the receiving side already has (merge() does not read it).
        return {k: v for k, v in self.__dict__.items() if k != "kb"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.kb = None

    def _population_criteria(self) -> dict[str, list[Criterion]]:
        if self._by_population is None:
            self._by_population = {pop: criteria_of(self.kb, pop) for pop in self.kb.populations}
        return self._by_population

    def add(self, r: Result) -> None:
        self.screened += 1
        self.overall[r.overall] += 1
        for c in self.kb.criteria:
            self.statuses[c.id][r.statuses.get(c.id, "unknown")] += 1
        for pop, crits in self._population_criteria().items():
            self.verdicts[pop][r.verdicts.get(pop, "undetermined")] += 1
            states = [r.statuses.get(c.id, "unknown") for c in crits]
            fails = [c.id for c, s in zip(crits, states) if failing(c, s)]
            if len(fails) == 1:
                self.only_failing[pop][fails[0]] += 1
                if all(passing(c, s) for c, s in zip(crits, states) if c.id != fails[0]):
                    self.gain[pop][fails[0]] += 1
            # how far the patient goes with every criterion met so far (whatever removes
            # them: a patient stops counting as "all met so far" at the first criterion
            # not met, also one a verdict rule removes later)
            k = 0
            while k < len(crits) and passing(crits[k], states[k]):
                k += 1
            self._last_passing[pop][k] += 1
            # attrition: the first failing criterion removes the patient; an ineligible
            # patient no criterion fails is removed after them by a verdict rule (core.lp:
            # deceased), not counted as remaining to the end
            first = next((c.id for c, s in zip(crits, states) if failing(c, s)), None)
            if first is not None:
                self._excluded_at[pop][first] += 1
            elif r.verdicts.get(pop) == "ineligible":
                self._excluded_at[pop][VERDICT_RULE_STEP] += 1
                self._rule_all_met[pop] += k == len(crits)

    def attrition(self, population: str) -> list[tuple[str, int, int, int]]:
        rows = []
        remaining = self.screened
        crits = criteria_of(self.kb, population)
        passed = Counter(self._last_passing[population])
        settled_remaining = self.screened
        for k, c in enumerate(crits):
            excluded = self._excluded_at[population][c.id]
            remaining -= excluded
            settled_remaining -= passed[k]
            rows.append((c.id, excluded, remaining, settled_remaining))
        after = self._excluded_at[population].get(VERDICT_RULE_STEP, 0)
        if after:
            rows.append((VERDICT_RULE_STEP, after, remaining - after,
                         settled_remaining - self._rule_all_met[population]))
        return rows

    def as_dict(self) -> dict:
        kb = self.kb
        return {
            "screened": self.screened,
            "rejected": self.rejected_count,
            "overall": {v: self.overall.get(v, 0) for v in VERDICTS},
            "populations": {pop: {v: self.verdicts[pop].get(v, 0) for v in VERDICTS} for pop in kb.populations},
            "criteria": [
                {"id": c.id, "population": c.population, "kind": c.kind,
                 **{s: self.statuses[c.id].get(s, 0) for s in ("met", "not_met", "unknown")},
                 "only_failing": {pop: self.only_failing[pop].get(c.id, 0) for pop in kb.populations
                                  if c.population in (pop, "all")},
                 "gain": {pop: self.gain[pop].get(c.id, 0) for pop in kb.populations
                          if c.population in (pop, "all")}}
                for c in kb.criteria],
            "attrition": {pop: [{"criterion": cid, "excluded": ex, "remaining": rem, "all_met_so_far": ok}
                                for cid, ex, rem, ok in self.attrition(pop)] for pop in kb.populations},
            "errors": [{"file": e.file, "patient": e.patient, "field": e.field, "reason": e.reason,
                        "message": str(e)} for e in self.rejected],
        }


def summarize(outcomes: Iterable[Screened | RecordError], kb: KnowledgeBase) -> CohortSummary:
    """Accumulate a cohort summary from a stream of screening outcomes."""
    s = CohortSummary(kb)
    for o in outcomes:
        if isinstance(o, RecordError):
            s.reject(o)
        else:
            s.add(o.result)
    return s


@dataclass
class Change:
    """One patient whose verdict differs between two knowledge bases (or parameter sets)."""

    patient: str
    file: str
    before: dict[str, str]   # scope -> verdict ("overall" and each population)
    after: dict[str, str]
    criteria: list[tuple[str, str, str]]  # (criterion, status before, status after)


def changed_criteria(a: Result, b: Result, kb_a: KnowledgeBase, kb_b: KnowledgeBase) -> list[tuple[str, str, str]]:
    """(criterion, status before, status after) for every criterion whose status differs
    between results a (under kb_a) and b (under kb_b); a criterion one lacks is "absent"."""
    in_a, in_b = set(kb_a.criterion_ids()), set(kb_b.criterion_ids())
    out = []
    for cid in dict.fromkeys(kb_a.criterion_ids() + kb_b.criterion_ids()):
        sa = a.statuses.get(cid, "unknown") if cid in in_a else "absent"
        sb = b.statuses.get(cid, "unknown") if cid in in_b else "absent"
        if sa != sb:
            out.append((cid, sa, sb))
    return out


def row_error(row: dict) -> RecordError | None:
    """The RecordError of a results-file row that reports a rejected record, else None."""
    if not row.get("error"):
        return None
    err = row["error"]
    return RecordError(row["file"], row["patient"], err.get("field"), err["reason"])


@dataclass
class DiffTally(_Rejections):
    """A comparison of two knowledge bases (or parameter sets) over a cohort, accumulated
    one patient at a time: the patients whose verdict changes (with their changed criteria),
    totals per (before, after) overall verdict, the number compared, rejected records.
    Memory grows with the number of *changed* patients only."""

    kb_a: KnowledgeBase
    kb_b: KnowledgeBase
    changes: list[Change] = field(default_factory=list)
    directions: Counter = field(default_factory=Counter)
    compared: int = 0

    def add(self, file: str, a: Result, b: Result) -> None:
        self.compared += 1
        before = {"overall": a.overall, **a.verdicts}
        after = {"overall": b.overall, **b.verdicts}
        self.directions[(before["overall"], after["overall"])] += 1
        if before == after:
            return
        self.changes.append(Change(a.patient, file, before, after, changed_criteria(a, b, self.kb_a, self.kb_b)))

    def add_row(self, row: dict) -> None:
        """Count one canonical diff row of a results file (pyasp_screen.outputs.stream)."""
        if (e := row_error(row)) is not None:
            self.reject(e)
            return
        before, after = dict(row["before"]), dict(row["after"])
        self.compared += 1
        self.directions[(before["overall"], after["overall"])] += 1
        if before != after:
            self.changes.append(Change(row["patient"], row["file"], before, after,
                                       [(c["id"], c["before"], c["after"]) for c in row["changed"]]))

    def merge(self, other: "DiffTally") -> None:
        self.changes.extend(other.changes)
        self.directions.update(other.directions)
        self.compared += other.compared
        self._merge_rejections(other)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("kb_a", "kb_b")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.kb_a = self.kb_b = None


def compare(pairs: Iterator[tuple[Screened, Screened]], kb_a: KnowledgeBase,
            kb_b: KnowledgeBase) -> tuple[list[Change], Counter, int]:
    """Patients whose overall or population verdict changes from A to B, the criteria whose
    status changed for each (a criterion absent from one side reads "absent"), totals per
    direction of the overall verdict, and the number compared."""
    tally = DiffTally(kb_a, kb_b)
    for a, b in pairs:
        tally.add(a.file, a.result, b.result)
    return tally.changes, tally.directions, tally.compared

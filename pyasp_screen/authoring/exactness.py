"""Is every criterion's met / not_met exact? A brute-force check on generated records.

The engine decides unknown data three-valued, in one stable model (kb/lib/core.lp). That is
exact under the completion semantics of docs/SPEC.md (a condition is met if it is met in every
completion of the record, not met if in none) only if the rules keep the library's contract:
monotone criteria, and absent facts read as unknown, never as false (docs/semantics.md). This
module checks it for any knowledge base, as tests/test_semantics.py does by hand for CT1190B:

1. From the compiled knowledge base (what its criteria read and compare), a *slot table*: every
   finding it reads with alternative values on and beside each threshold (quantities), each value
   (qualitative tests, diagnoses, assessments, items, sex), histories of events and medications.
2. Random records: every slot at one of its alternatives, one to three slots unknown; and each
   slot unknown on its own.
3. Each record is screened, and so is every completion (each unknown slot at each of its
   alternatives). A criterion or component the record meets must be met in every completion,
   one it does not meet in none (*sound*); and when every completion agrees, the record must say
   so (*complete*), unless an unknown slot's alternatives are only a sample (medication
   histories), which cannot prove completeness. Verdicts are compared the same way.

A disagreement is reported at the criterion's (or the component's first rule's) file:line with
the record that shows it: the usual causes are a rule that reads an unknown finding as absent
(``not diagnosis_yes(P,x)`` without a closed list) and a criterion that reads one finding in
both directions. Records whose completions contradict themselves (holds and fails at once: an
inconsistent record) are left out. The slot table is built from what the rules read, so a
finding read only in a way it does not model (a date compared with another) can leave a
completion unknown; such records are skipped for that condition, never reported.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field

from pyasp_screen.engine.engine import Engine, EngineError
from pyasp_screen.findings.derive import Finding, Findings, asp_string
from pyasp_screen.knowledge.confine import Problem
from pyasp_screen.knowledge.kb import NAME_ARGUMENT, KnowledgeBase

RECORDS = 60              # random records, besides one per slot left unknown alone
MAX_COMPLETIONS = 400     # per record
MEDICATION_HISTORIES = 8  # sampled alternatives of the medication history
SEARCH_SECONDS = 60.0     # for the solver's search of one knowledge base (a bound, rarely reached)


@dataclass
class Slot:
    """A finding the knowledge base reads: alternative values (each a list of facts with {P}
    for the patient), the facts that say it is unknown, and whether the alternatives are every
    value class (exhaustive) or a sample."""

    name: str
    alternatives: list[list[str]]
    unknown: list[str] = field(default_factory=list)
    exhaustive: bool = True

    def read_as(self) -> set[tuple[str, str]]:
        """The (fact predicate, name) pairs a condition reading this slot reads (as in
        Condition.reads; "*" for any name)."""
        out = set()
        for fact in (f for alt in self.alternatives for f in alt):
            pred, _, args = fact.partition("(")
            parts = args.rstrip(")").split(",")
            pos = NAME_ARGUMENT.get(pred)
            out.add((pred, "" if pos is None else parts[pos] if pos < len(parts) else "*"))
        if self.name == "medications":
            out.add(("course", "*"))
        return out


def reads_slot(reads: frozenset[tuple[str, str]], slot: Slot) -> bool:
    """Does a condition reading ``reads`` read this slot?"""
    provided = slot.read_as()
    return any(p == q and (n == m or "*" in (n, m)) for p, n in reads for q, m in provided)


def _grid_values(thresholds: set[int]) -> list[int]:
    return sorted({g for t in thresholds for g in (2 * t - 1, 2 * t, 2 * t + 1) if g >= 0})


def slot_table(kb: KnowledgeBase, rng: random.Random) -> tuple[list[Slot], list[str]]:
    """(slots, base facts every record has) for a knowledge base, from what it reads."""
    v = kb.vocabulary
    slots: list[Slot] = []
    base = ["patient({P})"]
    reads = kb.reads
    # quantities: every threshold a criterion compares them with
    thresholds: dict[str, set[int]] = {}
    for _, name, _, t in kb.checks:
        thresholds.setdefault(name, set()).add(t)
    quantity_params = {p.name for p in kb.parameters.values() if p.kind == "quantity" and p.stage == "asp"}
    for c in kb.conditions.values():
        names = {n for pred, n in c.reads if pred == "quantity" and n not in ("*", "")}
        for name in names:
            for p in c.parameters & quantity_params:
                thresholds.setdefault(name, set()).add(int(kb.parameters[p].asp_constant()))
    def qualitative(name: str) -> bool:
        o = v.observations.get(name)
        return o is not None and o.qualitative

    for name in sorted(n for n in reads.get("quantity", ()) if n not in ("*", "") and not qualitative(n)):
        values = _grid_values(thresholds.get(name, set())) or [0, 2000, 200000]
        # taken on the screening date or on the last day of its look-back (a criterion may
        # count other dates from the day of the result it reads)
        days = sorted({0, kb.windows.get(name, 0), kb.history_windows.get(name, 0)})
        slots.append(Slot(f"quantity:{name}", [[f"quantity({{P}},{name},{g},{g},{d})"] for g in values for d in days]))
    for name in sorted(n for n in reads.get("qualitative", ()) if n not in ("*", "") and qualitative(n)):
        slots.append(Slot(f"qualitative:{name}", [[f"qualitative({{P}},{name},{r},0)"]
                                                   for r in ("positive", "negative")]))
    # diagnoses, the list closed, an unknown one said so; a history's length with its diagnosis
    diagnoses = set(kb.diagnoses) | {n for n in reads.get("diagnosis", ()) if n not in ("*", "")}
    durations = {n for n in reads.get("disease_duration_months", ()) if n not in ("*", "")}
    months = sorted({kb.parameters[p].value for p in kb.compared.get("disease_duration_months", ())})
    if diagnoses and kb.reads_fact("complete", "diagnoses"):
        base.append("complete({P},diagnoses)")
    closed = "complete({P},diagnoses)" in base
    for d in sorted(diagnoses):
        unknown = [f"diagnosis_unknown({{P}},{d})"] if closed else []
        if d in durations and months:
            alts = [[f"diagnosis({{P}},{d},no)"]]
            alts += [[f"diagnosis({{P}},{d},yes)", f"disease_duration_months({{P}},{d},{m})"]
                     for m in sorted({max(m - 1, 0) for m in months} | set(months))]
            slots.append(Slot(f"diagnosis:{d}", alts, unknown))
        else:
            slots.append(Slot(f"diagnosis:{d}", [[f"diagnosis({{P}},{d},yes)"], [f"diagnosis({{P}},{d},no)"]],
                              unknown))
    for name, spec in v.assessments.items():
        if kb.reads_fact("assessment", name):
            slots.append(Slot(f"assessment:{name}", [[f"assessment({{P}},{name},{x},0)"] for x in spec.values]))
    if kb.reads_fact("sex"):
        slots.append(Slot("sex", [["sex({P},female)"], ["sex({P},male)"]]))
    ages = sorted({kb.parameters[p].value for p in kb.compared.get("age", ())})
    if kb.reads_fact("age"):
        values = sorted({x for a in ages for x in (a - 1, a, a + 1) if x >= 0}) or [40]
        slots.append(Slot("age", [[f"age({{P}},{a})"] for a in values]))
    # item schemes: recorded and closed, each item a slot
    schemes = {n for n in reads.get("item", ()) if n not in ("*", "")}
    for scheme in sorted(schemes):
        items = sorted(kb.scheme_items.get(scheme, ()) or (v.organs if scheme == "organ_involvement" else ()))
        if not items:
            continue
        base.append(f"complete({{P}},{scheme})")
        for item in items:
            slots.append(Slot(f"item:{scheme}:{item}", [[f"item({{P}},{scheme},{item},yes)"],
                                                       [f"item({{P}},{scheme},{item},no)"]],
                              [f"item_unknown({{P}},{scheme},{item})"]))
    if kb.reads_fact("sledai2k_assessed"):
        base.append("sledai2k_assessed({P},0)")
    for scheme, category in v.classification_schemes.items():
        if kb.reads_fact("classification", scheme) and category not in schemes:
            slots.append(Slot(f"classification:{scheme}", [[f"classification({{P}},{scheme},yes)"],
                                                           [f"classification({{P}},{scheme},no)"]]))
    # dated events: none, or one on and just past each number of days the criteria reading
    # them compare (their windows, and sums of two: a window counted from another date)
    for event in sorted(n for n in reads.get("event", ()) if n not in ("*", "")):
        category = kb.event_categories.get(event, f"{event}s")
        windows = {kb.event_windows[event]} if event in kb.event_windows else set()
        for c in kb.conditions.values():
            if ("event", event) in c.reads:
                windows |= {kb.parameters[p].value for p in c.parameters
                            if kb.parameters[p].kind == "integer" and kb.parameters[p].unit == "d"}
        days = {0} | {w + d for w in windows for d in (0, 1)}
        days |= {a + b + d for a in windows for b in windows for d in (0, 1)}
        close = f"complete({{P}},{category})"
        slots.append(Slot(f"event:{event}", [[close]] + [[close, f"event({{P}},{event},{d})"] for d in sorted(days)]))
    # medication histories: a sample (the classes of histories are too many to list)
    drugs = sorted(n for n in reads.get("course", ()) if n not in ("*", ""))
    if drugs and kb.reads_fact("complete", "medications"):
        slots.append(Slot("medications", _histories(kb, drugs, rng), exhaustive=False))
    return slots, base


def _histories(kb: KnowledgeBase, drugs: list[str], rng: random.Random) -> list[list[str]]:
    """Complete medication histories: none, and a sample of one to three courses of the drugs
    the criteria name, on dates and doses around the parameters they compare."""
    v = kb.vocabulary
    per_kg = sorted({int(kb.parameters[p].asp_constant()) for c in kb.conditions.values()
                     if ("gc_dose_per_kg", "") in c.reads for p in c.parameters
                     if kb.parameters[p].kind == "quantity"}) or [1000]
    days = sorted({kb.parameters[p].value for c in kb.conditions.values() if any(r[0] == "course" for r in c.reads)
                   for p in c.parameters if kb.parameters[p].kind == "integer" and kb.parameters[p].unit == "d"})
    span = max(days, default=180) + 30
    out = [["complete({P},medications)"]]
    for _ in range(MEDICATION_HISTORIES):
        facts = ["complete({P},medications)"]
        for k in range(rng.randint(1, 3)):
            drug = rng.choice(drugs)
            start = -rng.choice([span, span // 2, 30, 7])
            end = rng.choice([0, 0, start // 2, -1])
            end = max(end, start)
            facts.append(f"course({{P}},{k},{drug},{rng.choice(['oral', 'iv'])},{start},{end})")
            if drug in v.glucocorticoids:
                g = rng.choice(_grid_values(set(per_kg)))
                facts.append(f"gc_dose_per_kg({{P}},{k},{g},{g})")
            if rng.random() < 0.3:
                facts.append(f"dose_change({{P}},{k},{rng.randint(start, end)})")
        out.append(facts)
    return out


def _findings(facts: list[str], pid: str) -> Findings:
    p = asp_string(pid)
    out = Findings(pid, [Finding(f.replace("{P}", p), "exactness", "") for f in facts])
    out.vocabulary_only = True
    return out


@dataclass
class _Record:
    choice: dict[str, int | None]  # slot -> alternative (None: unknown)


def _facts(slots: dict[str, Slot], base: list[str], choice: dict[str, int | None]) -> list[str]:
    facts = list(base)
    for name, i in choice.items():
        facts += slots[name].unknown if i is None else slots[name].alternatives[i]
    return list(dict.fromkeys(facts))


def _records(slots: list[Slot], rng: random.Random, n: int) -> list[_Record]:
    names = [s.name for s in slots]
    by = {s.name: s for s in slots}

    def random_choice() -> dict[str, int | None]:
        return {s.name: rng.randrange(len(s.alternatives)) for s in slots}

    out = []
    for name in names:  # each slot unknown on its own
        c = random_choice()
        c[name] = None
        out.append(_Record(c))
    for _ in range(n):
        c = random_choice()
        for name in rng.sample(names, min(len(names), rng.randint(1, 3))):
            c[name] = None
        while _count(c, by) > MAX_COMPLETIONS:
            unknown = [k for k, i in c.items() if i is None]
            c[unknown[-1]] = 0
        out.append(_Record(c))
    return out


def _count(choice: dict, slots: dict[str, Slot]) -> int:
    total = 1
    for name, i in choice.items():
        if i is None:
            total *= len(slots[name].alternatives)
    return total


def _completions(choice: dict[str, int | None], slots: dict[str, Slot]):
    unknown = [k for k, i in choice.items() if i is None]
    for values in itertools.product(*(range(len(slots[k].alternatives)) for k in unknown)):
        full = dict(choice)
        full.update(zip(unknown, values))
        yield full


def exactness_problems(kb_dir, records: int = RECORDS, seed: int = 12) -> list[Problem]:
    """The criteria, components and verdicts of a knowledge base whose met / not_met (eligible
    / ineligible) is not exact on generated records, one problem each, at its file:line."""
    from pyasp_screen.knowledge.kb import KBError, load_kb

    try:
        kb = kb_dir if isinstance(kb_dir, KnowledgeBase) else load_kb(kb_dir)
    except KBError as e:
        return [Problem(str(kb_dir), 1, 1, f"cannot be loaded for the exactness check: {e}")]
    return check_exactness(kb, records, seed)


def check_exactness(kb: KnowledgeBase, records: int = RECORDS, seed: int = 12,
                    search_seconds: float = SEARCH_SECONDS) -> list[Problem]:
    """Problems of one compiled knowledge base (its current parameters): random records
    first, then a search by the solver for a record with one finding unknown that breaks
    exactness (:func:`_search`)."""
    rng = random.Random(seed)
    slot_list, base = slot_table(kb, rng)
    if not slot_list:
        return []
    for s in slot_list:
        if s.name == "medications":
            s.alternatives += targeted_histories(kb, slot_list, base, search_seconds / 4)
    slots = {s.name: s for s in slot_list}
    judge = _Judge(kb, slots, base)
    batch: list[tuple[_Record, list[dict]]] = []
    size = 0
    for record in _records(slot_list, rng, records):
        fulls = list(_completions(record.choice, slots))
        batch.append((record, fulls))
        size += len(fulls) + 1
        if size > 4000:
            judge(batch)
            batch, size = [], 0
    if batch:
        judge(batch)
    _search(kb, slot_list, base, judge, search_seconds)
    return list(judge.found.values())


class _Judge:
    """Screens records with their completions and records every condition or verdict that is
    not exact (``found``: condition ID or ``population:<ID>`` -> Problem)."""

    def __init__(self, kb: KnowledgeBase, slots: dict[str, Slot], base: list[str]):
        self.kb, self.slots, self.base = kb, slots, base
        self.engine = Engine(kb)
        self.conditions = [cid for c in kb.criteria for cid in (c.id, *c.components)]
        self.parents = {part: c.id for c in kb.criteria for part in c.components}
        self.found: dict[str, Problem] = {}
        # A condition that reads dated lists (events, courses) with results may count days
        # from a result's date (dates.lp): the slot table dates results on two days only, so
        # for it a result's slot is a sample, not every class.
        self.dated = {cid: any(pred in ("event", "course") for pred, _ in c.reads)
                      for cid, c in kb.conditions.items()}

    def exhaustive_for(self, cid: str, unknown: list[str]) -> bool:
        """Are the completions of these unknown slots every value class that matters to cid
        (so that its agreeing completions prove what the record must say)?"""
        cond = self.kb.conditions.get(cid)
        for k in unknown:
            slot = self.slots[k]
            if cond is not None and not reads_slot(cond.reads, slot):
                continue  # cid does not read it: its completions cannot differ for cid
            if not slot.exhaustive or (self.dated.get(cid) and k.startswith(("quantity:", "qualitative:"))):
                return False
        return True

    def population_exhaustive(self, pop: str, unknown: list[str]) -> bool:
        return all(self.exhaustive_for(c.id, unknown) for c in self.kb.criteria if c.population in (pop, "all"))

    def __call__(self, batch: list[tuple[_Record, list[dict]]]) -> set[str]:
        """Judge records (each with its completions); the keys newly found."""
        kb, slots, base, found = self.kb, self.slots, self.base, self.found
        before = set(found)
        findings = []
        for r, (record, fulls) in enumerate(batch):
            findings.append(_findings(_facts(slots, base, record.choice), f"r{r}"))
            findings += [_findings(_facts(slots, base, full), f"r{r}c{i}") for i, full in enumerate(fulls)]
        try:
            results = iter(self.engine.screen(findings))
        except EngineError as e:
            found.setdefault("engine", Problem(str(kb.directory / "manifest.yaml"), 1, 1,
                                               f"the exactness check cannot screen its records: {e}"))
            return set(found) - before
        parents = self.parents
        for record, fulls in batch:
            got = next(results)
            completions = [next(results) for _ in fulls]
            # an inconsistent record (a condition both held and failed) is outside what the
            # semantics speaks of: its contradictory conditions, their criteria and the verdicts
            # are left out for it
            contradictory = set(got.contradictions).union(*(c.contradictions for c in completions))
            contradictory |= {parents[c] for c in contradictory if c in parents}
            unknown = sorted(k for k, i in record.choice.items() if i is None)
            for cid in self.conditions:
                if cid in found or cid in contradictory or parents.get(cid) in contradictory:
                    continue
                seen = {c.statuses.get(cid, "unknown") for c in completions}
                if "unknown" in seen:
                    continue  # the slot table misses something this condition reads
                want = "met" if seen == {"met"} else "not_met" if seen == {"not_met"} else "unknown"
                have = got.statuses.get(cid, "unknown")
                if have == want or (have == "unknown" and not self.exhaustive_for(cid, unknown)):
                    continue
                found[cid] = _problem(kb, cid, have, want, unknown, record, slots)
            for pop in kb.populations:
                key = f"population:{pop}"
                if key in found or contradictory:
                    continue
                seen = {c.verdicts.get(pop) for c in completions}
                if None in seen or "undetermined" in seen:
                    continue
                want = seen.pop() if len(seen) == 1 else "undetermined"
                have = got.verdicts.get(pop)
                if have == want or (have == "undetermined" and not self.population_exhaustive(pop, unknown)):
                    continue
                found[key] = _verdict_problem(kb, pop, have, want, unknown, record, slots)
        return set(found) - before


def _verdict_problem(kb: KnowledgeBase, pop: str, have: str, want: str, unknown: list[str],
                     record: _Record, slots: dict[str, Slot]) -> Problem:
    """A population whose verdict is not exact, at the first criterion of the population that
    reads an unknown finding (else the manifest), naming the criteria that read it."""
    readers = [c for c in kb.criteria if c.population in (pop, "all") and c.id in kb.conditions
               and any(reads_slot(kb.conditions[c.id].reads, slots[k]) for k in unknown)]
    where = next((c.location for c in readers if c.location), None) or (str(kb.directory / "manifest.yaml"), 1, 1)
    who = " and ".join(f"{c.id} ({c.kind})" for c in readers)
    it = "it" if len(unknown) == 1 else "them"
    if readers and have == "undetermined" and want == "ineligible":
        why = (f"{who} read {it} in opposite directions, so every value rules the patient out through one "
               f"of them while neither is decided alone; read {it} in one direction within a population, "
               "or decide those criteria from it together (docs/semantics.md)")
    else:
        why = (f"criteria of this population read a finding in opposite directions{f' ({who})' if who else ''} "
               "(docs/semantics.md)")
    return Problem(*where, f"population {pop}: the verdict is {have} for a record with {_describe(unknown)} "
                   f"unknown, but {_completion_word(want)}: {why}")


# ---------------------------------------------------------------------------------------
# The search: the solver looks for a record that breaks exactness
# ---------------------------------------------------------------------------------------

def _witness_program(kb: KnowledgeBase, slots: list[Slot], base: list[str], k: int) -> str:
    """The knowledge base with a generator of records, for the verdict of one population
    (external xw_pop/1) with one slot unknown (external xw_unknown/1): patient 0 is a record
    with that slot unknown and every other slot at some alternative (xw_pick/2; medication
    histories: the sample and targeted_histories); patients 1..K are its completions (the unknown slot at each of its
    alternatives, everything else as in patient 0). A model is a record whose verdict is
    undetermined although every completion is ineligible: every criterion that does not read
    the unknown slot is met (an exclusion: not met), none that reads it is decided against
    the patient, and in each completion some criterion that reads it is (xw_reader/2, from
    the compiled knowledge base's reads). ``k``: the most alternatives of a slot asked about."""
    lines = ["#show.", "#show xw_pick/2.", f"xw_patient(0..{k}).", "xw_comp(P) :- xw_patient(P), P > 0."]
    for j, s in enumerate(slots):
        lines.append(f"xw_slot({j},{len(s.alternatives)}).")
        for i, alt in enumerate(s.alternatives):
            for fact in alt:
                f = fact.replace("{P}", "P")
                lines.append(f"{f} :- xw_patient(P), xw_pick({j},{i}), not xw_unknown({j}).")
                lines.append(f"{f} :- xw_comp(P), xw_unknown({j}), xw_alt({j},P,{i}).")
        for fact in s.unknown:
            lines.append(f"{fact.replace('{P}', '0')} :- xw_unknown({j}).")
        for c in kb.criteria:
            cond = kb.conditions.get(c.id)
            if cond is not None and reads_slot(cond.reads, s):
                lines.append(f"xw_reader({j},{asp_string(c.id)}).")
    for fact in base:
        lines.append(f"{fact.replace('{P}', 'P')} :- xw_patient(P).")
    lines += [
        "#external xw_unknown(J) : xw_slot(J,_).",
        "#external xw_pop(Pop) : population(Pop).",
        "1 { xw_pick(J,0..N-1) } 1 :- xw_slot(J,N).",
        ":- xw_unknown(J), not xw_pick(J,0).",  # the unknown slot's own pick is immaterial
        "xw_alt(J,P,P-1) :- xw_slot(J,N), xw_comp(P), P <= N.",
        "xw_alt(J,P,N-1) :- xw_slot(J,N), xw_comp(P), P > N.",
        ":- contradiction(_,_).",  # inconsistent records are outside the semantics
        "xw_for(P,C) :- kind(C,inclusion), holds(P,C).",
        "xw_for(P,C) :- kind(C,exclusion), fails(P,C).",
        "xw_against(P,C) :- kind(C,inclusion), fails(P,C).",
        "xw_against(P,C) :- kind(C,exclusion), holds(P,C).",
        "xw_read(C) :- xw_unknown(J), xw_reader(J,C).",
        ":- xw_pop(Pop), applies(C,Pop), not xw_read(C), not xw_for(0,C).",
        ":- xw_pop(Pop), applies(C,Pop), xw_read(C), xw_against(0,C).",
        ":- xw_pop(Pop), not verdict(0,Pop,undetermined).",
        ":- xw_pop(Pop), xw_comp(P), not verdict(P,Pop,ineligible).",
    ]
    return kb.program_text() + "\n" + "\n".join(lines) + "\n"


def _history_days(kb: KnowledgeBase) -> list[tuple[int, int, int]]:
    """(start, end, day of a dose change) of a generated course, in days from screening,
    around the numbers of days the criteria reading courses compare (as _histories)."""
    days = sorted({kb.parameters[p].value for c in kb.conditions.values() if any(r[0] == "course" for r in c.reads)
                   for p in c.parameters if kb.parameters[p].kind == "integer" and kb.parameters[p].unit == "d"})
    span = max(days, default=180) + 30
    out = set()
    for start in (-span, -(span // 2), -7):
        for end in (0, start // 2):
            out.add((start, end, (start + end) // 2))
    return sorted(out)


def _history_generator(kb: KnowledgeBase) -> list[str]:
    """A complete medication history chosen by the solver: at most one course of each drug the
    criteria name (its index the drug's), on a few spans around the numbers of days they
    compare, with a glucocorticoid dose per kg and a dose change or none. One patient only:
    criteria joining two courses ground every pair of possible courses."""
    v = kb.vocabulary
    drugs = sorted(n for n in kb.reads.get("course", ()) if n not in ("*", ""))
    per_kg = sorted({int(kb.parameters[p].asp_constant()) for c in kb.conditions.values()
                     if ("gc_dose_per_kg", "") in c.reads for p in c.parameters
                     if kb.parameters[p].kind == "quantity"}) or [1000]
    lines = ["complete(0,medications).", "xw_route(oral;iv)."]
    lines += [f"xw_drug({k},{d})." for k, d in enumerate(drugs)]
    lines += [f"xw_gc({d})." for d in drugs if d in v.glucocorticoids]
    lines += [f"xw_gcgrid({g})." for g in _grid_values(set(per_kg))]
    lines += [f"xw_se({a},{b},{c})." for a, b, c in _history_days(kb)]
    lines += [
        "{ xw_course(K,D,R,S,E) : xw_route(R), xw_se(S,E,_) } 1 :- xw_drug(K,D).",
        "1 { xw_gcdose(K,G) : xw_gcgrid(G) } 1 :- xw_course(K,D,_,_,_), xw_gc(D).",
        "{ xw_dose_change(K,M) : xw_se(S,E,M) } 1 :- xw_course(K,_,_,S,E).",
        ":- xw_dose_change(K,M), xw_course(K,_,_,S,E), not xw_se(S,E,M).",
        "course(0,K,D,R,S,E) :- xw_course(K,D,R,S,E).",
        "gc_dose_per_kg(0,K,G,G) :- xw_gcdose(K,G).",
        "dose_change(0,K,M) :- xw_dose_change(K,M).",
    ]
    return lines


def _history_facts(atoms) -> list[str]:
    """The facts of a generated medication history, from the model's xw_ atoms."""
    out = ["complete({P},medications)"]
    for a in atoms:
        args = ",".join(str(x) for x in a.arguments)
        if a.name == "xw_course":
            out.append(f"course({{P}},{args})")
        elif a.name == "xw_gcdose":
            out.append(f"gc_dose_per_kg({{P}},{args},{a.arguments[1]})")
        elif a.name == "xw_dose_change":
            out.append(f"dose_change({{P}},{args})")
    return out


def targeted_histories(kb: KnowledgeBase, slots: list[Slot], base: list[str], seconds: float) -> list[list[str]]:
    """Medication histories under which the criteria of each population that read courses
    are decided for the patient as far as they can be together (a refractory-disease
    criterion asking for four long courses at once, which a random sample of one to three
    courses never holds): for each population, clingo chooses one patient's record (every
    slot and a history) maximising how many of those criteria are met (exclusions: not met),
    within ``seconds`` in all. Without them, no record of the search could be eligible, and a
    verdict that is not exact would never show."""
    import time

    import clingo

    medications = next((s for s in slots if s.name == "medications"), None)
    if medications is None:
        return []
    deadline = time.monotonic() + seconds
    lines = ["#show.", "#show xw_course/5.", "#show xw_gcdose/2.", "#show xw_dose_change/2."]
    lines += _history_generator(kb)
    for j, s in enumerate(slots):
        if s is medications:
            continue
        lines.append(f"1 {{ xw_pick({j},0..{len(s.alternatives) - 1}) }} 1.")
        for i, alt in enumerate(s.alternatives):
            lines += [f"{f.replace('{P}', '0')} :- xw_pick({j},{i})." for f in alt]
    lines += [f"{f.replace('{P}', '0')}." for f in base]
    lines += [":- contradiction(_,_).",
              "xw_for(C) :- kind(C,inclusion), holds(0,C).", "xw_for(C) :- kind(C,exclusion), fails(0,C).",
              "#external xw_pop(Pop) : population(Pop).",
              "#maximize { 1@2,C : xw_for(C), xw_course_reader(C), applies(C,Pop), xw_pop(Pop) }.",
              "#minimize { 1@1,K : xw_course(K,_,_,_,_) }."]  # and as few courses as that takes
    lines += [f"xw_course_reader({asp_string(c.id)})." for c in kb.criteria
              if c.id in kb.conditions and any(pred == "course" for pred, _ in kb.conditions[c.id].reads)]
    ctl = clingo.Control(kb.clingo_args() + ["--warn=none"])
    try:
        ctl.add("base", [], kb.program_text() + "\n" + "\n".join(lines) + "\n")
        ctl.ground([("base", [])])
    except RuntimeError:
        return []
    out, on = [], None
    for pop in kb.populations:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        if on is not None:
            ctl.assign_external(on, False)
        on = clingo.Function("xw_pop", [clingo.Function(pop)])
        ctl.assign_external(on, True)
        best: list = []
        with ctl.solve(yield_=True, async_=True) as handle:
            while True:
                handle.resume()
                if not handle.wait(max(0.0, deadline - time.monotonic())):
                    handle.cancel()
                    break
                m = handle.model()
                if m is None:
                    break
                best = list(m.symbols(shown=True))
        if best:
            out.append(_history_facts(best))
    return out


def _search(kb: KnowledgeBase, slots: list[Slot], base: list[str], judge: _Judge, seconds: float) -> None:
    """Let clingo look, for each population and each finding that two or more of its criteria
    read, for a record with that finding unknown whose verdict is undetermined although every
    completion is ineligible (criteria reading it in opposite directions, docs/semantics.md).
    Random records rarely show one: every other criterion of the population must be met at
    once, and the unknown finding sit where the criteria reading it disagree; the solver
    finds one whenever one exists among these records. A record found is judged like a random
    one, so every problem reported is shown by a record the engine screened."""
    import time

    import clingo

    deadline = time.monotonic() + seconds
    questions = []
    for pop in kb.populations:
        if f"population:{pop}" in judge.found:
            continue
        applies = [c for c in kb.criteria if c.population in (pop, "all") and c.id in kb.conditions]
        for j, s in enumerate(slots):
            readers = [c for c in applies if reads_slot(kb.conditions[c.id].reads, s)]
            if s.name != "medications" and len(readers) >= 2 and judge.population_exhaustive(pop, [s.name]):
                questions.append((pop, j))
    if not questions:
        return
    ctl = clingo.Control(kb.clingo_args() + ["--warn=none"])
    try:
        ctl.add("base", [], _witness_program(kb, slots, base, max(len(slots[j].alternatives) for _, j in questions)))
        ctl.ground([("base", [])])
    except RuntimeError:
        return  # the random records were screened; the engine's own error is reported there
    by_name = {x.name: x for x in slots}
    on: list = []
    for pop, j in questions:
        if f"population:{pop}" in judge.found:
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            return
        for atom in on:
            ctl.assign_external(atom, False)
        on = [clingo.Function("xw_pop", [clingo.Function(pop)]), clingo.Function("xw_unknown", [clingo.Number(j)])]
        for atom in on:
            ctl.assign_external(atom, True)
        with ctl.solve(yield_=True, async_=True) as handle:
            handle.resume()
            if not handle.wait(left):
                handle.cancel()
                return
            m = handle.model()
            atoms = list(m.symbols(shown=True)) if m is not None else None
        if atoms is None:
            continue  # no such record
        choice: dict[str, int | None] = {}
        for a in atoms:
            if a.name == "xw_pick":
                choice[slots[a.arguments[0].number].name] = a.arguments[1].number
        choice[slots[j].name] = None
        judge([(_Record(choice), list(_completions(choice, by_name)))])


def _completion_word(want: str) -> str:
    return ("every completion of the unknown findings gives " + want if want != "undetermined"
            else "its completions differ")


def _describe(unknown: list[str]) -> str:
    return ", ".join(u.replace(":", " ") for u in unknown) or "nothing"


def _problem(kb: KnowledgeBase, cid: str, have: str, want: str, unknown: list[str], record: _Record,
             slots: dict[str, Slot]) -> Problem:
    crit = next((c for c in kb.criteria if c.id == cid), None)
    cond = kb.conditions.get(cid)
    where = crit.location if crit and crit.location else (cond.rules[0] if cond and cond.rules else None)
    where = where or (str(kb.directory / "manifest.yaml"), 1, 1)
    if have != "unknown":
        why = (f"{cid} is {have} for a record with {_describe(unknown)} unknown, but some value of "
               f"{'it' if len(unknown) == 1 else 'them'} makes it {('not met' if have == 'met' else 'met')}: "
               "a rule reads an unknown finding as absent or false (decide only from recorded values, or "
               "from a list the record declares complete: docs/semantics.md)")
    else:
        why = (f"{cid} stays unknown for a record with {_describe(unknown)} unknown, although every value "
               f"of {'it' if len(unknown) == 1 else 'them'} makes it {want.replace('_', ' ')}: the "
               "criterion is not monotone in that finding (it reads it in both directions); split it "
               "or decide it from the finding directly")
    return Problem(*where, f"not exact: {why}")


def slot_summary(kb: KnowledgeBase) -> dict[str, int]:
    """How many alternatives each slot of a knowledge base has (for docs and debugging)."""
    slots, _ = slot_table(kb, random.Random(0))
    return {s.name: len(s.alternatives) for s in slots}



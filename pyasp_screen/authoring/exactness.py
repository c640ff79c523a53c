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
from pyasp_screen.knowledge.kb import KnowledgeBase

RECORDS = 60              # random records, besides one per slot left unknown alone
MAX_COMPLETIONS = 400     # per record
MEDICATION_HISTORIES = 8  # sampled alternatives of the medication history


@dataclass
class Slot:
    """A finding the knowledge base reads: alternative values (each a list of facts with {P}
    for the patient), the facts that say it is unknown, and whether the alternatives are every
    value class (exhaustive) or a sample."""

    name: str
    alternatives: list[list[str]]
    unknown: list[str] = field(default_factory=list)
    exhaustive: bool = True


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
        days = sorted({0, kb.windows.get(name, 0)})
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


def check_exactness(kb: KnowledgeBase, records: int = RECORDS, seed: int = 12) -> list[Problem]:
    rng = random.Random(seed)
    slot_list, base = slot_table(kb, rng)
    if not slot_list:
        return []
    slots = {s.name: s for s in slot_list}
    engine = Engine(kb)
    conditions = [cid for c in kb.criteria for cid in (c.id, *c.components)]
    found: dict[str, Problem] = {}
    batch: list[tuple[_Record, list[dict]]] = []
    size = 0
    for record in _records(slot_list, rng, records):
        fulls = list(_completions(record.choice, slots))
        batch.append((record, fulls))
        size += len(fulls) + 1
        if size > 4000:
            _judge(kb, engine, slots, base, batch, conditions, found)
            batch, size = [], 0
    if batch:
        _judge(kb, engine, slots, base, batch, conditions, found)
    return list(found.values())


def _judge(kb, engine, slots, base, batch, conditions, found) -> None:
    findings = []
    for r, (record, fulls) in enumerate(batch):
        findings.append(_findings(_facts(slots, base, record.choice), f"r{r}"))
        findings += [_findings(_facts(slots, base, full), f"r{r}c{i}") for i, full in enumerate(fulls)]
    try:
        results = iter(engine.screen(findings))
    except EngineError as e:
        found.setdefault("engine", Problem(str(kb.directory / "manifest.yaml"), 1, 1,
                                           f"the exactness check cannot screen its records: {e}"))
        return
    parents = {part: c.id for c in kb.criteria for part in c.components}
    # A condition that reads dated lists (events, courses) with results may count days from a
    # result's date (dates.lp): the slot table dates results on two days only, so for it a
    # result's slot is a sample, not every class.
    dated = {cid: any(pred in ("event", "course") for pred, _ in c.reads) for cid, c in kb.conditions.items()}

    def exhaustive_for(cid: str, unknown: list[str]) -> bool:
        return all(slots[k].exhaustive and not (dated.get(cid) and k.startswith(("quantity:", "qualitative:")))
                   for k in unknown)

    for record, fulls in batch:
        got = next(results)
        completions = [next(results) for _ in fulls]
        # an inconsistent record (a condition both held and failed) is outside what the
        # semantics speaks of: its contradictory conditions, their criteria and the verdicts
        # are left out for it
        contradictory = set(got.contradictions).union(*(c.contradictions for c in completions))
        contradictory |= {parents[c] for c in contradictory if c in parents}
        unknown = sorted(k for k, i in record.choice.items() if i is None)
        for cid in conditions:
            if cid in found or cid in contradictory or parents.get(cid) in contradictory:
                continue
            seen = {c.statuses.get(cid, "unknown") for c in completions}
            if "unknown" in seen:
                continue  # the slot table misses something this condition reads
            want = "met" if seen == {"met"} else "not_met" if seen == {"not_met"} else "unknown"
            have = got.statuses.get(cid, "unknown")
            if have == want or (have == "unknown" and not exhaustive_for(cid, unknown)):
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
            complete_enough = all(exhaustive_for(c.id, unknown) for c in kb.criteria
                                  if c.population in (pop, "all"))
            if have == want or (have == "undetermined" and not complete_enough):
                continue
            m = kb.directory / "manifest.yaml"
            found[key] = Problem(str(m), 1, 1, f"population {pop}: the verdict is {have} for a record with "
                                 f"{_describe(unknown)} unknown, but {_completion_word(want)}: criteria of "
                                 "this population read a finding in opposite directions (docs/semantics.md)")


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



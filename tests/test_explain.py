"""The explanation engine agrees with a brute-force oracle on small records.

The oracle is plain Python over the engine's screen function: it screens the record with
every subset of its known findings (and, for missing data, every subset of its unknown
findings with every combination of their values) and applies the definitions of
docs/SPEC.md literally. `explain` must report exactly the subset-minimal sets: each
one sufficient (or contrastive, or settling), each one minimal, none missing.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oracle import SLOTS
from pyasp_screen.engine.engine import Engine
from pyasp_screen.explain.explainer import (Explainer, Hypothesis, Slot, _category_members, _group_labels, _slot_of, explain_scope,
                                  smallest_minimal_sets, unit_facts, units_of)
from pyasp_screen.findings.derive import Finding, Findings, asp_string, derive
from pyasp_screen.knowledge.kb import load_kb
from pyasp_screen.inputs.files import load_file

KB = load_kb("ct1190b")
ENGINE = Engine(KB)
CASES = Path(__file__).resolve().parent.parent / "kb" / "ct1190b" / "cases"
SCOPES = ["overall", "sle", "ssc"]


def facts_of(text: str, pid: str) -> list[str]:
    return [f.strip() for f in text.replace("{P}", asp_string(pid)).split(". ") if f.strip()]


def record_findings(known: dict[str, int], pid: str = "p") -> Findings:
    out = Findings(pid, [Finding(f"patient({asp_string(pid)})", "patient", "patient")])
    for slot, choice in known.items():
        for fact in facts_of(SLOTS[slot][choice], pid):
            fact = fact.rstrip(".")
            out.findings.append(Finding(fact, slot, f"{slot}={choice}", (f"group:{slot}",)))
    return out


def catalogue(slots: list[str], pid: str = "p") -> dict[str, Slot]:
    out = {}
    for s in slots:
        key = _slot_of(facts_of(SLOTS[s][0], pid)[0].rstrip("."))
        out[key] = Slot(key, s, [Hypothesis(key, f"{s}={i}", tuple(f.rstrip(".") for f in facts_of(alt, pid)), i)
                                 for i, alt in enumerate(SLOTS[s])])
    return out


def verdicts_of(batch: list[Findings]) -> list[dict[str, str]]:
    results = ENGINE.screen(batch)
    return [{"overall": r.overall, **r.verdicts} for r in results]


def minimal(sets: list[frozenset]) -> set[frozenset]:
    return {s for s in sets if not any(t < s for t in sets)}


def brute_force(known: dict[str, int], unknown: list[str]):
    """Sufficient reasons, contrastive sets and missing-data sets by enumeration."""
    names = sorted(known)
    subsets = [frozenset(c) for k in range(len(names) + 1) for c in itertools.combinations(names, k)]
    batch = [record_findings({n: known[n] for n in s}, f"s{i}") for i, s in enumerate(subsets)]
    by_subset = dict(zip(subsets, verdicts_of(batch)))
    full = by_subset[frozenset(names)]
    out = {}
    for scope in SCOPES:
        v = full[scope]
        if v in ("eligible", "ineligible"):
            settles = [s for s in subsets if by_subset[s][scope] == v]
            contrastive = [frozenset(names) - s for s in subsets if by_subset[s][scope] != v]
            out[scope] = ("settled", minimal(settles), minimal(contrastive))
        else:
            # every subset of unknown slots, every value combination, all known findings kept
            missing = {}
            combos, keys = [], []
            for k in range(len(unknown) + 1):
                for w in itertools.combinations(unknown, k):
                    for values in itertools.product(*(range(len(SLOTS[u])) for u in w)):
                        combos.append({**known, **dict(zip(w, values))})
                        keys.append(frozenset(w))
            results = verdicts_of([record_findings(c, f"m{i}") for i, c in enumerate(combos)])
            for goal in ("ineligible", "eligible"):
                reach = {key for key, r in zip(keys, results) if r[scope] == goal}
                missing[goal] = minimal(sorted(reach, key=len))
            out[scope] = ("undetermined", missing)
    return full, out


def explained(known: dict[str, int], unknown: list[str]):
    findings = record_findings(known)
    ex = Explainer(KB, findings, slots=catalogue(sorted(known) + unknown))
    v = ex.verdict()
    label = {u.key: u.key.removeprefix("group:") for u in ex.units}
    slot_name = {key: s.label for key, s in ex.slots.items()}
    out = {}
    for scope in SCOPES:
        e = explain_scope(ex, scope, v[scope], max_results=1000)
        assert e.complete
        units = {u.text: label[u.key] for u in ex.units}
        if v[scope] in ("eligible", "ineligible"):
            axps = {frozenset(units[t] for t in r.findings) for r in e.sufficient_reasons}
            cxps = {frozenset(units[t] for t in r.findings) for r in e.near_misses}
            out[scope] = ("settled", axps, cxps)
        else:
            out[scope] = ("undetermined", {g: {frozenset(r.findings) for r in rs} for g, rs in e.missing.items()})
            useless = set(e.useless)
            relevant = set().union(*[s for rs in out[scope][1].values() for s in rs]) if e.missing else set()
            assert useless == set(_group_labels(ex, [k for k in ex.unknown_slots if slot_name[k] not in relevant]))
    return v, out


@st.composite
def small_records(draw):
    names = sorted(SLOTS)
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=7, unique=True))
    n_unknown = draw(st.integers(0, min(3, len(chosen) - 1)))
    unknown = chosen[:n_unknown]
    known = {s: draw(st.integers(0, len(SLOTS[s]) - 1)) for s in chosen[n_unknown:]}
    return known, unknown


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_records())
def test_explanations_match_brute_force(record):
    known, unknown = record
    full, want = brute_force(known, unknown)
    got_verdicts, got = explained(known, unknown)
    assert got_verdicts == full
    assert got == want


def test_an_ineligible_patient_has_its_failing_lab_as_a_reason_and_near_miss():
    known = {"anc": 0, "hb": 4, "medications": 2}  # ANC 0.9995 just below 1.0
    full, want = brute_force(known, [])
    _, got = explained(known, [])
    assert got == want
    assert frozenset({"anc"}) in got["sle"][1] and frozenset({"anc"}) in got["sle"][2]


def test_smallest_minimal_sets_on_a_known_family():
    # holds iff the set contains {0,1} or {2} or {1,3,4}: minimal sets exactly those, by size
    family = [{0, 1}, {2}, {1, 3, 4}]
    found, _, complete = smallest_minimal_sets(5, lambda s: any(f <= s for f in family), most=10)
    assert complete and [set(f) for f in found] == [{2}, {0, 1}, {1, 3, 4}]
    first, _, complete = smallest_minimal_sets(5, lambda s: any(f <= s for f in family), most=1)
    assert not complete and [set(f) for f in first] == [{2}]
    three, _, complete = smallest_minimal_sets(5, lambda s: any(f <= s for f in family), most=3)
    assert complete and len(three) == 3  # exactly --max of them: not "more exist"


@pytest.mark.parametrize("name", ["sle-in-7b-not-met", "sle-in-7d-unknown", "ssc-ex-1-met"])
def test_example_patients_explanations_are_sufficient_minimal_and_settle(name):
    """On real example patients: every reported reason settles the verdict, and dropping any
    finding from it does not (checked by screening, independently of the explainer)."""
    from pyasp_screen.explain.explainer import explain

    findings = derive(next(load_file(CASES / f"{name}.yaml")).record, KB)
    ex, scopes = explain(KB, findings, max_results=5)
    base = findings.findings[0]
    # The structure of the findings (which units a closed-world declaration covers) is part
    # of the question, not of the answer: taken from the explainer, then brute-forced.
    units = units_of(findings)
    members = _category_members(units)
    index = {u.text: i for i, u in enumerate(units)}
    for e in scopes:
        for r in e.sufficient_reasons:
            def screen_with(texts):
                on = {index[t] for t in texts}
                facts = [Finding(x, "x", "x") for x in unit_facts(units, members, on)]
                res = ENGINE.screen([Findings(findings.patient, [base] + facts)])[0]
                return res.overall if e.scope == "overall" else res.verdicts[e.scope]
            assert screen_with(r.findings) == e.verdict
            for t in r.findings:
                assert screen_with([x for x in r.findings if x != t]) != e.verdict


@pytest.mark.parametrize("pid", ["SLE-V", "LVEF-T", "V", "T", "ELIGIBLE", 'A"B\\V'])
def test_any_patient_id_gives_the_same_explanation(pid):
    """The patient id is data: letters such as V or T (the names of the rule variables) or
    quotes in it must not change what is explained (a substitution into rule text once did)."""
    import msgspec

    record = next(load_file(CASES / "sle-in-7b-not-met.yaml")).record
    renamed = msgspec.structs.replace(record, id=pid)
    base = [explain_scope(ex, s, ex.verdict()[s]) for ex in [Explainer(KB, derive(record, KB))] for s in ("overall", "sle")]
    other = [explain_scope(ex, s, ex.verdict()[s]) for ex in [Explainer(KB, derive(renamed, KB))] for s in ("overall", "sle")]
    for a, b in zip(base, other):
        assert [r.findings for r in b.sufficient_reasons] == [r.findings for r in a.sufficient_reasons] != []
        assert [r.findings for r in b.near_misses] == [r.findings for r in a.near_misses]


SCORE_BOUNDS = [(n, 2) for n in ("sledai2k_lo", "sledai2k_hi", "sle2019_lo", "sle2019_hi", "ssc2013_lo", "ssc2013_hi")]


def _as_written(findings_facts: list[str], pid: str, signatures=None) -> set[str]:
    """The score bounds of the knowledge base as written, grounded on plain facts (no
    specialising, no externals): the reference for Explainer.atoms."""
    import clingo

    from pyasp_screen.knowledge.kb import KB_PARTS

    ctl = clingo.Control(KB.clingo_args() + ["--warn=none"])
    ctl.add("base", [], KB.program_text() + "\n" + f"patient({pid}).\n" + "".join(f"{f}.\n" for f in findings_facts))
    ctl.ground(KB_PARTS)
    out: set[str] = set()
    wanted = signatures or SCORE_BOUNDS
    ctl.solve(on_model=lambda m: out.update(str(a) for a in m.symbols(atoms=True)
                                            if (a.name, len(a.arguments)) in wanted))
    return out


@pytest.mark.parametrize("name", sorted(p.stem for p in CASES.glob("*.yaml") if not p.stem.endswith(".expected")
                                        and "sledai2k:" in p.read_text())[::4])
def test_score_bounds_are_those_of_the_program_as_written(name):
    """The per-patient program drops what no status or verdict reads (among it the bounds
    of SLEDAI-2K, which criteria compare through sledai2k_at_least/below), so
    Explainer.atoms reads score bounds from a program of its own: with every finding known,
    with about half of them, and with a hypothetical value set, they are the bounds of the
    knowledge base as written on the same facts."""
    findings = derive(next(load_file(CASES / f"{name}.yaml")).record, KB)
    ex = Explainer(KB, findings)
    every = range(len(ex.units))
    half = [i for i in every if i % 2 == 0]
    pick = next((j for j, h in enumerate(ex.hyps) if h.slot.startswith("item:")), None)
    for known, picks in ((None, []), (half, []), (half, [pick] if pick is not None else [])):
        facts = unit_facts(ex.units, ex.members, every if known is None else known)
        facts += [f for j in picks for f in ex.hyps[j].facts]
        got = {str(a) for a in ex.atoms(SCORE_BOUNDS, known, picks)}
        assert got == _as_written(facts, ex.pid), (name, known, picks)
    # statuses (the status part) come from the per-patient program, as written too
    statuses = {str(a) for a in ex.atoms([("status", 3)])}
    assert len(statuses) >= len(KB.criteria) and statuses == _as_written(
        unit_facts(ex.units, ex.members, every), ex.pid, [("status", 3)])


def test_the_per_patient_program_grounds_no_rule_its_questions_do_not_read():
    """The speed this buys (docs/scale.md, fifth pass): for a patient with SLEDAI-2K
    descriptors, no atom of the bounds' sums (one a possible total) nor of the contradiction
    checks is in the per-patient program, while its statuses are."""
    name = next(p for p in sorted(CASES.glob("*.yaml")) if not p.stem.endswith(".expected")
                and "arthritis" in p.read_text())
    findings = derive(next(load_file(name)).record, KB)
    ex = Explainer(KB, findings)
    assert any(u.slot and u.slot.startswith("item:sledai2k") for u in ex.units), name
    for sig in (("sledai2k_lo", 2), ("sledai2k_hi", 2), ("contradiction", 2)):
        assert not list(ex.ctl.symbolic_atoms.by_signature(*sig)), sig
    assert list(ex.ctl.symbolic_atoms.by_signature("status", 3))
    assert ex.atoms([("sledai2k_lo", 2)]), "the bounds are still there for who asks"

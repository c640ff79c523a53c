"""The engine's statuses and verdicts agree with the completion semantics of SPEC.md.

The engine decides unknown data three-valued in one stable model (kb/lib/core.lp); the
oracle (tests/oracle.py) enumerates every completion of a small record and applies the
definitions literally. They must agree on every criterion, component and verdict.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oracle import SLOTS, as_findings, oracle
from pyasp_screen.engine.engine import Engine
from pyasp_screen.knowledge.kb import load_kb

KB = load_kb("ct1190b")
ENGINE = Engine(KB)


def assert_agrees(assignment, engine=ENGINE):
    got = engine.screen([as_findings(assignment, "p")])[0]
    want = oracle(engine, assignment)
    unknown = sorted(s for s, c in assignment.items() if c is None)
    assert got.contradictions == [], got.contradictions
    for cond, status in want.statuses.items():
        assert got.statuses[cond] == status, f"{cond} with unknown {unknown}"
    assert got.verdicts == want.verdicts, f"verdicts with unknown {unknown}"
    assert got.overall == want.overall


@st.composite
def small_records(draw, max_unknown=3):
    slots = sorted(SLOTS)
    unknown = draw(st.sets(st.sampled_from(slots), max_size=max_unknown))
    return {s: None if s in unknown else draw(st.integers(0, len(SLOTS[s]) - 1)) for s in slots}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_records())
def test_engine_agrees_with_brute_force_completions(assignment):
    assert_agrees(assignment)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_records(max_unknown=3), st.sampled_from(["either", "both"]),
       st.sampled_from(["true", "false"]))
def test_agreement_holds_under_other_parameters(assignment, coag, organs):
    kb = KB.with_parameters({"sle_coagulation_rule": coag, "sle_organs_from_sledai": organs})
    assert_agrees(assignment, Engine(kb))


def test_everything_unknown_but_one_population_is_decided_by_one_finding():
    # All known and eligible-looking except the medication history: SLE hinges on it.
    assignment = {s: len(SLOTS[s]) - 1 for s in SLOTS}
    assignment["medications"] = None
    assert_agrees(assignment)


@pytest.mark.parametrize("slot", sorted(SLOTS))
def test_each_slot_unknown_alone(slot):
    """Every finding left unknown on its own, the others at their last alternative."""
    assignment = {s: len(SLOTS[s]) - 1 for s in SLOTS}
    assignment[slot] = None
    assert_agrees(assignment)

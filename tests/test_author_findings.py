"""What a new protocol author found hard (/work/coord/author-report-1.md, findings 6 to 10), on
copies of the knowledge base they wrote (tests/data/authored/nct07432334):

6. `check` reports, at file:line, the mistakes that leave a criterion unknown for every patient;
7. `test` names the criteria behind a verdict that differs and says what the cases cover;
8. a parameter used through a helper rule is linked to its criterion (`params`), and `check`
   reports one the rules use that leads to no criterion;
9. a SLEDAI-2K total its descriptors contradict is a record error, not silently scored;
10. criteria in protocol order; the shared SpO2 parameter speaks of no trial's criterion."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from pyasp_screen.authoring.cases import coverage, run_case, run_cases
from pyasp_screen.authoring.check import check_kb_dir
from pyasp_screen.cli import main
from pyasp_screen.knowledge.kb import load_kb

ROOT = Path(__file__).resolve().parent.parent
AUTHORED = ROOT / "tests" / "data" / "authored" / "nct07432334"


@pytest.fixture
def kb(tmp_path) -> Path:
    out = tmp_path / "nct07432334"
    shutil.copytree(AUTHORED, out)
    return out


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def problems(kb: Path) -> list[str]:
    return [str(p) for p in check_kb_dir(kb, exactness=False)]


def one(found: list[str], pattern: str) -> str:
    hits = [p for p in found if re.search(pattern, p)]
    assert len(hits) == 1, found
    return hits[0]


# -- 6. mistakes that leave a criterion unknown forever ------------------------------------------

def test_a_quantity_checked_without_a_window_is_reported_at_the_check(kb):
    lp = kb / "criteria.lp"
    edit(lp, "window(lvef, echo_window_days).", "% (window removed)")
    p = one(problems(kb), r"no window\(lvef, Days\) is declared")
    at = line_of(lp, 'check("INC-6", lvef')
    assert p.startswith(f"{lp}:{at}:")
    assert "INC-6 stays unknown for every patient" in p


def test_a_result_read_without_a_window_through_current_result_is_reported(kb):
    lp = kb / "criteria.lp"
    edit(lp, "window(pregnancy_test, pregnancy_window_days).", "% (window removed)")
    one(problems(kb), r"criteria\.lp:\d+:\d+: pregnancy_test is read as the most recent result.*no window")


def test_a_part_no_rule_decides_is_reported_at_its_all_of(kb):
    lp = kb / "criteria.lp"
    edit(lp, '("INC-8.ast"; "INC-8.alt"; "INC-8.bilirubin")', '("INC-8.ast"; "INC-8.alt"; "INC-8.bilirubin"; "INC-8.ggt")')
    p = one(problems(kb), "INC-8.ggt is a part of INC-8 but no rule decides it")
    at = line_of(lp, 'all_of("INC-8"')
    assert f":{at}:" in p and "INC-8 can never be met" in p


def test_rules_for_a_component_nothing_lists_are_reported(kb):
    lp = kb / "criteria.lp"
    lp.write_text(lp.read_text() + 'holds(P,"INC-6.echo") :- patient(P).\n')
    p = one(problems(kb), r"rules for INC-6\.echo, but no all_of/any_of lists it as a part")
    assert f":{len(lp.read_text().splitlines())}:" in p


def test_an_item_a_scheme_does_not_declare_is_reported_with_the_closest_one(kb):
    lp = kb / "criteria.lp"
    edit(lp, 'holds(P,"EX-1.organ") :- item_yes(P,organ_involvement,neuropsychiatric).',
         'holds(P,"EX-1.organ") :- item_yes(P,organ_involvement,neuropsychiatry).')
    p = one(problems(kb), "neuropsychiatry is not an item of organ_involvement")
    assert "did you mean neuropsychiatric?" in p


def test_a_scheme_with_no_items_is_reported(kb):
    lp = kb / "criteria.lp"
    lp.write_text(lp.read_text() + 'holds(P,"INC-9") :- item_no(P,nailfold_items,giant_capillaries).\n')
    one(problems(kb), "nailfold_items has no items declared")


def test_the_library_declares_the_organ_systems_for_every_knowledge_base(kb):
    # the author's own scheme_item(organ_involvement, neuropsychiatric) is no longer needed
    lp = kb / "criteria.lp"
    edit(lp, "scheme_item(organ_involvement, neuropsychiatric).", "% (declaration removed)")
    assert problems(kb) == []
    compiled = load_kb(kb)
    assert compiled.scheme_items["organ_involvement"] == frozenset(compiled.vocabulary.organs)
    case = kb / "cases" / "ex1-organ-list-complete.yaml"
    assert "complete: [" in case.read_text() and "organ_involvement" in case.read_text()
    assert run_case(kb, case, {}).passed


def test_case_files_naming_a_missing_component_or_a_bad_parameter_are_reported_by_check(kb):
    exp = kb / "cases" / "inc6-lvef-55.expected.yaml"
    exp.write_text(exp.read_text() + "components: {INC-6.foo: met, INC-8.altt: met}\n"
                   "params: {lvef_min: 555, lvef_minimum: 50}\n")
    found = problems(kb)
    assert one(found, "INC-6.foo: no such component").startswith(f"{exp}:")
    one(found, r"INC-8\.altt: no such component \(did you mean INC-8\.alt[,?]")
    one(found, r"params: lvef_min: 555 % is outside 0-100 %")
    one(found, r"params: lvef_minimum is not a parameter of this knowledge base \(did you mean lvef_min[,?]")


# -- 7. test names the criterion responsible, and reports coverage -------------------------------

def test_a_differing_verdict_names_the_criteria_behind_it(kb):
    exp = kb / "cases" / "inc5-meds-open.expected.yaml"
    exp.write_text("overall: eligible\nverdicts: {sle: eligible}\nstatuses: {INC-1: met}\n")
    result = run_case(kb, kb / "cases" / "inc5-meds-open.yaml", {})
    assert "verdict sle: expected eligible, got undetermined (INC-5 unknown, not in the expectations)" \
        in result.differences
    (kb / "cases" / "inc6-lvef-54-9.expected.yaml").write_text("overall: eligible\nstatuses: {INC-6: not_met}\n")
    result = run_case(kb, kb / "cases" / "inc6-lvef-54-9.yaml", {})
    assert result.differences[0] == "overall: expected eligible, got ineligible (INC-6 not_met)"


def test_coverage_counts_every_status_each_criterion_reached(kb):
    results = run_cases(kb)
    cov = coverage(kb, results)
    assert list(cov.counts)[:3] == ["INC-1", "INC-2", "INC-2.classified"]  # protocol order
    assert sum(cov.counts["INC-6"].values()) == len(results)
    # counted by hand from the cases' expectations: LVEF 54% is the one INC-6 not met
    assert cov.counts["INC-6"]["not_met"] == sum(
        "INC-6: not_met" in p.read_text() for p in (kb / "cases").glob("*.expected.yaml"))
    assert cov.gaps() == {}
    for case in (kb / "cases").glob("inc6-*.yaml"):
        case.unlink()
    cov = coverage(kb, run_cases(kb))
    assert cov.gaps() == {"not_met": ["INC-6"]}  # the empty record still leaves it unknown


def test_the_test_command_prints_coverage(kb):
    r = CliRunner().invoke(main, ["test", str(kb), "--coverage"])
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    assert lines[-1] == "93 passed, 0 failed"
    assert re.search(r"^    INC-6\s+\d+\s+1\s+\d+$", r.output, re.M)
    assert "coverage: every criterion is met, not met and unknown in some example patient" in r.output
    for case in (kb / "cases").glob("ex2-infection*.yaml"):  # the only cases with an infection
        case.unlink()
    r = CliRunner().invoke(main, ["test", str(kb)])
    line = next(x for x in r.output.splitlines() if x.startswith("coverage: no example patient takes "))
    assert line.endswith(" (--coverage for every count)")
    gaps = {}
    for part in line[len("coverage: no example patient takes "):-len(" (--coverage for every count)")].split("; "):
        ids, _, status = part.rpartition(" to ")
        gaps[status] = ids.split(", ")
    assert gaps == {"met": ["EX-2"]}


# -- 8. parameters through helper rules ------------------------------------------------------------

def test_a_parameter_used_through_a_helper_rule_is_linked_without_used_by(kb):
    m = kb / "manifest.yaml"
    text = m.read_text()
    for name in ("sledai_exclude_cns", "antibody_history_days", "antibody_history_as_recorded",
                 "refractory_min_days", "ln_cyc_min_days", "ln_mmf_min_days"):
        at = text.index(f"  {name}:")
        text = text[:at] + re.sub(r"    used_by: \[[^\]]*\]\n", "", text[at:], count=1)
    m.write_text(text)
    compiled = load_kb(kb)
    # sledai_exclude_cns = false is read in sledai_counted/1, a rule dead under the default true
    assert compiled.parameter_uses["sledai_exclude_cns"] == ("INC-3",)
    assert compiled.parameter_uses["antibody_history_days"] == ("INC-4",)
    assert compiled.parameter_uses["refractory_min_days"] == ("INC-5",)
    assert compiled.parameter_uses["telitacicept_is_b_cell"] == ("INC-5",)  # agent_class(telitacicept, b_cell) :- ...
    r = CliRunner().invoke(main, ["params", "--kb", str(kb)])
    assert re.search(r"sledai_exclude_cns.*INC-3", r.output), r.output
    assert problems(kb) == []


def test_a_parameter_the_rules_use_that_leads_to_no_criterion_is_reported(kb):
    lp = kb / "criteria.lp"
    lp.write_text(lp.read_text() + "old_enough(P) :- age(P,A), A >= retired_age.\n")
    m = kb / "manifest.yaml"
    edit(m, "parameters:\n", "parameters:\n  retired_age:\n    kind: integer\n    default: 65\n"
         "    range: [0, 130]\n    unit: a\n    doc: not read by any criterion\n")
    p = one(problems(kb), "parameter retired_age is used here but no criterion's rules lead to this rule")
    assert p.startswith(f"{lp}:{len(lp.read_text().splitlines())}:")


# -- 9. a contradictory SLEDAI-2K record ------------------------------------------------------------

@pytest.mark.parametrize("sledai, why", [
    ("{date: '2026-02-24', total: 12}", "which sum to 0"),  # complete, no descriptor present
    ("{date: '2026-02-24', total: 4, descriptors: {arthritis: true, proteinuria: true}}", "which sum to 8 to"),
])
def test_a_sledai_total_its_descriptors_contradict_is_a_record_error(kb, sledai, why):
    case = kb / "cases" / "inc3-total-only-12.yaml"
    text = case.read_text()
    edit(case, "- {date: '2026-02-24', total: 12}", f"- {sledai}")
    if "total: 12" in sledai:
        edit(case, "complete: [medications, diagnoses]", "complete: [medications, diagnoses, sledai2k_descriptors]")
    result = run_case(kb, case, {})
    assert not result.passed
    assert result.differences[0].startswith("field sledai2k[0].total: SLEDAI-2K total")
    assert "contradicts the SLEDAI-2K descriptors" in result.differences[0] and why in result.differences[0]
    case.write_text(text)
    assert run_case(kb, case, {}).passed  # a total alone, or one its descriptors allow, is read


def test_a_total_its_descriptors_allow_is_read(kb):
    case = kb / "cases" / "inc3-total-only-12.yaml"
    edit(case, "- {date: '2026-02-24', total: 12}",
         "- {date: '2026-02-24', total: 12, descriptors: {arthritis: true, proteinuria: true}}")
    result = run_case(kb, case, {})
    assert result.statuses and not any("contradicts" in d for d in result.differences), result.differences


# -- 10. protocol order; a shared parameter in shared terms ----------------------------------------

def test_criteria_are_in_protocol_order_inclusions_first():
    kb = load_kb(AUTHORED)
    assert [c.id for c in kb.criteria] == [f"INC-{i}" for i in range(1, 10)] + ["EX-1", "EX-2", "EX-3"]
    inc5 = next(c for c in kb.criteria if c.id == "INC-5")
    assert inc5.components[:5] == ("INC-5.standard", "INC-5.standard.glucocorticoid",
                                   "INC-5.standard.hydroxychloroquine", "INC-5.standard.two_agents",
                                   "INC-5.standard.failure")
    assert [c.id for c in load_kb("ct1190b").criteria][9:13] == ["SLE-IN-7d", "SLE-IN-7e", "SSC-IN-1", "SSC-IN-2"]


def test_numbers_in_ids_are_compared_as_numbers(kb):
    lp = kb / "criteria.lp"
    lp.write_text(lp.read_text() + '\ncriterion("INC-10", sle, inclusion).\n'
                  'registry_sentence("INC-10", "Women who are pregnant or breastfeeding.").\n'
                  'check("INC-10", lvef, ge, lvef_min).\n')
    ids = [c.id for c in load_kb(kb).criteria]
    assert ids.index("INC-9") < ids.index("INC-10") < ids.index("EX-1")


def test_the_screen_table_and_the_attrition_follow_protocol_order():
    r = CliRunner().invoke(main, ["screen", str(AUTHORED / "cases" / "eligible-standard.yaml"), "--kb", str(AUTHORED)])
    rows = [line.split()[0] for line in r.output.splitlines() if re.match(r"^(INC|EX)-\d", line)]
    assert rows == [f"INC-{i}" for i in range(1, 10)] + ["EX-1", "EX-2", "EX-3"]
    r = CliRunner().invoke(main, ["cohort", str(AUTHORED / "cases"), "--kb", str(AUTHORED), "--format", "json"])
    import json
    data = json.loads(r.output)
    attrition = next(iter(data["attrition"].values())) if isinstance(data.get("attrition"), dict) else data["attrition"]
    names = [row["criterion"] for row in attrition if isinstance(row, dict) and "criterion" in row]
    assert names[:2] == ["INC-1", "INC-2"] and names.index("INC-9") < names.index("EX-1"), names


def test_the_shared_spo2_parameter_names_no_trials_criterion(kb):
    doc = load_kb("nct07193667").parameters["spo2_unflagged_is_room_air"].doc
    assert "SLE-IN-7e" not in doc and "room air" in doc

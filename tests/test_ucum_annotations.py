"""UCUM annotations (author finding 3): `mL/min/{1.73_m2}`, the unit LOINC and FHIR give an
eGFR, is valid UCUM (an annotation in braces is a unit of 1, UCUM section 2.5, "curly braces")
and parses; a value in plain mL/min is not read as an eGFR (it may be a creatinine clearance);
a decimal point in a unit (`mL/min/1.73/m2`, which UCUM reads as 1 times 73) is refused where a
knowledge base declares a canonical unit. Expected factors are written by hand from UCUM's
definitions (1 L = 1000 mL), not computed by the code under test."""

from __future__ import annotations

import shutil
from fractions import Fraction as F
from pathlib import Path

import pytest

from pyasp_screen.authoring.check import check_kb_dir
from pyasp_screen.findings import units
from pyasp_screen.knowledge.kb import load_kb

AUTHORED = Path(__file__).resolve().parent / "data" / "authored" / "nct07432334"


@pytest.mark.parametrize("unit", ["mL/min/{1.73_m2}", "mL/min{1.73_m2}", "{score}", "{titer}",
                                  "10*3{cells}/uL", "{a}/{b}", "%{vol}", "(mL/min)/{1.73_m2}"])
def test_annotated_units_are_ucum(unit):
    units.check_ucum(unit)  # raises if not


@pytest.mark.parametrize("unit, number", [("mL/min/1.73/m2", "1.73"), ("mL/min/(1.73.m2)", "1.73"),
                                          ("2.5.mg", "2.5")])
def test_a_decimal_number_in_a_unit_is_refused_with_the_reason(unit, number):
    with pytest.raises(units.UnitError) as e:
        units.check_ucum(unit)
    assert f"{number} is {number.replace('.', ' times ')}" in str(e.value)


@pytest.mark.parametrize("unit", ["mL/min/", "{1.73_m2", "mL/zz"])
def test_what_is_not_ucum_stays_refused(unit):
    with pytest.raises(units.UnitError):
        units.check_ucum(unit)


def test_annotations_never_change_a_factor():
    assert units.ucum_factor("mL/min/{1.73_m2}", "mL/min{1.73_m2}") == 1
    assert units.ucum_factor("L/min/{1.73_m2}", "mL/min/{1.73_m2}") == 1000
    assert units.ucum_factor("10*3{cells}/uL", "10*9/L") == 1  # a label of what is counted
    assert units.ucum_factor("{score}", "1") == 1 and units.ucum_factor("1", "{xULN}") == 1


def test_a_value_without_the_annotation_of_the_findings_unit_is_not_read_as_it():
    # plain mL/min may be a Cockcroft-Gault creatinine clearance, not an eGFR per 1.73 m2
    with pytest.raises(units.UnitError) as e:
        units.ucum_factor("mL/min", "mL/min/{1.73_m2}")
    assert "lacks the annotation {1.73_m2}" in str(e.value)


def _egfr_kb(tmp_path: Path, unit: str, workaround: bool) -> Path:
    kb = tmp_path / "nct07432334"
    shutil.copytree(AUTHORED, kb)
    voc = kb / "vocabulary.yaml"
    text = voc.read_text().replace('unit: "mL/min{1.73_m2}"', f'unit: "{unit}"')
    if not workaround:
        text = text.replace('    analyte_units: {"mL/min/{1.73_m2}": "1"}\n', "")
    voc.write_text(text)
    m = kb / "manifest.yaml"
    m.write_text(m.read_text().replace('unit: "mL/min{1.73_m2}"', f'unit: "{unit}"'))
    return kb


def test_a_knowledge_base_may_declare_the_egfr_unit_as_loinc_writes_it(tmp_path):
    kb = _egfr_kb(tmp_path, "mL/min/{1.73_m2}", workaround=False)
    assert [str(p) for p in check_kb_dir(kb, exactness=False)] == []
    egfr = load_kb(kb).vocabulary.observations["egfr"]
    assert units.to_canonical(egfr, F(30), "mL/min/{1.73_m2}") == 30
    assert units.to_canonical(egfr, F(30), "mL/min{1.73_m2}") == 30
    with pytest.raises(units.UnitError):
        units.to_canonical(egfr, F(30), "mL/min")


def test_a_canonical_unit_with_a_decimal_point_is_reported_by_check(tmp_path):
    kb = _egfr_kb(tmp_path, "mL/min/1.73/m2", workaround=False)
    problems = [str(p) for p in check_kb_dir(kb, exactness=False)]
    assert any("vocabulary.yaml" in p and "observations.egfr" in p and "1.73 is 1 times 73" in p
               for p in problems), problems


def test_a_threshold_without_the_annotation_is_in_the_wrong_unit(tmp_path):
    kb = _egfr_kb(tmp_path, "mL/min/{1.73_m2}", workaround=False)
    m = kb / "manifest.yaml"
    m.write_text(m.read_text().replace('unit: "mL/min/{1.73_m2}"', 'unit: "mL/min"'))
    problems = [str(p) for p in check_kb_dir(kb, exactness=False)]
    assert any("egfr_min is in mL/min but egfr is compared in mL/min/{1.73_m2}" in p for p in problems), problems


def test_a_record_with_the_egfr_in_plain_ml_per_min_is_refused_by_field(tmp_path):
    from pyasp_screen.authoring.cases import run_case

    kb = _egfr_kb(tmp_path, "mL/min/{1.73_m2}", workaround=False)
    case = kb / "cases" / "eligible-standard.yaml"
    text = case.read_text()
    assert "unit: 'mL/min{1.73_m2}'" in text
    case.write_text(text.replace("unit: 'mL/min{1.73_m2}'", "unit: 'mL/min/{1.73_m2}'"))
    assert run_case(kb, case, {}).passed
    case.write_text(text.replace("unit: 'mL/min{1.73_m2}'", "unit: mL/min"))
    result = run_case(kb, case, {})
    assert not result.passed
    assert any(d.startswith("field observations[") and ".unit" in d and "lacks the annotation {1.73_m2}" in d
               for d in result.differences), result.differences

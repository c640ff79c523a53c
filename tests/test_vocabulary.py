"""A protocol's own vocabulary: a knowledge base folder declares findings the shared library
lacks (kb/<trial>/vocabulary.yaml, the library's format) and records, FHIR Bundles and
explanations use them with no Python edit; bad declarations are one line naming file, line
and entry; a knowledge base cannot change what a shared name means."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from pyasp_screen.authoring.cases import new_kb
from pyasp_screen.authoring.check import check_kb_dir
from pyasp_screen.engine.screening import screen_records
from pyasp_screen.explain.explainer import explain
from pyasp_screen.findings.derive import derive
from pyasp_screen.inputs.files import load_file
from pyasp_screen.inputs.record import RecordError
from pyasp_screen.knowledge.kb import KBError, load_kb
from pyasp_screen.knowledge.vocabulary import VocabularyError, library, load_vocabulary

SKIN = """\
observations:
  skin_score:
    label: modified Rodnan skin score
    unit: "{score}"
    plausible: [0, 51]
    loinc: ["99999-9"]        # not a real LOINC code: a test of the mapping only
diagnoses:
  digital_ulcer:
    label: digital ulcer
    icd10: ["L98.49"]
assessments:
  skin_progression:
    label: "clinician assessment: skin thickening progressing"
    values: ["yes", "no"]
"""

CRITERIA = """
window(skin_score, lab_window_days).
kb_diagnosis(digital_ulcer).

% ---------------------------------------------------------------------------
% INC-2
% "mRSS >= 15."
% ---------------------------------------------------------------------------
criterion("INC-2", main, inclusion).
registry_sentence("INC-2", "mRSS >= 15.").
check("INC-2", skin_score, ge, skin_min).

% ---------------------------------------------------------------------------
% EX-1
% "Active digital ulcers, or skin thickening not progressing."
% ---------------------------------------------------------------------------
criterion("EX-1", main, exclusion).
registry_sentence("EX-1", "Active digital ulcers, or skin thickening not progressing.").
holds(P,"EX-1") :- diagnosis_yes(P,digital_ulcer).
holds(P,"EX-1") :- assessment(P,skin_progression,no,_).
fails(P,"EX-1") :- diagnosis_no(P,digital_ulcer), assessment(P,skin_progression,yes,_).
"""

PARAM = """  skin_min:
    kind: quantity
    default: 15
    unit: "{score}"
    range: [0, 51]
    doc: Lowest mRSS (INC-2).
"""


@pytest.fixture
def trial(tmp_path) -> Path:
    path = tmp_path / "skin"
    new_kb(path)
    (path / "vocabulary.yaml").write_text(SKIN)
    (path / "criteria.lp").write_text((path / "criteria.lp").read_text() + CRITERIA)
    (path / "protocol.txt").write_text((path / "protocol.txt").read_text()
                                       + "\nmRSS >= 15.\nActive digital ulcers, or skin thickening not progressing.\n")
    manifest = path / "manifest.yaml"
    manifest.write_text(manifest.read_text() + PARAM)
    return path


def record(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "patient.yaml"
    path.write_text("id: P1\nscreening_date: 2026-03-01\n" + textwrap.dedent(body))
    return path


def screen_file(path: Path, kb):
    items = list(load_file(path, vocabulary=kb.vocabulary))
    return list(screen_records(items, kb))[0]


def test_a_knowledge_base_declares_its_own_findings(trial, tmp_path):
    kb = load_kb(trial)
    assert kb.vocabulary.observations["skin_score"].unit == "{score}"
    assert "anc" in kb.vocabulary.observations          # the library's names are still there
    assert "skin_score" not in library().observations   # and the library is unchanged
    assert check_kb_dir(trial) == []
    path = record(tmp_path, """\
        complete: [diagnoses]
        observations:
          - {code: anc, value: 2.0, unit: 10*9/L, date: 2026-02-27}
          - {code: skin_score, value: 15, unit: "{score}", date: 2026-02-27}
        assessments:
          - {name: skin_progression, value: "yes"}
        """)
    result = screen_file(path, kb).result
    assert result.statuses == {"INC-1": "met", "INC-2": "met", "EX-1": "not_met"}
    assert result.overall == "eligible"


def test_the_stock_library_rejects_what_it_does_not_declare(trial, tmp_path):
    path = record(tmp_path, """\
        observations:
          - {code: skin_score, value: 15, unit: "{score}", date: 2026-02-27}
        """)
    out = screen_file(path, load_kb("ct1190b"))
    assert isinstance(out, RecordError) and "unknown observation 'skin_score'" in out.reason


def test_fhir_codes_of_a_knowledge_base_are_mapped(trial, tmp_path):
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "F1", "gender": "female", "birthDate": "1980-01-01"}},
        {"resource": {"resourceType": "Observation", "id": "o1", "status": "final",
                      "code": {"coding": [{"system": "http://loinc.org", "code": "99999-9"}]},
                      "subject": {"reference": "Patient/F1"}, "effectiveDateTime": "2026-02-27",
                      "valueQuantity": {"value": 12, "unit": "{score}", "system": "http://unitsofmeasure.org",
                                        "code": "{score}"}}},
        {"resource": {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/F1"},
                      "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "L98.491"}]},
                      "clinicalStatus": {"coding": [{"code": "active"}]}}}]}
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    kb = load_kb(trial)
    out = screen_file(path, kb)
    assert out.result.statuses["INC-2"] == "not_met"     # 12 < 15, read from LOINC 99999-9
    assert out.result.statuses["EX-1"] == "met"          # L98.491 is a digital ulcer (prefix L98.49)
    stock = list(load_file(path))[0].record                # the library maps neither code
    assert not stock.observations and not stock.diagnoses


def test_explanations_use_the_labels_of_the_knowledge_base(trial, tmp_path):
    kb = load_kb(trial)
    path = record(tmp_path, """\
        complete: [diagnoses]
        observations:
          - {code: anc, value: 2.0, unit: 10*9/L, date: 2026-02-27}
        assessments:
          - {name: skin_progression, value: "yes"}
        """)
    findings = derive(list(load_file(path, vocabulary=kb.vocabulary))[0].record, kb)
    _, scopes = explain(kb, findings, scopes=["overall"])
    reasons = [r for rs in scopes[0].missing.values() for r in rs]
    assert ["modified Rodnan skin score"] in [r.findings for r in reasons]
    values = [v for r in reasons for v in r.values]
    assert "modified Rodnan skin score >= 15" in values, values


def test_an_extending_knowledge_base_inherits_the_vocabulary(trial, tmp_path):
    child = trial.parent / "skin-amendment"
    child.mkdir()
    (child / "manifest.yaml").write_text("name: skin-amendment\nversion: '2'\nextends: skin\n"
                                         "protocol: ../skin/protocol.txt\nprograms: []\n")
    assert "skin_score" in load_kb(child).vocabulary.observations


@pytest.mark.parametrize("text, message", [
    ("observations:\n  skin_score:\n    label: mRSS\n    unti: x\n",
     r"vocabulary.yaml:4: observations.skin_score.unti: unknown key"),
    ("observations:\n  skin_score:\n    label: mRSS\n", r":2: observations.skin_score: a quantity needs unit:"),
    ("observations:\n  Skin-Score:\n    unit: '1'\n", r":2: observations.Skin-Score: a name is lower case"),
    ("observations:\n  x:\n    unit: '1'\n    plausible: [10, 1]\n", r":4: observations.x.plausible: low 10 is above high 1"),
    ("observations:\n  x:\n    unit: '1'\n    loinc: [12345]\n", r"observations.x.loinc: '12345' is not a LOINC code"),
    ("observations:\n  x:\n    kind: qualitative\n    unit: g/L\n", r"observations.x.unit: a qualitative test"),
    ("observations:\n  x:\n    unit: '1'\n    window: -3\n", r"observations.x.window: expected a number of days"),
    ("assessments:\n  x:\n    values: [yes, no]\n", r"assessments.x.values: True is YAML's boolean: quote it"),
    ("assessments:\n  x:\n    label: x\n", r"assessments.x: an assessment needs values"),
    ("diagnoses:\n  x:\n    icd10: [m34]\n", r"diagnoses.x.icd10: 'm34' is not an ICD-10 code"),
    ("findings:\n  x: {}\n", r":1: findings: unknown section"),
    ("organs: [skin]\n", r"organs: only the shared library"),
    ("observations: [a, b]\n", r"observations: expected a mapping"),
    ("observations:\n  x: {unit: '1'\n", r"vocabulary.yaml: malformed YAML"),
    # a knowledge base may not change what a shared name means, nor map a code twice
    ("observations:\n  anc:\n    unit: mg/dL\n",
     r":3: observations.anc.unit: conflicts with .*lib/vocabulary.yaml:\d+: unit is '10\*9/L' there, 'mg/dL' here"),
    ("observations:\n  anc:\n    label: neutrophils\n    unit: 10*9/L\n", r"observations.anc.label: conflicts with"),
    ("observations:\n  neutrophils:\n    unit: 10*9/L\n    loinc: ['751-8']\n",
     r"observations.neutrophils.loinc: loinc 751-8 already maps to anc"),
    ("diagnoses:\n  anc:\n    label: x\n", r"diagnoses.anc: anc is already one of the observations"),
])
def test_bad_declarations_are_one_line_naming_file_line_and_entry(tmp_path, text, message):
    import re

    path = tmp_path / "vocabulary.yaml"
    path.write_text(text)
    with pytest.raises(VocabularyError) as e:
        load_vocabulary([path])
    assert "\n" not in str(e.value) and str(e.value).startswith(str(path))
    assert re.search(message, str(e.value)), str(e.value)


def test_a_knowledge_base_may_add_codes_to_a_shared_name(tmp_path):
    path = tmp_path / "vocabulary.yaml"
    path.write_text("observations:\n  anc:\n    unit: 10*9/L\n    loinc: ['99998-1']\n"
                    "diagnoses:\n  sle:\n    icd10: [M32.9]\n")
    v = load_vocabulary([path])
    assert v.loinc_to_observation["99998-1"] == "anc" and v.loinc_to_observation["751-8"] == "anc"
    assert v.observations["anc"].label == "ANC" and v.diagnosis_from_icd10("M32.9") == "sle"


def test_a_bad_declaration_refuses_the_knowledge_base_and_check_locates_it(trial):
    (trial / "vocabulary.yaml").write_text(SKIN.replace("    plausible: [0, 51]\n", "    plausible: [0, 51]\n    uln: maybe\n"))
    with pytest.raises(KBError, match=r"vocabulary.yaml:6: observations.skin_score.uln: expected true or false"):
        load_kb(trial)
    problems = check_kb_dir(trial)
    assert any(p.file.endswith("vocabulary.yaml") and p.line == 6 for p in problems), [str(p) for p in problems]


def test_check_refuses_a_canonical_unit_that_is_not_ucum(trial):
    (trial / "vocabulary.yaml").write_text(SKIN.replace('unit: "{score}"', "unit: pointz"))
    load_kb(trial)  # loading does not parse units (that needs the UCUM registry); check does
    problems = [p for p in check_kb_dir(trial) if "UCUM" in p.message]
    assert problems and problems[0].file.endswith("vocabulary.yaml") and problems[0].line == 2


def test_a_finding_of_the_knowledge_base_may_declare_its_look_back(trial, tmp_path):
    """window: in vocabulary.yaml stands for the rules' window/2 (here 7 days, not 28)."""
    (trial / "vocabulary.yaml").write_text(SKIN.replace('    plausible: [0, 51]\n', '    plausible: [0, 51]\n    window: 7\n'))
    lp = trial / "criteria.lp"
    lp.write_text(lp.read_text().replace("window(skin_score, lab_window_days).\n", ""))
    kb = load_kb(trial)
    assert kb.windows["skin_score"] == 7
    for date, status in (("2026-02-22", "met"), ("2026-02-21", "unknown")):  # 7 and 8 days before
        path = record(tmp_path, f"""\
            observations:
              - {{code: skin_score, value: 20, unit: "{{score}}", date: {date}}}
            """)
        assert screen_file(path, kb).result.statuses["INC-2"] == status
    assert check_kb_dir(trial) == []

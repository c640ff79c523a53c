"""Questionnaires for what EHRs do not code (issue 11.7), their responses read back, and the
round trip native record -> FHIR (Bundle with QuestionnaireResponses) -> record on every
example patient of every knowledge base."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from pyasp_screen.cli import main
from pyasp_screen.engine.screening import screen_records
from pyasp_screen.inputs import bulk
from pyasp_screen.inputs.fhir import bundle_to_record
from pyasp_screen.inputs.files import load_file
from pyasp_screen.inputs.record import Loaded, RecordError, parse_record
from pyasp_screen.knowledge.kb import load_kb
from pyasp_screen.outputs.questionnaire import kb_questionnaire

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from fhir_translate import native_to_bundle, native_to_resources  # noqa: E402

KBS = ["ct1190b", "ct1190b-amendment1", "nct07193667"]


def links(q: dict) -> set[str]:
    out = set()

    def walk(items):
        for i in items:
            out.add(i["linkId"])
            walk(i.get("item", []))
    walk(q["item"])
    return out


@pytest.mark.parametrize("name", KBS)
def test_the_questionnaire_is_valid_fhir_r4_and_holds_what_has_no_code(name, tmp_path):
    out = tmp_path / "q.json"
    r = CliRunner().invoke(main, ["questionnaire", "--kb", name, "-o", str(out)])
    assert r.exit_code == 0, r.output
    q = json.loads(out.read_text())
    Questionnaire.model_validate(q)  # raises on anything R4 does not allow
    kb = load_kb(name)
    ids = links(q)
    for a in kb.vocabulary.assessments:
        assert (f"assessment.{a}" in ids) == kb.reads_fact("assessment", a), a
    for d in sorted(kb.diagnoses):
        coded = kb.vocabulary.diagnoses[d].snomed or kb.vocabulary.diagnoses[d].icd10
        assert (f"diagnosis.{d}" in ids) == (not coded), d
    for o, kind in kb.vocabulary.observations.items():
        if f"observation.{o}" in ids:
            assert not kind.loinc, f"{o} has a LOINC code: EHRs code it"
    assert "complete.diagnoses" in ids
    if name.startswith("ct1190b"):
        assert {"complete.medications", "complete.transfusions", "complete.growth_factors"} <= ids
        assert {"observation.anti_smith", "observation.igra", "observation.dlco_hb_corrected_pct_predicted",
                "diagnosis.scleroderma_renal_crisis", "sledai2k.arthritis", "organ.renal",
                "classification.eular_acr_2019_sle.item.ana_ge_1_80", "assessment.ssc_subtype"} <= ids
        assert "observation.anc" not in ids  # coded (LOINC 751-8)


def _answer(item: dict) -> dict | None:
    """A plausible answer to one Questionnaire item."""
    t = item["type"]
    if t == "boolean":
        return {"valueBoolean": True}
    if t == "choice":
        return {"valueCoding": item["answerOption"][0]["valueCoding"]}
    if t == "date":
        return {"valueDate": "2026-02-20"}
    if t == "integer":
        return {"valueInteger": 6}
    if t == "quantity":
        unit = item["extension"][0]["valueCoding"]["code"]
        return {"valueQuantity": {"value": 25, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}}
    return None


def _response(q: dict, pid: str, skip=()) -> dict:
    items = []

    def walk(its):
        for i in its:
            if i["type"] == "group":
                walk(i["item"])
            elif i["linkId"] not in skip and not i["linkId"].endswith(".total"):
                a = _answer(i)
                if a is not None:
                    items.append({"linkId": i["linkId"], "answer": [a]})
    walk(q["item"])
    return {"resourceType": "QuestionnaireResponse", "id": "qr1", "questionnaire": q["url"],
            "status": "completed", "subject": {"reference": f"Patient/{pid}"}, "authored": "2026-02-21",
            "item": items}


def test_a_response_to_the_questionnaire_is_read_from_a_bundle_and_a_bulk_export(tmp_path):
    kb = load_kb("ct1190b")
    q = kb_questionnaire(kb)
    qr = _response(q, "P1")
    QuestionnaireResponse.model_validate(qr)
    patient = {"resourceType": "Patient", "id": "P1", "gender": "female", "birthDate": "1990-01-01"}
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": patient}, {"resource": qr}]}
    d = bundle_to_record(bundle, "qr.json", dt.date(2026, 3, 1))
    assert isinstance(d, dict), str(d)
    loaded = parse_record(d, "qr.json")
    assert isinstance(loaded, Loaded), str(loaded)
    r = loaded.record
    assert set(r.complete) >= {"medications", "diagnoses", "transfusions"}
    assert {a.name for a in r.assessments} >= {"hydration_assistance", "ssc_subtype"}
    assert r.sledai2k and r.sledai2k[0].date == dt.date(2026, 2, 20) and r.sledai2k[0].descriptors["arthritis"] is True
    assert r.classification.eular_acr_2019_sle.met is True
    assert r.organ_involvement["renal"] is True
    obs = {o.code: o for o in r.observations}
    assert obs["dlco_hb_corrected_pct_predicted"].value == 25 and obs["anti_smith"].value == "positive"
    assert [x.code for x in r.diagnoses] == ["scleroderma_renal_crisis"]
    [s] = list(screen_records(iter([loaded]), kb))
    assert not isinstance(s, RecordError), str(s)
    # the same resources as a Bulk export
    folder = tmp_path / "exp"
    folder.mkdir()
    (folder / "Patient.ndjson").write_text(json.dumps(patient) + "\n")
    (folder / "QuestionnaireResponse.ndjson").write_text(json.dumps(qr) + "\n")
    [p] = list(bulk.iter_bulk_patients(folder))
    b = bulk.to_record(p, dt.date(2026, 3, 1))
    assert isinstance(b, Loaded), str(b)
    assert b.record.assessments == r.assessments and b.record.sledai2k == r.sledai2k
    assert b.record.observations == r.observations and b.record.complete == r.complete


def test_answers_the_reader_cannot_use_are_named_not_guessed():
    patient = {"resourceType": "Patient", "id": "P1"}
    qr = {"resourceType": "QuestionnaireResponse", "status": "completed", "subject": {"reference": "Patient/P1"},
          "questionnaire": "urn:pyasp-screen:questionnaire/ct1190b", "authored": "2026-02-21",
          "item": [{"linkId": "assessment.hydration_assistance", "answer": [{"valueString": "maybe"}]},
                   {"linkId": "my.own.item", "answer": [{"valueBoolean": True}]},
                   {"linkId": "complete.medications", "answer": [{"valueBoolean": True}]}]}
    other = {"resourceType": "QuestionnaireResponse", "status": "completed", "subject": {"reference": "Patient/P1"},
             "questionnaire": "http://loinc.org/q/44249-1", "item": [{"linkId": "1", "answer": [{"valueInteger": 3}]}]}
    d = bundle_to_record({"resourceType": "Bundle", "type": "collection",
                          "entry": [{"resource": r} for r in (patient, qr, other)]}, "x.json", dt.date(2026, 3, 1))
    notes = "\n".join(d["mapping_notes"])
    assert "assessment.hydration_assistance: 'maybe' is not one of yes, no: not read" in notes
    assert "1 item not read (not a pyasp-screen item): my.own.item" in notes
    assert "answers http://loinc.org/q/44249-1, not a pyasp-screen Questionnaire: not read" in notes
    assert d["complete"] == ["medications"] and "assessments" not in d or d["assessments"] == []


def test_explain_writes_only_the_missing_data_that_could_change_the_verdict(tmp_path):
    case = ROOT / "kb" / "ct1190b" / "cases" / "sle-in-2-unknown.yaml"
    out = tmp_path / "ask.json"
    r = CliRunner().invoke(main, ["explain", str(case), "--questionnaire", str(out)])
    assert r.exit_code == 0, r.output
    q = json.loads(out.read_text())
    Questionnaire.model_validate(q)
    assert links(q) == {"complete", "complete.medications"}
    # Answering it settles the verdict: the FHIR translation of the record, with the answer
    kb = load_kb("ct1190b")
    data = json.loads(json.dumps(yaml.safe_load(case.read_text()), default=str))
    [before] = list(screen_records(iter([parse_record(data, "c")]), kb))
    bundle = native_to_bundle(data)
    pid = data["id"]
    bundle["entry"].append({"resource": _response(q, pid)})
    d = bundle_to_record(bundle, "c.json", dt.date.fromisoformat(data["screening_date"]))
    [after] = list(screen_records(iter([parse_record(d, "c.json")]), kb))
    assert before.result.verdicts["sle"] == "undetermined"
    assert after.result.verdicts["sle"] != "undetermined"


def test_explain_questionnaire_of_a_settled_verdict_asks_nothing(tmp_path):
    out = tmp_path / "ask.json"
    r = CliRunner().invoke(main, ["explain", str(ROOT / "kb/ct1190b/cases/sle-eligible.yaml"), "--questionnaire", str(out)])
    assert r.exit_code == 0, r.output
    q = json.loads(out.read_text())
    Questionnaire.model_validate(q)
    assert q["item"] == [] and "nothing to ask" in q["description"]


def _cases():
    for kbdir in sorted((ROOT / "kb").glob("*/cases")):
        for case in sorted(kbdir.glob("*.yaml")):
            if not case.name.endswith(".expected.yaml"):
                yield kbdir.parent.name, case


def test_native_and_fhir_give_the_same_statuses_on_every_example_patient():
    """native record -> FHIR R4 Bundle (Observation, Condition, MedicationRequest, Procedure,
    MedicationAdministration, QuestionnaireResponse) -> record -> statuses and verdicts."""
    agree, total, diffs = 0, 0, []
    kbs = {name: load_kb(name) for name in KBS}
    for name, case in _cases():
        kb = kbs[name]
        data = yaml.safe_load(case.read_text(encoding="utf-8"))
        native = parse_record(data, case.name)
        assert isinstance(native, Loaded), str(native)
        bundle = native_to_bundle(json.loads(json.dumps(data, default=str)), kb.name)
        d = bundle_to_record(bundle, case.name, native.record.screening_date, kb.vocabulary)
        assert isinstance(d, dict), f"{case.name}: {d}"
        fhir = parse_record(d, case.name)
        assert isinstance(fhir, Loaded), f"{case.name}: {fhir}"
        [a] = list(screen_records(iter([native]), kb))
        [b] = list(screen_records(iter([fhir]), kb))
        total += 1
        if (a.result.statuses, a.result.verdicts, a.result.overall) == (b.result.statuses, b.result.verdicts, b.result.overall):
            agree += 1
        else:
            diffs.append((case.name, {k: (v, b.result.statuses.get(k)) for k, v in a.result.statuses.items()
                                      if b.result.statuses.get(k) != v}))
    assert total >= 170
    assert agree == total, diffs[:5]


def test_the_translation_is_valid_fhir_r4():
    from fhir.resources.R4B.bundle import Bundle

    for name, case in list(_cases())[::9]:
        data = json.loads(json.dumps(yaml.safe_load(case.read_text()), default=str))
        Bundle.model_validate(native_to_bundle(data, name))
        assert native_to_resources(data, name)[0]["resourceType"] == "Patient"


def test_load_file_reads_a_questionnaire_response_in_a_bundle_file(tmp_path):
    case = ROOT / "kb/ct1190b/cases/sle-eligible.yaml"
    data = json.loads(json.dumps(yaml.safe_load(case.read_text()), default=str))
    path = tmp_path / "b.json"
    path.write_text(json.dumps(native_to_bundle(data)))
    [loaded] = list(load_file(path, dt.date(2026, 3, 1)))
    assert isinstance(loaded, Loaded) and loaded.record.sledai2k and loaded.record.complete

"""Tests for pyasp_screen.inputs.fhir: FHIR R4 Bundles -> native records.

Sample data: five Synthea R4 transaction bundles in tests/data/fhir/ (origin, licence and the
expected values below: tests/data/fhir/SOURCE.md). Hand-made bundles are built in this file.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import time
from pathlib import Path

import pytest

from pyasp_screen.inputs import files, record
from pyasp_screen.inputs.fhir import bundle_to_record
from pyasp_screen.inputs.record import Loaded, RecordError
from pyasp_screen.knowledge.vocabulary import library

LOINC_TO_OBSERVATION = library().loinc_to_observation

DATA = Path(__file__).parent / "data" / "fhir"
BUNDLES = sorted(DATA.glob("*.json"))
TOM = DATA / "Tom_Goodwin_e20de9eb-6f2d-4871-a43f-bbede53293ed.json"
UCUM = "http://unitsofmeasure.org"


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def mapped(path: Path, **kw) -> dict:
    result = bundle_to_record(load(path), path.name, **kw)
    assert isinstance(result, dict), str(result)
    return result


def source_table() -> dict[str, dict]:
    """The README table of SOURCE.md: file -> sex, birth date, latest values per LOINC code."""
    rows = {}
    for line in (DATA / "SOURCE.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 6 or not cells[0].endswith(".json"):
            continue
        values = {}
        for part in cells[5].split(";"):
            m = re.fullmatch(r"\s*([\d-]+): ([\d.]+) (\S+) \((\d{4}-\d\d-\d\d)\)\s*", part)
            assert m, part
            values[m[1]] = (float(m[2]), m[3], m[4])
        rows[cells[0]] = {"sex": cells[3], "birth_date": cells[4], "values": values}
    return rows


TABLE = source_table()


def test_sample_data_present():
    assert len(BUNDLES) == 5
    assert sorted(TABLE) == [p.name for p in BUNDLES]


# --- the five Synthea bundles ----------------------------------------------------------------

@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.name.split("_")[0])
def test_bundle_maps_and_validates(path):
    d = mapped(path)
    loaded = record.parse_record(d, str(path))
    assert isinstance(loaded, Loaded), str(loaded)
    rec = loaded.record
    row = TABLE[path.name]
    assert rec.sex == row["sex"]
    assert rec.birth_date == dt.date.fromisoformat(row["birth_date"])
    assert rec.source == f"FHIR R4 Bundle {path.name}"
    assert rec.id == next(e["resource"]["id"] for e in load(path)["entry"]
                          if e["resource"]["resourceType"] == "Patient")
    assert rec.observations and all(o.date <= rec.screening_date for o in rec.observations)


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.name.split("_")[0])
def test_latest_values_of_source_table(path):
    """Every value of the SOURCE.md table is among the mapped results, with its unit, and the
    latest date per vocabulary name is the latest of its LOINC codes."""
    obs = mapped(path)["observations"]
    latest: dict[str, str] = {}
    for code, (value, unit, date) in TABLE[path.name]["values"].items():
        name = LOINC_TO_OBSERVATION[code]
        hits = [o for o in obs if o["code"] == name and o["date"] == date
                and abs(o["value"] - value) <= 0.0005 + 1e-9]
        assert hits, (code, value, date)
        assert hits[0]["unit"] == unit
        latest[name] = max(latest.get(name, ""), date)
    for name, date in latest.items():
        assert max(o["date"] for o in obs if o["code"] == name) == date


def test_tom_goodwin_values():
    d = mapped(TOM)
    assert (d["sex"], d["birth_date"]) == ("male", "1968-04-30")

    def at(name, date):
        [o] = [o for o in d["observations"] if o["code"] == name and o["date"] == date]
        return round(o["value"], 3), o["unit"]

    # Synthea files two creatinine results at the same instant (basic and comprehensive
    # metabolic panels of one encounter): both are kept and the note points them out.
    creatinine = [(round(o["value"], 3), o["unit"]) for o in d["observations"]
                  if o["code"] == "creatinine" and o["date"] == "2020-05-12"]
    assert creatinine == [(1.061, "mg/dL"), (3.417, "mg/dL")]
    assert ("creatinine: 2 different results on 2020-05-12 (1.061 mg/dL, 3.417 mg/dL): all kept,"
            " none is later than the other") in d["mapping_notes"]
    assert at("hb", "2020-05-12") == (14.678, "g/dL")
    assert at("weight", "2020-05-12") == (86.781, "kg")
    assert at("height", "2020-05-12") == (177.021, "cm")
    assert at("alt", "2020-05-12") == (23.278, "U/L")
    assert at("bilirubin_total", "2020-05-12") == (0.119, "mg/dL")
    # all dated results are kept, not only the latest
    assert len([o for o in d["observations"] if o["code"] == "creatinine"]) == 4
    assert "creatinine: 4 results from LOINC 38483-4 (4); latest 2020-05-12" in d["mapping_notes"]


def test_repeated_result_counted_once():
    # Michele_Wolf files creatinine 0.538 mg/dL of 2016-04-03 under two encounters.
    d = mapped(DATA / "Michele_Wolf_9fd25274-3a7d-43d4-87af-a03849074b5a.json")
    assert len([o for o in d["observations"]
                if o["code"] == "creatinine" and o["date"] == "2016-04-03"]) == 1
    assert ("creatinine: 1 repeated result (same day, value and unit) counted once"
            in d["mapping_notes"])


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.name.split("_")[0])
def test_notes_not_found_and_counts(path):
    d = mapped(path)
    notes = d["mapping_notes"]
    [missing] = [n for n in notes if n.startswith("not found: ")]
    names = missing.removeprefix("not found: ").split(", ")
    assert {"anc", "inr", "spo2", "aptt", "pt", "ana"} <= set(names)
    assert "creatinine" not in names and "hb" not in names
    n_obs = sum(e["resource"]["resourceType"] == "Observation" for e in load(path)["entry"])
    [unused] = [n for n in notes if "not used by any criterion" in n]
    repeats = sum(int(m[1]) for n in notes if (m := re.search(r": (\d+) repeated result", n)))
    assert not any(n.startswith("skipped") for n in notes)
    assert int(unused.split()[0]) + len(d["observations"]) + repeats == n_obs
    assert any(n.startswith("diagnoses mapped: ") for n in notes)
    assert any(n.startswith("drugs read: ") for n in notes)
    assert any(re.fullmatch(r"\d+ Conditions? not mapped to a vocabulary diagnosis.*", n)
               for n in notes)
    assert not any("\u200b" in n for n in notes)
    assert not any("\u200b" in (o.get("display") or "") for o in d["observations"])


def test_lvef_present_where_source_says_none():
    # SOURCE.md's prose says no LVEF; Martina_Murazik has two 10230-1 results (see its note).
    d = mapped(DATA / "Martina_Murazik_9e4fc9b4-aaad-4bcf-a24a-d665f3aa99ec.json")
    lvef = [o for o in d["observations"] if o["code"] == "lvef"]
    assert [(o["date"], o["unit"]) for o in lvef] == [("2020-06-15", "%")] * 2


def test_screening_date_latest_or_given():
    d = mapped(TOM)
    assert d["screening_date"] == "2020-06-02"  # the simvastatin MedicationRequest
    assert any(n.startswith("screening date taken as the latest clinical date in the resources: 2020-06-02")
               for n in d["mapping_notes"])
    d = mapped(TOM, screening_date=dt.date(2020, 5, 20))
    assert d["screening_date"] == "2020-05-20"
    assert not any(n.startswith("screening date taken") for n in d["mapping_notes"])


def test_load_file_reads_a_bundle():
    [result] = list(files.load_file(TOM))
    assert isinstance(result, Loaded), str(result)
    assert result.record.sex == "male"


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.name.split("_")[0])
def test_timing(path):
    data = load(path)
    bundle_to_record(data, path.name)  # first call imports the models
    start = time.perf_counter()
    bundle_to_record(data, path.name)
    assert time.perf_counter() - start < 2.0


# --- broken bundles --------------------------------------------------------------------------

def first_index(bundle: dict, rt: str, has: str | None = None) -> int:
    return next(i for i, e in enumerate(bundle["entry"]) if e["resource"]["resourceType"] == rt
                and (has is None or has in e["resource"]))


def test_bad_value_is_a_record_error():
    bundle = load(TOM)
    i = first_index(bundle, "Observation", "valueQuantity")
    bundle["entry"][i]["resource"]["valueQuantity"]["value"] = "abc"
    err = bundle_to_record(bundle, "tom.json")
    assert isinstance(err, RecordError)
    assert err.field == f"entry[{i}].resource.valueQuantity.value"
    assert err.patient == "da2c7b0a-791a-4b8f-9a30-dc3d8cf1ec75"
    assert "abc" in err.reason and "\n" not in str(err)


def test_entry_not_an_object():
    bundle = load(TOM)
    bundle["entry"][3] = 5
    err = bundle_to_record(bundle, "tom.json")
    assert isinstance(err, RecordError)
    assert err.field == "entry[3]" and "object" in err.reason


@pytest.mark.parametrize("change, field", [
    (lambda b: b["entry"][5]["resource"].update(resourceType="Foo"),
     "entry[5].resource.resourceType"),
    (lambda b: b["entry"][5]["resource"].update(effectiveDateTime="2020-13-45"),
     "entry[5].resource.effectiveDateTime"),
    (lambda b: b["entry"][5]["resource"].pop("status"), "entry[5].resource.status"),
    (lambda b: b["entry"][5].update(resource=[]), "entry[5].resource"),
    (lambda b: b.update(entry={}), "entry"),
    (lambda b: b.update(resourceType="Patient"), "resourceType"),
    (lambda b: b.update(entry=[e for e in b["entry"]
                               if e["resource"]["resourceType"] != "Patient"]), "entry"),
])
def test_broken_bundles(change, field):
    bundle = load(TOM)
    assert bundle["entry"][5]["resource"]["resourceType"] == "Observation"
    change(bundle)
    err = bundle_to_record(bundle, "tom.json")
    assert isinstance(err, RecordError), err
    assert err.field == field
    assert "\n" not in str(err) and str(err).startswith("tom.json: patient ")


def test_elements_r4_does_not_define_are_found_by_full_validation():
    bundle = load(TOM)
    bundle["entry"][5]["resource"]["foo"] = 1
    assert isinstance(bundle_to_record(bundle, "tom.json"), dict)  # typed decoding: not read
    err = bundle_to_record(bundle, "tom.json", validate=True)
    assert isinstance(err, RecordError) and err.field == "entry[5].resource.foo"
    assert "not an element" in err.reason


def test_not_a_mapping():
    err = bundle_to_record([1, 2], "x.json")
    assert isinstance(err, RecordError) and err.field is None


def test_two_patients():
    bundle = hand_bundle()
    bundle["entry"].append({"resource": {"resourceType": "Patient", "id": "p2"}})
    err = bundle_to_record(bundle, "two.json")
    assert isinstance(err, RecordError) and "more than one Patient" in err.reason


# --- hand-made bundles -----------------------------------------------------------------------

def entry(resource: dict) -> dict:
    return {"fullUrl": f"urn:uuid:{resource.get('id', 'x')}", "resource": resource}


PREDNISONE = {
    "resourceType": "MedicationStatement", "id": "ms1", "status": "active",
    "subject": {"reference": "urn:uuid:p1"},
    "medicationCodeableConcept": {"text": "Prednisone 5 MG Oral Tablet"},
    "effectivePeriod": {"start": "2023-11-02T08:00:00+01:00"},
    "dosage": [{"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": 10, "unit": "mg",
                                                  "system": UCUM, "code": "mg"}}]}],
}
SLE = {
    "resourceType": "Condition", "id": "c1", "subject": {"reference": "urn:uuid:p1"},
    "clinicalStatus": {"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
    "verificationStatus": {"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
        "code": "confirmed"}]},
    "code": {"coding": [{"system": "http://snomed.info/sct", "code": "55464009",
                         "display": "Systemic lupus\u200b erythematosus"}]},
    "onsetDateTime": "2019-03-04",
}


def obs(oid: str, loinc: str, date: str, **value) -> dict:
    return {"resourceType": "Observation", "id": oid, "status": "final",
            "subject": {"reference": "urn:uuid:p1"},
            "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
            "effectiveDateTime": date, **value}


def hand_bundle(*resources: dict) -> dict:
    patient = {"resourceType": "Patient", "id": "p1", "gender": "female",
               "birthDate": "1985-02-11"}
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [entry(patient)] + [entry(copy.deepcopy(r)) for r in resources]}


def hand(*resources: dict, **kw) -> dict:
    d = bundle_to_record(hand_bundle(*resources), "hand.json", **kw)
    assert isinstance(d, dict), str(d)
    assert isinstance(record.parse_record(d, "hand.json"), Loaded)
    return d


def test_prednisone_and_sle():
    d = hand(PREDNISONE, SLE)
    assert d["medications"] == [{"drug": "prednisone", "start": "2023-11-02", "end": None,
                                 "end_known": True, "display": "Prednisone 5 MG Oral Tablet",
                                 "route": "oral", "dose": 10, "unit": "mg", "dose_changes": []}]
    assert d["diagnoses"] == [{"code": "sle", "onset": "2019-03-04",
                               "display": "Systemic lupus erythematosus"}]
    assert d["screening_date"] == "2023-11-02"
    assert any(n.startswith("drugs read: prednisone (text)") for n in d["mapping_notes"])
    assert any(n.startswith("course prednisone oral from 2023-11-02, ongoing, 10 mg/day: 1 statement")
               for n in d["mapping_notes"])
    assert any(n.startswith("diagnoses mapped: sle from SNOMED 55464009")
               for n in d["mapping_notes"])


def med_request(**kw) -> dict:
    r = {"resourceType": "MedicationRequest", "id": "mr1", "status": "active", "intent": "order",
         "subject": {"reference": "urn:uuid:p1"}, "authoredOn": "2022-01-05T10:00:00-05:00",
         "medicationCodeableConcept": {"coding": [{
             "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "68149",
             "display": "mycophenolate mofetil"}]}}
    r.update(kw)
    return r


def dosage(value, unit="mg", repeat=None, **kw):
    d = {"doseAndRate": [{"doseQuantity": {"value": value, "unit": unit}}], **kw}
    if repeat is not None:
        d["timing"] = {"repeat": repeat}
    return d


@pytest.mark.parametrize("dosages, dose", [
    ([dosage(500, repeat={"frequency": 2, "period": 1, "periodUnit": "d"})], 1000),
    ([dosage(250, repeat={"frequency": 1, "period": 6, "periodUnit": "h"})], 1000),
    ([dosage(700, repeat={"frequency": 1, "period": 1, "periodUnit": "wk"})], 100),
    ([dosage(500, timing={"code": {"coding": [{"code": "BID"}]}})], 1000),
    ([dosage(500, repeat={"frequency": 1, "period": 1, "periodUnit": "mo"})], None),
    ([dosage(500, repeat={"frequency": 1, "frequencyMax": 2, "period": 1, "periodUnit": "d"})],
     None),
    ([dosage(1, unit="{tbl}", repeat={"frequency": 1, "period": 1, "periodUnit": "d"})], None),
    ([dosage(500)], None),
    ([dosage(500, repeat={"frequency": 1, "period": 1, "periodUnit": "d"}, asNeededBoolean=True)],
     None),
    ([dosage(500, repeat={"frequency": 1, "period": 1, "periodUnit": "d"})] * 2, None),
])
def test_daily_dose(dosages, dose):
    [m] = hand(med_request(dosageInstruction=dosages))["medications"]
    assert m["drug"] == "mycophenolate_mofetil"
    assert m["start"] == "2022-01-05"  # date as written, not converted to UTC
    assert m.get("dose") == dose
    assert ("unit" in m) == (dose is not None)


def test_medication_statuses_routes_and_references():
    stopped = med_request(status="stopped", authoredOn="2021-06-01")
    cancelled = med_request(id="mr2", status="cancelled")
    iv = med_request(id="mr3",
                     medicationCodeableConcept={"text": "cyclophosphamide 500 MG Injection"},
                     dosageInstruction=[{"route": {"coding": [{"system": "http://snomed.info/sct",
                                                                "code": "47625008"}]}}])
    injection = med_request(id="mr4",
                            medicationCodeableConcept={"text": "Rituximab 10 MG/ML Injection"})
    by_ref = med_request(id="mr5", medicationCodeableConcept=None,
                         medicationReference={"reference": "urn:uuid:med1"})
    del by_ref["medicationCodeableConcept"]
    medication = {"resourceType": "Medication", "id": "med1",
                  "code": {"text": "Hydroxychloroquine Sulfate 200 MG Oral Tablet"}}
    other = med_request(id="mr6", medicationCodeableConcept={"text": "Simvastatin 10 MG"})
    d = hand(stopped, cancelled, iv, injection, by_ref, medication, other)
    meds = {m["drug"]: m for m in d["medications"]}
    assert sorted(meds) == ["cyclophosphamide", "hydroxychloroquine", "mycophenolate_mofetil",
                            "rituximab"]
    # stopped with no stop date: ended on a day not known, after the day it was ordered
    assert (meds["mycophenolate_mofetil"]["end"], meds["mycophenolate_mofetil"]["end_known"]) == \
        ("2021-06-01", False)
    assert any("mycophenolate_mofetil other from 2021-06-01, ended on an unknown day after 2021-06-01"
               in n for n in d["mapping_notes"])
    assert any("status cancelled" in n for n in d["mapping_notes"])
    assert meds["cyclophosphamide"]["route"] == "iv"
    assert meds["rituximab"]["route"] == "other"
    assert meds["hydroxychloroquine"]["route"] == "oral"
    assert any(n.startswith("1 medication resource not mapped") and
               "Simvastatin 10 MG" in n for n in d["mapping_notes"])


def test_statement_end_date():
    ms = copy.deepcopy(PREDNISONE)
    ms["effectivePeriod"]["end"] = "2024-01-10"
    [m] = hand(ms)["medications"]
    assert m["end"] is None  # ongoing at the screening date (the latest clinical date, its start)
    [m] = hand(ms, screening_date=dt.date(2024, 2, 1))["medications"]
    assert (m["end"], m["end_known"]) == ("2024-01-10", True)


def test_observation_details():
    resources = [
        obs("o1", "2160-0", "2023-05-01T23:30:00-05:00",
            valueQuantity={"value": 88.4, "unit": "µmol/L", "system": UCUM, "code": "umol/L"},
            referenceRange=[{"low": {"value": 45, "unit": "umol/L"},
                             "high": {"value": 90, "unit": "umol/L"}}]),
        obs("o2", "1742-6", "2023-05-01", valueQuantity={"value": 30, "unit": "U/L"}),
        obs("o3", "1742-6", "2023-05-02", status="entered-in-error",
            valueQuantity={"value": 300, "unit": "U/L"}),
        obs("o4", "1975-2", "2023-05-01",
            valueQuantity={"value": 0.1, "comparator": "<", "unit": "mg/dL"}),
        obs("o5", "8061-4", "2023-05-01",
            valueCodeableConcept={"coding": [{"system": "http://snomed.info/sct",
                                              "code": "10828004", "display": "Positive"}]}),
        obs("o6", "5130-0", "2023-05-01", valueString="Negative"),
        obs("o7", "5130-0", "2023-04-01", valueString="1:80 speckled"),
        obs("o8", "718-7", "2023", valueQuantity={"value": 12, "unit": "g/dL"}),
        obs("o9", "8867-4", "2023-05-01", valueQuantity={"value": 70, "unit": "/min"}),
    ]
    d = hand(*resources)
    got = {(o["code"], o["date"]): o for o in d["observations"]}
    creat = got[("creatinine", "2023-05-01")]
    assert (creat["value"], creat["unit"]) == (88.4, "umol/L")  # UCUM code preferred
    assert creat["reference_range"] == {"low": 45, "high": 90, "unit": "umol/L"}
    assert got[("alt", "2023-05-01")]["value"] == 30
    assert ("alt", "2023-05-02") not in got  # entered-in-error
    [bili] = [o for o in d["observations"] if o["code"] == "bilirubin_total"]
    assert (bili["value"], bili["comparator"]) == (0.1, "<")  # a bound: read as an interval
    assert got[("ana", "2023-05-01")]["value"] == "positive"
    assert got[("anti_dsdna", "2023-05-01")]["value"] == "negative"
    assert ("anti_dsdna", "2023-04-01") not in got
    assert not any(o["code"] == "hb" for o in d["observations"])  # partial date
    notes = "\n".join(d["mapping_notes"])
    for text in ("status entered-in-error", "'1:80 speckled'", "partial",
                 "1 Observation not used by any criterion"):
        assert text in notes
    assert d["screening_date"] == "2023-05-02"


def test_conditions_icd10_refuted_provisional_resolved():
    icd = {**SLE, "id": "c2", "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm",
                                                   "code": "M34.81", "display": "SSc with ILD"}]}}
    refuted = {**SLE, "id": "c3", "verificationStatus": {"coding": [{"code": "refuted"}]},
               "code": {"coding": [{"system": "http://snomed.info/sct", "code": "56717001"}]}}
    provisional = {**SLE, "id": "c4", "verificationStatus": {"coding": [{"code": "provisional"}]},
                   "code": {"coding": [{"system": "http://snomed.info/sct", "code": "89155008",
                                        "display": "Systemic sclerosis"}]}}
    resolved = {**SLE, "id": "c5", "clinicalStatus": {"coding": [{"code": "resolved"}]},
                "code": {"text": "Pulmonary tuberculosis",
                         "coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "A15.0"}]},
                "onsetDateTime": "2001"}
    unmapped = {**SLE, "id": "c6", "code": {"text": "Hypertension"}}
    d = hand(SLE, icd, refuted, provisional, resolved, unmapped)
    dx = {x["code"]: x for x in d["diagnoses"]}
    assert sorted(dx) == ["active_tuberculosis", "sle", "ssc", "ssc_ild"]
    assert dx["ssc"]["present"] == "unknown"
    assert "present" not in dx["sle"]
    assert dx["active_tuberculosis"]["onset"] is None  # "2001" is not a day
    assert dx["active_tuberculosis"]["display"] == "Pulmonary tuberculosis"
    notes = "\n".join(d["mapping_notes"])
    assert "verificationStatus refuted" in notes
    assert "clinicalStatus resolved: kept as history" in notes
    assert "1 Condition not mapped to a vocabulary diagnosis: Hypertension" in notes


def test_patient_details_and_other_subjects():
    bundle = hand_bundle(PREDNISONE, {**SLE, "subject": {"reference": "Patient/someone-else"}})
    bundle["entry"][0]["resource"].update(gender="other", birthDate="1985")
    d = bundle_to_record(bundle, "hand.json", screening_date=dt.date(2024, 1, 1))
    assert isinstance(d, dict)
    assert d["sex"] == "unknown" and "birth_date" not in d
    assert d["diagnoses"] == []
    notes = "\n".join(d["mapping_notes"])
    assert "is not the Patient" in notes and "1985 is partial" in notes
    assert isinstance(record.parse_record(d, "hand.json"), Loaded)


def test_no_clinical_date_needs_a_screening_date():
    err = bundle_to_record(hand_bundle(), "empty.json")
    assert isinstance(err, RecordError) and err.field == "screening_date"
    d = bundle_to_record(hand_bundle(), "empty.json", screening_date=dt.date(2024, 1, 1))
    assert isinstance(d, dict) and d["observations"] == []

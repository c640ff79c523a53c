"""FHIR written the way EHRs write it (issue 11): medication histories, spirometry, units,
procedures, deceased patients, Bulk export logs, and the same verdicts with and without full
fhir.resources validation.

Fixtures: tests/data/fhir-ehr/ (hand-written in the shape of Epic and Oracle Health exports,
see its SOURCE.md) and tests/data/fhir-real/ (public Synthea exports, CC0 / Apache-2.0, see
its SOURCE.md). Each expectation says why.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from fractions import Fraction
from pathlib import Path

import pytest

from pyasp_screen.engine.screening import screen_records
from pyasp_screen.inputs import bulk, record
from pyasp_screen.inputs.fhir import bundle_to_record
from pyasp_screen.inputs.record import Loaded, RecordError
from pyasp_screen.knowledge.kb import load_kb

DATA = Path(__file__).parent / "data" / "fhir"
EHR = Path(__file__).parent / "data" / "fhir-ehr"
REAL = Path(__file__).parent / "data" / "fhir-real"
SCREENING = dt.date(2026, 3, 1)
KB = load_kb("ct1190b")


def load(name: str) -> dict:
    return json.loads((EHR / name).read_text(encoding="utf-8"))


def mapped(bundle: dict, name: str = "ehr.json", when: dt.date | None = SCREENING) -> dict:
    d = bundle_to_record(bundle, name, when)
    assert isinstance(d, dict), str(d)
    return d


def screened(d: dict):
    loaded = record.parse_record(d, "ehr.json")
    assert isinstance(loaded, Loaded), str(loaded)
    [s] = list(screen_records(iter([loaded]), KB))
    assert not isinstance(s, RecordError), str(s)
    return s


def facts(s, pred: str) -> list[str]:
    return [f.fact for f in s.findings.findings if f.fact.startswith(pred + "(")]


# --- 1. medication histories ------------------------------------------------------------------

def test_a_stable_regimen_renewed_5_days_before_screening_is_stable():
    # Prednisone 20 -> 10 mg/day on 2025-09-01, renewed at 10 mg on 2026-02-24; mycophenolate
    # 1 g BID since 2025-03-15, renewed twice, dispensed monthly. A pharmacist reads two ongoing
    # courses, one dose change six months ago: the regimen has been stable for two weeks.
    d = mapped(load("epic-sle-stable-regimen-renewed.json"))
    meds = {m["drug"]: m for m in d["medications"]}
    assert len(d["medications"]) == 2, d["medications"]
    assert meds["prednisone"]["start"] == "2025-06-01" and meds["prednisone"]["end"] is None
    assert (meds["prednisone"]["dose"], meds["prednisone"]["dose_changes"]) == \
        (20, [{"date": "2025-09-01", "dose": 10, "changed": True}])
    assert (meds["mycophenolate_mofetil"]["start"], meds["mycophenolate_mofetil"]["dose"],
            meds["mycophenolate_mofetil"]["dose_changes"]) == ("2025-03-15", 2000, [])
    s = screened(d)
    st = s.result.statuses
    assert st["SLE-IN-2.treatment"] == "met"
    assert st["SLE-IN-2.stable_dose"] == "met"      # was not_met: the renewal read as a new course
    assert st["SLE-IN-3"] == "met"                   # with an immunosuppressant: no minimum dose
    assert st["SLE-IN-6"] == "met"                   # the active lupus nephritis is renal involvement
    assert "complete(" in " ".join(facts(s, "complete"))  # the coordinator's QuestionnaireResponse


def test_prednisone_5mg_renewed_once_is_5mg_not_10():
    d = mapped(load("epic-prednisone-5mg-renewed.json"))
    [course] = d["medications"]                      # one course, not two ongoing ones
    assert (course["start"], course["end"], course["dose"]) == ("2025-10-01", None, 5)
    s = screened(d)
    [total] = [f for f in facts(s, "quantity") if ",prednisone_equivalent," in f]
    assert total.endswith(",prednisone_equivalent,10000,10000,0)")  # exactly 5 mg/day
    assert s.result.statuses["SLE-IN-3.dose"] == "not_met"        # was met ("at least 10")
    assert s.result.statuses["SLE-IN-3"] == "not_met"


def test_statements_administrations_drafts_and_plans():
    d = mapped(load("cerner-ssc-statements-administrations.json"))
    meds = {m["drug"]: m for m in d["medications"]}
    assert sorted(meds) == ["cyclophosphamide", "mycophenolate_mofetil", "prednisone"]
    assert meds["mycophenolate_mofetil"]["dose"] == 3000              # 1500 mg BID
    cyc = meds["cyclophosphamide"]
    # monthly infusions are one course; after the last one it ended on a day not recorded
    assert (cyc["route"], cyc["start"], cyc["end"], cyc["end_known"]) == ("iv", "2024-10-01", "2025-05-01", False)
    assert cyc["dose"] is None                                        # per infusion, not per day
    assert meds["prednisone"]["dose"] is None                         # "taper as directed": never guessed
    notes = "\n".join(d["mapping_notes"])
    assert "MedicationRequest/mr-draft MedicationRequest tacrolimus: status draft" in notes
    assert "MedicationRequest/mr-plan MedicationRequest rituximab: intent plan (not an order)" in notes
    s = screened(d)
    assert "course_end_unknown(" in " ".join(facts(s, "course_end_unknown"))
    st = s.result.statuses
    assert st["SSC-IN-3.conventional"] == "met"      # cyclophosphamide with MMF for >= 183 days
    assert st["SSC-IN-3.ineffective"] == "met" and st["SSC-IN-1.diffuse"] == "met"


def test_a_renewal_whose_dose_cannot_be_computed_may_be_a_change():
    bundle = load("epic-sle-stable-regimen-renewed.json")
    for e in bundle["entry"]:
        if e["resource"]["id"] == "mr-pred-3":        # the renewal 5 days before screening
            e["resource"]["dosageInstruction"] = [{"sequence": 1, "text": "Take as directed"}]
    d = mapped(bundle)
    [pred] = [m for m in d["medications"] if m["drug"] == "prednisone"]
    assert pred["dose_changes"][-1] == {"date": "2026-02-24", "dose": None, "changed": "unknown"}
    s = screened(d)
    assert facts(s, "dose_change_unknown")
    assert s.result.statuses["SLE-IN-2.stable_dose"] == "unknown"    # neither met nor guessed
    assert s.result.statuses["SLE-IN-3.dose"] == "unknown"           # the current dose is unknown


def test_a_stopped_order_without_a_stop_date_is_not_ongoing():
    bundle = load("epic-prednisone-5mg-renewed.json")
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["id"] != "mr-p5-2"]
    [course] = mapped(bundle)["medications"]
    # supplied for 90 days from 2025-10-01 and stopped: it ended on or before 2025-12-29
    assert (course["end"], course["end_known"]) == ("2025-12-29", True)
    for e in bundle["entry"]:
        if e["resource"]["id"] == "mr-p5-1":
            del e["resource"]["dispenseRequest"]
    [course] = mapped(bundle)["medications"]
    assert (course["end"], course["end_known"]) == ("2025-10-01", False)
    s = screened(mapped(bundle))
    assert s.result.statuses["SLE-IN-3.dose"] == "not_met"           # not ongoing: no glucocorticoid


def test_real_export_renewals_become_courses_and_epoetin_a_growth_factor():
    items = {p.patient: p for p in bulk.iter_bulk_patients(REAL / "smart-bulk")
             if not isinstance(p, RecordError)}
    loaded = bulk.to_record(items["79a66c97-6131-3213-f3c9-4606946ab056"])
    assert isinstance(loaded, Loaded), str(loaded)
    r = loaded.record
    tac = [m for m in r.medications if m.drug == "tacrolimus"]
    # 23 tacrolimus orders: 18 injections renewed weeks apart (one course, route "other"), and
    # yearly renewals of an extended-release tablet (the last one active: ongoing)
    assert len(tac) <= 5
    inj = [m for m in tac if m.route == "other"]
    assert len(inj) == 1 and not inj[0].end_known
    assert [m.end for m in tac if m.route == "oral"][-1] is None
    assert r.growth_factors and {g.drug for g in r.growth_factors} == {"epoetin_alfa"}
    assert r.deceased == dt.date(1994, 11, 11)
    assert any(d.code == "severe_kidney_disease" for d in r.diagnoses)  # on dialysis


# --- 2. spirometry, DLCO, LVEF ----------------------------------------------------------------

def test_fvc_volume_is_never_read_as_a_percentage():
    d = mapped(load("pft-and-echo.json"))
    codes = {o["code"]: o for o in d["observations"]}
    assert (codes["fvc_volume"]["value"], codes["fvc_volume"]["unit"]) == (3.1, "L")
    assert codes["fvc_pct_predicted"]["value"] == 48
    assert "dlco_hb_corrected_pct_predicted" not in codes       # 98130-8 is not Hb-corrected
    s = screened(d)
    st = s.result.statuses
    assert st["SSC-EX-1.fvc"] == "not_met"                      # 48 % > 30 %; 3.1 "%" would exclude
    assert st["SSC-EX-1.dlco"] == "unknown"
    assert st["SSC-IN-4e.lvef"] == "met"                        # 8806-2: 55 % >= 40 %


def test_fvc_volume_under_the_percentage_code_is_one_unusable_result():
    bundle = load("pft-and-echo.json")
    for e in bundle["entry"]:
        if e["resource"]["id"] == "o-fvc-pct":
            e["resource"]["valueQuantity"] = {"value": 3.1, "unit": "L", "system": "http://unitsofmeasure.org", "code": "L"}
    s = screened(mapped(bundle))
    assert s.result.statuses["SSC-EX-1.fvc"] == "unknown"
    assert any(n.startswith("Observation/o-fvc-pct (LOINC 19871-3) (FVC % predicted") and "result not used" in n
               for n in s.findings.notes)


# --- 3. units as real systems spell them ------------------------------------------------------

def grid(v: Fraction) -> int:
    whole, rest = divmod(v.numerator * 1000, v.denominator)
    return 2 * whole + (1 if rest else 0)


def test_units_as_spelled_are_converted_exactly_and_a_bad_one_is_named():
    s = screened(mapped(load("lab-units-as-spelled.json")))
    q = {f.split(",")[1]: f for f in facts(s, "quantity")}
    assert q["anc"].endswith(f",anc,{grid(Fraction(24, 10))},{grid(Fraction(24, 10))},5)")   # 2.4 K/uL
    assert q["wbc"].endswith(f",{grid(Fraction(51, 10))},{grid(Fraction(51, 10))},5)")       # x10E3/uL
    hb = Fraction(81, 10) * 10 / Fraction(6206, 10000)   # 8.1 mmol/L, 1 g/dL = 0.6206 mmol/L
    assert q["hb"].endswith(f",hb,{grid(hb)},{grid(hb)},5)")                                 # the latest
    aptt = Fraction(31, 38)
    assert q["aptt_x_uln"].endswith(f",{grid(aptt)},{grid(aptt)},5)")                         # sec
    # bilirubin "<0.2 mg/dL", ULN 1.2: the interval [0, 1/6) x ULN
    lo, hi = q["bilirubin_total_x_uln"].split(",")[2:4]
    assert (int(lo), int(hi)) == (0, grid(Fraction(1, 6)))
    assert "alt_x_uln" not in q
    [note] = [n for n in s.findings.notes if n.startswith("Observation/o-alt")]
    assert "LOINC 1742-6" in note and "zz/hpf" in note and "not a UCUM unit" in note and "result not used" in note
    crcl = [f for f in facts(s, "quantity") if ",crcl," in f]
    assert crcl  # µmol/L creatinine, lbs and in: Cockcroft-Gault computed


# --- 4. procedures and conditions -------------------------------------------------------------

def test_transfusion_dialysis_and_coded_ssc_forms():
    d = mapped(load("procedures-and-conditions.json"))
    assert d["transfusions"] == [{"date": "2026-02-25", "product": "red blood cells"}]
    dx = {x["code"]: x for x in d["diagnoses"]}
    assert dx["ssc"]["subtype"] == "limited"                     # M34.1 CR(E)ST syndrome
    assert dx["active_tuberculosis"]["present"] is False         # refuted
    assert dx["severe_kidney_disease"]["onset"] == "2026-02-26"  # haemodialysis
    s = screened(d)
    st = s.result.statuses
    assert st["SSC-IN-4b.transfusion"] == "not_met"              # 4 days before screening
    assert st["SSC-EX-2.severe_kidney_disease"] == "met"
    assert st["SSC-IN-1.diffuse"] == "not_met"
    assert st["SSC-IN-2"] == "met"                               # M34.81
    assert st["SSC-EX-3.active_tb"] == "not_met"
    assert any("Procedure/pr-planned" in n and "status preparation" in n for n in d["mapping_notes"])


# --- 5. patients ----------------------------------------------------------------------------------

def test_a_deceased_patient_is_never_eligible():
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    import yaml
    from fhir_translate import native_to_bundle

    case = yaml.safe_load((Path(__file__).parent.parent / "kb/ct1190b/cases/sle-eligible.yaml").read_text())
    alive = screened(mapped(native_to_bundle(json.loads(json.dumps(case, default=str)))))
    assert alive.result.overall == "eligible"
    dead = dict(case, deceased="2026-02-27")
    s = screened(mapped(native_to_bundle(json.loads(json.dumps(dead, default=str)))))
    assert s.result.overall == "ineligible" and set(s.result.verdicts.values()) == {"ineligible"}
    assert s.result.statuses == alive.result.statuses           # the criteria are as they were
    assert any("deceased" in n for n in s.findings.notes)
    d = mapped(load("deceased-patient.json"), when=None)
    assert d["deceased"] == "2026-01-04"
    assert d["screening_date"] == "2015-01-01" and d["mapping_notes"][0].startswith(
        "screening date taken as the latest clinical date in the resources: 2015-01-01")


def test_screen_json_states_the_screening_date_and_deceased(tmp_path):
    from click.testing import CliRunner

    from pyasp_screen.cli import main

    r = CliRunner().invoke(main, ["screen", str(EHR / "deceased-patient.json"), "--format", "json"])
    assert r.exit_code == 0, r.output
    [res] = json.loads(r.output)["results"]
    assert (res["screening_date"], res["deceased"], res["overall"]) == ("2015-01-01", True, "ineligible")
    r = CliRunner().invoke(main, ["screen", str(EHR / "deceased-patient.json")])
    assert "ineligible (deceased)" in r.output or "deceased" in r.output


def test_a_real_synthea_bundle_of_a_deceased_patient():
    d = bundle_to_record(json.loads((REAL / "Lyle_Baumbach_40a23e3f-fc1e-4333-8588-c5aaa9aa7c9b.json")
                                    .read_text(encoding="utf-8")), "lyle.json")
    assert isinstance(d, dict) and d.get("deceased")
    s = screened(d)
    assert s.result.overall == "ineligible"


# --- 6. Bulk exports: manifest, log, error files ----------------------------------------------

def test_log_ndjson_is_a_diagnostic_not_a_rejected_record():
    out = list(bulk.iter_bulk_patients(REAL / "smart-bulk"))
    assert not [x for x in out if isinstance(x, RecordError)]
    assert len(out) == 3
    lines = bulk.export_diagnostics(REAL / "smart-bulk")
    assert len(lines) == 4 and all(x.startswith("log.ndjson: ") for x in lines)
    assert lines[0].startswith("log.ndjson: kickoff at 2024-08-06T14:11:57")


def _export(folder: Path, manifest: bool) -> None:
    folder.mkdir()
    src = REAL / "smart-bulk"
    for name in ("Patient.000.ndjson", "Condition.000.ndjson", "log.ndjson"):
        (folder / name).write_bytes((src / name).read_bytes())
    (folder / "notes.ndjson").write_text('{"note": "written by hand"}\n')
    (folder / "OperationOutcome.000.ndjson").write_text(json.dumps({
        "resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "processing",
                                                        "diagnostics": "MedicationRequest export failed"}]}) + "\n")
    (folder / "Extra.ndjson").write_text((src / "Patient.000.ndjson").read_text().splitlines()[0] + "\n")
    if manifest:
        (folder / "manifest.json").write_text(json.dumps({
            "transactionTime": "2024-08-06T18:12:57Z", "request": "https://ehr.example/fhir/Group/g/$export",
            "requiresAccessToken": True,
            "output": [{"type": "Patient", "url": "https://ehr.example/files/Patient.000.ndjson", "count": 3},
                       {"type": "Condition", "url": "https://ehr.example/files/Condition.000.ndjson"},
                       {"type": "Observation", "url": "https://ehr.example/files/Observation.000.ndjson"}],
            "error": [{"type": "OperationOutcome", "url": "https://ehr.example/files/OperationOutcome.000.ndjson"}]}))


def test_a_manifest_says_which_files_are_read(tmp_path):
    _export(tmp_path / "exp", manifest=True)
    plan = bulk.plan_export(tmp_path / "exp")
    assert [p.name for p in plan.resource_files] == ["Condition.000.ndjson", "Patient.000.ndjson"]
    text = "\n".join(plan.diagnostics)
    assert "manifest.json: export manifest, transactionTime 2024-08-06T18:12:57Z, 3 output files" in text
    assert "Observation.000.ndjson (Observation, count ?) is not in the folder" in text
    assert "OperationOutcome.000.ndjson: error processing: MedicationRequest export failed" in text
    assert "Extra.ndjson: not listed in the manifest's output: not read" in text
    assert "log.ndjson: kickoff" in text
    out = list(bulk.iter_bulk_patients(tmp_path / "exp"))
    assert len(out) == 3 and not [x for x in out if isinstance(x, RecordError)]


def test_without_a_manifest_only_resource_files_are_read(tmp_path):
    _export(tmp_path / "exp", manifest=False)
    plan = bulk.plan_export(tmp_path / "exp")
    names = [p.name for p in plan.resource_files]
    assert names == ["Condition.000.ndjson", "Extra.ndjson", "Patient.000.ndjson"]  # Extra holds Patients
    text = "\n".join(plan.diagnostics)
    assert "OperationOutcome.000.ndjson: error processing" in text and "log.ndjson: kickoff" in text
    assert "notes.ndjson: a line" not in text and "notes.ndjson" in text


def test_cohort_on_an_export_with_a_log_exits_0(tmp_path):
    from click.testing import CliRunner

    from pyasp_screen.cli import main

    r = CliRunner().invoke(main, ["cohort", str(REAL / "smart-bulk"), "--format", "json", "-j", "1"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["rejected"] == 0 and doc["screened"] == 3
    assert "export diagnostics of" in r.stderr and "log.ndjson: kickoff" in r.stderr


# --- 8. typed decoding reads what full validation reads --------------------------------------

FIXTURES = sorted(EHR.glob("*.json")) + sorted(DATA.glob("*.json")) + sorted(REAL.glob("*.json"))


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name[:30])
def test_typed_decoding_reads_the_same_record_as_full_validation(path):
    bundle = json.loads(path.read_text(encoding="utf-8"))
    typed = bundle_to_record(bundle, path.name, SCREENING)
    full = bundle_to_record(bundle, path.name, SCREENING, validate=True)
    assert isinstance(typed, dict) and isinstance(full, dict), (typed, full)
    strip = re.compile(r"^FHIR Bundle \(")
    typed["mapping_notes"] = [n for n in typed["mapping_notes"] if not strip.match(n)]
    full["mapping_notes"] = [n for n in full["mapping_notes"] if not strip.match(n)]
    assert typed == full


def test_bulk_typed_and_validated_routes_agree():
    for p in bulk.iter_bulk_patients(REAL / "smart-bulk"):
        a, b = bulk.to_record(p, SCREENING), bulk.to_record(p, SCREENING, validate=True)
        assert isinstance(a, Loaded) and isinstance(b, Loaded)
        assert a.record.medications == b.record.medications and a.record.diagnoses == b.record.diagnoses


@pytest.mark.parametrize("change, field, words", [
    (lambda r: r["valueQuantity"].update(value="2.4"), "valueQuantity.value", "expected a number, got str"),
    (lambda r: r.update(status=7), "status", "str"),
    (lambda r: r.update(effectiveDateTime="24/02/2026"), "effectiveDateTime", "not a fhir date"),
    (lambda r: r["code"].update(coding={"code": "751-8"}), "code.coding", "array"),
])
def test_a_wrong_type_in_an_element_read_is_named(change, field, words):
    bundle = load("lab-units-as-spelled.json")
    i = next(i for i, e in enumerate(bundle["entry"]) if e["resource"]["id"] == "o-anc")
    change(bundle["entry"][i]["resource"])
    err = bundle_to_record(bundle, "lab.json", SCREENING)
    assert isinstance(err, RecordError), err
    assert err.field == f"entry[{i}].resource.{field}" and words in err.reason.lower()
    assert err.patient == "eLAB-units-0004" and "\n" not in str(err)


def test_every_code_and_unit_spelling_read_is_listed_in_docs_fhir_md():
    from pyasp_screen.findings.units import UNIT_ALIASES
    from pyasp_screen.knowledge.vocabulary import library

    text = (Path(__file__).parent.parent / "docs" / "fhir.md").read_text(encoding="utf-8")
    v = library()
    codes = [c for o in v.observations.values() for c in o.loinc]
    codes += [c for d in v.diagnoses.values() for c in d.snomed + d.icd10 + tuple(d.subtype_codes)]
    codes += [c for d in v.drugs.values() for c in d.rxnorm + d.atc]
    codes += list(v.transfusion_procedures) + list(v.dialysis_procedures) + list(v.room_air_components.values())
    missing = [c for c in codes if c not in text]
    assert not missing, missing
    missing = [a for a in UNIT_ALIASES if f"`{a}`" not in text]
    assert not missing, missing


def test_a_drug_coded_by_atc_only_is_read():
    bundle = load("cerner-ssc-statements-administrations.json")
    for e in bundle["entry"]:
        if e["resource"]["id"] == "ms-mmf":
            e["resource"]["medicationCodeableConcept"] = {
                "coding": [{"system": "http://www.whocc.no/atc", "code": "L04AA06", "display": "mycophenolic acid"}]}
    d = mapped(bundle)
    assert any(m["drug"] == "mycophenolate_mofetil" for m in d["medications"])
    assert any("mycophenolate_mofetil (ATC L04AA06)" in n for n in d["mapping_notes"])

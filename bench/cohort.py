"""A synthetic CT1190B cohort: mixed SLE / SSc patients with realistic gaps.

Values are drawn around the CT1190B thresholds so that every verdict occurs; each finding is
missing with probability ``p_missing``. Deterministic for a given seed. No real patient data.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

SCREENING = date(2026, 3, 1)


def _d(days_before: int) -> str:
    return (SCREENING - timedelta(days=days_before)).isoformat()


def synthetic_patient(i: int, rng: random.Random, p_missing: float = 0.15) -> dict:
    def present() -> bool:
        return rng.random() >= p_missing

    sle = rng.random() < 0.6
    sex = rng.choice(["female", "female", "female", "male"])
    rec: dict = {
        "id": f"SYN-{i:07d}",
        "screening_date": SCREENING.isoformat(),
        "birth_date": _d(rng.randint(18 * 365, 65 * 365)),
        "sex": sex,
        "complete": [c for c in ("medications", "transfusions", "growth_factors", "diagnoses")
                     if rng.random() < 0.7],
        "observations": [],
        "diagnoses": [],
        "assessments": [],
        "medications": [],
    }
    obs = rec["observations"]

    def lab(code, lo, hi, unit, places=1, ref=None):
        if present():
            o = {"code": code, "value": round(rng.uniform(lo, hi), places), "unit": unit,
                 "date": _d(rng.randint(0, 40))}
            if ref is not None and rng.random() < 0.7:
                o["reference_range"] = {"high": ref, "unit": unit}
            obs.append(o)

    lab("creatinine", 0.5, 2.5, "mg/dL", 2)
    lab("weight", 45, 110, "kg")
    lab("height", 150, 190, "cm")
    lab("anc", 0.5, 6, "10*9/L", 2)
    lab("hb", 5, 16, "g/dL")
    lab("alt", 10, 120, "U/L", 0, 40)
    lab("ast", 10, 120, "U/L", 0, 40)
    lab("bilirubin_total", 0.2, 3, "mg/dL", 1, 1.2)
    lab("inr", 0.9, 2.0, "1", 2, 1.2)
    if present():
        rec["assessments"].append({"name": "hydration_assistance", "value": rng.random() < 0.1})
    if rng.random() < 0.2:
        rec["transfusions"] = [{"date": _d(rng.randint(0, 30)), "product": "RBC"}]
    if sle:
        rec["diagnoses"].append({"code": "sle", "onset": _d(rng.randint(60, 4000))})
        lab("aptt", 25, 60, "s", 0, 38)
        lab("spo2", 88, 100, "%", 0)
        for code in ("ana", "anti_dsdna"):
            if present():
                obs.append({"code": code, "value": rng.choice(["positive", "positive", "negative"]),
                            "date": _d(rng.randint(0, 40))})
        rec["classification"] = {"eular_acr_2019_sle": {"met": rng.random() < 0.9}}
        if present():
            names = ["arthritis", "proteinuria", "rash", "low_complement", "increased_dna_binding",
                     "alopecia", "pleurisy", "hematuria"]
            rec["sledai2k"] = [{"date": _d(rng.randint(0, 20)),
                                "descriptors": {n: rng.random() < 0.4 for n in names}}]
        if present():
            rec["organ_involvement"] = {"renal": rng.random() < 0.5, "mucocutaneous": rng.random() < 0.6}
        if present():
            rec["medications"].append({"drug": "prednisone", "route": "oral",
                                       "dose": rng.choice([5, 7.5, 10, 20]), "unit": "mg",
                                       "start": _d(rng.randint(30, 800))})
        if present():
            rec["medications"].append({"drug": rng.choice(["mycophenolate_mofetil", "tacrolimus",
                                                           "belimumab", "azathioprine"]),
                                       "start": _d(rng.randint(30, 800))})
    else:
        rec["diagnoses"].append({"code": "ssc", "onset": _d(rng.randint(60, 4000)),
                                 "subtype": rng.choice(["diffuse", "diffuse", "limited"])})
        if present():
            rec["diagnoses"].append({"code": "ssc_ild", "present": rng.random() < 0.8})
        rec["classification"] = {"acr_eular_2013_ssc": {"met": rng.random() < 0.9}}
        lab("pt", 10, 22, "s", 1, 13.5)
        lab("lvef", 30, 70, "%", 0)
        lab("fvc_pct_predicted", 25, 100, "%", 0)
        lab("dlco_hb_corrected_pct_predicted", 20, 90, "%", 0)
        if present():
            obs.append({"code": "igra", "value": rng.choice(["negative"] * 9 + ["positive"]),
                        "date": _d(rng.randint(0, 40))})
        if present():
            rec["assessments"].append({"name": "hemodynamically_stable", "value": rng.random() < 0.9})
        if present():
            rec["assessments"].append({"name": "ssc_progressive", "value": rng.random() < 0.6})
        if present():
            rec["medications"].append({"drug": "cyclophosphamide", "route": "iv",
                                       "start": _d(rng.randint(200, 900)), "end": _d(rng.randint(0, 150))})
            rec["medications"].append({"drug": "mycophenolate_mofetil",
                                       "start": _d(rng.randint(200, 900))})
    return rec


def synthetic_cohort(n: int, seed: int = 1190, p_missing: float = 0.15) -> list[dict]:
    rng = random.Random(seed)
    return [synthetic_patient(i, rng, p_missing) for i in range(n)]


# ---------------------------------------------------------------------------------------------
# The same synthetic patients as FHIR R4 resources, and streaming writers (1,000,000 patients
# are written without holding them in memory).
# ---------------------------------------------------------------------------------------------

UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
# Qualitative results as SNOMED CT qualifier values (fhir.py reads the display/code words).
_QUALITATIVE = {"positive": ("10828004", "Positive"), "negative": ("260385009", "Negative")}
# SNOMED CT route codes fhir.py maps (oral, intravenous, subcutaneous, intramuscular, topical).
_ROUTES = {"oral": "26643006", "iv": "47625008", "sc": "34206005", "im": "78421000",
           "topical": "6064005"}
# Condition codes: SNOMED CT where vocabulary.py lists one, else ICD-10-CM.
_CONDITIONS = {"sle": (SNOMED, "55464009", "Systemic lupus erythematosus"),
               "ssc": (SNOMED, "89155008", "Systemic sclerosis"),
               "ssc_ild": (ICD10CM, "M34.81", "Systemic sclerosis with lung involvement")}

#: Native record content that pyasp_screen/inputs/fhir.py has no FHIR source for: dropped by
#: native_to_fhir (see fhir_expressible for the native record restricted to the rest).
NOT_IN_FHIR = ("complete", "classification", "sledai2k", "organ_involvement", "assessments",
               "transfusions", "growth_factors")


def native_to_fhir(rec: dict) -> list[dict]:
    """FHIR R4 resources (Patient first, then Observation, Condition, MedicationStatement) for
    one synthetic native record, coded as pyasp_screen/inputs/fhir.py and vocabulary.py map them:
    LOINC + UCUM for labs, SNOMED CT / ICD-10-CM for conditions, RxNorm ingredient codes (or
    the drug's name as text when vocabulary.py lists no RxNorm code) for medications, with a
    SNOMED route and an exact mg/day dosage. What cannot be expressed is dropped: the fields
    in NOT_IN_FHIR, results of tests without a LOINC code in vocabulary.py (igra, DLCO),
    a diagnosis ``subtype``, and a diagnosis recorded as absent (``present: false`` becomes a
    refuted Condition, which fhir.py skips)."""
    from pyasp_screen.knowledge.vocabulary import library

    OBSERVATIONS, DRUGS = library().observations, library().drugs
    pid = rec["id"]
    subject = {"reference": f"Patient/{pid}"}
    out: list[dict] = [{"resourceType": "Patient", "id": pid, "gender": rec.get("sex", "unknown"),
                        **({"birthDate": rec["birth_date"]} if rec.get("birth_date") else {})}]
    for j, o in enumerate(rec.get("observations", [])):
        kind = OBSERVATIONS[o["code"]]
        if not kind.loinc:
            continue
        r = {"resourceType": "Observation", "id": f"{pid}-obs-{j}", "status": "final",
             "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                       "observation-category", "code": "laboratory"}]}],
             "code": {"coding": [{"system": LOINC, "code": kind.loinc[0], "display": kind.label}],
                      "text": kind.label},
             "subject": subject, "effectiveDateTime": o["date"]}
        if kind.qualitative:
            code, display = _QUALITATIVE[o["value"]]
            r["valueCodeableConcept"] = {"coding": [{"system": SNOMED, "code": code,
                                                     "display": display}], "text": display}
        else:
            r["valueQuantity"] = {"value": o["value"], "unit": o["unit"], "system": UCUM,
                                  "code": o["unit"]}
            ref = o.get("reference_range")
            if ref:
                r["referenceRange"] = [{k: {"value": ref[k], "unit": ref["unit"], "system": UCUM,
                                            "code": ref["unit"]}
                                        for k in ("low", "high") if ref.get(k) is not None}]
        out.append(r)
    for j, d in enumerate(rec.get("diagnoses", [])):
        system, code, display = _CONDITIONS[d["code"]]
        present = d.get("present", True)
        verification = {True: "confirmed", False: "refuted", "unknown": "provisional"}[present]
        r = {"resourceType": "Condition", "id": f"{pid}-cond-{j}",
             "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                            "condition-clinical", "code": "active"}]},
             "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                                "condition-ver-status", "code": verification}]},
             "code": {"coding": [{"system": system, "code": code, "display": display}],
                      "text": display},
             "subject": subject}
        if d.get("onset"):
            r["onsetDateTime"] = d["onset"]
        out.append(r)
    for j, m in enumerate(rec.get("medications", [])):
        name = m["drug"]
        text = name.replace("_", " ")
        codes = DRUGS[name].rxnorm
        concept: dict = {"text": text}
        if codes:
            concept["coding"] = [{"system": RXNORM, "code": codes[0], "display": text}]
        dosage: dict = {"route": {"coding": [{"system": SNOMED,
                                              "code": _ROUTES[m.get("route", "oral")]}]}}
        if m.get("dose") is not None:
            dosage["timing"] = {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}
            dosage["doseAndRate"] = [{"doseQuantity": {"value": m["dose"], "unit": "mg",
                                                       "system": UCUM, "code": "mg"}}]
        period = {"start": m["start"], **({"end": m["end"]} if m.get("end") else {})}
        out.append({"resourceType": "MedicationStatement", "id": f"{pid}-med-{j}",
                    "status": "completed" if m.get("end") else "active",
                    "medicationCodeableConcept": concept, "subject": subject,
                    "effectivePeriod": period, "dosage": [dosage]})
    return out


def fhir_expressible(rec: dict) -> dict:
    """The native record restricted to what native_to_fhir carries over (for checking that
    the FHIR route gives the same record, and the same verdict, on that part)."""
    from pyasp_screen.knowledge.vocabulary import library

    OBSERVATIONS = library().observations
    out = {k: v for k, v in rec.items() if k not in NOT_IN_FHIR}
    out["observations"] = [o for o in rec.get("observations", []) if OBSERVATIONS[o["code"]].loinc]
    out["diagnoses"] = [{k: v for k, v in d.items() if k != "subtype"}
                        for d in rec.get("diagnoses", [])]
    return out


def iter_synthetic(n: int, seed: int = 1190, p_missing: float = 0.15):
    """synthetic_cohort(n, seed) one patient at a time."""
    rng = random.Random(seed)
    for i in range(n):
        yield synthetic_patient(i, rng, p_missing)


def write_bulk_export(folder, n: int, seed: int = 1190, p_missing: float = 0.15) -> dict[str, int]:
    """Write synthetic_cohort(n, seed) as a FHIR Bulk Data export: Patient.ndjson,
    Observation.ndjson, Condition.ndjson, MedicationStatement.ndjson in ``folder`` (created),
    one resource per line, streaming. Returns the number of lines per file."""
    import msgspec
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    kinds = ("Patient", "Observation", "Condition", "MedicationStatement")
    files = {k: (folder / f"{k}.ndjson").open("wb", buffering=2**20) for k in kinds}
    counts = dict.fromkeys(kinds, 0)
    encode = msgspec.json.Encoder().encode
    try:
        for rec in iter_synthetic(n, seed, p_missing):
            for r in native_to_fhir(rec):
                f = files[r["resourceType"]]
                f.write(encode(r))
                f.write(b"\n")
                counts[r["resourceType"]] += 1
    finally:
        for f in files.values():
            f.close()
    return counts


def write_jsonl(path, n: int, seed: int = 1190, p_missing: float = 0.15) -> int:
    """Write synthetic_cohort(n, seed) as native records, one JSON object per line
    (streaming). Returns n."""
    import msgspec
    from pathlib import Path

    encode = msgspec.json.Encoder().encode
    with Path(path).open("wb", buffering=2**20) as f:
        for rec in iter_synthetic(n, seed, p_missing):
            f.write(encode(rec))
            f.write(b"\n")
    return n

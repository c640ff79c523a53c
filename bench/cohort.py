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

#: Native record content the FHIR route cannot carry (none since QuestionnaireResponses carry
#: what EHRs do not code): kept for bench_bulk's "FHIR-expressible" comparison.
NOT_IN_FHIR: tuple[str, ...] = ()


def native_to_fhir(rec: dict) -> list[dict]:
    """FHIR R4 resources (Patient first) for one synthetic native record, as an EHR and a
    coordinator's QuestionnaireResponse hold them (bench/fhir_translate.py)."""
    from fhir_translate import native_to_resources

    return native_to_resources(rec)


def fhir_expressible(rec: dict) -> dict:
    """The native record restricted to what native_to_fhir carries over: all of it."""
    return {k: v for k, v in rec.items() if k not in NOT_IN_FHIR}


def iter_synthetic(n: int, seed: int = 1190, p_missing: float = 0.15):
    """synthetic_cohort(n, seed) one patient at a time."""
    rng = random.Random(seed)
    for i in range(n):
        yield synthetic_patient(i, rng, p_missing)


def write_bulk_export(folder, n: int, seed: int = 1190, p_missing: float = 0.15) -> dict[str, int]:
    """Write synthetic_cohort(n, seed) as a FHIR Bulk Data export: one ``<type>.ndjson`` per
    resource type (Patient, Observation, Condition, MedicationRequest, Procedure,
    QuestionnaireResponse ...) in ``folder`` (created), one resource per line, streaming.
    Returns the number of lines per file."""
    import msgspec
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files: dict = {}
    counts: dict[str, int] = {}
    encode = msgspec.json.Encoder().encode
    try:
        for rec in iter_synthetic(n, seed, p_missing):
            for r in native_to_fhir(rec):
                rt = r["resourceType"]
                if rt not in files:
                    files[rt] = (folder / f"{rt}.ndjson").open("wb", buffering=2**20)
                    counts[rt] = 0
                f = files[rt]
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


def paths_of(node: object, here: tuple = ()) -> list[tuple]:
    """Every path (keys and indices) into decoded JSON ``node``, the empty path first: where a
    mutation may go (tests/test_fuzz.py, bench/bench_findings.py --check)."""
    out = [here]
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths_of(v, here + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += paths_of(v, here + (i,))
    return out


def replaced(node: object, path: tuple, value: object) -> object:
    """A copy of decoded JSON ``node`` with ``value`` at ``path`` (the original untouched)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(node, dict):
        return {**node, head: replaced(node[head], rest, value)}
    copy = list(node)
    copy[head] = replaced(copy[head], rest, value)
    return copy

"""A native patient record written as the FHIR R4 resources an EHR (and a coordinator's
QuestionnaireResponse) would hold for it: the other direction of pyasp_screen/inputs/fhir.py,
for checking that both routes give the same statuses (tests/test_roundtrip.py) and for the
FHIR cohorts of the benchmarks (bench/cohort.py).

What goes where
    Patient (gender, birthDate, deceased[x]); Observation per coded result (LOINC, UCUM
    quantity with comparator and reference range, SNOMED CT qualitative value, pulse-oximetry
    inhaled-oxygen component for room air, status cancelled for a test not done); Condition per
    coded diagnosis (SNOMED CT or ICD-10-CM; verificationStatus confirmed / refuted / provisional;
    onsetDateTime); MedicationRequest per dose segment of a course (authoredOn, the
    validityPeriod of the segment, dosageInstruction 1/d x dose in mg, SNOMED route; an ongoing
    last segment is active, an ended one completed, one that ended on an unknown day stopped
    with no end); Procedure per transfusion; MedicationAdministration per growth factor; and
    QuestionnaireResponses to the knowledge base's Questionnaire for the rest (lists declared
    complete, assessments, SLEDAI-2K, classification, organ involvement, results and diagnoses
    with no code, the SSc subtype), one per date of answer.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
_QUALITATIVE = {"positive": ("10828004", "Positive"), "negative": ("260385009", "Negative"),
                "indeterminate": ("82334004", "Indeterminate")}
_ROUTES = {"oral": "26643006", "iv": "47625008", "sc": "34206005", "im": "78421000",
           "topical": "6064005"}
_VERIFICATION = {True: "confirmed", False: "refuted", "unknown": "provisional"}
_TRANSFUSION = {"rbc": "116863004", "red": "116863004", "red blood cells": "116863004",
                "platelets": "12719002", "plasma": "13569004"}


def _iso(v: Any) -> str | None:
    if v is None:
        return None
    return v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else str(v)


def _day(v: Any) -> dt.date:
    return v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v))


def _yn(v: Any) -> dict:
    if v is True:
        return {"valueCoding": {"system": "http://terminology.hl7.org/CodeSystem/v2-0136", "code": "Y"}}
    if v is False:
        return {"valueCoding": {"system": "http://terminology.hl7.org/CodeSystem/v2-0136", "code": "N"}}
    return {"valueCoding": {"system": "http://terminology.hl7.org/CodeSystem/v3-NullFlavor", "code": "UNK"}}


class _Responses:
    """QuestionnaireResponses by date, no linkId twice in one."""

    def __init__(self, pid: str, questionnaire: str):
        self.pid, self.q = pid, questionnaire
        self.by: list[tuple[str | None, dict[str, dict]]] = []

    def add(self, date: str | None, link: str, answer: dict | None) -> None:
        for d, items in self.by:
            if d == date and link not in items:
                items[link] = answer
                return
        self.by.append((date, {link: answer}))

    def add_group(self, date: str | None, answers: dict[str, dict | None]) -> None:
        """Answers that must sit in one response (a SLEDAI-2K assessment, a result and its date)."""
        for d, items in self.by:
            if d == date and not (set(answers) & set(items)):
                items.update(answers)
                return
        self.by.append((date, dict(answers)))

    def resources(self) -> list[dict]:
        out = []
        for n, (date, items) in enumerate(self.by):
            r: dict[str, Any] = {"resourceType": "QuestionnaireResponse", "id": f"{self.pid}-qr-{n}",
                                 "questionnaire": self.q, "status": "completed",
                                 "subject": {"reference": f"Patient/{self.pid}"},
                                 "item": [{"linkId": k, "answer": [v]} for k, v in items.items() if v is not None]}
            if date:
                r["authored"] = date
            out.append(r)
        return out


def native_to_resources(rec: dict, kb_name: str = "ct1190b") -> list[dict]:
    """The FHIR R4 resources of one native record (a dict as in docs/records.md; dates as
    ISO strings or dates). Patient first."""
    from pyasp_screen.inputs.questionnaire import CANONICAL
    from pyasp_screen.knowledge.vocabulary import library

    v = library()
    DIAGNOSES, DRUGS = v.diagnoses, v.drugs
    LOINC_TO_OBSERVATION, OBSERVATIONS = v.loinc_to_observation, v.observations

    pid = rec["id"]
    subject = {"reference": f"Patient/{pid}"}
    qr = _Responses(pid, f"{CANONICAL}/{kb_name}")
    patient: dict[str, Any] = {"resourceType": "Patient", "id": pid, "gender": rec.get("sex", "unknown")}
    if rec.get("birth_date"):
        patient["birthDate"] = _iso(rec["birth_date"])
    if rec.get("deceased") is True:
        patient["deceasedBoolean"] = True
    elif rec.get("deceased"):
        patient["deceasedDateTime"] = _iso(rec["deceased"])
    out: list[dict] = [patient]

    for cat in rec.get("complete", []):
        qr.add(None, f"complete.{cat}", {"valueBoolean": True})

    for j, o in enumerate(rec.get("observations", [])):
        name = LOINC_TO_OBSERVATION[o["code"]] if o.get("system") == "loinc" else o["code"]
        kind = OBSERVATIONS[name]
        date = _iso(o["date"])
        status = o.get("status", "final")
        if status != "final" or o.get("value") is None:
            if kind.loinc:
                out.append({"resourceType": "Observation", "id": f"{pid}-obs-{j}", "status": "cancelled",
                            "code": {"coding": [{"system": LOINC, "code": kind.loinc[0]}]}, "subject": subject,
                            "effectiveDateTime": date,
                            "dataAbsentReason": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                                             "data-absent-reason", "code": "not-performed"}]}})
            continue
        if not kind.loinc:
            if kind.qualitative:
                answer = {"valueCoding": {"code": o["value"]}}
            else:
                answer = {"valueQuantity": {"value": o["value"], "unit": o.get("unit"), "system": UCUM,
                                            "code": o.get("unit")}}
                if o.get("comparator"):
                    answer["valueQuantity"]["comparator"] = o["comparator"]
            qr.add_group(date, {f"observation.{name}": answer, f"observation.{name}.date": {"valueDate": date}})
            continue
        loinc = o["code"] if o.get("system") == "loinc" else kind.loinc[0]
        r: dict[str, Any] = {"resourceType": "Observation", "id": f"{pid}-obs-{j}", "status": "final",
                             "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                                       "observation-category", "code": "laboratory"}]}],
                             "code": {"coding": [{"system": LOINC, "code": loinc, "display": kind.label}],
                                      "text": kind.label},
                             "subject": subject, "effectiveDateTime": date}
        if kind.qualitative:
            code, display = _QUALITATIVE[o["value"]]
            r["valueCodeableConcept"] = {"coding": [{"system": SNOMED, "code": code, "display": display}],
                                         "text": display}
        else:
            q = {"value": o["value"], "unit": o.get("unit"), "system": UCUM, "code": o.get("unit")}
            if o.get("comparator"):
                q["comparator"] = o["comparator"]
            r["valueQuantity"] = {k: v for k, v in q.items() if v is not None}
            ref = o.get("reference_range")
            if ref:
                unit = ref.get("unit") or o.get("unit")
                r["referenceRange"] = [{k: {"value": ref[k], **({"unit": unit, "system": UCUM, "code": unit}
                                                                if unit else {})}
                                        for k in ("low", "high") if ref.get(k) is not None}]
            if name == "spo2" and o.get("room_air") is not None:
                r["component"] = [{"code": {"coding": [{"system": LOINC, "code": "3151-8",
                                                        "display": "Inhaled oxygen flow rate"}]},
                                   "valueQuantity": {"value": 0 if o["room_air"] else 2, "unit": "L/min",
                                                     "system": UCUM, "code": "L/min"}}]
        out.append(r)

    for j, d in enumerate(rec.get("diagnoses", [])):
        present = d.get("present", True)
        system = d.get("system", "vocabulary")
        if system == "snomed":
            coding = [{"system": SNOMED, "code": d["code"]}]
        elif system == "icd10":
            coding = [{"system": ICD10CM, "code": d["code"]}]
        else:
            snomed, icd = DIAGNOSES[d["code"]].snomed, DIAGNOSES[d["code"]].icd10
            coding = ([{"system": SNOMED, "code": snomed[0]}] if snomed else
                      [{"system": ICD10CM, "code": icd[0]}] if icd else [])
        if d.get("subtype") and present is True:
            qr.add(None, "assessment.ssc_subtype", {"valueCoding": {"code": d["subtype"]}})
        if not coding:
            answers = {f"diagnosis.{d['code']}": _yn(present)}
            if d.get("onset"):
                answers[f"diagnosis.{d['code']}.onset"] = {"valueDate": _iso(d["onset"])}
            qr.add_group(None, answers)
            continue
        r = {"resourceType": "Condition", "id": f"{pid}-cond-{j}",
             "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                            "code": "active"}]},
             "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                                "condition-ver-status", "code": _VERIFICATION[present]}]},
             "code": {"coding": coding}, "subject": subject}
        if d.get("onset"):
            r["onsetDateTime"] = _iso(d["onset"])
        out.append(r)

    classification = rec.get("classification") or {}
    for scheme, c in classification.items():
        if not c:
            continue
        date = _iso(c.get("date"))
        answers: dict[str, dict | None] = {}
        if c.get("met") is not None:
            answers[f"classification.{scheme}.met"] = _yn(c["met"])
        for item, v in (c.get("items") or {}).items():
            answers[f"classification.{scheme}.item.{item}"] = _yn(v)
        if date:
            answers[f"classification.{scheme}.date"] = {"valueDate": date}
        if answers:
            qr.add_group(date, answers)

    for s in rec.get("sledai2k", []):
        date = _iso(s["date"])
        answers = {"sledai2k.date": {"valueDate": date}}
        if s.get("total") is not None:
            answers["sledai2k.total"] = {"valueInteger": s["total"]}
        for name, v in (s.get("descriptors") or {}).items():
            answers[f"sledai2k.{name}"] = _yn(v)
        qr.add_group(date, answers)

    for organ, v in (rec.get("organ_involvement") or {}).items():
        qr.add(None, f"organ.{organ}", _yn(v))

    for a in rec.get("assessments", []):
        value = a["value"]
        if isinstance(value, bool):
            value = "yes" if value else "no"
        qr.add(_iso(a.get("date")), f"assessment.{a['name']}", {"valueCoding": {"code": str(value)}})

    for k, m in enumerate(rec.get("medications", [])):
        out += _course(pid, k, m, subject, DRUGS, _day(rec["screening_date"]))

    for j, t in enumerate(rec.get("transfusions", [])):
        code = _TRANSFUSION.get(str(t.get("product") or "").lower(), "116859006")
        out.append({"resourceType": "Procedure", "id": f"{pid}-tx-{j}", "status": "completed",
                    "code": {"coding": [{"system": SNOMED, "code": code}], "text": f"transfusion {t.get('product') or ''}".strip()},
                    "subject": subject, "performedDateTime": _iso(t["date"])})
    for j, g in enumerate(rec.get("growth_factors", [])):
        name = (g.get("drug") or "g_csf").strip().lower().replace(" ", "_").replace("-", "_")
        codes = DRUGS[name].rxnorm if name in DRUGS else ()
        concept: dict = {"text": name.replace("_", " ") if name not in ("g_csf", "gm_csf") else name.replace("_", "-")}
        if codes:
            concept["coding"] = [{"system": RXNORM, "code": codes[0]}]
        out.append({"resourceType": "MedicationAdministration", "id": f"{pid}-gf-{j}", "status": "completed",
                    "medicationCodeableConcept": concept, "subject": subject,
                    "effectiveDateTime": _iso(g["date"])})
    return out + qr.resources()


def _course(pid: str, k: int, m: dict, subject: dict, drugs: dict, today: dt.date) -> list[dict]:
    """One course as MedicationRequests, one per dose segment (a renewal at each dose change)."""
    name = m["drug"]
    system = m.get("system", "vocabulary")
    if system == "rxnorm":
        concept: dict = {"coding": [{"system": RXNORM, "code": name}]}
        if m.get("display"):
            concept["text"] = m["display"]
    elif system == "text":
        concept = {"text": m.get("display") or name}
    else:
        codes = drugs[name].rxnorm
        concept = {"text": name.replace("_", " ")}
        if codes:
            concept["coding"] = [{"system": RXNORM, "code": codes[0], "display": name.replace("_", " ")}]
    route = {"coding": [{"system": SNOMED, "code": _ROUTES[m.get("route", "oral")]}]} if m.get("route", "oral") in _ROUTES \
        else {"text": "other route"}
    unit = m.get("unit") or "mg"
    segments = [(_day(m["start"]), m.get("dose"), True)]
    for ch in sorted(m.get("dose_changes", []), key=lambda c: _day(c["date"])):
        segments.append((_day(ch["date"]), ch.get("dose"), ch.get("changed", True)))
    end = _day(m["end"]) if m.get("end") else None
    end_known = m.get("end_known", True)
    planned = None
    if end is not None and end >= today and end_known:
        planned, end = end, None  # ongoing at the screening date, with a planned end
    out = []
    for i, (start, dose, _changed) in enumerate(segments):
        last = i == len(segments) - 1
        seg_end = (segments[i + 1][0] - dt.timedelta(days=1)) if not last else (end if end_known else None)
        r: dict[str, Any] = {"resourceType": "MedicationRequest", "id": f"{pid}-med-{k}-{i}",
                             "intent": "order", "subject": subject, "medicationCodeableConcept": concept,
                             "authoredOn": start.isoformat()}
        dosage: dict[str, Any] = {"route": route}
        if dose is not None:
            dosage["timing"] = {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}
            dosage["doseAndRate"] = [{"doseQuantity": {"value": dose, "unit": unit, "system": UCUM, "code": unit}}]
        else:
            dosage["text"] = "as directed"
        r["dosageInstruction"] = [dosage]
        if not last:
            r["status"] = "completed"
            r["dispenseRequest"] = {"validityPeriod": {"start": start.isoformat(), "end": max(seg_end, start).isoformat()}}
        elif end is None:
            r["status"] = "active"
            r["dispenseRequest"] = {"validityPeriod": {"start": start.isoformat(),
                                                       **({"end": planned.isoformat()} if planned else {})}}
        elif end_known:
            r["status"] = "completed"
            r["dispenseRequest"] = {"validityPeriod": {"start": start.isoformat(), "end": end.isoformat()}}
        else:
            r["status"] = "stopped"  # stopped on a day not recorded
        out.append(r)
    if end is not None and not end_known and end > segments[-1][0]:
        # the last day it is known to have been taken: a renewal on that day, also stopped
        r = dict(out[-1], id=f"{pid}-med-{k}-last", authoredOn=end.isoformat(), status="stopped")
        out.append(r)
    return out


def native_to_bundle(rec: dict, kb_name: str = "ct1190b") -> dict:
    """A FHIR R4 collection Bundle of :func:`native_to_resources`."""
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r}
                      for r in native_to_resources(rec, kb_name)]}

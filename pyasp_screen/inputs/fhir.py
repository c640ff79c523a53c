"""FHIR R4 Bundle -> native patient record (stage 1 of the pipeline, for FHIR input).

:func:`bundle_to_record` reads one Bundle holding one patient (a Synthea transaction
bundle, a searchset, a collection ...) and returns a plain dict in the record format that
:class:`pyasp_screen.inputs.record.Record` describes, or a :class:`~pyasp_screen.inputs.record.RecordError`.
Only standard codes listed in :mod:`pyasp_screen.knowledge.vocabulary` are mapped; everything else is
counted in ``mapping_notes``, never guessed.

Parsing and validation
    The whole Bundle is validated with fhir.resources (``fhir.resources.R4B``: fhir.resources
    8 defaults to R5, whose Medication* resources differ from R4; R4B is wire-compatible with
    R4 for every resource read here). Validating the whole Bundle model takes 0.05-0.3 s for
    the ~1 MB Synthea samples, so no per-entry shortcut is needed. A Bundle the library
    rejects gives one RecordError naming the first bad field as ``entry[i].resource.<field>``
    (pydantic's error location). Entries that are not objects, or resources of an unknown
    type, are reported before the library is called (the library would fail on them with an
    unhelpful message). This function never raises for bad content.

What maps (read from the validated models)
    Patient: ``id`` (else the ``urn:uuid:`` of its fullUrl), ``gender`` female/male (anything
    else is ``unknown``), ``birthDate``. Exactly one Patient is required.

    Observations: the LOINC codings of ``code`` looked up in ``LOINC_TO_OBSERVATION``. Date:
    ``effectiveDateTime``, else ``effectiveInstant``, else ``effectivePeriod.start``, else
    ``issued``. Quantitative: ``valueQuantity.value`` with its UCUM ``code`` (when ``system``
    is UCUM) else its ``unit``; a value with a comparator (``<0.1``) is only a bound and is
    skipped. ``referenceRange[0]`` low/high become ``reference_range``. Qualitative
    observations (ANA ...): ``valueCodeableConcept`` (text, coding displays and codes) or
    ``valueString`` looked up in ``QUALITATIVE_VALUES``; anything else is skipped with a note.
    Panels with only ``component`` values (blood pressure) are not read. Status
    ``entered-in-error`` / ``cancelled`` is skipped. All mapped dated results are kept: the
    knowledge base picks the latest within its window. Exact repeats (same name, day, value,
    unit and range: Synthea files some results under two encounters) are kept once; different
    values of one test on one day are all kept and a note names them (Synthea's basic and
    comprehensive metabolic panels of one encounter can disagree).

    Conditions: SNOMED CT codes in ``SNOMED_TO_DIAGNOSIS`` and ICD-10 codes (any system whose
    URI contains ``icd-10``) through ``diagnosis_from_icd10``; each distinct vocabulary name
    found gives one diagnosis. ``onset`` is ``onsetDateTime`` (else ``onsetPeriod.start``).
    verificationStatus ``refuted`` / ``entered-in-error``: skipped; ``unconfirmed`` /
    ``provisional`` / ``differential``: kept with ``present: unknown``. A condition whose
    clinicalStatus is ``resolved`` / ``inactive`` / ``remission`` is still a history item
    (criteria say "history of ..."), so it is kept as present.

    Medications: MedicationStatement and MedicationRequest (``medicationCodeableConcept`` or
    a ``medicationReference`` to a Medication in the bundle or contained). RxNorm codes in
    ``RXNORM_TO_DRUG`` first, else ``drug_from_text`` on the text and coding displays (Synthea
    codes clinical drugs, not ingredients, so the text is what usually maps). ``start``:
    ``authoredOn`` (request) or ``effectiveDateTime`` / ``effectivePeriod.start`` (statement);
    ``end``: ``effectivePeriod.end`` or none. A MedicationRequest has no end date in FHIR: a
    ``stopped`` / ``completed`` one is kept without ``end`` (which the record model reads as
    ongoing) and a mapping note says so. Status ``entered-in-error`` / ``cancelled`` /
    ``draft`` / ``not-taken`` / ``intended``: skipped. ``dose`` (mg/day) is given only when it
    is exact: a single dosage instruction, not as-needed, ``doseAndRate[0].doseQuantity`` in
    mg and ``timing.repeat`` frequency/period in h, d or wk (or timing code QD/BID/TID/QID/
    QOD): daily dose = dose x frequency / period in days. Route: ``dosage.route`` (SNOMED or
    text), else "oral"/"topical" in the drug's text, else ``other`` (with a note), never the
    record model's default ``oral`` by silence.

Dates
    A FHIR dateTime with a time zone gives its date part as written (``2020-05-12T23:55:41-05:00``
    is 2020-05-12): no conversion to UTC or to local time, since the clinical day is the one
    the source recorded. Partial dates (``2020``, ``2020-05``) are not days: such an item is
    skipped (or its onset / birth date left empty) with a note.

Screening date
    The ``screening_date`` argument if given; otherwise the latest clinical date in the
    bundle: Observation (date as above), Condition (onset, recordedDate), MedicationRequest
    (authoredOn), MedicationStatement (effective start, dateAsserted), MedicationAdministration
    (effective start) and MedicationDispense (whenHandedOver), mapped or not. That is the
    date the record describes the patient at; ``mapping_notes`` says "screening date taken as
    the latest clinical date in the bundle: YYYY-MM-DD".

Resources that refer (``subject``) to another patient than the bundle's Patient are skipped
with a note. Display strings lose zero-width characters (U+200B ...) that Synthea puts in
some displays.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from decimal import Decimal
from fractions import Fraction
from typing import Any

from pyasp_screen.inputs.record import RecordError
from pyasp_screen.knowledge.vocabulary import Vocabulary, library

__all__ = ["bundle_to_record"]

LOINC_SYSTEMS = ("http://loinc.org", "urn:oid:2.16.840.1.113883.6.1")
SNOMED_SYSTEMS = ("http://snomed.info/sct", "urn:oid:2.16.840.1.113883.6.96")
RXNORM_SYSTEMS = ("http://www.nlm.nih.gov/research/umls/rxnorm", "urn:oid:2.16.840.1.113883.6.88")
UCUM = "http://unitsofmeasure.org"

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))

OBSERVATION_SKIP = {"entered-in-error", "cancelled"}
CONDITION_SKIP = {"refuted", "entered-in-error"}
CONDITION_UNCERTAIN = {"unconfirmed", "provisional", "differential"}
MEDICATION_SKIP = {"entered-in-error", "cancelled", "draft", "not-taken", "intended"}
MEDICATION_ENDED = {"stopped", "completed"}

# Days per unit of Timing.repeat.periodUnit; months and years have no exact length.
_PERIOD_DAYS = {"h": Fraction(1, 24), "d": Fraction(1), "wk": Fraction(7)}
# HL7 v3 GTSAbbreviation timing codes with an exact number of doses per day.
_TIMING_CODES = {"QD": Fraction(1), "BID": Fraction(2), "TID": Fraction(3),
                 "QID": Fraction(4), "QOD": Fraction(1, 2)}
# Route of administration: SNOMED CT route codes, HL7 v3 RouteOfAdministration codes, words.
_ROUTE_CODES = {"26643006": "oral", "47625008": "iv", "34206005": "sc", "78421000": "im",
                "6064005": "topical", "PO": "oral", "IVINJ": "iv", "IVINFUS": "iv",
                "SQ": "sc", "SC": "sc", "IM": "im", "TOPICAL": "topical"}
_ROUTE_WORDS = (("intravenous", "iv"), ("subcutaneous", "sc"), ("intramuscular", "im"),
                ("topical", "topical"), ("cutaneous", "topical"), ("oral", "oral"),
                ("by mouth", "oral"))

_READ = ("Patient", "Observation", "Condition", "MedicationRequest", "MedicationStatement",
         "Medication")


def clean(text: str | None) -> str | None:
    """A display string without zero-width characters and surrounding blanks."""
    if text is None:
        return None
    text = " ".join(str(text).translate(_ZERO_WIDTH).split())
    return text or None


def _day(value: Any) -> dt.date | None:
    """The calendar day of a FHIR date/dateTime/instant as written, or None (absent or
    partial: fhir.resources keeps "2020" and "2020-05" as strings)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return None


def _iso(day: dt.date | None) -> str | None:
    return day.isoformat() if day else None


def _num(value: Decimal | float | int) -> float | int:
    f = float(value)
    return int(f) if f.is_integer() and abs(f) < 2**53 else f


def _codings(concept: Any) -> list:
    return list(getattr(concept, "coding", None) or []) if concept is not None else []


def _concept_display(concept: Any, prefer: Any = None) -> str | None:
    """The concept's text, else the preferred coding's display, else the first display."""
    if concept is None:
        return None
    if clean(getattr(concept, "text", None)):
        return clean(concept.text)
    if prefer is not None and clean(prefer.display):
        return clean(prefer.display)
    for c in _codings(concept):
        if clean(c.display):
            return clean(c.display)
    return None


def _status_code(concept: Any) -> str | None:
    for c in _codings(concept):
        if c.code:
            return str(c.code).lower()
    return None


def _unit(q: Any) -> str | None:
    """UCUM code when the quantity says it is UCUM, else the human unit, else the code."""
    if q is None:
        return None
    if q.system == UCUM and q.code:
        return str(q.code)
    return q.unit or q.code


def _loc(loc: tuple) -> str | None:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "root":
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or None


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------

def _raw_patient_id(bundle: Any) -> str | None:
    """The Patient id read from the raw dict, to name the patient in a validation error."""
    if not isinstance(bundle, dict) or not isinstance(bundle.get("entry"), list):
        return None
    for e in bundle["entry"]:
        r = e.get("resource") if isinstance(e, dict) else None
        if isinstance(r, dict) and r.get("resourceType") == "Patient" and r.get("id"):
            return str(r["id"])
    return None


def _precheck(bundle: Any) -> tuple[str | None, str] | None:
    """Shape errors the library reports badly (or by raising KeyError): (field, reason)."""
    from fhir.resources.R4B import get_fhir_model_class

    if not isinstance(bundle, dict):
        return None, f"a FHIR Bundle must be a JSON object, got {type(bundle).__name__}"
    if bundle.get("resourceType") != "Bundle":
        return "resourceType", f"expected 'Bundle', got {bundle.get('resourceType')!r}"
    entries = bundle.get("entry")
    if entries is None:
        return None
    if not isinstance(entries, list):
        return "entry", f"must be a list of entries, got {type(entries).__name__}"
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            return f"entry[{i}]", f"an entry must be an object, got {type(e).__name__}"
        if "resource" not in e:
            continue
        r = e["resource"]
        if not isinstance(r, dict):
            return f"entry[{i}].resource", f"a resource must be an object, got {type(r).__name__}"
        rt = r.get("resourceType")
        if not isinstance(rt, str) or not rt:
            return f"entry[{i}].resource.resourceType", "missing resourceType"
        try:
            get_fhir_model_class(rt)
        except (ValueError, KeyError, AttributeError):
            return f"entry[{i}].resource.resourceType", f"unknown FHIR resource type {rt!r}"
    return None


def _validate(bundle: dict, file: str) -> Any:
    """The fhir.resources Bundle model, or a RecordError."""
    from fhir.resources.R4B.bundle import Bundle
    from pydantic import ValidationError

    patient = _raw_patient_id(bundle)
    shape = _precheck(bundle)
    if shape is not None:
        return RecordError(file, patient, shape[0], shape[1])
    try:
        return Bundle.model_validate(bundle)
    except ValidationError as e:
        errors = e.errors()
        first = errors[0]
        reason = " ".join(str(first.get("msg", "invalid")).split())
        value = first.get("input")
        if isinstance(value, (str, int, float, bool)) and first.get("type") != "extra_forbidden":
            reason += f" (got {value!r})"
        if first.get("type") == "extra_forbidden":
            reason = "not an element of this resource type (FHIR R4)"
        if len(errors) > 1:
            reason += f" (and {len(errors) - 1} more FHIR validation errors)"
        return RecordError(file, patient, _loc(tuple(first.get("loc", ()))), reason)
    except Exception as e:  # the library's own failures: still one line, never a traceback
        reason = " ".join(f"FHIR validation failed: {e.__class__.__name__}: {e}".split())
        return RecordError(file, patient, None, reason)


# ---------------------------------------------------------------------------------------------
# Mapping
# ---------------------------------------------------------------------------------------------

class _Mapper:
    def __init__(self, model: Any, file: str, vocabulary: Vocabulary):
        self.file = file
        self.v = vocabulary  # the codes, units and names mapped (the knowledge base's)
        self.entries = [(i, e) for i, e in enumerate(model.entry or []) if e.resource is not None]
        self.notes: list[str] = []
        self.skipped: list[str] = []
        self.where = "entry"  # the entry being mapped, for an unexpected failure
        self.patient_refs: set[str] = set()
        self.pid = ""
        self.clinical_dates: list[dt.date] = []

    def by_type(self, rt: str) -> list[tuple[int, Any]]:
        return [(i, e.resource) for i, e in self.entries if e.resource.get_resource_type() == rt]

    def skip(self, i: int, what: str, reason: str) -> None:
        self.skipped.append(f"entry[{i}] {what}: {reason}")

    def own(self, i: int, r: Any, what: str) -> bool:
        """False (with a note) if the resource's subject is another patient."""
        ref = getattr(getattr(r, "subject", None), "reference", None)
        if not ref or ref in self.patient_refs or ref.endswith(f"/Patient/{self.pid}"):
            return True
        self.skip(i, what, f"subject {ref} is not the bundle's Patient")
        return False

    # -- patient ---------------------------------------------------------------------------
    def patient(self) -> tuple[dict, RecordError | None]:
        patients = self.by_type("Patient")
        if not patients:
            return {}, RecordError(self.file, None, "entry", "no Patient resource in the bundle")
        if len(patients) > 1:
            i = patients[1][0]
            return {}, RecordError(self.file, patients[0][1].id, f"entry[{i}].resource",
                                   "more than one Patient: a bundle must hold one patient")
        i, p = patients[0]
        self.where = f"entry[{i}].resource"
        full_url = next(e.fullUrl for j, e in self.entries if j == i) or ""
        pid = p.id
        if not pid and full_url.startswith("urn:uuid:"):
            pid = full_url.removeprefix("urn:uuid:")
            self.notes.append(f"Patient has no id: its fullUrl {full_url} gives the id")
        if not pid:
            return {}, RecordError(self.file, None, f"entry[{i}].resource.id",
                                   "the Patient has no id (and no urn:uuid fullUrl)")
        self.patient_refs = {f"Patient/{pid}", f"urn:uuid:{pid}"} | ({full_url} if full_url
                                                                     else set())
        self.pid = str(pid)
        out: dict[str, Any] = {"id": str(pid)}
        out["sex"] = p.gender if p.gender in ("female", "male") else "unknown"
        if p.birthDate is not None:
            if _day(p.birthDate):
                out["birth_date"] = _iso(_day(p.birthDate))
            else:
                self.notes.append(f"birth date {p.birthDate} is partial: birth date left unknown")
        return out, None

    # -- observations ----------------------------------------------------------------------
    @staticmethod
    def observation_day(r: Any) -> dt.date | None:
        period_start = r.effectivePeriod.start if r.effectivePeriod is not None else None
        for v in (r.effectiveDateTime, r.effectiveInstant, period_start, r.issued):
            if v is not None:
                return _day(v)
        return None

    def observations(self) -> list[dict]:
        out: list[tuple[dict, str]] = []  # (result, the LOINC code it was mapped from)
        seen: set[str] = set()
        unused = 0
        for i, r in self.by_type("Observation"):
            self.where = f"entry[{i}].resource"
            day = self.observation_day(r)
            if day:
                self.clinical_dates.append(day)
            loincs = [c for c in _codings(r.code) if c.system in LOINC_SYSTEMS and c.code]
            mapped = [(self.v.loinc_to_observation[c.code], c) for c in loincs
                      if c.code in self.v.loinc_to_observation]
            if not mapped:
                unused += 1
                continue
            names = sorted({n for n, _ in mapped})
            name, coding = mapped[0]
            seen.update(names)
            what = f"Observation {name} (LOINC {coding.code})"
            if len(names) > 1:
                self.skip(i, what, f"codes map to several observations ({', '.join(names)})")
                continue
            if r.status in OBSERVATION_SKIP:
                self.skip(i, what, f"status {r.status}")
                continue
            if not self.own(i, r, what):
                continue
            if day is None:
                raw = r.effectiveDateTime or (r.effectivePeriod and r.effectivePeriod.start)
                self.skip(i, what, f"date {raw} is partial" if raw else "no date")
                continue
            item = self.observation_value(i, r, name, what)
            if item is None:
                continue
            item = {"code": name, "date": _iso(day), **item}
            display = _concept_display(r.code, coding)
            if display:
                item["display"] = display
            out.append((item, coding.code))
        order = list(self.v.observations)
        out.sort(key=lambda o: (order.index(o[0]["code"]), o[0]["date"]))
        out, day_notes = _same_day(out)
        per_code: dict[str, Counter] = defaultdict(Counter)
        for item, loinc in out:
            per_code[item["code"]][loinc] += 1
        for name in self.v.observations:
            if per_code[name]:
                n = sum(per_code[name].values())
                codes = ", ".join(f"{c} ({k})" for c, k in per_code[name].most_common())
                latest = max(o["date"] for o, _ in out if o["code"] == name)
                self.notes.append(f"{name}: {n} result{'s' * (n != 1)} from LOINC {codes};"
                                  f" latest {latest}")
        self.notes += day_notes
        if per_code["spo2"]:
            self.notes.append("spo2: FHIR does not say whether on room air; the record's"
                              " default (room air) applies")
        missing = [n for n in self.v.observations if n not in seen]
        self.notes.append("not found in bundle: " + (", ".join(missing) if missing else "none"))
        unusable = [n for n in self.v.observations if n in seen and not per_code[n]]
        if unusable:
            self.notes.append("found but no usable result (see skipped): " + ", ".join(unusable))
        self.notes.append(f"{unused} Observation{'s' * (unused != 1)} not used by any criterion"
                          " (other LOINC codes)")
        return [item for item, _ in out]

    def observation_value(self, i: int, r: Any, name: str, what: str) -> dict | None:
        kind = self.v.observations[name]
        if kind.qualitative:
            texts: list[str] = []
            if r.valueCodeableConcept is not None:
                texts.append(r.valueCodeableConcept.text or "")
                for c in _codings(r.valueCodeableConcept):
                    texts += [c.display or "", c.code or ""]
            elif r.valueString is not None:
                texts.append(r.valueString)
            else:
                self.skip(i, what, "qualitative test without a coded or text result")
                return None
            found = {self.v.qualitative_values[t] for t in (clean(x.lower()) for x in texts if x)
                     if t in self.v.qualitative_values}
            if len(found) != 1:
                shown = next((clean(t) for t in texts if clean(t)), "")
                self.skip(i, what, f"result {shown!r} is not read as positive/negative"
                          if not found else "result is both positive and negative")
                return None
            return {"value": found.pop()}
        q = r.valueQuantity
        if q is None:
            if r.component and not any(getattr(r, f, None) is not None for f in (
                    "valueString", "valueCodeableConcept", "valueInteger", "valueRatio")):
                self.skip(i, what, "panel with component values only (not read)")
            elif r.dataAbsentReason is not None:
                self.skip(i, what, f"no value ({_concept_display(r.dataAbsentReason)})")
            else:
                self.skip(i, what, "no numeric value (valueQuantity)")
            return None
        if q.value is None:
            self.skip(i, what, "valueQuantity without a value")
            return None
        if q.comparator:
            self.skip(i, what, f"value {q.comparator}{q.value} is a bound, not a result")
            return None
        item: dict[str, Any] = {"value": _num(q.value), "unit": _unit(q)}
        ref = self.reference_range(i, r, what)
        if ref:
            item["reference_range"] = ref
        return item

    def reference_range(self, i: int, r: Any, what: str) -> dict | None:
        if not r.referenceRange:
            return None
        rr = r.referenceRange[0]
        low, high = rr.low, rr.high
        low = low if low is not None and low.value is not None else None
        high = high if high is not None and high.value is not None else None
        if low is None and high is None:
            return None
        if low is not None and high is not None and _unit(low) != _unit(high):
            self.skip(i, what + " reference range low", f"unit {_unit(low)} differs from"
                      f" the high limit's {_unit(high)}: only the high limit kept")
            low = None
        out: dict[str, Any] = {}
        if low is not None:
            out["low"] = _num(low.value)
        if high is not None:
            out["high"] = _num(high.value)
        out["unit"] = _unit(high if high is not None else low)
        return out

    # -- diagnoses -------------------------------------------------------------------------
    def diagnoses(self) -> list[dict]:
        out: list[dict] = []
        mapped_notes: list[str] = []
        unmapped: Counter = Counter()
        for i, r in self.by_type("Condition"):
            self.where = f"entry[{i}].resource"
            onset_raw = r.onsetDateTime or (r.onsetPeriod.start if r.onsetPeriod else None)
            onset = _day(onset_raw)
            for d in (onset, _day(r.recordedDate)):
                if d:
                    self.clinical_dates.append(d)
            found: dict[str, tuple[str, Any]] = {}
            for c in _codings(r.code):
                if not c.code:
                    continue
                if c.system in SNOMED_SYSTEMS and c.code in self.v.snomed_to_diagnosis:
                    found.setdefault(self.v.snomed_to_diagnosis[c.code], (f"SNOMED {c.code}", c))
                elif c.system and ("icd-10" in c.system.lower() or "icd10" in c.system.lower()):
                    name = self.v.diagnosis_from_icd10(c.code)
                    if name:
                        found.setdefault(name, (f"ICD-10 {c.code}", c))
            if not found:
                unmapped[_concept_display(r.code) or "(no display)"] += 1
                continue
            what = f"Condition {'/'.join(found)}"
            verification = _status_code(r.verificationStatus)
            if verification in CONDITION_SKIP:
                self.skip(i, what, f"verificationStatus {verification}")
                continue
            if not self.own(i, r, what):
                continue
            if onset_raw is not None and onset is None:
                self.skip(i, what + " onset", f"onset {onset_raw} is partial: onset left unknown")
            clinical = _status_code(r.clinicalStatus)
            for name, (how, coding) in found.items():
                item: dict[str, Any] = {"code": name, "onset": _iso(onset),
                                        "display": _concept_display(r.code, coding)}
                extra = []
                if verification in CONDITION_UNCERTAIN:
                    item["present"] = "unknown"
                    extra.append(f"verificationStatus {verification}: present unknown")
                if clinical in ("resolved", "inactive", "remission"):
                    extra.append(f"clinicalStatus {clinical}: kept as history")
                out.append(item)
                mapped_notes.append(
                    f"{name} from {how} {item['display']!r}"
                    f" (onset {item['onset'] or 'unknown'}{''.join('; ' + x for x in extra)})")
        self.notes.append("diagnoses mapped: " + ("; ".join(mapped_notes) or "none"))
        n = sum(unmapped.values())
        self.notes.append(f"{n} Condition{'s' * (n != 1)} not mapped to a vocabulary diagnosis"
                          + (f": {_summary(unmapped)}" if n else ""))
        return out

    # -- medications -----------------------------------------------------------------------
    def medication_lookup(self) -> dict[str, Any]:
        lookup: dict[str, Any] = {}
        for i, e in self.entries:
            if e.resource.get_resource_type() == "Medication":
                if e.fullUrl:
                    lookup[e.fullUrl] = e.resource
                if e.resource.id:
                    lookup[f"Medication/{e.resource.id}"] = e.resource
        return lookup

    @staticmethod
    def medication_concept(r: Any, lookup: dict[str, Any]) -> tuple[Any, str | None]:
        """(CodeableConcept of the drug, reference display)."""
        if r.medicationCodeableConcept is not None:
            return r.medicationCodeableConcept, None
        ref = r.medicationReference
        if ref is None:
            return None, None
        target = None
        if ref.reference and ref.reference.startswith("#"):
            for c in r.contained or []:
                if c.get_resource_type() == "Medication" and c.id == ref.reference[1:]:
                    target = c
        elif ref.reference:
            target = lookup.get(ref.reference)
            if target is None and "Medication/" in ref.reference:
                target = lookup.get("Medication/" + ref.reference.rsplit("Medication/", 1)[1])
        return (target.code if target is not None else None), ref.display

    def medications(self) -> list[dict]:
        out: list[dict] = []
        mapped_notes: list[str] = []
        unmapped: Counter = Counter()
        lookup = self.medication_lookup()
        resources = ([("MedicationRequest", i, r) for i, r in self.by_type("MedicationRequest")]
                     + [("MedicationStatement", i, r)
                        for i, r in self.by_type("MedicationStatement")])
        for rt in ("MedicationAdministration", "MedicationDispense"):
            for _, r in self.by_type(rt):
                v = (r.effectiveDateTime or (r.effectivePeriod.start if r.effectivePeriod
                                             else None)) if rt == "MedicationAdministration" \
                    else r.whenHandedOver
                if _day(v):
                    self.clinical_dates.append(_day(v))
        for rt, i, r in resources:
            self.where = f"entry[{i}].resource"
            if rt == "MedicationRequest":
                start_raw = r.authoredOn
                end_raw = None
                dosages = list(r.dosageInstruction or [])
            else:
                start_raw = r.effectiveDateTime or (r.effectivePeriod.start
                                                    if r.effectivePeriod else None)
                end_raw = r.effectivePeriod.end if r.effectivePeriod else None
                dosages = list(r.dosage or [])
                if _day(r.dateAsserted):
                    self.clinical_dates.append(_day(r.dateAsserted))
            start = _day(start_raw)
            if start:
                self.clinical_dates.append(start)
            concept, ref_display = self.medication_concept(r, lookup)
            display = _concept_display(concept) or clean(ref_display)
            names: dict[str, str] = {}
            for c in _codings(concept):
                if c.system in RXNORM_SYSTEMS and c.code in self.v.rxnorm_to_drug:
                    names.setdefault(self.v.rxnorm_to_drug[c.code], f"RxNorm {c.code}")
            if not names:
                texts = [getattr(concept, "text", None), ref_display]
                texts += [c.display for c in _codings(concept)]
                for t in texts:
                    name = self.v.drug_from_text(clean(t) or "")
                    if name:
                        names.setdefault(name, "text")
            if not names:
                unmapped[display or "(no display)"] += 1
                continue
            what = f"{rt} {'/'.join(names)}"
            status = r.status
            if status in MEDICATION_SKIP:
                self.skip(i, what, f"status {status}")
                continue
            if not self.own(i, r, what):
                continue
            if start is None:
                self.skip(i, what, f"start date {start_raw} is partial" if start_raw
                          else "no start date")
                continue
            end = _day(end_raw)
            if end_raw is not None and end is None:
                self.skip(i, what + " end", f"end date {end_raw} is partial: end left unknown")
            if end is None and status in MEDICATION_ENDED:
                self.skip(i, what, f"status {status} but no end date recorded: kept without"
                          " end (read as ongoing)")
            dose, dose_note = _daily_dose(dosages)
            route, route_note = _route(dosages, display)
            for name, how in names.items():
                item: dict[str, Any] = {"drug": name, "start": _iso(start), "end": _iso(end),
                                        "display": display, "route": route}
                if dose is not None:
                    item["dose"] = dose
                    item["unit"] = "mg"
                out.append(item)
                dose_text = (f"{_fmt(dose)} mg/day" if dose is not None
                             else f"dose not read ({dose_note})")
                mapped_notes.append(
                    f"{name} from {rt} {how} {display!r} (start {item['start']},"
                    f" end {item['end'] or 'none'}, {dose_text}, route {route}"
                    f"{' ' + route_note if route_note else ''})")
        self.notes.append("drugs mapped: " + ("; ".join(mapped_notes) or "none"))
        n = sum(unmapped.values())
        self.notes.append(f"{n} MedicationRequest/MedicationStatement{'s' * (n != 1)} not mapped"
                          " to a vocabulary drug" + (f": {_summary(unmapped)}" if n else ""))
        return out


def _same_day(out: list[tuple[dict, str]]) -> tuple[list[tuple[dict, str]], list[str]]:
    """Drop exact repeats of a result (same day, value, unit and range: Synthea files one
    result under two encounters); keep, and point out, different values on one day."""
    kept: list[tuple[dict, str]] = []
    by_day: dict[tuple[str, str], list[dict]] = defaultdict(list)
    repeats: Counter = Counter()
    notes: list[str] = []
    for o, loinc in out:
        same = by_day[o["code"], o["date"]]
        key = (o.get("value"), o.get("unit"), o.get("reference_range"))
        if any((k.get("value"), k.get("unit"), k.get("reference_range")) == key for k in same):
            repeats[o["code"]] += 1
            continue
        same.append(o)
        kept.append((o, loinc))
    for name, n in repeats.items():
        notes.append(f"{name}: {n} repeated result{'s' * (n != 1)} (same day, value and unit)"
                     " counted once")
    for (name, day), same in by_day.items():
        if len(same) > 1:
            values = ", ".join(_show(o.get("value")) + (f" {o['unit']}" if o.get("unit") else "")
                               for o in same)
            notes.append(f"{name}: {len(same)} different results on {day} ({values}): all kept,"
                         " none is later than the other")
    return kept, notes


def _show(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _fmt(x: float | int | None) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _summary(counts: Counter, limit: int = 12) -> str:
    items = [f"{k} x{v}" if v > 1 else k for k, v in counts.most_common(limit)]
    rest = len(counts) - limit
    return ", ".join(items) + (f" and {rest} more" if rest > 0 else "")


def _daily_dose(dosages: list) -> tuple[float | int | None, str]:
    """The exact daily dose in mg, or (None, why not)."""
    if not dosages:
        return None, "no dosage"
    if len(dosages) > 1:
        return None, "several dosage instructions"
    d = dosages[0]
    if d.asNeededBoolean or d.asNeededCodeableConcept is not None:
        return None, "as needed"
    q = d.doseAndRate[0].doseQuantity if d.doseAndRate else None
    if q is None or q.value is None:
        return None, "no dose quantity"
    unit = (q.code if q.system == UCUM and q.code else q.unit or q.code or "")
    if unit.strip().lower() != "mg":
        return None, f"dose in {unit.strip() or 'units not stated'}, not mg"
    timing = d.timing
    repeat = timing.repeat if timing is not None else None
    per_day: Fraction | None = None
    if repeat is not None and repeat.frequency is not None and repeat.period is not None:
        if repeat.frequencyMax not in (None, repeat.frequency) or repeat.periodMax is not None:
            return None, "frequency given as a range"
        days = _PERIOD_DAYS.get(repeat.periodUnit or "")
        if days is None or repeat.period <= 0:
            return None, f"period in {repeat.periodUnit!r} has no exact length in days"
        per_day = Fraction(repeat.frequency) / (Fraction(repeat.period) * days)
    elif timing is not None and timing.code is not None:
        code = next((c.code for c in _codings(timing.code) if c.code), None)
        per_day = _TIMING_CODES.get(str(code).upper()) if code else None
    if per_day is None:
        return None, "no exact frequency per day"
    return _num(Fraction(q.value) * per_day), ""


def _route(dosages: list, display: str | None) -> tuple[str, str]:
    """(route, note): the dosage's route, else one named in the drug text, else other."""
    for d in dosages:
        if d.route is None:
            continue
        for c in _codings(d.route):
            if c.code and str(c.code).upper() in _ROUTE_CODES:
                return _ROUTE_CODES[str(c.code).upper()], ""
        text = " ".join(filter(None, [d.route.text] + [c.display for c in _codings(d.route)]))
        for word, route in _ROUTE_WORDS:
            if word in text.lower():
                return route, ""
    words = set((display or "").lower().replace("/", " ").split())
    for word in ("oral", "topical"):
        if word in words:
            return word, "(from the drug text)"
    return "other", "(route not stated)"


def bundle_to_record(bundle: dict, file: str,
                     screening_date: dt.date | None = None,
                     vocabulary: Vocabulary | None = None) -> dict | RecordError:
    """Map one FHIR R4 Bundle (one patient) to a native record dict, or a RecordError.

    The result is a plain dict (dates as ISO strings) that ``record.parse_record`` accepts.
    ``screening_date``: the date the record describes; when None it is the latest clinical
    date in the bundle (Observation, Condition, Medication* dates; see the module docstring
    for every mapping decision), and ``mapping_notes`` records that choice. Never raises for
    bad content: a bundle fhir.resources rejects, or one without exactly one Patient, gives a
    RecordError(file, patient id or None, "entry[i].resource.<field>", reason).
    ``vocabulary``: the codes mapped (a knowledge base's ``kb.vocabulary``; default: the
    shared library's).
    """
    model = _validate(bundle, file)
    if isinstance(model, RecordError):
        return model
    mapper = _Mapper(model, file, vocabulary or library())
    pid = None
    try:
        record, error = mapper.patient()
        if error is not None:
            return error
        pid = record["id"]
        observations = mapper.observations()
        diagnoses = mapper.diagnoses()
        medications = mapper.medications()
    except Exception as e:  # a bug or content this mapper did not foresee: report, never raise
        reason = " ".join(f"cannot map: {e.__class__.__name__}: {e}".split())
        return RecordError(file, pid, mapper.where, reason)

    notes: list[str] = []
    if screening_date is None:
        if not mapper.clinical_dates:
            return RecordError(file, pid, "screening_date", "no clinical date in the bundle:"
                               " give the screening date")
        screening_date = max(mapper.clinical_dates)
        notes.append("screening date taken as the latest clinical date in the bundle: "
                     f"{screening_date.isoformat()}")
    else:
        notes.append(f"screening date given: {screening_date.isoformat()}")
    later = sum(1 for o in observations if o["date"] > screening_date.isoformat()) \
        + sum(1 for m in medications if m["start"] > screening_date.isoformat())
    if later:
        notes.append(f"{later} mapped result{'s' * (later != 1)}/medication{'s' * (later != 1)}"
                     f" dated after the screening date")
    read = Counter(e.resource.get_resource_type() for _, e in mapper.entries)
    notes.append(f"FHIR Bundle ({model.type}) of {len(mapper.entries)} resources, validated with"
                 " fhir.resources (R4B models)")
    ignored = Counter({k: v for k, v in read.items() if k not in _READ})
    if ignored:
        notes.append("resource types not read: " + ", ".join(
            f"{k} x{v}" for k, v in sorted(ignored.items(), key=lambda kv: (-kv[1], kv[0]))))
    notes += mapper.notes
    notes += [f"skipped {s}" for s in mapper.skipped]

    record.update({
        "screening_date": screening_date.isoformat(),
        "source": f"FHIR R4 Bundle {file}",
        "diagnoses": diagnoses,
        "observations": observations,
        "medications": medications,
        "mapping_notes": notes,
    })
    return record

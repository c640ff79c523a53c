"""FHIR R4 resources of one patient -> native patient record (stage 1 of the pipeline, FHIR input).

:func:`bundle_to_record` reads one Bundle holding one patient (a Synthea transaction bundle,
a searchset, a collection ...); :func:`lines_to_record` reads one patient's NDJSON lines of a
FHIR Bulk Data export (pyasp_screen/inputs/bulk.py). Both return a plain dict in the record
format of :class:`pyasp_screen.inputs.record.Record`, or a
:class:`~pyasp_screen.inputs.record.RecordError`. Only codes listed in kb/lib/vocabulary.yaml
(:mod:`pyasp_screen.knowledge.vocabulary`) are mapped; everything else is counted in
``mapping_notes``, never guessed. Every mapping decision is in docs/fhir.md; the codes read
are listed there with their sources.

Decoding and validation
    The resources read are decoded into typed msgspec Structs (:mod:`.fhir_types`): only the
    elements read, each checked for its FHIR JSON type; a wrong type (``valueQuantity.value:
    "abc"``), a malformed date, an entry that is not an object or a resource type FHIR R4 does
    not define is one RecordError naming ``entry[i].resource.<field>`` (a Bundle) or
    ``<type>/<id>.<field>`` (a Bulk export line). ``validate=True`` first validates the whole
    Bundle with fhir.resources (R4B models, wire-compatible with R4 for every resource read
    here), which also rejects elements R4 does not define; it is about ten times slower and
    reads the same record (tests/test_fhir.py checks both routes on every sample bundle).
    Never raises for bad content.

What maps
    Patient: ``id`` (else the ``urn:uuid:`` of its fullUrl), ``gender`` female/male (anything
    else is ``unknown``), ``birthDate``, ``deceasedBoolean`` / ``deceasedDateTime`` (a deceased
    patient is never eligible).

    Observation: its LOINC codings looked up in the vocabulary; date ``effectiveDateTime``,
    else ``effectiveInstant``, ``effectivePeriod.start``, ``issued``. ``valueQuantity`` with its
    UCUM ``code`` (when ``system`` is UCUM) else its ``unit`` as written (spellings such as
    ``K/uL`` are read through kb/lib/units.yaml by the findings stage); a ``comparator``
    (``<0.2``) makes the value a bound, read as the interval it states. A result whose unit
    cannot be read, or whose value is impossible, is set aside with a note naming the resource
    (``source``); the patient is still screened. ``referenceRange[0]`` gives the ULN.
    Qualitative tests read ``valueCodeableConcept`` / ``valueString``. SpO2 components 3151-8
    (inhaled O2 flow) and 3150-0 (inhaled O2 concentration) say whether it was on room air.
    Status ``entered-in-error`` / ``cancelled`` is skipped. Exact repeats of a result (Synthea
    files some under two encounters) are kept once.

    Condition: SNOMED CT and ICD-10 codes in the vocabulary (an ICD-10 code by its longest
    listed prefix); verificationStatus
    ``refuted`` is recorded absent, ``unconfirmed`` / ``provisional`` / ``differential``
    present unknown, ``entered-in-error`` skipped; a resolved condition is still history.
    Lupus nephritis is also SLE, and an active one is renal involvement (SLE-IN-6); ICD-10-CM
    M34.1 gives the SSc subtype limited.

    Medications: MedicationRequest (status, intent, authoredOn, dosageInstruction,
    dispenseRequest), MedicationStatement, MedicationDispense and MedicationAdministration,
    read into courses as a pharmacist reads a history (:mod:`.medication_history`: renewals
    at the same dose are one course, a dose change is dated, a daily dose that cannot be
    computed is unknown). Drugs by RxNorm ingredient code, else by name in the drug text.
    Haematopoietic growth factors become growth-factor events.

    Procedure: transfusions (an event with its product) and dialysis (severe kidney disease)
    by SNOMED CT code.

    QuestionnaireResponse to a pyasp-screen Questionnaire (pyasp_screen/inputs/questionnaire.py):
    what EHRs do not code (SLEDAI-2K descriptors, classification items, organ involvement,
    assessments, complete lists).

Dates
    A dateTime gives its date part as written (``2020-05-12T23:55:41-05:00`` is 2020-05-12).
    Partial dates (``2020``, ``2020-05``) are not days: such an item is skipped (or its onset
    or birth date left empty) with a note.

Screening date
    The ``screening_date`` argument if given; otherwise the latest clinical date among the
    resources (Observation, Condition, Medication*, Procedure, QuestionnaireResponse), and
    ``mapping_notes`` says so. Items dated after the screening date are not known yet at it:
    they are left out, and counted in a note.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from functools import cache
from typing import Any

import msgspec

from pyasp_screen.inputs import fhir_types as ft
from pyasp_screen.inputs.medication_history import Order, build_courses
from pyasp_screen.inputs.record import RecordError, _split_msgspec_error
from pyasp_screen.knowledge.vocabulary import Vocabulary, library

__all__ = ["bundle_to_record", "lines_to_record", "is_resource_type"]

LOINC_SYSTEMS = ("http://loinc.org", "urn:oid:2.16.840.1.113883.6.1")
SNOMED_SYSTEMS = ("http://snomed.info/sct", "urn:oid:2.16.840.1.113883.6.96")
RXNORM_SYSTEMS = ("http://www.nlm.nih.gov/research/umls/rxnorm", "urn:oid:2.16.840.1.113883.6.88")
UCUM = "http://unitsofmeasure.org"
ATC_SYSTEMS = ("http://www.whocc.no/atc", "urn:oid:2.16.840.1.113883.6.73")

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))

OBSERVATION_SKIP = {"entered-in-error", "cancelled"}
CONDITION_SKIP = {"entered-in-error"}
CONDITION_UNCERTAIN = {"unconfirmed", "provisional", "differential"}
CONDITION_ACTIVE = {"active", "recurrence", "relapse"}
# Medication statuses (FHIR R4 value sets) and what a pharmacist reads in them.
REQUEST_ONGOING = {"active"}
REQUEST_ENDED = {"completed", "stopped", "on-hold"}
STATEMENT_ONGOING = {"active"}
STATEMENT_ENDED = {"completed", "stopped", "on-hold"}
ADMINISTRATION_READ = {"completed", "in-progress", "stopped"}
DISPENSE_READ = {"completed"}
REQUEST_INTENTS = {"order", "original-order", "reflex-order", "filler-order", "instance-order"}
PROCEDURE_READ = {"completed", "in-progress", "stopped"}

# Days per unit of Timing.repeat.periodUnit / Duration; months and years have no exact length.
_PERIOD_DAYS = {"h": Fraction(1, 24), "d": Fraction(1), "wk": Fraction(7)}
_DURATION_DAYS = {"d": 1, "day": 1, "days": 1, "wk": 7, "week": 7, "weeks": 7}
# HL7 v3 GTSAbbreviation timing codes with an exact number of doses per day.
_TIMING_CODES = {"QD": Fraction(1), "BID": Fraction(2), "TID": Fraction(3), "QID": Fraction(4),
                 "QOD": Fraction(1, 2), "Q4H": Fraction(6), "Q6H": Fraction(4), "Q8H": Fraction(3),
                 "Q12H": Fraction(2), "QAM": Fraction(1), "QPM": Fraction(1), "QHS": Fraction(1),
                 "WK": Fraction(1, 7)}
# Mass units of a dose, in mg (UCUM codes and the spellings order systems use).
_MASS_MG = {"mg": Fraction(1), "g": Fraction(1000), "ug": Fraction(1, 1000),
            "mcg": Fraction(1, 1000), "µg": Fraction(1, 1000), "μg": Fraction(1, 1000),
            "milligram": Fraction(1), "milligrams": Fraction(1)}
# Route of administration: SNOMED CT route codes, HL7 v3 RouteOfAdministration codes, words.
ROUTE_CODES = {"26643006": "oral", "47625008": "iv", "34206005": "sc", "78421000": "im",
                "6064005": "topical", "PO": "oral", "IVINJ": "iv", "IVINFUS": "iv",
                "SQ": "sc", "SC": "sc", "IM": "im", "TOPICAL": "topical"}
ROUTE_WORDS = (("intravenous", "iv"), ("subcutaneous", "sc"), ("intramuscular", "im"),
                ("topical", "topical"), ("cutaneous", "topical"), ("oral", "oral"),
                ("by mouth", "oral"), ("injection", "other"))

_READ = frozenset(ft.TYPES)



def clean(text: str | None) -> str | None:
    """A display string without zero-width characters and surrounding blanks."""
    if text is None:
        return None
    if text.isprintable() and "  " not in text and text == text.strip():
        return text or None  # the common case (U+200B is not printable)
    text = " ".join(str(text).translate(_ZERO_WIDTH).split())
    return text or None


def _iso(day: dt.date | None) -> str | None:
    return day.isoformat() if day else None


def _num(value: Decimal | Fraction | float | int) -> float | int:
    f = float(value)
    return int(f) if f.is_integer() and abs(f) < 2**53 else f


def _codings(concept: Any) -> list:
    return list(concept.coding) if concept is not None else []


def _concept_display(concept: Any, prefer: Any = None) -> str | None:
    """The concept's text, else the preferred coding's display, else the first display."""
    if concept is None:
        return None
    if clean(concept.text):
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


def _summary(counts: Counter, limit: int = 12) -> str:
    items = [f"{k} x{v}" if v > 1 else k for k, v in counts.most_common(limit)]
    rest = len(counts) - limit
    return ", ".join(items) + (f" and {rest} more" if rest > 0 else "")


def _show(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


@cache
def is_resource_type(name: str) -> bool:
    """True if ``name`` is a FHIR R4 resource type (fhir.resources' R4B models: Observation,
    Encounter ... but not a data type such as Coding, nor "log")."""
    from fhir.resources.R4B import get_fhir_model_class
    from fhir.resources.R4B.resource import Resource

    try:
        cls = get_fhir_model_class(name)
    except (ValueError, KeyError, AttributeError, TypeError):
        return False
    return isinstance(cls, type) and issubclass(cls, Resource)


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Item:
    """One decoded resource: where it is (``entry[3].resource`` or ``Observation/abc``), its
    Bundle fullUrl, the typed resource, and its name for people (``Observation/abc``, or its
    location when it has no id)."""

    loc: str
    full_url: str | None
    resource: ft.Resource
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            r = self.resource
            object.__setattr__(self, "name", f"{type(r).__name__}/{r.id}" if r.id else self.loc)


class _Fail(Exception):
    """A content problem inside a resource: the field (relative to the item) and reason."""

    def __init__(self, item: Item | None, field: str | None, reason: str):
        super().__init__(reason)
        self.item, self.field, self.reason = item, field, reason

    def where(self) -> str | None:
        base = self.item.loc if self.item is not None else None
        if base and self.field:
            return f"{base}.{self.field}"
        return base or self.field


def _lookup(data: Any, path: str) -> Any:
    """The value at a msgspec path ("valueQuantity.value", "coding[0].code") in raw data."""
    import re

    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        try:
            data = data[int(part[1:-1])] if part.startswith("[") else data[part]
        except (KeyError, IndexError, TypeError, ValueError):
            return None
    return data


def _decode_error(e: msgspec.ValidationError, raw: Any) -> tuple[str | None, str]:
    field, reason = _split_msgspec_error(str(e))
    for typed, words in (("int | float | null", "a number"), ("int | float", "a number"),
                         ("str | null", "a string"), ("int | null", "an integer"),
                         ("bool | null", "true or false"), ("array | null", "an array")):
        reason = reason.replace(f"expected {typed},", f"expected {words},")
    value = _lookup(raw, field) if field and raw is not None else None
    if isinstance(value, (str, int, float, bool)) and repr(value) not in reason:
        reason += f" (got {value!r})"
    return field, reason


def _raw_patient_id(bundle: Any) -> str | None:
    """The Patient id read from the raw dict, to name the patient in a validation error."""
    if not isinstance(bundle, dict) or not isinstance(bundle.get("entry"), list):
        return None
    for e in bundle["entry"]:
        r = e.get("resource") if isinstance(e, dict) else None
        if isinstance(r, dict) and r.get("resourceType") == "Patient" and isinstance(r.get("id"), str):
            return r["id"]
    return None


def _precheck(bundle: Any) -> tuple[str | None, str] | None:
    """Shape errors of a Bundle: (field, reason), or None."""
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
        if rt not in _READ and not is_resource_type(rt):
            return f"entry[{i}].resource.resourceType", f"unknown FHIR resource type {rt!r}"
    return None


def _validate(bundle: dict, file: str) -> RecordError | None:
    """Full fhir.resources (R4B) validation of a Bundle: None, or the first problem."""
    from fhir.resources.R4B.bundle import Bundle
    from pydantic import ValidationError

    patient = _raw_patient_id(bundle)
    try:
        Bundle.model_validate(bundle)
        return None
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


def _typed_bundle(bundle: dict, file: str) -> tuple[list[Item], Counter] | RecordError:
    patient = _raw_patient_id(bundle)
    shape = _precheck(bundle)
    if shape is not None:
        return RecordError(file, patient, shape[0], shape[1])
    items: list[Item] = []
    other: Counter = Counter()
    for i, e in enumerate(bundle.get("entry") or []):
        r = e.get("resource")
        if r is None:
            continue
        rt = r["resourceType"]
        if rt not in _READ:
            other[rt] += 1
            continue
        try:
            res = msgspec.convert(r, ft.TYPES[rt])
        except msgspec.ValidationError as err:
            field, reason = _decode_error(err, r)
            where = f"entry[{i}].resource" + (f".{field}" if field else "")
            return RecordError(file, patient, where, reason)
        full = e.get("fullUrl")
        items.append(Item(f"entry[{i}].resource", full if isinstance(full, str) else None, res))
    return items, other


def bundle_to_record(bundle: dict, file: str, screening_date: dt.date | None = None,
                     vocabulary: Vocabulary | None = None, *, validate: bool = False) -> dict | RecordError:
    """Map one FHIR R4 Bundle (one patient) to a native record dict, or a RecordError.

    The result is a plain dict (dates as ISO strings) that ``record.parse_record`` accepts.
    ``screening_date``: the date the record describes; when None it is the latest clinical
    date in the bundle (see the module docstring), and ``mapping_notes`` says so.
    ``vocabulary``: the codes mapped (a knowledge base's ``kb.vocabulary``; default: the
    shared library's). ``validate``: also validate the whole Bundle with fhir.resources
    (slower). Never raises for
    bad content: RecordError(file, patient id or None, "entry[i].resource.<field>", reason).
    """
    if validate:
        shape = _precheck(bundle)
        if shape is not None:
            return RecordError(file, _raw_patient_id(bundle), shape[0], shape[1])
        err = _validate(bundle, file)
        if err is not None:
            return err
    decoded = _typed_bundle(bundle, file)
    if isinstance(decoded, RecordError):
        return decoded
    items, other = decoded
    kind = f"FHIR Bundle ({bundle.get('type')})" if isinstance(bundle.get("type"), str) else "FHIR Bundle"
    return map_resources(items, other, file, screening_date, vocabulary=vocabulary, source=f"FHIR R4 Bundle {file}",
                         described=f"{kind} of {len(items) + sum(other.values())} resources, "
                         + ("validated with fhir.resources (R4B models)" if validate else
                            "read by typed decoding (--validate-fhir validates every element)"))


def _validate_lines(lines: tuple[bytes, ...], file: str, patient: str) -> RecordError | None:
    """Full fhir.resources validation of one patient's lines, as a collection Bundle; a
    problem names ``<type>/<id>.<field>``."""
    entries, heads = [], []
    for i, raw in enumerate(lines):
        try:
            data = msgspec.json.decode(raw)
        except msgspec.DecodeError as e:
            return RecordError(file, patient, f"lines[{i}]", f"malformed JSON: {e}")
        rt = data.get("resourceType") if isinstance(data, dict) else None
        rid = data.get("id") if isinstance(data, dict) and isinstance(data.get("id"), str) else None
        heads.append((rt, rid))
        entries.append({"resource": data, **({"fullUrl": f"{rt}/{rid}"} if rid else {})})
    err = _validate({"resourceType": "Bundle", "type": "collection", "entry": entries}, file)
    if err is None:
        return None
    field = err.field or ""
    if field.startswith("entry["):
        idx = int(field[6:field.index("]")])
        rest = field[field.index("]") + 1:].removeprefix(".resource")
        rt, rid = heads[idx]
        field = (f"{rt}/{rid}" if rid else f"{rt}[line {idx + 1}]") + rest
    return RecordError(err.file, err.patient or patient, field or None, err.reason)


def lines_to_record(lines: tuple[bytes, ...], file: str, patient: str,
                    screening_date: dt.date | None = None, vocabulary: Vocabulary | None = None, *,
                    validate: bool = False) -> dict | RecordError:
    """Map one patient's NDJSON lines of a Bulk export (Patient first) to a record dict.

    A problem inside a resource is named ``<type>/<id>.<field>``. ``validate`` builds a
    ``collection`` Bundle of the lines and validates it with fhir.resources first.
    """
    if validate:
        err = _validate_lines(lines, file, patient)
        if err is not None:
            return err
    items: list[Item] = []
    other: Counter = Counter()
    for i, raw in enumerate(lines):
        try:
            res = ft.ANY_DECODER.decode(raw)  # the common case: a type read, well formed
        except (msgspec.DecodeError, msgspec.ValidationError) as first:
            try:
                h = ft.HEAD_DECODER.decode(raw)
            except (msgspec.DecodeError, msgspec.ValidationError) as e:
                return RecordError(file, patient, f"lines[{i}]", f"malformed resource: {e}")
            rt, rid = h.resourceType or "", h.id if isinstance(h.id, str) else None
            name = f"{rt}/{rid}" if rid else f"{rt}[line {i + 1}]"
            if rt not in _READ:
                other[rt] += 1
                continue
            if isinstance(first, msgspec.ValidationError):
                field, reason = _decode_error(first, msgspec.json.decode(raw))
            else:
                field, reason = None, f"malformed resource: {first}"
            return RecordError(file, patient, name + (f".{field}" if field else ""), reason)
        rt = type(res).__name__
        name = f"{rt}/{res.id}" if res.id else f"{rt}[line {i + 1}]"
        items.append(Item(name, f"{rt}/{res.id}" if res.id else None, res, name))
    return map_resources(items, other, file, screening_date, vocabulary=vocabulary,
                         source=f"FHIR Bulk Data export {file}",
                         described=f"FHIR Bulk Data export: {len(lines)} resources of the patient")


# ---------------------------------------------------------------------------------------------
# Mapping
# ---------------------------------------------------------------------------------------------

def map_resources(items: list[Item], other: Counter, file: str, screening_date: dt.date | None,
                  source: str, described: str, vocabulary: Vocabulary | None = None) -> dict | RecordError:
    """The record of one patient's decoded resources (Bundle entries or Bulk lines)."""
    mapper = _Mapper(items, file, vocabulary or library())
    pid = None
    try:
        record, error = mapper.patient()
        if error is not None:
            return error
        pid = record["id"]
        observations = mapper.observations()
        diagnoses = mapper.diagnoses()
        orders, events = mapper.medication_orders()
        transfusions = mapper.procedures(diagnoses)
        answers = mapper.questionnaire_responses()
        notes: list[str] = []
        if screening_date is None:
            if not mapper.clinical_dates:
                return RecordError(file, pid, "screening_date", "no clinical date in the resources:"
                                   " give the screening date")
            screening_date = max(mapper.clinical_dates)
            notes.append("screening date taken as the latest clinical date in the resources: "
                         f"{screening_date.isoformat()} (give --screening-date to screen at another)")
        else:
            notes.append(f"screening date given: {screening_date.isoformat()}")
        medications, med_notes = build_courses(orders, screening_date)
        for m in medications:
            m.pop("sources", None)
            m.pop("_why", None)
        today = screening_date.isoformat()
        later: Counter = Counter()
        observations = _until(observations, "date", today, later, "results")
        diagnoses = [d for d in diagnoses if not (d.get("onset") and d["onset"] > today)
                     or later.update(["diagnoses"])]
        events = _growth_factor_events(events, screening_date, mapper.notes)
        events = _until(events, "date", today, later, "growth factors")
        transfusions = _until(transfusions, "date", today, later, "transfusions")
        later["medication orders"] += sum(1 for o in orders if o.start > screening_date)
        if answers is not None:
            answers = answers.until(screening_date, later)
    except _Fail as e:
        return RecordError(file, pid, e.where(), e.reason)
    except Exception as e:  # a bug or content this mapper did not foresee: report, never raise
        reason = " ".join(f"cannot map: {e.__class__.__name__}: {e}".split())
        return RecordError(file, pid, mapper.where, reason)

    if sum(later.values()):
        notes.append("dated after the screening date, so not known at it: " + ", ".join(
            f"{n} {k}" for k, n in later.items() if n))
    notes.append(described)
    ignored = Counter(other)
    if ignored:
        notes.append("resource types not read: " + ", ".join(
            f"{k} x{v}" for k, v in sorted(ignored.items(), key=lambda kv: (-kv[1], kv[0]))))
    notes += mapper.notes
    notes.append("medication courses: " + (str(len(medications)) if medications else "none"))
    notes += med_notes
    notes += [f"skipped {s}" for s in mapper.skipped]

    record.update({
        "screening_date": today,
        "source": source,
        "diagnoses": diagnoses,
        "observations": observations,
        "medications": medications,
        "growth_factors": events,
        "transfusions": transfusions,
        "mapping_notes": notes,
    })
    if answers is not None:
        answers.apply(record)
    return record


def _growth_factor_events(raw: list[dict], today: dt.date, notes: list[str]) -> list[dict]:
    """One event per growth-factor resource, on the last day it is known to have been given:
    an active order or statement up to the screening date, a dispense over its days' supply,
    otherwise its (stated) end or its start."""
    out = []
    for e in raw:
        if e["start"] > today:
            out.append({"date": _iso(e["start"]), "drug": e["drug"]})  # counted as later
            continue
        if e["ongoing"] and (e["end"] is None or e["end"] >= today):
            last = today
        elif e["end"] is not None:
            last = min(e["end"], today)
        else:
            last = e["start"]
        out.append({"date": _iso(last), "drug": e["drug"]})
    if out:
        shown = ", ".join(f"{e['drug']} {e['date']}" for e in out[:12])
        notes.append(f"growth factors ({len(out)} resources): " + shown
                     + (f" and {len(out) - 12} more" if len(out) > 12 else ""))
    return out


def _until(entries: list[dict], key: str, today: str, later: Counter, label: str) -> list[dict]:
    kept = []
    for e in entries:
        if e[key] > today:
            later[label] += 1
        else:
            kept.append(e)
    return kept


class _Mapper:
    def __init__(self, items: list[Item], file: str, vocabulary: Vocabulary):
        self.file = file
        self.v = vocabulary  # the codes, units and names mapped (the knowledge base's)
        self.items = items
        self.notes: list[str] = []
        self.skipped: list[str] = []
        self.where: str | None = None  # the resource being mapped, for an unexpected failure
        self.patient_refs: set[str] = set()
        self.pid = ""
        self.clinical_dates: list[dt.date] = []
        self.organ_involvement: dict[str, bool] = {}
        self.by: dict[str, list[Item]] = defaultdict(list)
        for it in items:
            self.by[it.resource.resourceType].append(it)

    def skip(self, it: Item, what, reason: str) -> None:
        self.skipped.append(f"{it.name} {what}: {reason}")

    def day(self, it: Item, field: str, text: str | None) -> dt.date | None:
        """The day of a date element of a resource, or None (absent or partial); a malformed
        date is the resource's problem."""
        if text is None:
            return None
        if len(text) == 10 and text[4] == "-" and text[7] == "-":
            try:
                return dt.date.fromisoformat(text)  # the common case: a full date
            except ValueError:
                pass
        try:
            ft.check_date(text)
        except ft.BadDate as e:
            raise _Fail(it, field, str(e)) from None
        return ft.day(text)

    def own(self, it: Item, what: str) -> bool:
        """False (with a note) if the resource's subject is another patient."""
        ref = getattr(getattr(it.resource, "subject", None), "reference", None)
        if not ref or ref in self.patient_refs or ref.endswith(f"/Patient/{self.pid}"):
            return True
        self.skip(it, what, f"subject {ref} is not the Patient")
        return False

    # -- patient ---------------------------------------------------------------------------
    def patient(self) -> tuple[dict, RecordError | None]:
        patients = self.by["Patient"]
        if not patients:
            return {}, RecordError(self.file, None, "entry", "no Patient resource")
        if len(patients) > 1:
            return {}, RecordError(self.file, patients[0].resource.id, patients[1].loc,
                                   "more than one Patient: a bundle must hold one patient")
        it = patients[0]
        p: ft.Patient = it.resource  # type: ignore[assignment]
        self.where = it.loc
        full_url = it.full_url or ""
        pid = p.id
        if not pid and full_url.startswith("urn:uuid:"):
            pid = full_url.removeprefix("urn:uuid:")
            self.notes.append(f"Patient has no id: its fullUrl {full_url} gives the id")
        if not pid:
            return {}, RecordError(self.file, None, f"{it.loc}.id",
                                   "the Patient has no id (and no urn:uuid fullUrl)")
        self.patient_refs = {f"Patient/{pid}", f"urn:uuid:{pid}"} | ({full_url} if full_url else set())
        self.pid = str(pid)
        out: dict[str, Any] = {"id": str(pid)}
        out["sex"] = p.gender if p.gender in ("female", "male") else "unknown"
        if p.birthDate is not None:
            birth = self.day(it, "birthDate", p.birthDate)
            if birth:
                out["birth_date"] = _iso(birth)
            else:
                self.notes.append(f"birth date {p.birthDate} is partial: birth date left unknown")
        if p.deceasedDateTime is not None:
            death = self.day(it, "deceasedDateTime", p.deceasedDateTime)
            out["deceased"] = _iso(death) if death else True
            self.notes.append(f"Patient.deceasedDateTime {p.deceasedDateTime}: deceased, never eligible")
        elif p.deceasedBoolean:
            out["deceased"] = True
            self.notes.append("Patient.deceasedBoolean true: deceased, never eligible")
        return out, None

    # -- observations ----------------------------------------------------------------------
    def observation_day(self, it: Item) -> tuple[dt.date | None, str | None]:
        r: ft.Observation = it.resource  # type: ignore[assignment]
        for field, v in (("effectiveDateTime", r.effectiveDateTime),
                         ("effectiveInstant", r.effectiveInstant),
                         ("effectivePeriod.start", r.effectivePeriod.start if r.effectivePeriod else None),
                         ("issued", r.issued)):
            if v is not None:
                return self.day(it, field, v), v
        return None, None

    def observations(self) -> list[dict]:
        out: list[tuple[dict, str]] = []  # (result, the LOINC code it was mapped from)
        seen: set[str] = set()
        unused = 0
        to_name = self.v.loinc_to_observation
        for it in self.by["Observation"]:
            r: ft.Observation = it.resource  # type: ignore[assignment]
            self.where = it.loc
            day, raw_day = self.observation_day(it)
            if day:
                self.clinical_dates.append(day)
            mapped = [(to_name[c.code], c) for c in r.code.coding
                      if c.code in to_name and c.system in LOINC_SYSTEMS]
            if not mapped:
                unused += 1
                continue
            name, coding = mapped[0]
            names = [name] if len(mapped) == 1 else sorted({n for n, _ in mapped})
            seen.update(names)
            what = _What(name, coding.code)
            if len(names) > 1:
                self.skip(it, what, f"codes map to several observations ({', '.join(names)})")
                continue
            if r.status in OBSERVATION_SKIP:
                self.skip(it, what, f"status {r.status}")
                continue
            if not self.own(it, what):
                continue
            if day is None:
                self.skip(it, what, f"date {raw_day} is partial" if raw_day else "no date")
                continue
            item = self.observation_value(it, name, what)
            if item is None:
                continue
            item = {"code": name, "date": _iso(day), **item}
            item["source"] = f"{it.name} (LOINC {coding.code})"
            display = _concept_display(r.code, coding)
            if display:
                item["display"] = display
            out.append((item, coding.code))
        rank = {name: i for i, name in enumerate(self.v.observations)}
        out.sort(key=lambda o: (rank[o[0]["code"]], o[0]["date"]))
        out, day_notes = _same_day(out)
        per_code: dict[str, dict[str, int]] = {}
        latest: dict[str, str] = {}
        for item, loinc in out:
            code = item["code"]
            counts = per_code.get(code)
            if counts is None:
                counts = per_code[code] = {}
            counts[loinc] = counts.get(loinc, 0) + 1
            if item["date"] > latest.get(code, ""):
                latest[code] = item["date"]
        for name, counts in per_code.items():
            n = sum(counts.values())
            codes = ", ".join(f"{c} ({k})" for c, k in sorted(counts.items(), key=lambda kv: -kv[1]))
            self.notes.append(f"{name}: {n} result{'s' * (n != 1)} from LOINC {codes};"
                              f" latest {latest[name]}")
        self.notes += day_notes
        spo2 = [o for o, _ in out if o["code"] == "spo2"]
        if spo2 and any("room_air" not in o for o in spo2):
            self.notes.append("spo2: room air not stated (no inhaled-oxygen component); the"
                              " knowledge base's parameter spo2_unflagged_is_room_air decides")
        missing = [n for n in self.v.observations if n not in seen]
        self.notes.append("not found: " + (", ".join(missing) if missing else "none"))
        unusable = [n for n in self.v.observations if n in seen and n not in per_code]
        if unusable:
            self.notes.append("found but no usable result (see skipped): " + ", ".join(unusable))
        self.notes.append(f"{unused} Observation{'s' * (unused != 1)} not used by any criterion"
                          " (other LOINC codes)")
        return [item for item, _ in out]

    def observation_value(self, it: Item, name: str, what: str) -> dict | None:
        r: ft.Observation = it.resource  # type: ignore[assignment]
        kind = self.v.observations[name]
        if kind.qualitative:
            texts: list[str] = []
            if r.valueCodeableConcept is not None:
                texts.append(r.valueCodeableConcept.text or "")
                for c in r.valueCodeableConcept.coding:
                    texts += [c.display or "", c.code or ""]
            elif r.valueString is not None:
                texts.append(r.valueString)
            else:
                self.skip(it, what, "qualitative test without a coded or text result")
                return None
            found = {self.v.qualitative_values[t] for t in (clean(x.lower()) for x in texts if x)
                     if t in self.v.qualitative_values}
            if len(found) != 1:
                shown = next((clean(t) for t in texts if clean(t)), "")
                self.skip(it, what, f"result {shown!r} is not read as positive/negative"
                          if not found else "result is both positive and negative")
                return None
            return {"value": found.pop(), "source": it.name}
        q = r.valueQuantity
        if q is None:
            if r.component and not any(v is not None for v in (
                    r.valueString, r.valueCodeableConcept, r.valueInteger, r.valueRatio)):
                self.skip(it, what, "panel with component values only (not read)")
            elif r.dataAbsentReason is not None:
                self.skip(it, what, f"no value ({_concept_display(r.dataAbsentReason)})")
            else:
                self.skip(it, what, "no numeric value (valueQuantity)")
            return None
        if q.value is None:
            self.skip(it, what, "valueQuantity without a value")
            return None
        item: dict[str, Any] = {"value": _num(q.value), "unit": _unit(q), "source": it.name}
        if q.comparator:
            if q.comparator not in ("<", "<=", ">", ">="):
                self.skip(it, what, f"comparator {q.comparator!r} is not a bound")
                return None
            item["comparator"] = q.comparator
        ref = self.reference_range(it, what)
        if ref:
            item["reference_range"] = ref
        if name == "spo2":
            room = self.room_air(r)
            if room is not None:
                item["room_air"] = room
        return item

    def room_air(self, r: ft.Observation) -> bool | None:
        """Room air from the inhaled-oxygen components of a pulse-oximetry result."""
        flow_code = self.v.room_air_components.get("flow_rate")
        conc_code = self.v.room_air_components.get("concentration")
        for comp in r.component:
            codes = {c.code for c in comp.code.coding if c.system in LOINC_SYSTEMS}
            v = comp.valueQuantity.value if comp.valueQuantity is not None else None
            if v is None:
                continue
            if flow_code in codes:
                return v == 0
            if conc_code in codes:
                return v <= 21
        return None

    def reference_range(self, it: Item, what: str) -> dict | None:
        r: ft.Observation = it.resource  # type: ignore[assignment]
        if not r.referenceRange:
            return None
        rr = r.referenceRange[0]
        low, high = rr.low, rr.high
        low = low if low is not None and low.value is not None else None
        high = high if high is not None and high.value is not None else None
        if low is None and high is None:
            return None
        if low is not None and high is not None and _unit(low) != _unit(high):
            self.skip(it, what + " reference range low", f"unit {_unit(low)} differs from"
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
    def diagnosis_names(self, concept: ft.CodeableConcept | None) -> dict[str, tuple[str, Any]]:
        found: dict[str, tuple[str, Any]] = {}
        for c in _codings(concept):
            if not c.code:
                continue
            if c.system in SNOMED_SYSTEMS and c.code in self.v.snomed_to_diagnosis:
                found.setdefault(self.v.snomed_to_diagnosis[c.code], (f"SNOMED {c.code}", c))
            elif c.system and ("icd-10" in c.system.lower() or "icd10" in c.system.lower()):
                name = self.v.diagnosis_from_icd10(c.code)  # the longest listed prefix
                if name:
                    found.setdefault(name, (f"ICD-10 {c.code}", c))
        for name in list(found):
            for also in self.v.diagnoses[name].also:
                found.setdefault(also, (f"{found[name][0]} ({name.replace('_', ' ')} is {also})", found[name][1]))
        return found

    def diagnoses(self) -> list[dict]:
        out: list[dict] = []
        mapped_notes: list[str] = []
        unmapped: Counter = Counter()
        for it in self.by["Condition"]:
            r: ft.Condition = it.resource  # type: ignore[assignment]
            self.where = it.loc
            if r.onsetDateTime is not None:
                onset_raw, onset = r.onsetDateTime, self.day(it, "onsetDateTime", r.onsetDateTime)
            elif r.onsetPeriod is not None and r.onsetPeriod.start is not None:
                onset_raw = r.onsetPeriod.start
                onset = self.day(it, "onsetPeriod.start", onset_raw)
            else:
                onset_raw, onset = None, None
            recorded = self.day(it, "recordedDate", r.recordedDate)
            for d in (onset, recorded):
                if d:
                    self.clinical_dates.append(d)
            found = self.diagnosis_names(r.code)
            if not found:
                unmapped[_concept_display(r.code) or "(no display)"] += 1
                continue
            what = f"Condition {'/'.join(found)}"
            verification = _status_code(r.verificationStatus)
            if verification in CONDITION_SKIP:
                self.skip(it, what, f"verificationStatus {verification}")
                continue
            if not self.own(it, what):
                continue
            if onset_raw is not None and onset is None:
                self.skip(it, what + " onset", f"onset {onset_raw} is partial: onset left unknown")
            clinical = _status_code(r.clinicalStatus)
            for name, (how, coding) in found.items():
                item: dict[str, Any] = {"code": name, "onset": _iso(onset),
                                        "display": _concept_display(r.code, coding)}
                extra = []
                if verification == "refuted":
                    item["present"] = False
                    extra.append("verificationStatus refuted: recorded absent")
                elif verification in CONDITION_UNCERTAIN:
                    item["present"] = "unknown"
                    extra.append(f"verificationStatus {verification}: present unknown")
                if clinical in ("resolved", "inactive", "remission"):
                    extra.append(f"clinicalStatus {clinical}: kept as history")
                subtype = self.subtype(name, r.code)
                if subtype:
                    item["subtype"] = subtype
                    extra.append(f"subtype {subtype}")
                organ = self.v.diagnoses[name].organ
                if organ and item.get("present", True) is True and clinical in CONDITION_ACTIVE:
                    self.organ_involvement[organ] = True
                    extra.append(f"active: {organ} involvement")
                out.append(item)
                mapped_notes.append(
                    f"{name} from {how} {item['display']!r}"
                    f" (onset {item['onset'] or 'unknown'}{''.join('; ' + x for x in extra)})")
        out = _resolve_conflicts(out, mapped_notes)
        self.notes.append("diagnoses mapped: " + ("; ".join(mapped_notes) or "none"))
        n = sum(unmapped.values())
        self.notes.append(f"{n} Condition{'s' * (n != 1)} not mapped to a vocabulary diagnosis"
                          + (f": {_summary(unmapped)}" if n else ""))
        return out

    def subtype(self, name: str, concept: ft.CodeableConcept | None) -> str | None:
        codes = self.v.diagnoses[name].subtype_codes
        if not codes:
            return None
        for c in _codings(concept):
            if c.code and c.code.upper() in codes:
                return codes[c.code.upper()]
        return None

    # -- medications -----------------------------------------------------------------------
    def medication_lookup(self) -> dict[str, ft.Medication]:
        lookup: dict[str, ft.Medication] = {}
        for it in self.by["Medication"]:
            if it.full_url:
                lookup[it.full_url] = it.resource  # type: ignore[assignment]
            if it.resource.id:
                lookup[f"Medication/{it.resource.id}"] = it.resource  # type: ignore[assignment]
        return lookup

    @staticmethod
    def medication_concept(r: Any, lookup: dict[str, ft.Medication]) -> tuple[Any, str | None]:
        """(CodeableConcept of the drug, reference display)."""
        if r.medicationCodeableConcept is not None:
            return r.medicationCodeableConcept, None
        ref = r.medicationReference
        if ref is None:
            return None, None
        target = None
        if ref.reference and ref.reference.startswith("#"):
            for raw in r.contained:
                if not isinstance(raw, dict) or raw.get("resourceType") != "Medication":
                    continue
                try:
                    c = msgspec.convert(raw, ft.Medication)
                except msgspec.ValidationError:
                    continue
                if c.resourceType == "Medication" and c.id == ref.reference[1:]:
                    target = c
        elif ref.reference:
            target = lookup.get(ref.reference)
            if target is None and "Medication/" in ref.reference:
                target = lookup.get("Medication/" + ref.reference.rsplit("Medication/", 1)[1])
        return (target.code if target is not None else None), ref.display

    def drug_names(self, concept: Any, ref_display: str | None) -> dict[str, str]:
        names: dict[str, str] = {}
        for c in _codings(concept):
            if c.system in RXNORM_SYSTEMS and c.code in self.v.rxnorm_to_drug:
                names.setdefault(self.v.rxnorm_to_drug[c.code], f"RxNorm {c.code}")
            elif c.system in ATC_SYSTEMS and c.code and c.code.upper() in self.v.atc_to_drug:
                names.setdefault(self.v.atc_to_drug[c.code.upper()], f"ATC {c.code}")
        if not names:
            texts = [getattr(concept, "text", None), ref_display]
            texts += [c.display for c in _codings(concept)]
            for t in texts:
                name = self.v.drug_from_text(clean(t) or "")
                if name:
                    names.setdefault(name, "text")
        return names

    def medication_orders(self) -> tuple[list[Order], list[dict]]:
        """Every medication resource read as an Order (courses are built once the screening
        date is known), and growth-factor events."""
        orders: list[Order] = []
        events: list[dict] = []
        unmapped: Counter = Counter()
        lookup = self.medication_lookup()
        mapped: Counter = Counter()
        for rt in ("MedicationRequest", "MedicationStatement", "MedicationDispense",
                   "MedicationAdministration"):
            for it in self.by[rt]:
                self.where = it.loc
                r = it.resource
                got = self.medication_order(it, rt)
                if got is None:
                    continue
                start, end, ongoing, dosages, kind, status_ok = got
                if start:
                    self.clinical_dates.append(start)
                concept, ref_display = self.medication_concept(r, lookup)
                display = _concept_display(concept) or clean(ref_display)
                names = self.drug_names(concept, ref_display)
                if not names:
                    unmapped[display or "(no display)"] += 1
                    continue
                what = f"{rt} {'/'.join(names)}"
                if status_ok is not True:
                    self.skip(it, what, status_ok)
                    continue
                if not self.own(it, what):
                    continue
                if start is None:
                    self.skip(it, what, "no start date (or only a partial one)")
                    continue
                if kind == "administration":
                    dose, stated, dose_note = None, False, "per administration, not a daily dose"
                else:
                    dose, stated, dose_note = _daily_dose(dosages)
                route, route_note = _route(dosages, display, getattr(r, "dosage", None) if kind == "administration" else None)
                for name, how in names.items():
                    mapped[f"{name} ({how})"] += 1
                    if name in self.v.growth_factors:
                        events.append({"drug": name, "start": start, "end": end, "ongoing": ongoing,
                                       "source": it.name})
                        continue
                    orders.append(Order(it.name, kind, name, route, start, end, ongoing, dose, stated,
                                        dose_note, display, route_stated=route_note != "(route not stated)"))
        self.notes.append("drugs read: " + (_summary(mapped, 20) if mapped else "none"))
        n = sum(unmapped.values())
        self.notes.append(f"{n} medication resource{'s' * (n != 1)} not mapped to a vocabulary drug"
                          + (f": {_summary(unmapped)}" if n else ""))
        return orders, events

    def medication_order(self, it: Item, rt: str):
        """(start, stated end, ongoing, dosages, kind, True or why not read) of one resource."""
        r = it.resource
        if rt == "MedicationRequest":
            r: ft.MedicationRequest  # type: ignore[no-redef]
            authored = self.day(it, "authoredOn", r.authoredOn)
            start, end = authored, None
            for j, d in enumerate(r.dosageInstruction):
                rep = d.timing.repeat if d.timing is not None else None
                if rep is not None and rep.boundsPeriod is not None:
                    s = self.day(it, f"dosageInstruction[{j}].timing.repeat.boundsPeriod.start",
                                 rep.boundsPeriod.start)
                    e = self.day(it, f"dosageInstruction[{j}].timing.repeat.boundsPeriod.end",
                                 rep.boundsPeriod.end)
                    start = s or start
                    end = e or end
                elif rep is not None and rep.boundsDuration is not None and start is not None:
                    days = _duration_days(rep.boundsDuration)
                    if days is not None:
                        end = start + dt.timedelta(days=days - 1)
            dr = r.dispenseRequest
            if end is None and dr is not None:
                vp = dr.validityPeriod
                if vp is not None:
                    s = self.day(it, "dispenseRequest.validityPeriod.start", vp.start)
                    end = self.day(it, "dispenseRequest.validityPeriod.end", vp.end)
                    start = start or s
                if end is None and dr.expectedSupplyDuration is not None and start is not None:
                    days = _duration_days(dr.expectedSupplyDuration)
                    if days is not None:
                        end = start + dt.timedelta(days=days * (1 + (dr.numberOfRepeatsAllowed or 0)) - 1)
            if r.intent is not None and r.intent not in REQUEST_INTENTS:
                ok: Any = f"intent {r.intent} (not an order)"
            elif r.doNotPerform:
                ok = "doNotPerform: an order not to give it"
            elif r.status in REQUEST_ONGOING or r.status in REQUEST_ENDED:
                ok = True
            else:
                ok = f"status {r.status}"
            return start, end, r.status in REQUEST_ONGOING, list(r.dosageInstruction), "request", ok
        if rt == "MedicationStatement":
            r: ft.MedicationStatement  # type: ignore[no-redef]
            if r.effectiveDateTime is not None:
                start, end = self.day(it, "effectiveDateTime", r.effectiveDateTime), None
            elif r.effectivePeriod is not None:
                start = self.day(it, "effectivePeriod.start", r.effectivePeriod.start)
                end = self.day(it, "effectivePeriod.end", r.effectivePeriod.end)
            else:
                start, end = None, None
            asserted = self.day(it, "dateAsserted", r.dateAsserted)
            if asserted:
                self.clinical_dates.append(asserted)
            ok = True if (r.status in STATEMENT_ONGOING or r.status in STATEMENT_ENDED) else f"status {r.status}"
            return start, end, r.status in STATEMENT_ONGOING, list(r.dosage), "statement", ok
        if rt == "MedicationDispense":
            r: ft.MedicationDispense  # type: ignore[no-redef]
            start = self.day(it, "whenHandedOver", r.whenHandedOver)
            end = None
            if start is not None and r.daysSupply is not None:
                days = _duration_days(r.daysSupply)
                if days is not None and days > 0:
                    end = start + dt.timedelta(days=days - 1)
            ok = True if r.status in DISPENSE_READ else f"status {r.status} (not handed over)"
            return start, end, False, list(r.dosageInstruction), "dispense", ok
        r: ft.MedicationAdministration  # type: ignore[no-redef]
        if r.effectiveDateTime is not None:
            start = self.day(it, "effectiveDateTime", r.effectiveDateTime)
            end = start
        elif r.effectivePeriod is not None:
            start = self.day(it, "effectivePeriod.start", r.effectivePeriod.start)
            end = self.day(it, "effectivePeriod.end", r.effectivePeriod.end) or start
        else:
            start = end = None
        ok = True if r.status in ADMINISTRATION_READ else f"status {r.status}"
        return start, end, False, [], "administration", ok

    # -- procedures ------------------------------------------------------------------------
    def procedures(self, diagnoses: list[dict]) -> list[dict]:
        """Transfusions (events) and dialysis (severe kidney disease) from Procedures."""
        transfusions: list[dict] = []
        dialysis: list[dt.date] = []
        other = 0
        for it in self.by["Procedure"]:
            r: ft.Procedure = it.resource  # type: ignore[assignment]
            self.where = it.loc
            if r.performedDateTime is not None:
                when = self.day(it, "performedDateTime", r.performedDateTime)
            elif r.performedPeriod is not None:
                when = self.day(it, "performedPeriod.start", r.performedPeriod.start)
                end = self.day(it, "performedPeriod.end", r.performedPeriod.end)
                when = end or when  # the last day it was done
            else:
                when = None
            if when:
                self.clinical_dates.append(when)
            codes = [c.code for c in _codings(r.code) if c.system in SNOMED_SYSTEMS and c.code]
            product = next((self.v.transfusion_procedures[c] for c in codes
                            if c in self.v.transfusion_procedures), None)
            is_dialysis = any(c in self.v.dialysis_procedures for c in codes)
            if product is None and not is_dialysis:
                other += 1
                continue
            what = f"Procedure {'transfusion' if product else 'dialysis'} (SNOMED {codes[0]})"
            if r.status not in PROCEDURE_READ:
                self.skip(it, what, f"status {r.status}")
                continue
            if not self.own(it, what):
                continue
            if when is None:
                self.skip(it, what, "no date (or only a partial one)")
                continue
            if product:
                transfusions.append({"date": _iso(when), "product": product})
            else:
                dialysis.append(when)
        if transfusions:
            self.notes.append("transfusions: " + ", ".join(f"{t['product']} {t['date']}" for t in transfusions[:12])
                              + (f" and {len(transfusions) - 12} more" if len(transfusions) > 12 else ""))
        if dialysis:
            first = min(dialysis)
            diagnoses.append({"code": "severe_kidney_disease", "onset": _iso(first),
                              "display": f"on dialysis ({len(dialysis)} dialysis procedures)"})
            self.notes.append(f"dialysis: {len(dialysis)} procedures from {first} to {max(dialysis)}:"
                              " read as severe kidney disease (severe_kidney_disease)")
        self.notes.append(f"{other} Procedure{'s' * (other != 1)} not read (not a transfusion or dialysis)")
        return transfusions

    # -- questionnaire responses -----------------------------------------------------------
    def questionnaire_responses(self):
        from pyasp_screen.inputs.questionnaire import Answers

        responses = self.by["QuestionnaireResponse"]
        if not responses and not self.organ_involvement:
            return None
        answers = Answers(self.v)
        for organ, v in self.organ_involvement.items():
            answers.organ_from_condition(organ, v)
        for it in responses:
            self.where = it.loc
            r: ft.QuestionnaireResponse = it.resource  # type: ignore[assignment]
            if not self.own(it, "QuestionnaireResponse"):
                continue
            authored = self.day(it, "authored", r.authored)
            if authored:
                self.clinical_dates.append(authored)
            try:
                answers.read(it.name, r, authored)
            except ValueError as e:
                raise _Fail(it, getattr(e, "field", None), str(e)) from None
        self.notes += answers.notes
        return answers


class _What:
    """"Observation anc (LOINC 751-8)", written only when a note needs it."""

    __slots__ = ("name", "code")

    def __init__(self, name: str, code: str | None):
        self.name, self.code = name, code

    def __str__(self) -> str:
        return f"Observation {self.name} (LOINC {self.code})"

    def __add__(self, more: str) -> str:
        return str(self) + more


def _resolve_conflicts(out: list[dict], notes: list[str]) -> list[dict]:
    """A diagnosis both recorded present and refuted: the present one stands (positive
    evidence), and a note says so; refuted entries of it are dropped."""
    present = {d["code"] for d in out if d.get("present", True) is not False}
    kept = []
    for d in out:
        if d.get("present") is False and d["code"] in present:
            notes.append(f"{d['code']}: refuted in one Condition and present in another: read as present")
            continue
        kept.append(d)
    return kept


def _same_day(out: list[tuple[dict, str]]) -> tuple[list[tuple[dict, str]], list[str]]:
    """Drop exact repeats of a result (same day, value, unit and range: Synthea files one
    result under two encounters); keep, and point out, different values on one day."""
    kept: list[tuple[dict, str]] = []
    by_day: dict[tuple[str, str], list[dict]] = defaultdict(list)
    repeats: Counter = Counter()
    notes: list[str] = []
    for o, loinc in out:
        same = by_day[o["code"], o["date"]]
        key = (o.get("value"), o.get("unit"), o.get("reference_range"), o.get("comparator"))
        if any((k.get("value"), k.get("unit"), k.get("reference_range"), k.get("comparator")) == key
               for k in same):
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


def _duration_days(q: ft.Quantity) -> int | None:
    """Whole days of a Duration in days or weeks (months and years have no exact length)."""
    if q.value is None:
        return None
    unit = (q.code or q.unit or "").strip().lower()
    per = _DURATION_DAYS.get(unit)
    if per is None:
        return None
    days = ft.exact(q.value) * per
    return int(days) if days.denominator == 1 else None


def _dose_mg(q: ft.Quantity | None) -> tuple[Fraction | None, str]:
    if q is None or q.value is None:
        return None, "no dose quantity"
    unit = (q.code if q.system == UCUM and q.code else q.unit or q.code or "").strip()
    factor = _MASS_MG.get(unit) or _MASS_MG.get(unit.lower())
    if factor is None:
        return None, f"dose in {unit or 'units not stated'}, not a mass (mg)"
    return ft.exact(q.value) * factor, ""


def _per_day(d: ft.Dosage) -> tuple[Fraction | None, str]:
    timing = d.timing
    rep = timing.repeat if timing is not None else None
    if rep is not None and rep.frequency is not None and rep.period is not None:
        if rep.frequencyMax not in (None, rep.frequency) or rep.periodMax is not None:
            return None, "frequency given as a range"
        days = _PERIOD_DAYS.get(rep.periodUnit or "")
        if days is None or rep.period <= 0:
            return None, f"period in {rep.periodUnit!r} has no exact length in days"
        per = Fraction(rep.frequency) / (ft.exact(rep.period) * days)
        if rep.dayOfWeek:
            return None, "frequency and days of the week together"
        return per, ""
    if rep is not None and (rep.timeOfDay or rep.when) and rep.frequency in (None, len(rep.timeOfDay or rep.when)):
        per = Fraction(len(rep.timeOfDay or rep.when))
        if rep.dayOfWeek:
            per = per * len(rep.dayOfWeek) / 7
        return per, ""
    if timing is not None and timing.code is not None:
        code = next((c.code for c in timing.code.coding if c.code), None)
        per = _TIMING_CODES.get(str(code).upper()) if code else None
        if per is not None:
            return per, ""
        return None, f"timing code {code!r} has no exact number of doses per day"
    return None, "no exact frequency per day"


def _daily_dose(dosages: list) -> tuple[Fraction | None, bool, str]:
    """(mg/day or None, whether a dose is stated at all, why not computed).

    Dose instructions given together (the same ``sequence``) are summed when every one is
    exact; several without a sequence (concurrent or duplicated: not known), sequential ones (a taper), ranges, as-needed doses, doses in tablets or mg/kg and
    frequencies without an exact length (per month) give an unknown dose."""
    if not dosages:
        return None, False, "no dosage instruction"
    sequences = {d.sequence for d in dosages}
    if len(dosages) > 1 and (len(sequences) > 1 or None in sequences):
        return None, True, ("several dosage instructions without a sequence" if None in sequences
                            else "sequential dosage instructions (a schedule that changes)")
    total = Fraction(0)
    for d in dosages:
        if d.asNeededBoolean or d.asNeededCodeableConcept is not None:
            return None, True, "as needed"
        if not d.doseAndRate:
            return None, True, "no dose quantity" + (f" ({clean(d.text)!r})" if clean(d.text) else "")
        dar = d.doseAndRate[0]
        if dar.doseRange is not None and dar.doseQuantity is None:
            return None, True, "dose given as a range"
        if dar.rateQuantity is not None or dar.rateRatio is not None:
            return None, True, "a rate, not a dose"
        dose, why = _dose_mg(dar.doseQuantity)
        if dose is None:
            return None, True, why
        per, why = _per_day(d)
        if per is None:
            return None, True, why
        total += dose * per
    return total, True, ""


def _route(dosages: list, display: str | None, administration: Any = None) -> tuple[str, str]:
    """(route, note): the dosage's route, else one named in the drug text, else other."""
    routes = [d.route for d in dosages if d.route is not None]
    if administration is not None and administration.route is not None:
        routes.append(administration.route)
    for route in routes:
        for c in route.coding:
            if c.code and str(c.code).upper() in ROUTE_CODES:
                return ROUTE_CODES[str(c.code).upper()], ""
        text = " ".join(filter(None, [route.text] + [c.display for c in route.coding]))
        for word, value in ROUTE_WORDS:
            if word in text.lower():
                return value, ""
    words = set((display or "").lower().replace("/", " ").split())
    for word in ("oral", "topical"):
        if word in words:
            return word, "(from the drug text)"
    if words & {"injection", "injectable", "infusion", "prefilled"}:
        return "other", "(parenteral, from the drug text)"
    return "other", "(route not stated)"

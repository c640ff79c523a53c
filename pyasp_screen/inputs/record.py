"""Stage 1 of the pipeline: patient records, read and validated.

A record file (YAML or JSON) holds one record, a list of records, or ``{"patients": [...]}``;
a FHIR R4 Bundle is read by :mod:`pyasp_screen.inputs.fhir` into the same shape. The record model
below is the single source of the record format: docs/schema/record.schema.json is generated
from it (``python -m pyasp_screen.inputs.record``) and docs/records.md explains it.

Validation is done by msgspec (typed decoding, with the JSON path of every error). Problems
are reported as :class:`RecordError`: one line naming the file, the patient, the field and the
reason. Loading a file never raises for a bad record: it yields the error and goes on.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from dataclasses import dataclass
from typing import Literal, Union

import msgspec

from pyasp_screen.inputs.limits import id_problem, one_line

Tristate = Union[bool, Literal["unknown"]]


class Quantity(msgspec.Struct, forbid_unknown_fields=True):
    value: float
    unit: str


class ReferenceRange(msgspec.Struct, forbid_unknown_fields=True):
    """The result's own reference range; ``high`` is the ULN (upper limit of normal)."""

    low: Union[float, None] = None
    high: Union[float, None] = None
    unit: Union[str, None] = None


class Observation(msgspec.Struct, forbid_unknown_fields=True):
    """A laboratory result, vital sign or test. ``code`` is a vocabulary name or, with
    ``system: loinc``, a LOINC code. ``value`` is a number (with a UCUM ``unit``) or, for a
    qualitative test, ``positive`` / ``negative``. ``status: not_done`` or ``unknown`` records
    explicitly that the value is not known. ``room_air`` (SpO2 only): measured on room air;
    when absent, the knowledge base's parameter spo2_unflagged_is_room_air decides."""

    code: str
    date: dt.date
    value: Union[float, str, None] = None
    unit: Union[str, None] = None
    system: Literal["vocabulary", "loinc"] = "vocabulary"
    display: Union[str, None] = None
    status: Literal["final", "not_done", "unknown"] = "final"
    reference_range: Union[ReferenceRange, None] = None
    room_air: Union[bool, None] = None
    # "<", "<=", ">", ">=": the value is only a bound ("<0.2"), read as the interval it says.
    comparator: Union[Literal["<", "<=", ">", ">="], None] = None
    # Where the result was read from (a FHIR resource: "Observation/abc"). A result with a
    # source whose unit cannot be read, or whose value is impossible, is set aside with a note
    # naming it; the patient is still screened (a native result is rejected instead).
    source: Union[str, None] = None


class Diagnosis(msgspec.Struct, forbid_unknown_fields=True):
    """A diagnosis. ``present: false`` records that the patient does not have it;
    ``subtype`` qualifies it (for SSc: ``diffuse`` or ``limited``)."""

    code: str
    system: Literal["vocabulary", "snomed", "icd10"] = "vocabulary"
    display: Union[str, None] = None
    onset: Union[dt.date, None] = None
    present: Tristate = True
    subtype: Union[str, None] = None


class Classification(msgspec.Struct, forbid_unknown_fields=True):
    """Classification criteria: a clinician's assertion ``met`` and/or the scheme's ``items``
    (item name -> true / false / unknown). When items are recorded they decide."""

    met: Union[Tristate, None] = None
    date: Union[dt.date, None] = None
    items: dict[str, Tristate] = {}


class Classifications(msgspec.Struct, forbid_unknown_fields=True):
    eular_acr_2019_sle: Union[Classification, None] = None
    acr_eular_2013_ssc: Union[Classification, None] = None


class SledaiAssessment(msgspec.Struct, forbid_unknown_fields=True):
    """A SLEDAI-2K assessment: descriptors (name -> true / false / unknown) and/or a
    recorded total (Gladman et al. J Rheumatol 2002;29:288-91)."""

    date: dt.date
    descriptors: dict[str, Tristate] = {}
    total: Union[int, None] = None


class Assessment(msgspec.Struct, forbid_unknown_fields=True):
    """A clinician assessment with a categorical value (see docs/vocabulary.md)."""

    name: str
    value: Union[bool, str]
    date: Union[dt.date, None] = None


class DoseChange(msgspec.Struct, forbid_unknown_fields=True):
    """The daily dose from ``date`` on: ``dose`` null when it is not known from then (an order
    whose daily dose cannot be computed). ``changed``: true (the dose changed on that day),
    unknown (it may have: the dose before or after is not known) or false (the dose is only
    stated, not changed)."""

    date: dt.date
    dose: Union[float, None]
    changed: Tristate = True


class Medication(msgspec.Struct, forbid_unknown_fields=True):
    """A treatment course. ``dose`` is the daily dose at ``start`` in ``unit`` (mg), null when
    not known; ``end`` absent or null means ongoing. ``end_known: false``: the course ended on a
    day that is not known, after ``end`` (the last day it is known to have been taken: a stopped
    order without a stop date) and on or before the screening date."""

    drug: str
    start: dt.date
    system: Literal["vocabulary", "rxnorm", "text"] = "vocabulary"
    display: Union[str, None] = None
    route: Literal["oral", "iv", "sc", "im", "topical", "other"] = "oral"
    dose: Union[float, None] = None
    unit: Union[str, None] = None
    end: Union[dt.date, None] = None
    end_known: bool = True
    dose_changes: list[DoseChange] = []


class Event(msgspec.Struct, forbid_unknown_fields=True):
    """A dated event: a blood transfusion (``product``) or a growth factor (``drug``)."""

    date: dt.date
    product: Union[str, None] = None
    drug: Union[str, None] = None


Category = Literal["diagnoses", "medications", "transfusions", "growth_factors",
                   "sledai2k_descriptors", "eular_acr_2019_sle_items",
                   "acr_eular_2013_ssc_items", "organ_involvement", "results"]


class Record(msgspec.Struct, forbid_unknown_fields=True):
    """One patient at one screening. Absent data is unknown, never false, unless its
    category is listed in ``complete`` (closed world)."""

    id: str
    screening_date: dt.date
    birth_date: Union[dt.date, None] = None
    sex: Literal["female", "male", "unknown"] = "unknown"
    # Deceased (FHIR Patient.deceased[x]): true, or the date of death. Never eligible.
    deceased: Union[bool, dt.date, None] = None
    complete: list[Category] = []
    diagnoses: list[Diagnosis] = []
    classification: Classifications = msgspec.field(default_factory=Classifications)
    observations: list[Observation] = []
    sledai2k: list[SledaiAssessment] = []
    organ_involvement: dict[str, Tristate] = {}
    assessments: list[Assessment] = []
    medications: list[Medication] = []
    transfusions: list[Event] = []
    growth_factors: list[Event] = []
    source: Union[str, None] = None
    notes: Union[str, None] = None
    # Filled by FHIR import: what was mapped and what was not (informational).
    mapping_notes: list[str] = []


@dataclass(frozen=True)
class RecordError:
    """A record that could not be read: ``file: patient P: field F: reason``."""

    file: str
    patient: str | None
    field: str | None
    reason: str

    def __post_init__(self) -> None:
        # Every part is shown on one line and must encode in any output: a line break, a
        # control character or a lone surrogate (an ID, a file name, a code quoted in the
        # reason) is written as an escape.
        for name in ("file", "patient", "field", "reason"):
            value = getattr(self, name)
            if isinstance(value, str):
                clean = one_line(value)
                if clean is not value:
                    object.__setattr__(self, name, clean)

    def __str__(self) -> str:
        parts = [self.file]
        parts.append(f"patient {self.patient}" if self.patient else "patient ?")
        if self.field:
            parts.append(f"field {self.field}")
        parts.append(self.reason)
        return ": ".join(parts)


class RecordInvalid(Exception):
    """Raised by later stages for a record whose content is impossible (wrong unit,
    implausible value); carries the field and the reason."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class Loaded:
    """A record that passed validation, with the file it came from."""

    file: str
    record: Record


def _split_msgspec_error(message: str) -> tuple[str | None, str]:
    """msgspec says "Expected `int`, got `str` - at `$.observations[0].value`"; return the
    field path and a reason in plain words."""
    field = None
    if " - at `$" in message:
        message, _, path = message.rpartition(" - at `")
        field = path.rstrip("`").removeprefix("$").lstrip(".") or None
    if message.startswith("Object missing required field"):
        name = message.split("`")[1]
        field = f"{field}.{name}" if field else name
        return field, "required field is missing"
    if "RFC3339 encoded date" in message:
        return field, "not a valid date (YYYY-MM-DD)"
    message = message.replace("`", "")
    return field, message[0].lower() + message[1:] if message else message


def parse_record(data: object, file: str) -> Loaded | RecordError:
    """Validate one record (a mapping already parsed from YAML/JSON)."""
    patient = data.get("id") if isinstance(data, dict) and isinstance(data.get("id"), str) else None
    if not isinstance(data, dict):
        return RecordError(file, None, None, f"a record must be a mapping, got {type(data).__name__}")
    if patient is not None and not patient.strip():
        return RecordError(file, None, "id", "the patient id is empty")
    if patient is not None and (problem := id_problem(patient)):
        return RecordError(file, patient, "id", problem)
    try:
        record = msgspec.convert(data, Record, strict=False)
    except msgspec.ValidationError as e:
        field, reason = _split_msgspec_error(str(e))
        if reason.startswith("object contains unknown field"):
            reason = reason.replace("object contains unknown field", "unknown field")
            reason += " (see docs/records.md for the record format)"
        return RecordError(file, patient, field, reason)
    return Loaded(file, record)


def json_schema() -> dict:
    """The JSON Schema of a record, generated from :class:`Record`."""
    schema = msgspec.json.schema(Record)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "pyasp-screen patient record"
    return schema


if __name__ == "__main__":  # python -m pyasp_screen.inputs.record > docs/schema/record.schema.json
    json.dump(json_schema(), sys.stdout, indent=2)
    sys.stdout.write("\n")

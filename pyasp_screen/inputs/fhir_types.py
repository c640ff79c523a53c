"""Typed decoding of the FHIR R4 elements the readers use (msgspec Structs).

Only the resource types and elements :mod:`pyasp_screen.inputs.fhir` reads are declared, with
the FHIR R4 names and JSON types (https://hl7.org/fhir/R4/): every other element of a resource
is skipped unread, so decoding a Synthea or Bulk resource costs a fraction of building the
full fhir.resources model. What is declared is checked: a ``valueQuantity.value`` that is not
a number, a ``status`` that is not a string, a ``coding`` that is not a list is a
``msgspec.ValidationError`` naming the JSON path, which the reader turns into a one-line
RecordError. Elements of type date/dateTime/instant are kept as the strings FHIR writes and
read by :func:`day` (the calendar day as written; partial dates are not days).

Full validation of every element against the R4 structure definitions is fhir.resources'
job: ``bundle_to_record(..., validate=True)`` (``--validate-fhir`` on the command line) runs
it before this decoding, and the tests check that both routes read the same record from every
sample bundle (tests/test_fhir.py).

Decimal elements decode to int or float and are read exactly by :func:`exact` ("0.1" is 1/10:
a float's shortest representation is the decimal JSON wrote).
"""

from __future__ import annotations

import datetime as dt
import re
from fractions import Fraction
from typing import Union

import msgspec

Str = Union[str, None]
# FHIR decimals: JSON numbers, decoded as int or float (a string is refused, as FHIR does); read
# exactly with :func:`exact` (a float's shortest repr is the decimal written).
Dec = Union[int, float, None]
Int = Union[int, None]
Bool = Union[bool, None]


class Coding(msgspec.Struct):
    system: Str = None
    code: Str = None
    display: Str = None


class CodeableConcept(msgspec.Struct):
    coding: list[Coding] = []
    text: Str = None


class Reference(msgspec.Struct):
    reference: Str = None
    display: Str = None


class Quantity(msgspec.Struct):
    value: Dec = None
    comparator: Str = None
    unit: Str = None
    system: Str = None
    code: Str = None


class Period(msgspec.Struct):
    start: Str = None
    end: Str = None


class Range(msgspec.Struct):
    low: Union[Quantity, None] = None
    high: Union[Quantity, None] = None


class ReferenceRange(msgspec.Struct):
    low: Union[Quantity, None] = None
    high: Union[Quantity, None] = None


class Ratio(msgspec.Struct):
    numerator: Union[Quantity, None] = None
    denominator: Union[Quantity, None] = None


class Repeat(msgspec.Struct):
    boundsDuration: Union[Quantity, None] = None
    boundsPeriod: Union[Period, None] = None
    count: Int = None
    frequency: Int = None
    frequencyMax: Int = None
    period: Dec = None
    periodMax: Dec = None
    periodUnit: Str = None
    dayOfWeek: list[str] = []
    timeOfDay: list[str] = []
    when: list[str] = []


class Timing(msgspec.Struct):
    event: list[str] = []
    repeat: Union[Repeat, None] = None
    code: Union[CodeableConcept, None] = None


class DoseAndRate(msgspec.Struct):
    type: Union[CodeableConcept, None] = None
    doseQuantity: Union[Quantity, None] = None
    doseRange: Union[Range, None] = None
    rateQuantity: Union[Quantity, None] = None
    rateRatio: Union[Ratio, None] = None


class Dosage(msgspec.Struct):
    sequence: Int = None
    text: Str = None
    timing: Union[Timing, None] = None
    asNeededBoolean: Bool = None
    asNeededCodeableConcept: Union[CodeableConcept, None] = None
    route: Union[CodeableConcept, None] = None
    doseAndRate: list[DoseAndRate] = []
    maxDosePerPeriod: Union[Ratio, None] = None


class Resource(msgspec.Struct, tag_field="resourceType", tag=True):
    """What every resource the readers meet has: its type (the JSON ``resourceType``, the
    struct's tag) and id."""

    id: Str = None

    @property
    def resourceType(self) -> str:
        return type(self).__name__


class Patient(Resource):
    gender: Str = None
    birthDate: Str = None
    deceasedBoolean: Bool = None
    deceasedDateTime: Str = None


class ObservationComponent(msgspec.Struct):
    code: CodeableConcept
    valueQuantity: Union[Quantity, None] = None
    valueCodeableConcept: Union[CodeableConcept, None] = None
    valueString: Str = None
    dataAbsentReason: Union[CodeableConcept, None] = None


class Observation(Resource, kw_only=True):
    status: str
    code: CodeableConcept
    subject: Union[Reference, None] = None
    effectiveDateTime: Str = None
    effectivePeriod: Union[Period, None] = None
    effectiveInstant: Str = None
    issued: Str = None
    valueQuantity: Union[Quantity, None] = None
    valueCodeableConcept: Union[CodeableConcept, None] = None
    valueString: Str = None
    valueBoolean: Bool = None
    valueInteger: Int = None
    valueRatio: Union[Ratio, None] = None
    dataAbsentReason: Union[CodeableConcept, None] = None
    referenceRange: list[ReferenceRange] = []
    component: list[ObservationComponent] = []


class Condition(Resource):
    clinicalStatus: Union[CodeableConcept, None] = None
    verificationStatus: Union[CodeableConcept, None] = None
    code: Union[CodeableConcept, None] = None
    subject: Union[Reference, None] = None
    onsetDateTime: Str = None
    onsetPeriod: Union[Period, None] = None
    onsetString: Str = None
    abatementDateTime: Str = None
    recordedDate: Str = None


class Medication(Resource):
    code: Union[CodeableConcept, None] = None


class DispenseRequest(msgspec.Struct):
    validityPeriod: Union[Period, None] = None
    numberOfRepeatsAllowed: Int = None
    quantity: Union[Quantity, None] = None
    expectedSupplyDuration: Union[Quantity, None] = None


class _MedicationResource(Resource, kw_only=True):
    status: str
    medicationCodeableConcept: Union[CodeableConcept, None] = None
    medicationReference: Union[Reference, None] = None
    subject: Union[Reference, None] = None
    contained: list[dict] = []  # contained resources, decoded when a reference needs them


class MedicationRequest(_MedicationResource, kw_only=True):
    intent: str
    doNotPerform: Bool = None
    authoredOn: Str = None
    dosageInstruction: list[Dosage] = []
    dispenseRequest: Union[DispenseRequest, None] = None
    priorPrescription: Union[Reference, None] = None


class MedicationStatement(_MedicationResource):
    effectiveDateTime: Str = None
    effectivePeriod: Union[Period, None] = None
    dateAsserted: Str = None
    dosage: list[Dosage] = []


class AdministrationDosage(msgspec.Struct):
    text: Str = None
    route: Union[CodeableConcept, None] = None
    dose: Union[Quantity, None] = None
    rateQuantity: Union[Quantity, None] = None


class MedicationAdministration(_MedicationResource):
    effectiveDateTime: Str = None
    effectivePeriod: Union[Period, None] = None
    dosage: Union[AdministrationDosage, None] = None


class MedicationDispense(_MedicationResource):
    type: Union[CodeableConcept, None] = None
    quantity: Union[Quantity, None] = None
    daysSupply: Union[Quantity, None] = None
    whenPrepared: Str = None
    whenHandedOver: Str = None
    dosageInstruction: list[Dosage] = []


class Procedure(Resource, kw_only=True):
    status: str
    code: Union[CodeableConcept, None] = None
    subject: Union[Reference, None] = None
    performedDateTime: Str = None
    performedPeriod: Union[Period, None] = None
    performedString: Str = None


class Answer(msgspec.Struct):
    valueBoolean: Bool = None
    valueDecimal: Dec = None
    valueInteger: Int = None
    valueDate: Str = None
    valueDateTime: Str = None
    valueString: Str = None
    valueCoding: Union[Coding, None] = None
    valueQuantity: Union[Quantity, None] = None
    item: list["ResponseItem"] = []


class ResponseItem(msgspec.Struct):
    linkId: str
    text: Str = None
    answer: list[Answer] = []
    item: list["ResponseItem"] = []


class QuestionnaireResponse(Resource, kw_only=True):
    questionnaire: Str = None
    status: str
    subject: Union[Reference, None] = None
    authored: Str = None
    item: list[ResponseItem] = []


#: The resource types the readers decode, by name.
TYPES: dict[str, type[Resource]] = {c.__name__: c for c in (
    Patient, Observation, Condition, Medication, MedicationRequest, MedicationStatement,
    MedicationAdministration, MedicationDispense, Procedure, QuestionnaireResponse)}

DECODERS = {name: msgspec.json.Decoder(cls) for name, cls in TYPES.items()}
#: One decoder for a line of any type read (tagged by ``resourceType``); another type is a
#: ValidationError naming ``$.resourceType``.
ANY_DECODER = msgspec.json.Decoder(Union[tuple(TYPES.values())])


class Head(msgspec.Struct):
    resourceType: Union[str, None] = None
    id: Union[str, None] = None


class Entry(msgspec.Struct):
    fullUrl: Str = None
    resource: Union[msgspec.Raw, None] = None


HEAD_DECODER = msgspec.json.Decoder(Head)


class Bundle(msgspec.Struct):
    resourceType: str
    type: Str = None
    entry: list[Entry] = []


# ---------------------------------------------------------------------------------------------
# dates
# ---------------------------------------------------------------------------------------------

_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")
_DATETIME = re.compile(
    r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01])(T([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)"
    r"(\.\d{1,9})?(Z|[+-]((0\d|1[0-3]):[0-5]\d|14:00)))?)?)?$")


class BadDate(ValueError):
    """A date/dateTime string that is not FHIR's format (2020-13-45, 05/12/2020)."""


def check_date(text: str | None) -> None:
    """Raise BadDate if ``text`` is not a FHIR date, dateTime or instant (R4 regex)."""
    if text is None:
        return
    if len(text) == 10 and text[4] == "-" and text[7] == "-" and text[:4].isdigit():
        try:
            dt.date.fromisoformat(text)  # the common case: a full date
            return
        except ValueError:
            pass
    if not _DATETIME.match(text):
        raise BadDate(f"not a FHIR date or dateTime (got {text!r})")
    m = _DATE.match(text)
    if m and m[3]:
        try:
            dt.date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            raise BadDate(f"no such day (got {text!r})") from None


def exact(value: int | float) -> Fraction:
    """The exact decimal a FHIR decimal was written as (0.1 is 1/10, not a binary fraction)."""
    return Fraction(value) if isinstance(value, int) else Fraction(repr(value))


def day(text: str | None) -> dt.date | None:
    """The calendar day of a FHIR date/dateTime/instant as written ("2020-05-12T23:55:41-05:00"
    is 2020-05-12: no conversion to UTC), or None when absent or partial ("2020", "2020-05").
    The string must have passed :func:`check_date`."""
    if not text or len(text) < 10:
        return None
    try:
        return dt.date(int(text[0:4]), int(text[5:7]), int(text[8:10]))
    except ValueError:
        return None

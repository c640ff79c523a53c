"""Exact clinical calculations used by eligibility criteria.

Every result is a :class:`fractions.Fraction` (or an ``int`` for calendar
counts), so that values can be compared against protocol thresholds with
exact boundaries: ``cockcroft_gault(40, 36, 1, "male") >= 50`` is true, with
no floating-point rounding on either side of the comparison.

Numeric inputs must be exact: ``int``, :class:`fractions.Fraction` (any
:class:`numbers.Rational`) or a finite :class:`decimal.Decimal`. Floats are
rejected with ``TypeError``: ``Fraction(1.1)`` is not 11/10, and a silently
inexact creatinine would move a patient across a boundary. Parse measured
values with ``Decimal("1.1")`` or ``Fraction("1.1")`` instead.
"""

from __future__ import annotations

import calendar
import csv
import datetime
import functools
import io
import numbers
import re
from decimal import Decimal
from fractions import Fraction
from importlib import resources
from types import MappingProxyType
from typing import Mapping, Union

__all__ = [
    "ACTUAL_BODY_WEIGHT",
    "ADJUSTED_BODY_WEIGHT",
    "CREATININE_UMOL_L_PER_MG_DL",
    "CRCL_WEIGHT_METHODS",
    "IDEAL_BODY_WEIGHT",
    "UnknownSteroidError",
    "adjusted_body_weight",
    "age_in_years",
    "bmi",
    "cockcroft_gault",
    "completed_months",
    "creatinine_to_mg_dl",
    "crcl_weight",
    "ideal_body_weight_devine",
    "load_steroid_table",
    "prednisone_equivalent_mg",
    "uln_multiple",
]

Number = Union[int, Fraction, Decimal]
"""An exact number accepted by this module (floats are rejected)."""

SEXES = frozenset({"female", "male"})

# Cockcroft-Gault
CG_AGE_CEILING = 140
CG_DIVISOR = 72
CG_FEMALE_FACTOR = Fraction(17, 20)  # 0.85

# Creatinine: 1 mg/dL = 88.4 umol/L (molar mass 113.12 g/mol).
CREATININE_UMOL_L_PER_MG_DL = Fraction(884, 10)
CREATININE_UNITS = ("mg/dL", "umol/L")

# Devine ideal body weight
CM_PER_INCH = Fraction(254, 100)  # exact by definition of the inch
DEVINE_BASE_HEIGHT_IN = 60
DEVINE_KG_PER_INCH = Fraction(23, 10)
DEVINE_BASE_KG_MALE = Fraction(50)
DEVINE_BASE_KG_FEMALE = Fraction(455, 10)

ADJUSTED_WEIGHT_FACTOR = Fraction(2, 5)  # 0.4

# BMI bands (WHO): < 18.5 underweight, 18.5 to < 25 normal, >= 25 overweight.
BMI_NORMAL_FROM = Fraction(185, 10)
BMI_OVERWEIGHT_FROM = Fraction(25)

# Labels returned by crcl_weight.
ACTUAL_BODY_WEIGHT = "actual body weight"
IDEAL_BODY_WEIGHT = "ideal body weight"
ADJUSTED_BODY_WEIGHT = "adjusted body weight"
CRCL_WEIGHT_METHODS = ("actual", "ideal", "adjusted", "bmi_stratified")

# Corticosteroid equivalence table (package data).
PREDNISONE_REFERENCE_MG = Fraction(5)
STEROID_TABLE_RESOURCE = ("data", "steroid_equivalents.csv")
STEROID_PRIMARY_COLUMN = "equivalent_dose_mg_primary"
STEROID_NOTE_ROW = "NOTE"


class UnknownSteroidError(ValueError, KeyError):
    """A corticosteroid name that is not in the equivalence table.

    Both a ``ValueError`` (bad argument) and a ``KeyError`` (failed lookup),
    so either ``except`` clause catches it.
    """

    def __str__(self) -> str:
        # KeyError.__str__ would show the message repr-quoted.
        return str(self.args[0]) if self.args else ""


# ---------------------------------------------------------------------------
# Argument checking
# ---------------------------------------------------------------------------


def _exact(value: Number, name: str) -> Fraction:
    """Convert an exact number to a Fraction; reject floats, bools and others."""
    if type(value) is Fraction:  # the usual case, without the slower ABC checks below
        return value
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got bool {value!r}")
    if isinstance(value, numbers.Rational):
        return Fraction(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{name} must be finite, got {value!r}")
        return Fraction(value)
    raise TypeError(
        f"{name} must be an exact number (int, Fraction or Decimal), got "
        f"{type(value).__name__} {value!r}; floats are not accepted because "
        "they cannot represent most decimal measurements exactly"
    )


def _positive(value: Number, name: str) -> Fraction:
    """Convert to a Fraction and require it to be > 0."""
    exact = _exact(value, name)
    if exact <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return exact


def _check_sex(sex: str) -> str:
    """Require sex to be exactly "female" or "male"."""
    if sex not in SEXES:
        raise ValueError(f"sex must be 'female' or 'male', got {sex!r}")
    return sex


def _check_cg_age(age_years: int) -> int:
    """Require an integer age with 0 <= age < 140."""
    if isinstance(age_years, bool) or not isinstance(age_years, numbers.Integral):
        raise TypeError(
            f"age_years must be an int (completed years), got "
            f"{type(age_years).__name__} {age_years!r}"
        )
    age = int(age_years)
    if age < 0:
        raise ValueError(f"age_years must be >= 0, got {age}")
    if age >= CG_AGE_CEILING:
        raise ValueError(
            f"age_years must be < {CG_AGE_CEILING}, got {age}: the "
            f"Cockcroft-Gault factor ({CG_AGE_CEILING} - age) would be <= 0"
        )
    return age


def _check_date(value: datetime.date, name: str) -> datetime.date:
    """Require a plain date (a datetime does not compare with a date)."""
    if isinstance(value, datetime.datetime) or not isinstance(value, datetime.date):
        raise TypeError(
            f"{name} must be a datetime.date, got {type(value).__name__} {value!r}"
        )
    return value


# ---------------------------------------------------------------------------
# Renal function
# ---------------------------------------------------------------------------


def cockcroft_gault(
    age_years: int, weight_kg: Number, creatinine_mg_dl: Number, sex: str
) -> Fraction:
    """Estimated creatinine clearance (Cockcroft-Gault), in mL/min, exact.

    CrCl = (140 - age) * weight / (72 * Scr), multiplied by 17/20 (0.85) for
    women. No rounding, no body-surface normalisation, no weight selection:
    pass the weight to use (see :func:`crcl_weight`).

    Args:
        age_years: age in completed years, an ``int`` with 0 <= age < 140.
        weight_kg: body weight in kg, exact number > 0.
        creatinine_mg_dl: serum creatinine in mg/dL, exact number > 0
            (convert umol/L with :func:`creatinine_to_mg_dl`).
        sex: ``"female"`` or ``"male"`` (exactly, lower case).

    Returns:
        Creatinine clearance in mL/min as a Fraction.

    Raises:
        TypeError: age is not an int, or a number is not exact (e.g. float).
        ValueError: age < 0 or age >= 140; weight <= 0; creatinine <= 0;
            sex not in {"female", "male"}. The message names the argument.

    Source:
        Cockcroft DW, Gault MH. Prediction of creatinine clearance from
        serum creatinine. Nephron 1976;16:31-41. doi:10.1159/000180580
    """
    age = _check_cg_age(age_years)
    weight = _positive(weight_kg, "weight_kg")
    creatinine = _positive(creatinine_mg_dl, "creatinine_mg_dl")
    _check_sex(sex)
    clearance = (CG_AGE_CEILING - age) * weight / (CG_DIVISOR * creatinine)
    if sex == "female":
        return clearance * CG_FEMALE_FACTOR
    return clearance


def creatinine_to_mg_dl(value: Number, unit: str) -> Fraction:
    """Serum creatinine converted to mg/dL, exactly.

    Args:
        value: creatinine concentration, exact number (no range check here;
            :func:`cockcroft_gault` rejects values <= 0).
        unit: ``"mg/dL"`` (returned unchanged) or ``"umol/L"`` (divided by
            88.4 exactly, :data:`CREATININE_UMOL_L_PER_MG_DL`).

    Returns:
        The concentration in mg/dL as a Fraction.

    Raises:
        TypeError: value is not exact (e.g. float).
        ValueError: unit is not one of "mg/dL", "umol/L".

    Source:
        Conventional factor 1 mg/dL = 88.4 umol/L (creatinine molar mass
        113.12 g/mol), as in SI conversion tables, e.g. Young DS.
        Implementation of SI units for clinical laboratory data. Ann Intern
        Med 1987;106:114-29.
    """
    exact = _exact(value, "value")
    if unit == "mg/dL":
        return exact
    if unit == "umol/L":
        return exact / CREATININE_UMOL_L_PER_MG_DL
    raise ValueError(
        f"unit must be one of {', '.join(CREATININE_UNITS)}, got {unit!r}"
    )


# ---------------------------------------------------------------------------
# Body weight and size
# ---------------------------------------------------------------------------


def ideal_body_weight_devine(height_cm: Number, sex: str) -> Fraction:
    """Ideal body weight by the Devine formula, in kg, exact.

    IBW = base + 2.3 kg per inch of height over 60 in, with base 50 kg for
    men and 45.5 kg for women, and 1 in = 2.54 cm exactly.

    Below 60 in (152.4 cm) nothing is clamped: the formula is applied as is,
    so the result falls below the base weight (2.3 kg less per inch short of
    60 in), and for very short heights (under about 97 cm for men, 103 cm
    for women) it is <= 0. :func:`crcl_weight` rejects a non-positive IBW.

    Args:
        height_cm: height in cm, exact number > 0.
        sex: ``"female"`` or ``"male"``.

    Returns:
        Ideal body weight in kg as a Fraction.

    Raises:
        TypeError: height is not exact (e.g. float).
        ValueError: height_cm <= 0; sex not in {"female", "male"}.

    Source:
        Devine BJ. Gentamicin therapy. Drug Intell Clin Pharm 1974;8:650-5.
    """
    height_in = _positive(height_cm, "height_cm") / CM_PER_INCH
    base = DEVINE_BASE_KG_FEMALE if _check_sex(sex) == "female" else DEVINE_BASE_KG_MALE
    return base + DEVINE_KG_PER_INCH * (height_in - DEVINE_BASE_HEIGHT_IN)


def adjusted_body_weight(actual_kg: Number, ibw_kg: Number) -> Fraction:
    """Adjusted body weight, in kg, exact: IBW + 0.4 * (actual - IBW).

    Applied as is whatever the sign of (actual - IBW); choosing when to use
    it is :func:`crcl_weight`'s job.

    Args:
        actual_kg: actual (total) body weight in kg, exact number > 0.
        ibw_kg: ideal body weight in kg, exact number > 0.

    Returns:
        Adjusted body weight in kg as a Fraction.

    Raises:
        TypeError: a number is not exact (e.g. float).
        ValueError: actual_kg <= 0 or ibw_kg <= 0.

    Source:
        Traynor AM, Nafziger AN, Bertino JS Jr. Aminoglycoside dosing weight
        correction factors for patients of various body sizes. Antimicrob
        Agents Chemother 1995;39:545-8 (correction factor 0.4).
    """
    actual = _positive(actual_kg, "actual_kg")
    ideal = _positive(ibw_kg, "ibw_kg")
    return ideal + ADJUSTED_WEIGHT_FACTOR * (actual - ideal)


def bmi(weight_kg: Number, height_cm: Number) -> Fraction:
    """Body-mass index, in kg/m^2, exact: weight / (height in m)^2.

    Args:
        weight_kg: body weight in kg, exact number > 0.
        height_cm: height in cm, exact number > 0.

    Returns:
        BMI in kg/m^2 as a Fraction.

    Raises:
        TypeError: a number is not exact (e.g. float).
        ValueError: weight_kg <= 0 or height_cm <= 0.

    Source:
        Keys A, Fidanza F, Karvonen MJ, Kimura N, Taylor HL. Indices of
        relative weight and obesity. J Chronic Dis 1972;25:329-43.
    """
    weight = _positive(weight_kg, "weight_kg")
    height_m = _positive(height_cm, "height_cm") / 100
    return weight / (height_m * height_m)


def _usable_ibw(height_cm: Number | None, sex: str, method: str) -> Fraction:
    """Devine IBW for crcl_weight: height required, result must be > 0."""
    if height_cm is None:
        raise ValueError(f"height_cm is required for method {method!r}")
    ideal = ideal_body_weight_devine(height_cm, sex)
    if ideal <= 0:
        raise ValueError(
            f"height_cm={height_cm!r} gives a Devine ideal body weight <= 0 "
            f"({ideal} kg); it cannot be used as a weight"
        )
    return ideal


def crcl_weight(
    method: str, actual_kg: Number, height_cm: Number | None, sex: str
) -> tuple[Fraction, str]:
    """The body weight to put into Cockcroft-Gault, and which one it is.

    Methods:
        ``"actual"``: actual body weight (height not needed, may be None).
        ``"ideal"``: Devine ideal body weight.
        ``"adjusted"``: adjusted body weight from actual and Devine IBW.
        ``"bmi_stratified"``: by BMI band (bands are exact, no gap):
        BMI < 18.5, actual; 18.5 <= BMI < 25, the lower of ideal and actual
        (actual on a tie); BMI >= 25, adjusted.

    Args:
        method: one of :data:`CRCL_WEIGHT_METHODS`.
        actual_kg: actual body weight in kg, exact number > 0.
        height_cm: height in cm, exact number > 0; None only for "actual".
        sex: ``"female"`` or ``"male"`` (checked for every method).

    Returns:
        ``(weight_kg, label)`` where label is one of "actual body weight",
        "ideal body weight", "adjusted body weight".

    Raises:
        TypeError: a number is not exact (e.g. float).
        ValueError: unknown method; height_cm None for a method that needs
            it, or <= 0, or so short that the Devine IBW is <= 0;
            actual_kg <= 0; sex not in {"female", "male"}.

    Source:
        Weights: see :func:`ideal_body_weight_devine`,
        :func:`adjusted_body_weight`. The BMI-stratified rule is the one
        implemented in MedCalc-Bench (ncbi-nlp/MedCalc-Bench,
        calculator_implementations/creatinine_clearance.py), which writes
        the normal band as 18.5 <= BMI <= 24.9 on rounded floats; here the
        bands are WHO's, exact (WHO. Obesity: preventing and managing the
        global epidemic. WHO Technical Report Series 894, 2000).
    """
    if method not in CRCL_WEIGHT_METHODS:
        raise ValueError(
            f"method must be one of {', '.join(CRCL_WEIGHT_METHODS)}, got {method!r}"
        )
    _check_sex(sex)
    actual = _positive(actual_kg, "actual_kg")
    if method == "actual":
        return actual, ACTUAL_BODY_WEIGHT
    ideal = _usable_ibw(height_cm, sex, method)
    if method == "ideal":
        return ideal, IDEAL_BODY_WEIGHT
    if method == "adjusted":
        return adjusted_body_weight(actual, ideal), ADJUSTED_BODY_WEIGHT
    return _bmi_stratified_weight(actual, ideal, bmi(actual, height_cm))


def _bmi_stratified_weight(
    actual: Fraction, ideal: Fraction, index: Fraction
) -> tuple[Fraction, str]:
    """Pick actual / min(ideal, actual) / adjusted by BMI band."""
    if index < BMI_NORMAL_FROM:
        return actual, ACTUAL_BODY_WEIGHT
    if index < BMI_OVERWEIGHT_FROM:
        if ideal < actual:
            return ideal, IDEAL_BODY_WEIGHT
        return actual, ACTUAL_BODY_WEIGHT
    return adjusted_body_weight(actual, ideal), ADJUSTED_BODY_WEIGHT


# ---------------------------------------------------------------------------
# Corticosteroid equivalents
# ---------------------------------------------------------------------------


def _normalize_drug_name(name: str) -> str:
    """Lower-case, drop parenthesised qualifiers, collapse whitespace.

    "Cortisone (acetate)" -> "cortisone"; " Methylprednisolone " ->
    "methylprednisolone".
    """
    without_qualifiers = re.sub(r"\([^)]*\)", " ", name)
    return " ".join(without_qualifiers.casefold().split())


def _parse_steroid_rows(text: str) -> dict[str, Fraction]:
    """Drug name -> mg equivalent to prednisone 5 mg, from the CSV text."""
    table: dict[str, Fraction] = {}
    for row in csv.DictReader(io.StringIO(text, newline="")):
        drug = row["drug"].strip()
        if drug == STEROID_NOTE_ROW:
            continue
        raw = row[STEROID_PRIMARY_COLUMN].strip()
        try:
            equivalent = Fraction(raw)
        except ValueError:
            raise ValueError(
                f"steroid table: {drug!r} has a non-numeric "
                f"{STEROID_PRIMARY_COLUMN} {raw!r}"
            ) from None
        if equivalent <= 0:
            raise ValueError(f"steroid table: {drug!r} has {STEROID_PRIMARY_COLUMN} <= 0")
        key = _normalize_drug_name(drug)
        if key in table:
            raise ValueError(f"steroid table: duplicate drug {key!r}")
        table[key] = equivalent
    return table


@functools.cache
def _steroid_table() -> Mapping[str, Fraction]:
    """The packaged table, read once; read-only so the cache cannot be altered."""
    resource = resources.files("pyasp_screen")
    for part in STEROID_TABLE_RESOURCE:
        resource = resource / part
    text = resource.read_bytes().decode("utf-8-sig")
    return MappingProxyType(_parse_steroid_rows(text))


def load_steroid_table() -> dict[str, Fraction]:
    """Corticosteroid doses equivalent to prednisone 5 mg.

    Reads ``pyasp_screen/data/steroid_equivalents.csv`` (package data, via
    importlib.resources) once; later calls reuse the cached parse. Each call
    returns a new dict, so callers may modify it freely.

    Returns:
        ``{normalized drug name: mg equivalent to prednisone 5 mg}``, names
        lower case without qualifiers ("prednisone", "prednisolone",
        "hydrocortisone", "cortisone", "methylprednisolone",
        "triamcinolone", "dexamethasone", "betamethasone", "deflazacort"),
        values exact Fractions from column ``equivalent_dose_mg_primary``
        (e.g. dexamethasone ``Fraction(3, 4)``). The NOTE row is skipped.

    Raises:
        ValueError: the packaged file is malformed (non-numeric or
            non-positive dose, duplicate drug).

    Source:
        Collected public equivalence tables (MedCalc-Bench steroid
        conversion calculator, Vanderbilt Internal Medicine, GlobalRPh,
        formularyproductions.com, a BNF-style list); per-row sources are in
        the CSV's ``sources`` column, see ``pyasp_screen/data/README.md``.
    """
    return dict(_steroid_table())


def prednisone_equivalent_mg(drug: str, dose_mg: Number) -> Fraction:
    """Prednisone-equivalent dose in mg, exact: dose * 5 / equivalent dose.

    Args:
        drug: corticosteroid name, matched case-insensitively with
            parenthesised qualifiers ignored ("Dexamethasone",
            "cortisone (acetate)"); see :func:`load_steroid_table`.
        dose_mg: dose of that drug in mg, exact number >= 0.

    Returns:
        The equivalent prednisone dose in mg as a Fraction.

    Raises:
        TypeError: drug is not a str; dose_mg is not exact (e.g. float).
        UnknownSteroidError: (a ValueError and a KeyError) drug not in the
            table; the message lists the known names.
        ValueError: dose_mg < 0.

    Source:
        ``pyasp_screen/data/steroid_equivalents.csv``, see
        :func:`load_steroid_table`.
    """
    if not isinstance(drug, str):
        raise TypeError(f"drug must be a str, got {type(drug).__name__} {drug!r}")
    table = _steroid_table()
    try:
        equivalent = table[_normalize_drug_name(drug)]
    except KeyError as missing:
        raise UnknownSteroidError(
            f"unknown corticosteroid {drug!r}; known: {', '.join(sorted(table))}"
        ) from missing
    dose = _exact(dose_mg, "dose_mg")
    if dose < 0:
        raise ValueError(f"dose_mg must be >= 0, got {dose_mg!r}")
    return dose * PREDNISONE_REFERENCE_MG / equivalent


# ---------------------------------------------------------------------------
# Laboratory values
# ---------------------------------------------------------------------------


def uln_multiple(value: Number, uln: Number) -> Fraction:
    """A laboratory value as a multiple of its upper limit of normal, exact.

    Args:
        value: measured value, exact number, same unit as ``uln``.
        uln: upper limit of normal, exact number > 0.

    Returns:
        ``value / uln`` as a Fraction (e.g. ALT 120 U/L with ULN 40 -> 3).

    Raises:
        TypeError: a number is not exact (e.g. float).
        ValueError: uln <= 0.

    Source:
        Definition ("x ULN"), as used in e.g. NCI Common Terminology
        Criteria for Adverse Events (CTCAE) v5.0, 2017.
    """
    measured = _exact(value, "value")
    limit = _positive(uln, "uln")
    return measured / limit


# ---------------------------------------------------------------------------
# Calendar
# ---------------------------------------------------------------------------


def age_in_years(birth: datetime.date, on: datetime.date) -> int:
    """Age in completed years on a given date.

    The birthday counts on its calendar date; for a Feb 29 birthday in a
    non-leap year it counts on Mar 1 (so 2000-02-29 is 1 year old on
    2001-03-01, still 0 on 2001-02-28).

    Args:
        birth: date of birth (``datetime.date``, not ``datetime``).
        on: the date to compute the age at.

    Returns:
        Completed years, an int >= 0.

    Raises:
        TypeError: an argument is not a plain ``datetime.date``.
        ValueError: on is before birth.

    Source:
        Calendar definition of completed years; counting a Feb 29 birthday
        on Mar 1 in common years is this project's stated convention.
    """
    _check_date(birth, "birth")
    _check_date(on, "on")
    if on < birth:
        raise ValueError(f"on ({on}) is before birth ({birth})")
    birthday = (birth.month, birth.day)
    if birthday == (2, 29) and not calendar.isleap(on.year):
        birthday = (3, 1)
    years = on.year - birth.year
    if (on.month, on.day) < birthday:
        years -= 1
    return years


def completed_months(start: datetime.date, on: datetime.date) -> int:
    """Whole calendar months from start to on.

    A month is completed when on's day of month reaches start's day; when
    that day does not exist in a month it is reached on the 1st of the next
    month. So 2025-01-31 -> 2025-02-28 is 0 months, -> 2025-03-01 is 1;
    2025-01-15 -> 2025-07-15 is 6. Consistent with :func:`age_in_years`:
    ``completed_months(b, d) // 12 == age_in_years(b, d)``.

    Args:
        start: first date (``datetime.date``, not ``datetime``).
        on: the date to count to.

    Returns:
        Completed months, an int >= 0.

    Raises:
        TypeError: an argument is not a plain ``datetime.date``.
        ValueError: on is before start.

    Source:
        Calendar definition (same day-of-month rule as completed years).
    """
    _check_date(start, "start")
    _check_date(on, "on")
    if on < start:
        raise ValueError(f"on ({on}) is before start ({start})")
    months = (on.year - start.year) * 12 + (on.month - start.month)
    if on.day < start.day:
        months -= 1
    return months

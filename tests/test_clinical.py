"""Tests for pyasp_screen.findings.clinical against published or hand-derived values.

Every expected number carries a comment saying where it comes from. "Hand"
means derived by hand from the formula in the function's primary source.
"""

from __future__ import annotations

import datetime
import hashlib
from decimal import Decimal
from fractions import Fraction
from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyasp_screen.findings.clinical import (
    ACTUAL_BODY_WEIGHT,
    ADJUSTED_BODY_WEIGHT,
    CREATININE_UMOL_L_PER_MG_DL,
    IDEAL_BODY_WEIGHT,
    UnknownSteroidError,
    adjusted_body_weight,
    age_in_years,
    bmi,
    cockcroft_gault,
    completed_months,
    creatinine_to_mg_dl,
    crcl_weight,
    ideal_body_weight_devine,
    load_steroid_table,
    prednisone_equivalent_mg,
    uln_multiple,
)

D = Decimal
date = datetime.date


def assert_exact(value: object, expected: Fraction | int) -> None:
    """Equal to expected and a Fraction (no float ever leaks out)."""
    assert type(value) is Fraction
    assert value == expected


# ---------------------------------------------------------------------------
# Cockcroft-Gault
# Cockcroft DW, Gault MH. Nephron 1976;16:31-41:
#   CrCl = (140 - age) * weight / (72 * Scr mg/dL), x 0.85 for women.
# ---------------------------------------------------------------------------


def test_cockcroft_gault_worked_example_male():
    # Hand: (140 - 60) * 72 / (72 * 1.0) = 80 mL/min.
    assert_exact(cockcroft_gault(60, 72, D("1.0"), "male"), 80)


def test_cockcroft_gault_worked_example_female():
    # Hand: 80 * 0.85 = 68 mL/min.
    assert_exact(cockcroft_gault(60, 72, D("1.0"), "female"), 68)


def test_cockcroft_gault_with_umol_per_litre():
    # 88.4 umol/L = 1.0 mg/dL exactly (conversion factor 88.4), so same 80.
    scr = creatinine_to_mg_dl(D("88.4"), "umol/L")
    assert_exact(scr, 1)
    assert cockcroft_gault(60, 72, scr, "male") == cockcroft_gault(60, 72, 1, "male") == 80


def test_cockcroft_gault_exact_boundary_50():
    # Hand: (140 - 40) * 36 / (72 * 1.0) = 3600 / 72 = 50 exactly.
    crcl = cockcroft_gault(40, 36, D("1.0"), "male")
    assert_exact(crcl, 50)
    assert crcl >= 50
    assert not crcl < 50


def test_cockcroft_gault_boundary_where_floats_miss():
    # Hand: (140 - 20) * 41.1 / (72 * 1.37) = 4932 / 98.64 = 50 exactly;
    # the same expression in floats gives 49.99999999999999.
    assert (140 - 20) * 41.1 / (72 * 1.37) < 50  # the float trap, for contrast
    crcl = cockcroft_gault(20, D("41.1"), D("1.37"), "male")
    assert_exact(crcl, 50)
    assert crcl >= 50


def test_cockcroft_gault_female_boundary_where_floats_miss():
    # Hand: (140 - 30) * 72 * 0.85 / (72 * 1.87) = 93.5 / 1.87 = 50 exactly;
    # floats give 49.99999999999999.
    assert (140 - 30) * 72.0 / (72 * 1.87) * 0.85 < 50  # the float trap
    assert_exact(cockcroft_gault(30, 72, D("1.87"), "female"), 50)


def test_cockcroft_gault_just_over_boundary_creatinine_is_below_50():
    # Hand: 3600 / (72 * 1.0000000000000001) < 50, a difference floats lose.
    crcl = cockcroft_gault(40, 36, D("1.0000000000000001"), "male")
    assert crcl < 50
    assert crcl == Fraction(50) / Fraction("1.0000000000000001")


def test_cockcroft_gault_accepts_fraction_inputs():
    # Hand: (140 - 40) * (72/2) / (72 * 1) = 50.
    assert_exact(cockcroft_gault(40, Fraction(72, 2), Fraction(1), "male"), 50)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((60, 72, 1, "Male"), "sex must be 'female' or 'male'"),
        ((60, 72, 1, "unknown"), "sex"),
        ((60, 72, 1, None), "sex"),
        ((60, 72, 0, "male"), "creatinine_mg_dl must be > 0"),
        ((60, 72, D("-1.0"), "male"), "creatinine_mg_dl must be > 0"),
        ((60, 0, 1, "male"), "weight_kg must be > 0"),
        ((60, -72, 1, "male"), "weight_kg must be > 0"),
        ((-1, 72, 1, "male"), "age_years must be >= 0"),
        ((140, 72, 1, "male"), r"age_years must be < 140.*\(140 - age\)"),
        ((150, 72, 1, "male"), "age_years must be < 140"),
        ((60, 72, D("NaN"), "male"), "creatinine_mg_dl must be finite"),
        ((60, D("Infinity"), 1, "male"), "weight_kg must be finite"),
    ],
)
def test_cockcroft_gault_rejects_bad_values(args, match):
    with pytest.raises(ValueError, match=match):
        cockcroft_gault(*args)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((60, 72.0, 1, "male"), "weight_kg must be an exact number"),
        ((60, 72, 1.0, "male"), "creatinine_mg_dl must be an exact number"),
        ((60.5, 72, 1, "male"), "age_years must be an int"),
        ((True, 72, 1, "male"), "age_years must be an int"),
        ((60, "72", 1, "male"), "weight_kg must be an exact number"),
    ],
)
def test_cockcroft_gault_rejects_inexact_types(args, match):
    with pytest.raises(TypeError, match=match):
        cockcroft_gault(*args)


def test_cockcroft_gault_age_zero_and_139_are_accepted():
    # Hand: 140 * 72 / 72 = 140; (140 - 139) * 72 / 72 = 1.
    assert_exact(cockcroft_gault(0, 72, 1, "male"), 140)
    assert_exact(cockcroft_gault(139, 72, 1, "male"), 1)


# Hypothesis properties of the Cockcroft-Gault formula.

ages = st.integers(min_value=0, max_value=139)
weights = st.fractions(min_value=Fraction(1, 10), max_value=400, max_denominator=1000)
creatinines = st.fractions(min_value=Fraction(1, 100), max_value=20, max_denominator=1000)


@given(age=ages, weight=weights, scr=creatinines)
def test_female_is_exactly_017_20_of_male(age, weight, scr):
    # Cockcroft & Gault 1976: female = 0.85 x male, which must hold exactly.
    male = cockcroft_gault(age, weight, scr, "male")
    female = cockcroft_gault(age, weight, scr, "female")
    assert female == male * Fraction(17, 20)
    assert type(female) is Fraction and type(male) is Fraction


sexes = st.sampled_from(["female", "male"])


@given(age=ages, weight=weights, scr=creatinines, extra=creatinines, sex=sexes)
def test_crcl_strictly_decreasing_in_creatinine(age, weight, scr, extra, sex):
    # Formula: Scr is in the denominator and every other factor is > 0.
    assert cockcroft_gault(age, weight, scr + extra, sex) < cockcroft_gault(age, weight, scr, sex)


@given(
    ages=st.lists(ages, min_size=2, max_size=2, unique=True).map(sorted),
    weight=weights,
    scr=creatinines,
    sex=sexes,
)
def test_crcl_strictly_decreasing_in_age(ages, weight, scr, sex):
    # Formula: the factor (140 - age) falls as age rises.
    younger, older = ages
    assert cockcroft_gault(older, weight, scr, sex) < cockcroft_gault(younger, weight, scr, sex)


@given(age=ages, scr=creatinines, sex=sexes)
def test_crcl_linear_in_weight(age, scr, sex):
    # Formula: CrCl is proportional to weight, so doubling weight doubles it.
    assert cockcroft_gault(age, 140, scr, sex) == 2 * cockcroft_gault(age, 70, scr, sex)


# ---------------------------------------------------------------------------
# Creatinine units (1 mg/dL = 88.4 umol/L)
# ---------------------------------------------------------------------------


def test_creatinine_factor_constant():
    assert CREATININE_UMOL_L_PER_MG_DL == Fraction(884, 10)
    assert type(CREATININE_UMOL_L_PER_MG_DL) is Fraction


def test_creatinine_mg_dl_passes_through():
    assert_exact(creatinine_to_mg_dl(D("1.37"), "mg/dL"), Fraction(137, 100))


def test_creatinine_umol_conversion_exact():
    # Hand: 176.8 / 88.4 = 2; 100 / 88.4 = 250/221 (not a finite decimal).
    assert_exact(creatinine_to_mg_dl(D("176.8"), "umol/L"), 2)
    assert_exact(creatinine_to_mg_dl(100, "umol/L"), Fraction(250, 221))


@given(st.fractions(min_value=Fraction(1, 100), max_value=30, max_denominator=10_000))
def test_creatinine_round_trip(mg_dl):
    # Conversion is an exact division by 88.4, so multiplying back round-trips.
    assert creatinine_to_mg_dl(mg_dl * CREATININE_UMOL_L_PER_MG_DL, "umol/L") == mg_dl


@pytest.mark.parametrize("unit", ["mmol/L", "mg/dl", "µmol/L", "", None])
def test_creatinine_rejects_other_units(unit):
    with pytest.raises(ValueError, match="unit must be one of mg/dL, umol/L"):
        creatinine_to_mg_dl(1, unit)


def test_creatinine_rejects_float():
    with pytest.raises(TypeError, match="value must be an exact number"):
        creatinine_to_mg_dl(88.4, "umol/L")


# ---------------------------------------------------------------------------
# Devine ideal body weight
# Devine BJ. Drug Intell Clin Pharm 1974;8:650-5: 50 kg (men) / 45.5 kg
# (women) + 2.3 kg per inch over 60 in; 1 in = 2.54 cm.
# ---------------------------------------------------------------------------


def test_devine_man_5_ft_10():
    # Hand: 177.8 cm = 70 in; 50 + 2.3 * 10 = 73 kg.
    assert_exact(ideal_body_weight_devine(D("177.8"), "male"), 73)


def test_devine_woman_5_ft_4():
    # Hand: 162.56 cm = 64 in; 45.5 + 2.3 * 4 = 54.7 kg.
    assert_exact(ideal_body_weight_devine(D("162.56"), "female"), Fraction(547, 10))


def test_devine_at_5_ft_is_base_weight():
    # Hand: 152.4 cm = 60 in, 0 in over: the base weights 50 and 45.5 kg.
    assert_exact(ideal_body_weight_devine(D("152.4"), "male"), 50)
    assert_exact(ideal_body_weight_devine(D("152.4"), "female"), Fraction(91, 2))


def test_devine_below_5_ft_is_not_clamped():
    # Hand: 147.32 cm = 58 in; 50 - 2.3 * 2 = 45.4 (below the 50 kg base).
    assert_exact(ideal_body_weight_devine(D("147.32"), "male"), Fraction(454, 10))
    # Hand: 127 cm = 50 in; 45.5 - 2.3 * 10 = 22.5.
    assert_exact(ideal_body_weight_devine(127, "female"), Fraction(45, 2))


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0, "male"), "height_cm must be > 0"),
        ((D("-170"), "female"), "height_cm must be > 0"),
        ((170, "M"), "sex must be 'female' or 'male'"),
    ],
)
def test_devine_rejects_bad_values(args, match):
    with pytest.raises(ValueError, match=match):
        ideal_body_weight_devine(*args)


def test_devine_rejects_float_height():
    with pytest.raises(TypeError, match="height_cm must be an exact number"):
        ideal_body_weight_devine(177.8, "male")


# ---------------------------------------------------------------------------
# Adjusted body weight: IBW + 0.4 * (actual - IBW)
# (Traynor AM et al. Antimicrob Agents Chemother 1995;39:545-8.)
# ---------------------------------------------------------------------------


def test_adjusted_body_weight():
    # Hand: 73 + 0.4 * (100 - 73) = 73 + 10.8 = 83.8 kg.
    assert_exact(adjusted_body_weight(100, 73), Fraction(838, 10))


def test_adjusted_body_weight_equal_weights():
    # Hand: actual == IBW leaves the weight unchanged.
    assert_exact(adjusted_body_weight(73, 73), 73)


@given(
    actual=st.fractions(min_value=Fraction(1, 10), max_value=400, max_denominator=100),
    ideal=st.fractions(min_value=Fraction(1, 10), max_value=150, max_denominator=100),
)
def test_adjusted_body_weight_lies_40_percent_of_the_way(actual, ideal):
    # Formula: the result is 2/5 of the way from IBW to actual weight.
    adjusted = adjusted_body_weight(actual, ideal)
    assert adjusted - ideal == Fraction(2, 5) * (actual - ideal)
    assert min(actual, ideal) <= adjusted <= max(actual, ideal)


@pytest.mark.parametrize(
    ("args", "match"),
    [((0, 73), "actual_kg must be > 0"), ((80, 0), "ibw_kg must be > 0"), ((80, -1), "ibw_kg")],
)
def test_adjusted_body_weight_rejects_bad_values(args, match):
    with pytest.raises(ValueError, match=match):
        adjusted_body_weight(*args)


# ---------------------------------------------------------------------------
# BMI = kg / m^2 (Keys A et al. J Chronic Dis 1972;25:329-43)
# ---------------------------------------------------------------------------


def test_bmi_exact():
    # Hand: 81 / 1.8^2 = 81 / 3.24 = 25; 72 / 3.24 = 200/9.
    assert_exact(bmi(81, 180), 25)
    assert_exact(bmi(72, 180), Fraction(200, 9))


@pytest.mark.parametrize(
    ("args", "match"),
    [((0, 180), "weight_kg must be > 0"), ((70, 0), "height_cm must be > 0")],
)
def test_bmi_rejects_bad_values(args, match):
    with pytest.raises(ValueError, match=match):
        bmi(*args)


# ---------------------------------------------------------------------------
# crcl_weight. BMI bands (WHO TRS 894, 2000): < 18.5, 18.5 to < 25, >= 25.
# Height 177.8 cm (70 in): male IBW 73 kg, height^2 = 3.161284 m^2, so
# BMI 25 <=> 79.0321 kg and BMI 18.5 <=> 58.483754 kg (hand).
# ---------------------------------------------------------------------------

TALL = D("177.8")


def test_crcl_weight_actual_needs_no_height():
    assert crcl_weight("actual", D("72.5"), None, "male") == (Fraction(145, 2), ACTUAL_BODY_WEIGHT)


def test_crcl_weight_ideal_and_adjusted():
    # Hand: IBW 73 (5 ft 10 in man); adjusted 73 + 0.4 * 27 = 83.8.
    assert crcl_weight("ideal", 100, TALL, "male") == (73, IDEAL_BODY_WEIGHT)
    assert crcl_weight("adjusted", 100, TALL, "male") == (Fraction(838, 10), ADJUSTED_BODY_WEIGHT)


def test_crcl_weight_labels():
    assert (ACTUAL_BODY_WEIGHT, IDEAL_BODY_WEIGHT, ADJUSTED_BODY_WEIGHT) == (
        "actual body weight",
        "ideal body weight",
        "adjusted body weight",
    )


@pytest.mark.parametrize(
    ("actual", "expected", "label", "why"),
    [
        # Hand: 55 / 3.161284 = 17.4 < 18.5: underweight, actual weight.
        (55, 55, ACTUAL_BODY_WEIGHT, "underweight"),
        # Hand: 65 / 3.161284 = 20.6, normal; min(IBW 73, 65) = 65 actual.
        (65, 65, ACTUAL_BODY_WEIGHT, "normal, actual below IBW"),
        # Hand: 75 / 3.161284 = 23.7, normal; min(IBW 73, 75) = 73 ideal.
        (75, 73, IDEAL_BODY_WEIGHT, "normal, IBW below actual"),
        # Hand: actual == IBW == 73 (BMI 23.1): tie goes to actual.
        (73, 73, ACTUAL_BODY_WEIGHT, "normal, tie"),
        # Hand: 100 / 3.161284 = 31.6 >= 25: adjusted 73 + 0.4 * 27 = 83.8.
        (100, Fraction(838, 10), ADJUSTED_BODY_WEIGHT, "obese"),
    ],
)
def test_crcl_weight_bmi_stratified_bands(actual, expected, label, why):
    assert crcl_weight("bmi_stratified", actual, TALL, "male") == (expected, label), why


def test_crcl_weight_bmi_stratified_at_exactly_25_is_adjusted():
    # Hand: BMI(79.0321 kg, 177.8 cm) = 25 exactly -> adjusted band;
    # 73 + 0.4 * (79.0321 - 73) = 75.41284.
    assert bmi(D("79.0321"), TALL) == 25
    assert crcl_weight("bmi_stratified", D("79.0321"), TALL, "male") == (
        Fraction("75.41284"),
        ADJUSTED_BODY_WEIGHT,
    )


def test_crcl_weight_bmi_stratified_just_below_25_is_normal_band():
    # Hand: 79.0320 kg gives BMI just under 25 -> min(IBW 73, 79.032) = 73.
    assert bmi(D("79.0320"), TALL) < 25
    assert crcl_weight("bmi_stratified", D("79.0320"), TALL, "male") == (73, IDEAL_BODY_WEIGHT)


def test_crcl_weight_bmi_stratified_at_exactly_18_5_is_normal_band():
    # At 127 cm (50 in) the male Devine IBW is 50 - 23 = 27 kg, below the
    # BMI-18.5 weight 18.5 * 1.27^2 = 29.83865 kg (hand), so the two lower
    # bands give different answers at the edge: normal band -> IBW 27.
    assert bmi(D("29.83865"), 127) == Fraction(37, 2)
    assert crcl_weight("bmi_stratified", D("29.83865"), 127, "male") == (27, IDEAL_BODY_WEIGHT)
    # Just below 18.5: underweight band -> actual weight.
    assert bmi(D("29.83864"), 127) < Fraction(37, 2)
    assert crcl_weight("bmi_stratified", D("29.83864"), 127, "male") == (
        Fraction("29.83864"),
        ACTUAL_BODY_WEIGHT,
    )


@pytest.mark.parametrize("method", ["ideal", "adjusted", "bmi_stratified"])
def test_crcl_weight_requires_height(method):
    with pytest.raises(ValueError, match=f"height_cm is required for method '{method}'"):
        crcl_weight(method, 80, None, "male")


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (
            ("total", 80, 180, "male"),
            "method must be one of actual, ideal, adjusted, bmi_stratified",
        ),
        (("actual", 80, None, "x"), "sex must be 'female' or 'male'"),
        (("actual", 0, None, "male"), "actual_kg must be > 0"),
        (("ideal", 80, 0, "male"), "height_cm must be > 0"),
        # Hand: 90 cm = 35.4 in; 50 - 2.3 * 24.6 = -6.5 kg, unusable.
        (("ideal", 20, 90, "male"), "ideal body weight <= 0"),
    ],
)
def test_crcl_weight_rejects_bad_values(args, match):
    with pytest.raises(ValueError, match=match):
        crcl_weight(*args)


# ---------------------------------------------------------------------------
# Prednisone equivalents (pyasp_screen/data/steroid_equivalents.csv, column
# equivalent_dose_mg_primary = dose equivalent to prednisone 5 mg).
# ---------------------------------------------------------------------------

# SHA-256 of the reference table as copied; pins it byte for byte (CRLF).
STEROID_CSV_SHA256 = "91bdb8f89ff8fb3ab2d4be2890f2613b25aef2af47e675e129bba77a399431e9"


def test_steroid_csv_is_the_reference_copy():
    data = (resources.files("pyasp_screen") / "data" / "steroid_equivalents.csv").read_bytes()
    assert hashlib.sha256(data).hexdigest() == STEROID_CSV_SHA256


def test_steroid_table_contents():
    # Values: the CSV's equivalent_dose_mg_primary column (mg = prednisone 5 mg).
    assert load_steroid_table() == {
        "prednisone": 5,
        "prednisolone": 5,
        "hydrocortisone": 20,
        "cortisone": 25,
        "methylprednisolone": 4,
        "triamcinolone": 4,
        "dexamethasone": Fraction("0.75"),
        "betamethasone": Fraction("0.75"),
        "deflazacort": 6,
    }
    assert all(type(value) is Fraction for value in load_steroid_table().values())


def test_steroid_table_is_a_fresh_copy():
    table = load_steroid_table()
    table["prednisone"] = Fraction(1)
    del table["dexamethasone"]
    assert load_steroid_table()["prednisone"] == 5
    assert prednisone_equivalent_mg("dexamethasone", D("0.75")) == 5


@pytest.mark.parametrize(
    ("drug", "dose", "expected"),
    [
        # Table rows: each drug's equivalent dose = prednisone 5 mg.
        ("methylprednisolone", 4, 5),
        ("dexamethasone", D("0.75"), 5),
        ("hydrocortisone", 20, 5),
        ("prednisolone", D("7.5"), Fraction(15, 2)),
        ("prednisone", D("7.5"), Fraction(15, 2)),
        ("Cortisone (acetate)", 25, 5),
        ("cortisone", 25, 5),
        ("Triamcinolone", 4, 5),
        ("BETAMETHASONE", D("0.75"), 5),
        ("deflazacort", 6, 5),
        # NIH COVID-19 Treatment Guidelines (corticosteroids): alternatives
        # to dexamethasone 6 mg are prednisone 40 mg, methylprednisolone
        # 32 mg and hydrocortisone 160 mg (all = prednisone 40 mg).
        ("dexamethasone", 6, 40),
        ("methylprednisolone", 32, 40),
        ("hydrocortisone", 160, 40),
        # Hand: zero dose is zero prednisone.
        ("dexamethasone", 0, 0),
    ],
)
def test_prednisone_equivalent(drug, dose, expected):
    assert_exact(prednisone_equivalent_mg(drug, dose), expected)


def test_prednisone_equivalent_boundary_stays_exact():
    # Hand: 0.5 mg dexamethasone = 0.5 * 5 / 0.75 = 10/3 mg, not 3.333...
    assert_exact(prednisone_equivalent_mg("dexamethasone", D("0.5")), Fraction(10, 3))
    # Hand: 8 mg methylprednisolone = 10 mg prednisone, exactly on a "<= 10" limit.
    assert prednisone_equivalent_mg("methylprednisolone", 8) <= 10


def test_unknown_steroid_lists_known_names():
    known = (
        "betamethasone, cortisone, deflazacort, dexamethasone, hydrocortisone, "
        "methylprednisolone, prednisolone, prednisone, triamcinolone"
    )
    message = f"unknown corticosteroid 'budesonide'; known: {known}"
    with pytest.raises(ValueError, match=message) as info:
        prednisone_equivalent_mg("budesonide", 9)
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, UnknownSteroidError)
    assert isinstance(info.value.__cause__, KeyError)


def test_unknown_steroid_is_catchable_as_key_error():
    with pytest.raises(KeyError):
        prednisone_equivalent_mg("NOTE", 1)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (("prednisone", -5), ValueError, "dose_mg must be >= 0"),
        (("prednisone", 5.0), TypeError, "dose_mg must be an exact number"),
        ((None, 5), TypeError, "drug must be a str"),
    ],
)
def test_prednisone_equivalent_rejects_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        prednisone_equivalent_mg(*args)


# ---------------------------------------------------------------------------
# ULN multiples
# ---------------------------------------------------------------------------


def test_uln_multiple():
    # Hand: ALT 120 U/L, ULN 40 U/L -> 3 x ULN; 100 / 40 = 2.5 exactly.
    assert_exact(uln_multiple(120, 40), 3)
    assert_exact(uln_multiple(100, 40), Fraction(5, 2))
    # Hand: bilirubin 3.3 mg/dL, ULN 1.1 -> exactly 3 x ULN, on a "< 3 x ULN"
    # limit; floats give 2.9999999999999996 and would pass the patient.
    assert 3.3 / 1.1 < 3  # the float trap, for contrast
    multiple = uln_multiple(D("3.3"), D("1.1"))
    assert_exact(multiple, 3)
    assert not multiple < 3


@pytest.mark.parametrize("uln", [0, -40, D("0.0")])
def test_uln_multiple_rejects_non_positive_uln(uln):
    with pytest.raises(ValueError, match="uln must be > 0"):
        uln_multiple(100, uln)


# ---------------------------------------------------------------------------
# Calendar: completed years and months (hand-derived from the calendar)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("birth", "on", "expected"),
    [
        (date(2000, 1, 15), date(2025, 1, 14), 24),  # day before birthday
        (date(2000, 1, 15), date(2025, 1, 15), 25),  # on the birthday
        (date(2000, 1, 15), date(2000, 1, 15), 0),  # day of birth
        (date(2000, 12, 31), date(2001, 1, 1), 0),
        (date(2000, 2, 29), date(2001, 2, 28), 0),  # Feb 29: not yet in a common year
        (date(2000, 2, 29), date(2001, 3, 1), 1),  # counts on Mar 1
        (date(2000, 2, 29), date(2004, 2, 28), 3),
        (date(2000, 2, 29), date(2004, 2, 29), 4),  # leap year: on Feb 29
        (date(2000, 2, 29), date(2100, 3, 1), 100),  # 2100 is not a leap year
        (date(2000, 2, 29), date(2100, 2, 28), 99),
        (date(2001, 3, 1), date(2004, 2, 29), 2),
    ],
)
def test_age_in_years(birth, on, expected):
    assert age_in_years(birth, on) == expected


@pytest.mark.parametrize(
    ("start", "on", "expected"),
    [
        (date(2025, 1, 31), date(2025, 2, 28), 0),  # Feb has no 31st
        (date(2025, 1, 31), date(2025, 3, 1), 1),
        (date(2025, 1, 15), date(2025, 7, 15), 6),
        (date(2025, 1, 15), date(2025, 7, 14), 5),
        (date(2025, 1, 15), date(2025, 1, 15), 0),
        (date(2024, 1, 31), date(2024, 2, 29), 0),  # leap Feb still has no 31st
        (date(2024, 1, 29), date(2024, 2, 29), 1),
        (date(2024, 2, 29), date(2025, 2, 28), 11),  # Feb 29 start, common year
        (date(2024, 2, 29), date(2025, 3, 1), 12),
        (date(2024, 11, 30), date(2025, 1, 30), 2),  # across a year end
    ],
)
def test_completed_months(start, on, expected):
    assert completed_months(start, on) == expected


@pytest.mark.parametrize("function", [age_in_years, completed_months])
def test_dates_reject_reversed_order(function):
    with pytest.raises(ValueError, match=r"on \(2024-12-31\) is before"):
        function(date(2025, 1, 1), date(2024, 12, 31))


@pytest.mark.parametrize("function", [age_in_years, completed_months])
def test_dates_reject_datetimes(function):
    with pytest.raises(TypeError, match="must be a datetime.date"):
        function(datetime.datetime(2000, 1, 1), date(2025, 1, 1))
    with pytest.raises(TypeError, match="on must be a datetime.date"):
        function(date(2000, 1, 1), "2025-01-01")


dates = st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 12, 31))


@given(a=dates, b=dates)
def test_age_is_completed_months_div_12(a, b):
    # Same anniversary rule: whole years are whole months // 12, Feb 29 included.
    start, on = min(a, b), max(a, b)
    assert age_in_years(start, on) == completed_months(start, on) // 12


@given(start=dates, days=st.integers(min_value=0, max_value=400))
def test_completed_months_monotone(start, days):
    # Calendar: counting to a later date never loses a completed month.
    on = start + datetime.timedelta(days=days)
    later = on + datetime.timedelta(days=1)
    assert 0 <= completed_months(start, on) <= completed_months(start, later)

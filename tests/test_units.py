"""The unit alias table (kb/lib/units.yaml): every spelling is read as the UCUM unit it means,
and converted exactly. Expected values are written here by hand from the definitions (1 K/uL
= 1000/uL = 10^9/L; 1 lb = 0.45359237 kg, 1 in = 2.54 cm exactly; creatinine 1 mg/dL = 88.4
umol/L; Hb 1 g/dL = 0.6206 mmol/L), not computed by the code under test."""

from __future__ import annotations

from fractions import Fraction as F

import pytest

from pyasp_screen.findings import units
from pyasp_screen.knowledge.vocabulary import library

O = library().observations

# spelling -> (an observation measured in it, 1 unit of it in that observation's unit)
EXPECTED = {
    "K/uL": ("anc", F(1)), "K/µL": ("anc", F(1)), "K/μL": ("anc", F(1)), "k/uL": ("anc", F(1)),
    "K/mm3": ("anc", F(1)), "x10E3/uL": ("wbc", F(1)), "x10^3/uL": ("wbc", F(1)),
    "10^3/uL": ("wbc", F(1)), "10E3/uL": ("wbc", F(1)), "10x3/uL": ("wbc", F(1)),
    "thou/uL": ("wbc", F(1)), "thou/mm3": ("wbc", F(1)), "THOU/MM3": ("wbc", F(1)),
    "x10E9/L": ("anc", F(1)), "x10^9/L": ("anc", F(1)), "10^9/L": ("anc", F(1)),
    "10E9/L": ("anc", F(1)), "G/L": ("anc", F(1)),
    "cells/uL": ("anc", F(1, 1000)), "cells/µL": ("anc", F(1, 1000)), "cells/mm3": ("anc", F(1, 1000)),
    "gm/dL": ("hb", F(10)), "gm/dl": ("hb", F(10)), "GM/DL": ("hb", F(10)), "G/DL": ("hb", F(10)),
    "MG/DL": ("creatinine", F(1)),
    "µmol/L": ("creatinine", F(10, 884)), "μmol/L": ("creatinine", F(10, 884)),
    "µmol/l": ("creatinine", F(10, 884)), "μmol/l": ("creatinine", F(10, 884)),
    "UMOL/L": ("creatinine", F(10, 884)), "MMOL/L": ("creatinine", F(10000, 884)),
    "sec": ("aptt", F(1)), "secs": ("aptt", F(1)), "SEC": ("aptt", F(1)), "seconds": ("aptt", F(1)),
    "percent": ("spo2", F(1)), "ratio": ("inr", F(1)), "INR": ("inr", F(1)),
    "U/l": ("alt", F(1)),
    "lb": ("weight", F(45359237, 10**8)), "lbs": ("weight", F(45359237, 10**8)),
    "in": ("height", F(254, 100)),
}


def test_every_alias_has_an_expected_conversion():
    assert set(EXPECTED) == set(units.UNIT_ALIASES)


@pytest.mark.parametrize("spelling", sorted(EXPECTED))
def test_alias_converts_exactly(spelling):
    name, factor = EXPECTED[spelling]
    assert units.to_canonical(O[name], F(7, 2), spelling) == F(7, 2) * factor
    # the alias is only a spelling: the UCUM code it names converts the same
    code = units.UNIT_ALIASES[spelling]
    if code not in O[name].analyte_units:
        assert units.to_canonical(O[name], F(7, 2), code) == F(7, 2) * factor


def test_hb_in_mmol_per_litre_uses_the_monomer_factor():
    # 8.1 mmol/L haem = 8.1 / 0.6206 g/dL = 130.518... g/L (European laboratories)
    assert units.to_canonical(O["hb"], F(81, 10), "mmol/L") == F(81, 10) * 10 / F(6206, 10000)


@pytest.mark.parametrize("unit", ["zz/hpf", "K/uL/x", "gm", "G/L/s"])
def test_a_unit_no_table_knows_is_refused_by_name(unit):
    with pytest.raises(units.UnitError) as e:
        units.to_canonical(O["anc"], F(1), unit)
    assert repr(unit) in str(e.value) or unit in str(e.value)


def test_g_per_litre_is_never_read_as_gauss():
    # UCUM's G is the gauss: only the alias table may read "G/L" (as 10^9/L)
    with pytest.raises(units.UnitError):
        units.ucum_factor("G/L", "10*9/L")
    assert units.to_canonical(O["anc"], F(2), "G/L") == 2

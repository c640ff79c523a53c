"""Unit normalisation: a value in a UCUM unit, converted exactly to an observation's
canonical unit.

Dimensional conversions (g/dL -> g/L, /uL -> 10*9/L, [lb_av] -> kg, [in_i] -> cm) come from
UCUM through ucumvert's pint registry (UCUM: Schadow & McDonald, The Unified Code for Units of
Measure, Regenstrief Institute). The factor pint computes in floating point is read back as the
exact decimal it stands for (12 significant digits: every UCUM factor used here is a short
decimal), so a value on a threshold stays on it. Conversions that UCUM cannot make because they
depend on the analyte (creatinine mg/dL <-> umol/L, enzyme IU/L = U/L) come from
:mod:`pyasp_screen.knowledge.vocabulary`. An unknown or incompatible unit raises :class:`UnitError`:
never guessed.
"""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction
from functools import cache

from pyasp_screen.knowledge.vocabulary import ObservationKind


class UnitError(ValueError):
    """A unit that is not UCUM, or not convertible to the canonical unit."""


_ANNOTATION = re.compile(r"\{[^}]*\}")


@cache
def _registry():
    from ucumvert import PintUcumRegistry  # slow to build: only on first conversion

    return PintUcumRegistry()


def load_registry() -> None:
    """Build the UCUM registry now (about 1.5 CPU-seconds) instead of at the first conversion:
    a process that forks workers builds it once for all of them (scale/preload.py)."""
    _registry()


def _strip_annotations(unit: str) -> str:
    """UCUM annotations ({INR}, {cells}) carry no dimension: "{INR}" is "1"."""
    stripped = _ANNOTATION.sub("", unit).strip()
    if stripped in ("", "/"):
        return "1"
    return stripped


@cache
def ucum_factor(source: str, target: str) -> Fraction:
    """Exact factor f with (value in source) * f = (value in target), both UCUM codes.

    Raises UnitError naming the unit if either code is not valid UCUM or the two are not
    commensurable.
    """
    src, dst = _strip_annotations(source), _strip_annotations(target)
    if src == dst:
        return Fraction(1)
    ureg = _registry()
    try:
        q_src = ureg.from_ucum(src)
    except Exception as e:  # ucumvert raises its own parse errors
        raise UnitError(f"unit {source!r} is not a UCUM unit ({str(e).splitlines()[0]})") from None
    try:
        q_dst = ureg.from_ucum(dst)
        magnitude = (q_src / q_dst).to("dimensionless").magnitude
    except Exception:
        raise UnitError(f"unit {source!r} cannot be converted to {target!r}") from None
    return Fraction(Decimal(format(magnitude, ".12g")))


def check_ucum(unit: str) -> None:
    """Raise UnitError unless ``unit`` is a valid UCUM code (annotations such as {INR} aside)."""
    code = _strip_annotations(unit)
    if code == "1":
        return
    try:
        _registry().from_ucum(code)
    except Exception as e:  # ucumvert raises its own parse errors
        raise UnitError(f"unit {unit!r} is not a UCUM unit ({str(e).splitlines()[0]})") from None


def to_canonical(kind: ObservationKind, value: Fraction, unit: str | None) -> Fraction:
    """``value`` in ``unit`` converted exactly to ``kind.unit``.

    A missing unit is accepted only for dimensionless kinds (INR). Analyte conventions
    (``kind.analyte_units``) take precedence over UCUM.
    """
    if unit is None or unit.strip() == "":
        if _strip_annotations(kind.unit) == "1":
            return value
        raise UnitError(f"a unit is required for {kind.name} (canonical unit {kind.unit})")
    unit = unit.strip()
    if unit in kind.analyte_units:
        return value * kind.analyte_units[unit]
    factor = ucum_factor(unit, kind.unit)
    return value if factor == 1 else value * factor

"""Unit normalisation: a value in a UCUM unit, converted exactly to an observation's
canonical unit.

Dimensional conversions (g/dL -> g/L, /uL -> 10*9/L, [lb_av] -> kg, [in_i] -> cm) come from
UCUM through ucumvert's pint registry (UCUM: Schadow & McDonald, The Unified Code for Units of
Measure, Regenstrief Institute). The factor pint computes in floating point is read back as the
exact decimal it stands for (12 significant digits: every UCUM factor used here is a short
decimal), so a value on a threshold stays on it. Conversions that UCUM cannot make because they
depend on the analyte (creatinine mg/dL <-> umol/L, enzyme IU/L = U/L, Hb mmol/L) come from
:mod:`pyasp_screen.knowledge.vocabulary`. Spellings laboratory systems write instead of UCUM
(``K/uL``, ``gm/dL``, ``sec``, ``µmol/L``) are read through the declared alias table
``kb/lib/units.yaml`` (:data:`UNIT_ALIASES`). An unknown or incompatible unit raises
:class:`UnitError`: never guessed.
"""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction
from functools import cache

import yaml

from pyasp_screen.knowledge.paths import builtin_kb_root
from pyasp_screen.knowledge.vocabulary import ObservationKind

UNITS_FILE = builtin_kb_root() / "lib" / "units.yaml"


def _aliases() -> dict[str, str]:
    data = yaml.safe_load(UNITS_FILE.read_text(encoding="utf-8")) or {}
    return {str(k): str(v) for k, v in (data.get("aliases") or {}).items()}


#: Spelling -> UCUM code (kb/lib/units.yaml).
UNIT_ALIASES: dict[str, str] = _aliases()


def ucum_code(unit: str) -> str:
    """The UCUM code a written unit means: itself, or its alias (``K/uL`` -> ``10*3/uL``)."""
    unit = unit.strip()
    return UNIT_ALIASES.get(unit, unit)


class UnitError(ValueError):
    """A unit that is not UCUM, or not convertible to the canonical unit."""


_ANNOTATION = re.compile(r"\{[^}]*\}")
# an annotation that stands for a factor of its own: "{score}", "mL/min/{1.73_m2}", "{a}.{b}"
_STANDALONE = re.compile(r"(?:(?<=^)|(?<=[/.(]))\{[^}]*\}(?=$|[/.)])")
# a decimal number in a unit term: UCUM has none ("1.73" is 1 times 73)
_DECIMAL = re.compile(r"(?<![\w*^])\d+\.\d+(?![\w*^])")


@cache
def _registry():
    from ucumvert import PintUcumRegistry  # slow to build: only on first conversion

    return PintUcumRegistry()


def load_registry() -> None:
    """Build the UCUM registry now (about 1.5 CPU-seconds) instead of at the first conversion:
    a process that forks workers builds it once for all of them (scale/preload.py)."""
    _registry()


def _strip_annotations(unit: str) -> str:
    """The unit without its annotations, which carry no dimension (UCUM section 2.5: an
    annotation is a unit of 1): one standing for a factor of its own becomes 1
    ("mL/min/{1.73_m2}" is "mL/min/1", "{score}" is "1"), one attached to a unit symbol goes
    ("10*3{cells}/uL" is "10*3/uL")."""
    stripped = _ANNOTATION.sub("", _STANDALONE.sub("1", unit.strip())).strip()
    return stripped or "1"


def annotations(unit: str) -> tuple[str, ...]:
    """The annotations of a UCUM code, as written, in order of appearance: ("1.73_m2",) for
    "mL/min/{1.73_m2}"."""
    return tuple(a[1:-1].strip() for a in _ANNOTATION.findall(unit))


def _dimensionless(code: str) -> bool:
    """Is an annotation-free UCUM code a pure number (1, %, 10*3)?"""
    if code == "1":
        return True
    try:
        return bool(_registry().from_ucum(code).dimensionless)
    except Exception:  # not parsable: the caller reports it
        return False


@cache
def ucum_factor(source: str, target: str) -> Fraction:
    """Exact factor f with (value in source) * f = (value in target), both UCUM codes.

    Annotations are UCUM's units of 1 and never change the factor. But an annotation of the
    target (a finding's canonical unit) on a unit with a dimension says what is measured, so
    the source must carry it too: a value in mL/min is not an eGFR in mL/min/{1.73_m2} (it may
    be a creatinine clearance, or an eGFR not normalised to body surface). Annotations the
    target does not have are labels (10*3{cells}/uL is 10*3/uL). A finding that must read such
    a unit anyway declares the conversion (``analyte_units``, docs/vocabulary.md).

    Raises UnitError naming the unit if either code is not valid UCUM, the two are not
    commensurable, or the source lacks an annotation the target has on a unit with a
    dimension.
    """
    src, dst = _strip_annotations(source), _strip_annotations(target)
    ureg = _registry()
    if src == dst:
        factor = Fraction(1)
    else:
        try:
            q_src = ureg.from_ucum(src)
        except Exception as e:  # ucumvert raises its own parse errors
            raise UnitError(f"unit {source!r} is not a UCUM unit ({str(e).splitlines()[0]})") from None
        try:
            q_dst = ureg.from_ucum(dst)
            magnitude = (q_src / q_dst).to("dimensionless").magnitude
        except Exception:
            raise UnitError(f"unit {source!r} cannot be converted to {target!r}") from None
        factor = Fraction(Decimal(format(magnitude, ".12g")))
    missing = list(annotations(target))
    for a in annotations(source):
        if a in missing:
            missing.remove(a)
    if missing and not _dimensionless(dst):
        said = " ".join(f"{{{x}}}" for x in missing)
        raise UnitError(f"unit {source!r} cannot be read as {target!r}: it lacks the annotation {said}, "
                        "which says what the finding is (a value without it may be another quantity; "
                        "a finding that means the same declares the conversion in analyte_units)")
    return factor


def check_ucum(unit: str) -> None:
    """Raise UnitError unless ``unit`` is a valid UCUM code (annotations such as {INR} and
    {1.73_m2} included) whose numbers are whole: UCUM has no decimal point, so "1.73" in a
    unit is 1 times 73 (write what it qualifies as an annotation, mL/min/{1.73_m2})."""
    code = _strip_annotations(unit)
    m = _DECIMAL.search(code)
    if m:
        raise UnitError(f"unit {unit!r} is not what it seems: UCUM has no decimal numbers, so {m.group(0)} "
                        f"is {m.group(0).replace('.', ' times ')} (an annotation says it: mL/min/{{1.73_m2}})")
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
    code = ucum_code(unit)
    if code in kind.analyte_units:
        return value * kind.analyte_units[code]
    try:
        factor = ucum_factor(code, kind.unit)
    except UnitError as e:
        if code != unit:
            raise UnitError(f"{e} (written {unit!r})") from None
        raise
    return value if factor == 1 else value * factor

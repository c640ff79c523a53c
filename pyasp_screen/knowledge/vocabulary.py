"""The finding vocabulary: the names records, FHIR mapping and knowledge bases agree on.

A record names an observation, a diagnosis or a drug either by a vocabulary name
(``anc``, ``ssc_ild``, ``mycophenolate_mofetil``) or by a standard code (LOINC, SNOMED CT,
ICD-10, RxNorm) that maps to a vocabulary name. Knowledge bases only ever see vocabulary names
(see docs/vocabulary.md, generated from the declaration). The shared declaration is
``kb/lib/vocabulary.yaml``, read here once with YAML's safe loader.

Each observation has a canonical UCUM unit: values are converted to it (pyasp_screen.units)
before the knowledge base reads them, and a plausible range: values outside it are rejected
as impossible rather than screened.

Sources: LOINC 2.7x (loinc.org), SNOMED CT International, ICD-10 (WHO 2019),
RxNorm ingredient concepts (NLM). Only codes listed here are mapped; anything else is
reported as unmapped, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import yaml

from pyasp_screen.knowledge.paths import builtin_kb_root


@dataclass(frozen=True)
class ObservationKind:
    """One observable quantity or qualitative test.

    name: vocabulary name; unit: canonical UCUM unit ("" for qualitative results);
    plausible: closed interval (low, high) in the canonical unit, values outside are impossible;
    loinc: LOINC codes mapped to it; uln: True if criteria read it as a multiple of the upper
    limit of normal; qualitative: True if its value is positive/negative.
    """

    name: str
    label: str
    unit: str
    plausible: tuple[Fraction, Fraction] | None = None
    loinc: tuple[str, ...] = ()
    uln: bool = False
    qualitative: bool = False
    # analyte-specific conversions UCUM cannot make (molar mass conventions, IU = U)
    analyte_units: dict[str, Fraction] = field(default_factory=dict)


class VocabularyError(Exception):
    """A vocabulary declaration that cannot be read: one line naming the file and the entry."""


def _number(value: object, where: str) -> Fraction:
    """A declared number: an int, a decimal string ("0.05") or a fraction of decimals ("1/88.4")."""
    text = str(value).strip()
    try:
        num, _, den = text.partition("/")
        return Fraction(num) / (Fraction(den) if den else 1)
    except (ValueError, ZeroDivisionError):
        raise VocabularyError(f"{where}: {text!r} is not a number") from None


def _codes(spec: dict, key: str) -> tuple[str, ...]:
    return tuple(str(c) for c in spec.get(key) or ())


def _observation(name: str, spec: dict, where: str) -> ObservationKind:
    qualitative = spec.get("kind") == "qualitative"
    plausible = spec.get("plausible")
    return ObservationKind(
        name=name, label=str(spec.get("label", name)), unit="" if qualitative else str(spec["unit"]),
        plausible=(tuple(_number(x, f"{where}.plausible") for x in plausible) if plausible else None),
        loinc=_codes(spec, "loinc"), uln=bool(spec.get("uln", False)), qualitative=qualitative,
        analyte_units={str(u): _number(f, f"{where}.analyte_units.{u}")
                       for u, f in (spec.get("analyte_units") or {}).items()})


def load_declaration(path: Path) -> dict:
    """The vocabulary declared in one YAML file, as a plain mapping (safe loading).

    Raises VocabularyError naming the file for unreadable or malformed YAML.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise VocabularyError(f"{path}: cannot read: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise VocabularyError(f"{path}: malformed YAML: {' '.join(str(e).split())}") from None
    if not isinstance(data, dict):
        raise VocabularyError(f"{path}: expected a mapping")
    return data


LIBRARY = builtin_kb_root() / "lib" / "vocabulary.yaml"
_LIB = load_declaration(LIBRARY)

OBSERVATIONS: dict[str, ObservationKind] = {
    name: _observation(name, spec, f"{LIBRARY}: observations.{name}")
    for name, spec in (_LIB.get("observations") or {}).items()
}


def display_unit(unit: str) -> str:
    """A UCUM code as people write it: 10*9/L is x10^9/L, the unity 1 is nothing."""
    return {"10*9/L": "x10^9/L", "1": "", "{xULN}": "x ULN"}.get(unit, unit)


LOINC_TO_OBSERVATION: dict[str, str] = {
    code: o.name for o in OBSERVATIONS.values() for code in o.loinc
}

QUALITATIVE_VALUES: dict[str, str] = {str(k): str(v) for k, v in (_LIB.get("qualitative_values") or {}).items()}

# Diagnoses: vocabulary name -> (label, SNOMED CT codes, ICD-10 code prefixes).
DIAGNOSES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    name: (str(spec.get("label", name)), _codes(spec, "snomed"), _codes(spec, "icd10"))
    for name, spec in (_LIB.get("diagnoses") or {}).items()
}

SNOMED_TO_DIAGNOSIS = {c: name for name, (_, sct, _) in DIAGNOSES.items() for c in sct}


def diagnosis_from_icd10(code: str) -> str | None:
    """Map an ICD-10 code to a vocabulary diagnosis by longest listed prefix, or None."""
    best = None
    for name, (_, _, prefixes) in DIAGNOSES.items():
        for prefix in prefixes:
            if code.upper().startswith(prefix) and (best is None or len(prefix) > best[1]):
                best = (name, len(prefix))
    return best[0] if best else None


# Drugs: vocabulary name -> (RxNorm ingredient codes, lowercase name fragments for free text).
DRUGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    name: (_codes(spec, "rxnorm"), tuple(str(n).lower() for n in spec.get("names") or ()))
    for name, spec in (_LIB.get("drugs") or {}).items()
}

GLUCOCORTICOIDS = frozenset(str(x) for x in _LIB.get("glucocorticoids") or ())

RXNORM_TO_DRUG = {c: name for name, (codes, _) in DRUGS.items() for c in codes}


def drug_from_text(text: str) -> str | None:
    """Map free text ("Prednisone 5 MG Oral Tablet") to a vocabulary drug, or None.

    The longest matching name fragment wins, so "methylprednisolone" is not read as
    "prednisolone".
    """
    low = text.lower()
    best = None
    for name, (_, fragments) in DRUGS.items():
        for frag in fragments:
            if frag in low and (best is None or len(frag) > best[1]):
                best = (name, len(frag))
    return best[0] if best else None


# Haematopoietic growth factors (SLE-IN-7b, SSC-IN-4b "growth factors").
GROWTH_FACTORS = frozenset(str(x) for x in _LIB.get("growth_factors") or ())

# Assessments: vocabulary name -> (allowed values, meaning).
ASSESSMENTS: dict[str, tuple[tuple[str, ...], str]] = {
    name: (tuple(str(v) for v in spec.get("values") or ()), str(spec.get("label", name)))
    for name, spec in (_LIB.get("assessments") or {}).items()
}

# Assessments that record dated occurrences rather than a state: every entry is kept (for a
# state, only the latest assessment is read).
EVENT_ASSESSMENTS = frozenset(name for name, spec in (_LIB.get("assessments") or {}).items()
                              if spec.get("event"))

# Closed-world categories a record may declare complete.
CATEGORIES = tuple(str(x) for x in _LIB.get("categories") or ())

# Organ systems for "active organ involvement" (SLE-IN-6).
ORGANS = tuple(str(x) for x in _LIB.get("organs") or ())

CLASSIFICATION_SCHEMES = {str(k): str(v) for k, v in (_LIB.get("classification_schemes") or {}).items()}


# The fact predicates the findings stage writes (docs/vocabulary.md): name/arity.
FACT_PREDICATES = {"patient/1", "age/2", "sex/2", "complete/2", "quantity/5", "qualitative/4",
                   "diagnosis/3", "diagnosis_unknown/2", "disease_duration_months/3", "classification/3",
                   "item/4", "item_unknown/3", "sledai2k_assessed/2", "sledai2k_total/2", "assessment/4",
                   "course/6", "dose_change/3", "gc_dose_per_kg/4", "event/3"}

"""The finding vocabulary: the names records, FHIR mapping and knowledge bases agree on.

A record names an observation, a diagnosis, a drug or an assessment either by a vocabulary
name (``anc``, ``ssc_ild``, ``mycophenolate_mofetil``) or by a standard code (LOINC, SNOMED CT,
ICD-10, RxNorm) that maps to a vocabulary name. Knowledge bases only ever see vocabulary names
(docs/vocabulary.md, generated from the declaration).

A :class:`Vocabulary` is one frozen object: the shared library's declaration
(``kb/lib/vocabulary.yaml``) plus, for a knowledge base, the ``vocabulary.yaml`` of its folder
(and of the knowledge bases it extends), in the same format. :func:`library` is the shared one;
:func:`load_vocabulary` adds a knowledge base's files. Every stage is given the vocabulary it
uses (``kb.vocabulary``); no stage reads a module-level table.

The format (docs/authoring.md, "A protocol's own findings"):

- ``observations``: name -> ``label``, ``kind`` (``quantity``, the default, or ``qualitative``:
  positive / negative), ``unit`` (canonical UCUM unit of a quantity: values are converted to it
  exactly before a knowledge base reads them), ``plausible`` ([low, high] in that unit: values
  outside are impossible, not screened), ``loinc`` (codes), ``uln`` (criteria read it as a
  multiple of the upper limit of normal, ``<name>_x_uln``), ``analyte_units`` (unit -> factor to
  the canonical unit, for conversions UCUM cannot make), ``window`` (look-back in days, or the
  name of an integer parameter: only results that recent are read);
- ``diagnoses``: name -> ``label``, ``snomed`` (concept ids), ``icd10`` (code prefixes);
- ``drugs``: name -> ``label``, ``rxnorm`` (ingredient codes), ``names`` (free-text fragments);
- ``assessments``: name -> ``label``, ``values``, ``event`` (every dated entry is read, not only
  the latest);
- shared library only: ``derived`` (labels and units of values the findings stage computes),
  ``qualitative_values``, ``glucocorticoids``, ``growth_factors``, ``categories``, ``organs``,
  ``classification_schemes``, ``schemes`` (labels of item schemes), ``acronyms``.

Numbers may be written as fractions of decimals ("1/88.4"). A knowledge base may declare new
names and add codes to a library name; any other change to a name already declared (another
unit, label or range) is refused, and so is a code mapped to two names. Every problem is one
:class:`VocabularyError` line naming the file, the line and the entry.

Sources: LOINC 2.7x (loinc.org), SNOMED CT International, ICD-10 (WHO 2019) / ICD-10-CM,
RxNorm ingredient concepts (NLM). Only codes listed are mapped; anything else is reported as
unmapped, never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from fractions import Fraction
from functools import cache
from pathlib import Path

import yaml

from pyasp_screen.knowledge import yamlfile
from pyasp_screen.knowledge.paths import builtin_kb_root


class VocabularyError(Exception):
    """A vocabulary declaration that cannot be used: one line naming the file, the line and
    the entry (``kb/x/vocabulary.yaml:12: observations.fvc_l: unit: ...``)."""


@dataclass(frozen=True, eq=False)
class ObservationKind:
    """One observable quantity or qualitative test.

    name: vocabulary name; unit: canonical UCUM unit ("" for qualitative results);
    plausible: closed interval (low, high) in the canonical unit, values outside are impossible;
    loinc: LOINC codes mapped to it; uln: True if criteria read it as a multiple of the upper
    limit of normal; qualitative: True if its value is positive/negative; window: look-back in
    days (int) or the name of an integer parameter, None when the rules set it (window/2).
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
    window: int | str | None = None


@dataclass(frozen=True)
class DiagnosisKind:
    """A diagnosis: SNOMED CT concept ids and ICD-10 code prefixes that map to it.

    also: the diagnoses it is a form of (lupus nephritis is SLE: a record of it is a record of
    them too); organ: the organ system an active one involves (organ involvement); subtype_codes:
    ICD-10 code -> the subtype it gives (M34.1 CR(E)ST syndrome: limited SSc)."""

    name: str
    label: str
    snomed: tuple[str, ...] = ()
    icd10: tuple[str, ...] = ()
    also: tuple[str, ...] = ()
    organ: str | None = None
    subtype_codes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DrugKind:
    """A drug (ingredient): RxNorm ingredient codes, WHO ATC codes and lower-case free-text
    fragments."""

    name: str
    label: str
    rxnorm: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    atc: tuple[str, ...] = ()


@dataclass(frozen=True)
class AssessmentKind:
    """A clinician assessment: its allowed values; event: every dated entry is read."""

    name: str
    label: str
    values: tuple[str, ...]
    event: bool = False


@dataclass(frozen=True)
class DerivedKind:
    """A value the findings stage computes (CrCl, a dose, a change): its label and unit as
    people read it."""

    name: str
    label: str
    unit: str = ""
    inputs: str = ""  # what it is computed from, for people ("creatinine, weight, height")


@dataclass(frozen=True, eq=False)
class Vocabulary:
    """Every name a knowledge base may read, with its codes, units and labels (read-only).

    Built by :func:`library` or :func:`load_vocabulary`, never by hand. ``files``: the
    declarations it was read from, library first.
    """

    observations: dict[str, ObservationKind]
    diagnoses: dict[str, DiagnosisKind]
    drugs: dict[str, DrugKind]
    assessments: dict[str, AssessmentKind]
    derived: dict[str, DerivedKind]
    qualitative_values: dict[str, str]
    glucocorticoids: frozenset[str]
    growth_factors: frozenset[str]
    categories: tuple[str, ...]
    organs: tuple[str, ...]
    classification_schemes: dict[str, str]        # scheme -> the item category holding its items
    classification_labels: dict[str, str]         # scheme -> label ("EULAR/ACR 2019 SLE")
    scheme_labels: dict[str, str]                 # item category -> label ("SLEDAI-2K")
    scheme_groups: dict[str, str]                 # item category -> its items ("SLEDAI-2K descriptors")
    acronyms: tuple[str, ...]                     # words item labels write in capitals
    # FHIR readers: SNOMED CT procedures read as a transfusion (code -> product) or as dialysis,
    # and the LOINC codes of pulse-oximetry components that say whether SpO2 was on room air.
    transfusion_procedures: dict[str, str] = field(default_factory=dict)
    dialysis_procedures: frozenset[str] = frozenset()
    room_air_components: dict[str, str] = field(default_factory=dict)
    files: tuple[str, ...] = ()
    # indexes, filled by __post_init__
    loinc_to_observation: dict[str, str] = field(default_factory=dict)
    snomed_to_diagnosis: dict[str, str] = field(default_factory=dict)
    rxnorm_to_drug: dict[str, str] = field(default_factory=dict)
    atc_to_drug: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "loinc_to_observation", {c: o.name for o in self.observations.values() for c in o.loinc})
        set_(self, "snomed_to_diagnosis", {c: d.name for d in self.diagnoses.values() for c in d.snomed})
        set_(self, "rxnorm_to_drug", {c: d.name for d in self.drugs.values() for c in d.rxnorm})
        set_(self, "atc_to_drug", {c: d.name for d in self.drugs.values() for c in d.atc})

    def diagnosis_from_icd10(self, code: str) -> str | None:
        """Map an ICD-10 code to a vocabulary diagnosis by longest listed prefix, or None."""
        best = None
        for d in self.diagnoses.values():
            for prefix in d.icd10:
                if code.upper().startswith(prefix) and (best is None or len(prefix) > best[1]):
                    best = (d.name, len(prefix))
        return best[0] if best else None

    def drug_from_text(self, text: str) -> str | None:
        """Map free text ("Prednisone 5 MG Oral Tablet") to a vocabulary drug, or None.

        The longest matching name fragment wins, so "methylprednisolone" is not read as
        "prednisolone".
        """
        low = text.lower()
        best = None
        for d in self.drugs.values():
            for frag in d.names:
                if frag in low and (best is None or len(frag) > best[1]):
                    best = (d.name, len(frag))
        return best[0] if best else None

    def quantity_label(self, name: str) -> tuple[str, str]:
        """(label, unit as people write it) of a quantity a knowledge base compares:
        an observation, its ``<name>_x_uln`` multiple, or a derived value."""
        if name in self.derived:
            d = self.derived[name]
            return d.label, d.unit
        if name.endswith("_x_uln") and name[:-6] in self.observations:
            return self.observations[name[:-6]].label, "x ULN"
        o = self.observations.get(name)
        return (o.label, display_unit(o.unit)) if o else (name, "")

    def label(self, name: str) -> str:
        """A vocabulary name for people (the name itself when it has no label)."""
        for table in (self.observations, self.diagnoses, self.assessments, self.derived, self.drugs):
            if name in table:
                return table[name].label
        return self.scheme_labels.get(name, name)

    def item_label(self, item: str) -> str:
        """An item name for people: ana_ge_1_80 is "ANA >= 1:80", proteinuria_gt_0_5g_24h is
        "proteinuria > 0.5 g/24 h" (the vocabulary's acronyms in capitals)."""
        return _item_label(item, self.acronyms)

    def names(self) -> set[str]:
        """Every name a what-if edit or a record may use for a finding."""
        return set(self.observations) | set(self.diagnoses) | set(self.assessments)


_ANNOTATION = re.compile(r"\{[^}]*\}")


@cache
def display_unit(unit: str) -> str:
    """A UCUM code as people write it: 10*9/L is x10^9/L, the unity 1 and an annotation alone
    ({score}) are nothing. (Cached: finding texts ask it for every result.)"""
    special = {"10*9/L": "x10^9/L", "1": "", "{xULN}": "x ULN"}
    if unit in special:
        return special[unit]
    return "" if _ANNOTATION.fullmatch(unit) else unit


@cache
def _item_label(item: str, acronyms: tuple[str, ...]) -> str:
    text = re.sub(r"(\d+)_(\d+)g_24h", r"\1.\2 g/24 h", item)
    text = re.sub(r"_(\d+)_(\d+)$", r" \1:\2", text)
    text = text.replace("_ge ", " >= ").replace("_ge_", " >= ").replace("_gt_", " > ")
    text = text.replace("_or_", " or ").replace("_and_", " and ").replace("_", " ")
    for word in acronyms:
        if " " in word or "-" in word:  # "anti-dsDNA": written as given
            text = re.sub(rf"\b{re.escape(word.lower().replace('-', ' '))}\b", word, text)
        else:
            text = re.sub(rf"\b{re.escape(word.lower())}\b", word, text)
    return text


# The fact predicates the findings stage writes (docs/vocabulary.md): name/arity. This is the
# findings stage's contract with every knowledge base, not a table a knowledge base extends.
FACT_PREDICATES = {"patient/1", "age/2", "sex/2", "complete/2", "quantity/5", "qualitative/4",
                   "diagnosis/3", "diagnosis_unknown/2", "disease_duration_months/3", "classification/3",
                   "item/4", "item_unknown/3", "sledai2k_assessed/2", "sledai2k_total/2", "assessment/4",
                   "course/6", "dose_change/3", "gc_dose_per_kg/4", "event/3",
                   "course_end_unknown/2", "dose_change_unknown/3", "deceased/1"}


# ---------------------------------------------------------------------------------------
# Reading and validating declarations
# ---------------------------------------------------------------------------------------

NAME = re.compile(r"^[a-z][a-z0-9_]*$")      # an ASP constant: knowledge bases read it as one
LOINC = re.compile(r"^\d{1,7}-\d$")
SCTID = re.compile(r"^\d{6,18}$")
ICD10 = re.compile(r"^[A-Z]\d[0-9A-Z](\.[0-9A-Z]{1,4})?$")
RXCUI = re.compile(r"^\d{1,8}$")
ATC = re.compile(r"^[A-Z]\d\d[A-Z][A-Z]\d\d$")

SECTION_KEYS = {
    "observations": {"label", "kind", "unit", "plausible", "loinc", "uln", "analyte_units", "window"},
    "diagnoses": {"label", "snomed", "icd10", "also_diagnoses", "organ", "subtype_codes"},
    "drugs": {"label", "rxnorm", "names", "atc"},
    "assessments": {"label", "values", "event"},
    "derived": {"label", "unit", "from"},
}
CODE_KEYS = {"loinc", "snomed", "icd10", "rxnorm", "names", "analyte_units", "atc"}
LIBRARY_ONLY = {"qualitative_values", "glucocorticoids", "growth_factors", "categories", "organs",
                "classification_schemes", "schemes", "acronyms", "derived",
                "transfusion_procedures", "dialysis_procedures", "room_air_components"}
TOP_KEYS = set(SECTION_KEYS) | LIBRARY_ONLY


class _Declaration:
    """One YAML file, with the line of every key (for messages)."""

    def __init__(self, path: Path, text: str | None = None):
        self.path = path
        try:
            text = path.read_text(encoding="utf-8") if text is None else text
        except (OSError, UnicodeDecodeError) as e:
            raise VocabularyError(f"{path}: cannot read: {getattr(e, 'strerror', None) or e}") from None
        try:
            self.data, self.lines = yamlfile.load(text)
        except yaml.YAMLError as e:
            raise VocabularyError(f"{path}: malformed YAML: {' '.join(str(e).split())}") from None
        if self.data is None:
            self.data = {}
        if not isinstance(self.data, dict):
            raise VocabularyError(f"{path}: expected a mapping of sections (observations:, diagnoses:, ...)")

    def error(self, keys: tuple, message: str) -> VocabularyError:
        line = next((self.lines[keys[:n]] for n in range(len(keys), 0, -1) if keys[:n] in self.lines), 1)
        where = ".".join(str(k) for k in keys)
        return VocabularyError(f"{self.path}:{line}: {where}: {message}")


def _number(d: _Declaration, keys: tuple, value: object) -> Fraction:
    """A declared number: an int, a decimal string ("0.05") or a fraction of decimals ("1/88.4")."""
    text = str(value).strip()
    if isinstance(value, bool):
        raise d.error(keys, f"{text!r} is not a number")
    try:
        num, _, den = text.partition("/")
        return Fraction(num) / (Fraction(den) if den else 1)
    except (ValueError, ZeroDivisionError):
        raise d.error(keys, f"{text!r} is not a number") from None


def _strings(d: _Declaration, keys: tuple, value: object, pattern: re.Pattern | None = None,
             what: str = "") -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise d.error(keys, f"expected a list, e.g. [{what or 'a, b'}]")
    out = []
    for v in value:
        if isinstance(v, (dict, list)) or isinstance(v, bool) or v is None:
            raise d.error(keys, f"{v!r} is not a code or name (quote it)")
        text = str(v).strip()
        if pattern is not None and not pattern.match(text):
            raise d.error(keys, f"{text!r} is not {what}")
        out.append(text)
    return tuple(out)


def _label(d: _Declaration, keys: tuple, spec: dict, name: str) -> str:
    label = spec.get("label", name)
    if not isinstance(label, (str, int, float)) or isinstance(label, bool) or not str(label).strip():
        raise d.error(keys + ("label",), "expected a text")
    return " ".join(str(label).split())


def _entries(d: _Declaration, section: str) -> list[tuple[str, dict, tuple]]:
    raw = d.data.get(section)
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise d.error((section,), "expected a mapping of names to declarations")
    out = []
    for name, spec in raw.items():
        keys = (section, name)
        if not isinstance(name, str) or not NAME.match(name):
            raise d.error(keys, "a name is lower case letters, digits and _ and starts with a letter "
                          "(knowledge bases read it as an ASP constant)")
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            raise d.error(keys, "expected a mapping (label:, unit:, ...)")
        unknown = sorted(str(k) for k in spec if k not in SECTION_KEYS[section])
        if unknown:
            raise d.error(keys + (unknown[0],), f"unknown key (one of {', '.join(sorted(SECTION_KEYS[section]))})")
        out.append((name, spec, keys))
    return out


def _observation(d: _Declaration, name: str, spec: dict, keys: tuple) -> ObservationKind:
    kind = spec.get("kind", "quantity")
    if kind not in ("quantity", "qualitative"):
        raise d.error(keys + ("kind",), f"{kind!r} is neither quantity nor qualitative")
    qualitative = kind == "qualitative"
    unit = spec.get("unit")
    if qualitative:
        if unit not in (None, ""):
            raise d.error(keys + ("unit",), "a qualitative test (positive / negative) has no unit")
        unit = ""
    else:
        if unit is None or isinstance(unit, (bool, dict, list)) or not str(unit).strip():
            raise d.error(keys, "a quantity needs unit: (its canonical UCUM unit, e.g. g/L, 10*9/L, %)")
        unit = str(unit).strip()
    plausible = spec.get("plausible")
    bounds = None
    if plausible is not None:
        if qualitative:
            raise d.error(keys + ("plausible",), "a qualitative test has no plausible range")
        if not isinstance(plausible, list) or len(plausible) != 2:
            raise d.error(keys + ("plausible",), "expected [low, high] in the canonical unit")
        bounds = tuple(_number(d, keys + ("plausible",), x) for x in plausible)
        if bounds[0] > bounds[1]:
            raise d.error(keys + ("plausible",), f"low {plausible[0]} is above high {plausible[1]}")
    uln = spec.get("uln", False)
    if not isinstance(uln, bool):
        raise d.error(keys + ("uln",), "expected true or false")
    if uln and qualitative:
        raise d.error(keys + ("uln",), "a qualitative test has no upper limit of normal")
    analyte = spec.get("analyte_units") or {}
    if not isinstance(analyte, dict):
        raise d.error(keys + ("analyte_units",), "expected unit: factor pairs")
    factors = {}
    for u, f in analyte.items():
        factors[str(u)] = _number(d, keys + ("analyte_units", u), f)
        if factors[str(u)] <= 0:
            raise d.error(keys + ("analyte_units", u), "a conversion factor is positive")
    window = spec.get("window")
    if window is not None:
        if isinstance(window, bool) or not (isinstance(window, int) and window >= 0
                                            or isinstance(window, str) and NAME.match(window)):
            raise d.error(keys + ("window",), "expected a number of days or the name of an integer parameter")
    return ObservationKind(name=name, label=_label(d, keys, spec, name), unit=unit, plausible=bounds,
                           loinc=_strings(d, keys + ("loinc",), spec.get("loinc"), LOINC, "a LOINC code (1234-5)"),
                           uln=uln, qualitative=qualitative, analyte_units=factors, window=window)


def _diagnosis(d: _Declaration, name: str, spec: dict, keys: tuple) -> DiagnosisKind:
    subtypes = spec.get("subtype_codes") or {}
    if not isinstance(subtypes, dict):
        raise d.error(keys + ("subtype_codes",), "expected ICD-10 code: subtype pairs")
    for code, sub in subtypes.items():
        if not ICD10.match(str(code)) or not isinstance(sub, str) or not NAME.match(sub):
            raise d.error(keys + ("subtype_codes", code), "expected an ICD-10 code and a subtype name")
    organ = spec.get("organ")
    if organ is not None and (not isinstance(organ, str) or not NAME.match(organ)):
        raise d.error(keys + ("organ",), "expected an organ system name")
    return DiagnosisKind(name, _label(d, keys, spec, name),
                         _strings(d, keys + ("snomed",), spec.get("snomed"), SCTID, "a SNOMED CT concept id"),
                         _strings(d, keys + ("icd10",), spec.get("icd10"), ICD10, "an ICD-10 code or prefix (M34.81)"),
                         _strings(d, keys + ("also_diagnoses",), spec.get("also_diagnoses"), NAME, "a diagnosis name"),
                         organ, {str(k): str(v) for k, v in subtypes.items()})


def _drug(d: _Declaration, name: str, spec: dict, keys: tuple) -> DrugKind:
    names = tuple(n.lower() for n in _strings(d, keys + ("names",), spec.get("names"), what="a name fragment"))
    return DrugKind(name, _label(d, keys, spec, name.replace("_", " ")),
                    _strings(d, keys + ("rxnorm",), spec.get("rxnorm"), RXCUI, "an RxNorm ingredient code"), names,
                    _strings(d, keys + ("atc",), spec.get("atc"), ATC, "a WHO ATC code (L04AA06)"))


def _assessment(d: _Declaration, name: str, spec: dict, keys: tuple) -> AssessmentKind:
    raw = spec.get("values")
    if not isinstance(raw, list) or not raw:
        raise d.error(keys + ("values",) if "values" in spec else keys,
                      'an assessment needs values: (e.g. ["yes", "no"]; quoted: YAML reads a bare yes as true)')
    values = []
    for v in raw:
        if isinstance(v, bool):
            raise d.error(keys + ("values",), f"{v!r} is YAML's boolean: quote it (\"yes\", \"no\")")
        if not isinstance(v, str) or not NAME.match(v):
            raise d.error(keys + ("values",), f"{v!r}: a value is lower case letters, digits and _")
        values.append(v)
    event = spec.get("event", False)
    if not isinstance(event, bool):
        raise d.error(keys + ("event",), "expected true or false")
    return AssessmentKind(name, _label(d, keys, spec, name), tuple(values), event)


def _derived(d: _Declaration, name: str, spec: dict, keys: tuple) -> DerivedKind:
    return DerivedKind(name, _label(d, keys, spec, name), str(spec.get("unit", "")), str(spec.get("from", "")))


READERS = {"observations": _observation, "diagnoses": _diagnosis, "drugs": _drug,
           "assessments": _assessment, "derived": _derived}


def _merge(old, new, given: set, d: _Declaration, keys: tuple, origin: str):
    """A redeclared name: the codes are added; anything else written (``given``: the keys of
    the declaration) must be what it was."""
    changes = {}
    for f in fields(old):
        if {"qualitative": "kind"}.get(f.name, f.name) not in given:
            continue
        a, b = getattr(old, f.name), getattr(new, f.name)
        if f.name in CODE_KEYS:
            if isinstance(a, dict):
                for k in set(a) & set(b):
                    if a[k] != b[k]:
                        raise d.error(keys + (f.name, k), f"conflicts with {origin} ({a[k]} there)")
                changes[f.name] = {**a, **b}
            else:
                changes[f.name] = tuple(dict.fromkeys(a + b))
        elif a != b:
            raise d.error(keys + (f.name,), f"conflicts with {origin}: {f.name} is {_show(a)} there, "
                          f"{_show(b)} here (a knowledge base may add codes to a name, not change it)")
    return replace(old, **changes)


def _show(value) -> str:
    if isinstance(value, tuple) and value and isinstance(value[0], Fraction):
        return "[" + ", ".join(str(float(v)).removesuffix(".0") for v in value) + "]"
    return repr(value) if value not in ("", None) else "none"


def _codes(kind) -> list[tuple[str, str]]:
    out = []
    for key in ("loinc", "snomed", "rxnorm", "atc"):
        out += [(key, c) for c in getattr(kind, key, ())]
    return out


def _build(declarations: list[_Declaration]) -> Vocabulary:
    tables: dict[str, dict] = {s: {} for s in READERS}
    origin: dict[tuple[str, str], str] = {}       # (section, name) -> file:line it came from
    code_owner: dict[tuple[str, str], tuple[str, str]] = {}  # (system, code) -> (name, file:line)
    lib = declarations[0].data
    lists = {k: lib.get(k) for k in LIBRARY_ONLY}
    for i, d in enumerate(declarations):
        unknown = sorted(str(k) for k in d.data if k not in TOP_KEYS)
        if unknown:
            raise d.error((unknown[0],), f"unknown section (one of {', '.join(sorted(TOP_KEYS))})")
        if i:
            own = sorted(k for k in d.data if k in LIBRARY_ONLY and k != "growth_factors")
            if own:
                raise d.error((own[0],), "only the shared library (kb/lib/vocabulary.yaml) declares this")
        for section, reader in READERS.items():
            for name, spec, keys in _entries(d, section):
                kind = reader(d, name, spec, keys)
                here = f"{d.path}:{d.lines.get(keys, 1)}"
                for other, table in tables.items():
                    if other != section and name in table:
                        raise d.error(keys, f"{name} is already one of the {other} ({origin[(other, name)]})")
                if name in tables[section]:
                    kind = _merge(tables[section][name], kind, set(spec), d, keys, origin[(section, name)])
                else:
                    origin[(section, name)] = here
                for system, code in _codes(kind):
                    owner = code_owner.get((system, code))
                    if owner and owner[0] != name:
                        raise d.error(keys + (system,), f"{system} {code} already maps to {owner[0]} ({owner[1]})")
                    code_owner.setdefault((system, code), (name, here))
                tables[section][name] = kind
        if i and d.data.get("growth_factors") is not None:
            extra = _strings(d, ("growth_factors",), d.data["growth_factors"], NAME, "a name")
            lists["growth_factors"] = list(lists.get("growth_factors") or []) + list(extra)
    lib_d = declarations[0]
    classification = lists.get("classification_schemes") or {}
    schemes: dict[str, str] = {}
    class_labels: dict[str, str] = {}
    for scheme, spec in classification.items():
        if isinstance(spec, dict):
            schemes[str(scheme)] = str(spec.get("items"))
            class_labels[str(scheme)] = str(spec.get("label", scheme))
        else:
            schemes[str(scheme)] = str(spec)
            class_labels[str(scheme)] = str(scheme)
    scheme_labels = {str(k): str(v.get("label", k) if isinstance(v, dict) else v)
                     for k, v in (lists.get("schemes") or {}).items()}
    scheme_groups = {str(k): str(v.get("group", scheme_labels[str(k)]) if isinstance(v, dict) else v)
                     for k, v in (lists.get("schemes") or {}).items()}
    glucocorticoids = frozenset(_strings(lib_d, ("glucocorticoids",), lists.get("glucocorticoids"), NAME, "a drug name"))
    unknown_gc = sorted(glucocorticoids - set(tables["drugs"]))
    if unknown_gc:
        raise lib_d.error(("glucocorticoids",), f"{unknown_gc[0]} is not a declared drug")
    return Vocabulary(
        observations=tables["observations"], diagnoses=tables["diagnoses"], drugs=tables["drugs"],
        assessments=tables["assessments"], derived=tables["derived"],
        qualitative_values={str(k): str(v) for k, v in (lists.get("qualitative_values") or {}).items()},
        glucocorticoids=glucocorticoids,
        growth_factors=frozenset(_strings(lib_d, ("growth_factors",), lists.get("growth_factors"), NAME, "a name")),
        categories=_strings(lib_d, ("categories",), lists.get("categories"), NAME, "a name"),
        organs=_strings(lib_d, ("organs",), lists.get("organs"), NAME, "a name"),
        classification_schemes=schemes, classification_labels=class_labels, scheme_labels=scheme_labels, scheme_groups=scheme_groups,
        acronyms=_strings(lib_d, ("acronyms",), lists.get("acronyms")),
        transfusion_procedures={str(k): str(v) for k, v in (lists.get("transfusion_procedures") or {}).items()},
        dialysis_procedures=frozenset(_strings(lib_d, ("dialysis_procedures",), lists.get("dialysis_procedures"),
                                               SCTID, "a SNOMED CT concept id")),
        room_air_components={str(k): str(v) for k, v in (lists.get("room_air_components") or {}).items()},
        files=tuple(str(d.path) for d in declarations))


LIBRARY_FILE = builtin_kb_root() / "lib" / "vocabulary.yaml"


@cache
def library() -> Vocabulary:
    """The shared library's vocabulary (kb/lib/vocabulary.yaml), read once."""
    return _build([_Declaration(LIBRARY_FILE)])


def load_vocabulary(files: list[Path] | tuple[Path, ...], texts: dict[Path, str] | None = None) -> Vocabulary:
    """The shared library's vocabulary with these knowledge-base declarations added, in order
    (a knowledge base it extends first). ``texts``: file contents already read (the resolver
    reads every file of a knowledge base once).

    Raises VocabularyError, one line naming the file, line and entry, for malformed YAML, an
    unknown key or section, a bad code, unit, range or window, or a conflicting redefinition.
    """
    if not files:
        return library()
    texts = texts or {}
    return _build([_Declaration(LIBRARY_FILE)] + [_Declaration(Path(f), texts.get(Path(f))) for f in files])

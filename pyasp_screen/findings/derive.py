"""Stage 2 of the pipeline: a validated record becomes findings, as ASP facts.

Findings are written in the fact vocabulary of docs/vocabulary.md, the only thing a knowledge
base reads. This stage resolves codes (LOINC, SNOMED CT, ICD-10, RxNorm) to vocabulary names,
converts units exactly (:mod:`pyasp_screen.findings.units`), rejects impossible values, and derives
values that need arithmetic ASP does not have: Cockcroft-Gault CrCl, multiples of the ULN,
the prednisone-equivalent dose, ages and durations. It decides no criterion: thresholds and
windows are applied by the knowledge base.

Numbers reach ASP as ``quantity(P, Name, Lo, Hi, Days)``: the value (or, for differing
results of one day, its range) in its canonical unit on the exact half-step grid of
:func:`grid`, and the days before the screening date. Each
fact also gets a human description (``Finding``) for explanations and output.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache, partial

from pyasp_screen.findings import clinical, units
from pyasp_screen.inputs.record import Medication, Record, RecordInvalid
from pyasp_screen.knowledge.vocabulary import display_unit
from pyasp_screen.knowledge.kb import SCALE, KnowledgeBase

Number = Fraction


class Finding:
    """One fact the knowledge base reads, with what a person needs to read it.

    fact: the ASP fact without the final period; name: vocabulary name;
    text: "ANC 1.2 10*9/L (2026-02-25)"; sources: record fields it came from;
    data: the same as plain data for programs (None when the text says it all), e.g.
    ``{"value": 1.2, "unit": "10*9/L", "date": "2026-02-25", "days_before_screening": 4}``;
    a derived value adds its ``inputs`` (docs/output.md, "findings").
    Text and data may be given as functions: they are then made only when someone reads
    them (cohort runs never do, and formatting exact numbers is not free).
    """

    __slots__ = ("fact", "name", "_text", "sources", "_data")

    def __init__(self, fact: str, name: str, text, sources: tuple[str, ...] = (), data=None):
        self.fact, self.name, self._text, self.sources, self._data = fact, name, text, sources, data

    @property
    def text(self) -> str:
        if callable(self._text):
            self._text = self._text()
        return self._text

    @property
    def data(self) -> dict | None:
        if callable(self._data):
            self._data = self._data()
        return self._data

    def __repr__(self) -> str:
        return f"Finding({self.fact!r}, {self.text!r})"


@dataclass
class Findings:
    """Everything the findings stage knows about one patient."""

    patient: str
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    screening_date: date | None = None  # the date the patient was screened at
    not_done: list[str] = field(default_factory=list)
    # True when every fact is a predicate of the fact vocabulary with its arity and ground
    # arguments, as derive() writes them: the engine may then pass them to clingo as terms
    # (engine.Engine._term_facts) instead of program text. Hand-made findings keep False.
    vocabulary_only: bool = False

    def program(self, term: int | None = None) -> str:
        """The findings as ASP facts; with ``term``, the patient argument (every fact's
        first) is that number instead of the quoted ID (see Engine.screen)."""
        if term is None:
            return "".join(f.fact + ".\n" for f in self.findings)
        pid, slot = asp_string(self.patient), str(term)
        # The first occurrence of the quoted ID is the first argument: a predicate name
        # before it cannot hold a quote.
        return "".join(f.fact.replace(pid, slot, 1) + ".\n" for f in self.findings)


def asp_string(text: str) -> str:
    """A Python string as an ASP string term."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def fmt(value: Fraction, places: int = 3) -> str:
    """A Fraction for people: at most ``places`` decimals, trailing zeros dropped; a value of
    a million million or more (only ever an impossible one, quoted in its error) in
    scientific notation, 1e+308."""
    if abs(value) >= 10**12:
        try:
            return format(float(value), ".6g")
        except OverflowError:  # past a float's range
            return f"{'-' * (value < 0)}about 1e+{len(str(abs(int(value)))) - 1}"
    q = Decimal(value.numerator) / Decimal(value.denominator)
    text = format(round(q, places), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


UNBOUNDED = 2**31 - 1  # the Hi of a quantity with no upper bound (a lower bound only)


def grid(value: Fraction) -> int:
    """A value on the half-step grid of kb/lib/core.lp: 2*floor(1000 v), plus 1 when 1000 v
    is not whole. For every threshold T on the x1000 grid, v >= T iff grid(v) >= 2*T (and
    likewise for >, <=, <), so comparisons in ASP are exact."""
    whole, rest = divmod(value.numerator * SCALE, value.denominator)  # floor division
    return 2 * whole + (1 if rest else 0)


@lru_cache(maxsize=1 << 16)
def exact(number: float | int) -> Fraction:
    """The exact decimal a record wrote: 1.2 is 6/5, not the binary float nearest to 1.2
    (a float's repr is the shortest decimal that reads back as the same float).

    Raises ValueError for NaN and infinities. Cached (a cohort repeats its values): numbers
    a cache finds equal (1, 1.0, True; 0.0, -0.0) have the same exact value, and a NaN is
    never found (it equals nothing), so it raises each time.
    """
    if isinstance(number, int):
        return Fraction(number)
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError("not a finite number")
    text = repr(number)
    if "e" in text:  # 1e-05, 1e+300: rare
        return Fraction(text)
    whole, _, decimals = text.partition(".")
    return Fraction(int(whole + decimals), 10 ** len(decimals))


GRID_LIMIT = 2**31 - 2  # clingo integers are 32-bit; UNBOUNDED is reserved


def checked_grid(value: Fraction, where: str) -> int:
    """grid(value), refusing values too large for clingo's 32-bit integers."""
    g = grid(value)
    if abs(g) > GRID_LIMIT - 1:
        raise RecordInvalid(where, f"value {float(value):.4g} is too large to screen")
    return g


def exact_field(number, where: str) -> Fraction:
    """exact(), with a bad number reported as the record's problem."""
    try:
        return exact(number)
    except (ValueError, OverflowError):
        raise RecordInvalid(where, f"{number!r} is not a finite number") from None


MAX_DAILY_DOSE_MG = Fraction(100_000)  # no drug is given at 100 g/day: anything above is a typo
MAX_AGE_YEARS = 130


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def _observation_text(kind, value: Fraction, when: date, uln: Fraction | None) -> str:
    unit = f" {display_unit(kind.unit)}" if kind.unit not in ("1", "") else ""
    if uln is None:
        return f"{kind.label} {fmt(value)}{unit} ({when})"
    return f"{kind.label} {fmt(value)}{unit} = {fmt(value / uln, 2)}x ULN (ULN {fmt(uln)}{unit}; {when})"


def _steroid_text(total: Fraction, is_exact: bool, courses: int) -> str:
    if not courses:
        return "no oral glucocorticoid at screening (medication history complete)"
    if is_exact:
        return f"oral prednisone-equivalent {fmt(total, 2)} mg/day at screening"
    return (f"oral prednisone-equivalent at least {fmt(total, 2)} mg/day at screening "
            "(medication history not complete, or a dose unknown)")


def number(value: Fraction) -> int | float:
    """An exact value as a JSON number: an int when whole, else the nearest float."""
    return value.numerator if value.denominator == 1 else float(value)


def _dated(when: date, days: int, **data) -> dict:
    return {**data, "date": when.isoformat(), "days_before_screening": days}


def _observation_data(kind, value: Fraction, when: date, days: int, uln: Fraction | None,
                      uln_from_record: bool) -> dict:
    """An observation as data; a ULN-based one as its multiple of the ULN, with the
    measured value and the ULN (from the result's reference range or the site table)."""
    unit = kind.unit if kind.unit not in ("1", "") else ""
    if uln is None:
        return _dated(when, days, value=number(value), unit=unit)
    return _dated(when, days, value=number(value / uln), unit="x ULN",
                  measured={"value": number(value), "unit": unit},
                  uln={"value": number(uln), "unit": unit,
                       "from": "reference range" if uln_from_record else f"site table (site_uln_{kind.name})"})


def _with(data, **more) -> dict:
    """``data()`` (a finding's data, made when asked) with ``more`` keys."""
    return {**data(), **more}


def _range_data(parts: list, lo: Fraction, hi: Fraction) -> dict:
    """Differing results of one day: the range read, and each result."""
    results = [p() if callable(p) else p for p in parts]
    first = results[0]
    return {"low": number(lo), "high": number(hi), "unit": first["unit"], "date": first["date"],
            "days_before_screening": first["days_before_screening"], "results": results}


def _range_text(texts: list) -> str:
    return " / ".join(t() if callable(t) else t for t in texts) + " (differing results on one day: range read)"


def _course_text(drug: str, route: str, start: date, end: date | None, end_known: bool) -> str:
    if end is not None and not end_known:
        span = f"from {start}, ended on an unknown day after {end}"
    else:
        span = f"from {start} to {end or 'screening (ongoing)'}"
    return f"{drug.replace('_', ' ')} {route} {span}"


def _dose_change_text(drug: str, dose: Fraction | None, unit: str | None, when: date, changed: bool) -> str:
    shown = f"{fmt(dose)} {unit or 'mg'}/day" if dose is not None else "an unknown dose"
    if changed:
        return f"{drug.replace('_', ' ')} dose changed to {shown} on {when}"
    return f"{drug.replace('_', ' ')} dose {shown} from {when} (it may have changed)"


def _per_kg_text(drug: str, point: bool, per_kg: Fraction) -> str:
    return f"{drug} {'up to' if point else 'at least'} {fmt(per_kg, 2)} mg/kg/day prednisone-equivalent"


def _per_kg_data(drug: str, per_kg: Fraction, highest: Fraction, weight: tuple[Fraction, str]) -> dict:
    """A glucocorticoid course's highest daily dose per kg of body weight, as data."""
    return {"value": number(per_kg), "unit": "mg/kg/day", "basis": "prednisone-equivalent",
            "inputs": {"drug": drug, "highest_dose_mg_per_day": number(highest),
                       "weight": {"value": number(weight[0]), "unit": "kg", "field": weight[1]}}}


def _crcl_text(crcl, scr, when, label, used, age, sex) -> str:
    return (f"CrCl {fmt(crcl, 1)} mL/min (Cockcroft-Gault: creatinine {fmt(scr, 2)} mg/dL on {when}, "
            f"{label} {fmt(used, 1)} kg, age {age}, {sex})")


def _crcl_data(crcl, scr, when, days, label, used, weight, height, age, sex, where, method) -> dict:
    """CrCl as data with every input (Cockcroft-Gault, Nephron 1976)."""
    w_date, w, w_where = weight
    inputs = {"creatinine": {"value": number(scr), "unit": "mg/dL", "date": when.isoformat(), "field": where},
              "weight_used": {"value": number(used), "unit": "kg", "basis": label, "parameter": f"crcl_weight={method}"},
              "weight": {"value": number(w), "unit": "kg", "date": w_date.isoformat(), "field": w_where},
              "age": {"value": age, "unit": "a", "field": "birth_date"}, "sex": {"value": sex, "field": "sex"}}
    if height is not None:
        inputs["height"] = {"value": number(height[1]), "unit": "cm", "date": height[0].isoformat(), "field": height[2]}
    return _dated(when, days, value=number(crcl), unit="mL/min", method="Cockcroft-Gault", inputs=inputs)


TITRE = re.compile(r"^\s*1\s*:\s*(\d+)\s*$")


def _is_titre(unit: str) -> bool:
    """Is a finding measured as a titre ({titer}: the reciprocal of the highest dilution
    still positive)?"""
    return unit.replace(" ", "") in ("{titer}", "{titre}")


def _titre(raw: str, unit: str | None, kind, where: str) -> tuple[int, str]:
    """A titre written as laboratories write it, "1:80", as its reciprocal dilution (80) in
    the finding's unit; any other text is refused by name. A unit given with it must be the
    finding's own (a titre has no other)."""
    m = TITRE.match(raw)
    if m is None:
        raise RecordInvalid(where, f"{raw!r} is not a titre (1:80) or a number ({kind.name} is measured in "
                            f"{kind.unit}, the reciprocal dilution: 1:80 is 80)")
    if unit not in (None, "", kind.unit):
        raise RecordInvalid(where.rsplit(".", 1)[0] + ".unit", f"a titre {raw} is in {kind.unit}, not {unit!r}")
    return int(m.group(1)), kind.unit


@lru_cache(maxsize=1 << 16)
def _plausible_value(kind, raw, unit: str | None) -> tuple[Fraction, int] | None:
    """An observation's value in its finding's unit, and its :func:`grid`, if it converts
    and is plausible, else None (then the caller's slow path reports why). Cached: a cohort
    repeats the same values in the same units, and exact conversion is a third of the
    findings stage's time."""
    try:
        value = units.to_canonical(kind, exact(raw), unit)
    except (ValueError, OverflowError, TypeError, units.UnitError):
        return None
    if kind.plausible is not None and not (kind.plausible[0] <= value <= kind.plausible[1]):
        return None
    return value, grid(value)


@lru_cache(maxsize=1 << 16)
def _ratio_of(kind, raw, unit: str | None, uln_n: int, uln_d: int) -> tuple[Fraction, int]:
    """The multiple of the ULN (``uln_n / uln_d``) of a plausible value (see
    :func:`_plausible_value`) and its grid. Keyed by the raw value and the ULN's integers,
    which hash faster than Fractions."""
    value = _plausible_value(kind, raw, unit)[0]
    ratio = clinical.uln_multiple(value, Fraction(uln_n, uln_d))
    return ratio, grid(ratio)


@lru_cache(maxsize=1 << 12)
def _plausible_uln(kind, raw, unit: str | None) -> Fraction | None:
    """A reference range's upper limit in its finding's unit if it converts and is
    plausible (above 0, at most the plausible maximum), else None (then the caller's slow
    path reports why). Cached: a laboratory prints the same ULN on every result."""
    try:
        uln = units.to_canonical(kind, exact(raw), unit)
    except (ValueError, OverflowError, TypeError, units.UnitError):
        return None
    return uln if 0 < uln <= kind.plausible[1] else None


# Exact arithmetic on values that recur across a cohort (the same result, the same ULN, the
# same dose): cached, as a Fraction costs microseconds per operation.
_prednisone_equivalent_mg = lru_cache(maxsize=1 << 12)(clinical.prednisone_equivalent_mg)


@lru_cache(maxsize=1 << 16)
def _range_ratio(kind, raw, unit: str | None, high: float, high_unit: str | None) -> tuple[Fraction, Fraction, int] | None:
    """(ULN, multiple of it, grid of the multiple) of a plausible value (see
    :func:`_plausible_value`) with its own reference range's upper limit ``high`` in
    ``high_unit``, when that limit is plausible (:func:`_plausible_uln`); else None."""
    uln = _plausible_uln(kind, high, high_unit)
    if uln is None:
        return None
    ratio = clinical.uln_multiple(_plausible_value(kind, raw, unit)[0], uln)
    return uln, ratio, grid(ratio)


def _crcl_fast(age: int, weight: Fraction, scr: Fraction, sex: str) -> tuple[Fraction, int]:
    """clinical.cockcroft_gault (mL/min) and its grid, the same exact value made in
    integers: (140 - age) * (wn/wd) / (72 * sn/sd), times 17/20 for women, is one fraction of
    the products (and the grid's floor and remainder test do not change when a fraction's
    terms are multiplied by the same positive number). Arguments the formula refuses go to
    clinical.cockcroft_gault, which raises."""
    wn, wd, sn, sd = weight.numerator, weight.denominator, scr.numerator, scr.denominator
    if not (type(age) is int and 0 <= age < clinical.CG_AGE_CEILING and wn > 0 and sn > 0
            and sex in clinical.SEXES):
        crcl = clinical.cockcroft_gault(age, weight, scr, sex)
        return crcl, grid(crcl)
    num, den = (clinical.CG_AGE_CEILING - age) * wn * sd, clinical.CG_DIVISOR * wd * sn
    if sex == "female":
        num, den = num * clinical.CG_FEMALE_FACTOR.numerator, den * clinical.CG_FEMALE_FACTOR.denominator
    whole, rest = divmod(num * SCALE, den)
    return Fraction(num, den), 2 * whole + (1 if rest else 0)


@lru_cache(maxsize=256)
def _complete_words(cat: str) -> tuple[str, str]:
    """(name, text) of the finding that a category is declared complete."""
    return f"complete:{cat}", f"{cat.replace('_', ' ')} declared complete"


@lru_cache(maxsize=1 << 14)
def _item_words(v, scheme: str, item: str, value, where: str) -> tuple[str, str, str, str, tuple[str]]:
    """What the finding of a score or classification item recorded at ``where`` says, by
    vocabulary ``v``: ``(predicate, the arguments after the patient, name, text, sources)``.
    Cached: the same items recur in every record."""
    if value == "unknown":
        return ("item_unknown", f"{scheme},{item})", f"{scheme}:{item}", f"{v.item_label(item)}: unknown",
                (f"{where}.{item}",))
    return ("item", f"{scheme},{item},{'yes' if value else 'no'})", f"{scheme}:{item}",
            f"{v.scheme_labels.get(scheme, scheme)}: {v.item_label(item)} {'present' if value else 'absent'}",
            (f"{where}.{item}",))


@lru_cache(maxsize=1 << 14)
def _dose_in_mg(raw: float, unit: str) -> Fraction | None:
    """A recorded daily dose in ``unit`` in mg, exactly, when it is a possible one (0 to
    MAX_DAILY_DOSE_MG mg); else None. Cached by the number and unit: doses recur."""
    try:
        dose, factor = exact(raw), units.ucum_factor(unit, "mg")
    except (ValueError, OverflowError, TypeError, units.UnitError):
        return None
    if dose < 0 or dose * factor > MAX_DAILY_DOSE_MG:
        return None
    return dose * factor


def _doses_in_mg(med: Medication, unit: str, today: date) -> list[Fraction | None] | None:
    """_Builder._gc_doses when every recorded dose is a possible one (from the cache of
    :func:`_dose_in_mg`) and the unit converts to mg (checked even when no dose is read);
    None otherwise, and _gc_doses then names the first problem."""
    try:
        units.ucum_factor(unit, "mg")  # cached
    except units.UnitError:
        return None
    first = None
    if med.dose is not None:
        first = _dose_in_mg(med.dose, unit)
        if first is None:
            return None
    doses = [(med.start, first)]
    for c in med.dose_changes:
        if c.date <= today:
            mg = None
            if c.dose is not None:
                mg = _dose_in_mg(c.dose, unit)
                if mg is None:
                    return None
            doses.append((c.date, mg))
    if len(doses) == 1:
        return [first]
    return [mg for _, mg in sorted(doses, key=_first)]


def _first(entry: tuple):
    return entry[0]


# "observations[0]" ... : the field names of a record's first results, made once
_OBSERVATION_FIELDS = tuple(f"observations[{i}]" for i in range(256))


class _Builder:
    """Collects the findings of one record; raises RecordInvalid on impossible content."""

    def __init__(self, record: Record, kb: KnowledgeBase):
        self.r = record
        self.kb = kb
        self.v = kb.vocabulary
        self.p = asp_string(record.id)
        self.out = Findings(record.id)
        self.today = record.screening_date
        self._append = self.out.findings.append
        self._weights: list[tuple[date, int, object]] = []  # (date, index, observation): final numeric weights

    # -- helpers -----------------------------------------------------------
    def add(self, fact: str, name: str, text: str, *sources: str, data=None) -> None:
        self._append(Finding(fact, name, text, sources, data))

    def _event(self, name: str) -> bool:
        spec = self.v.assessments.get(name)
        return spec is not None and spec.event

    def days_before(self, d: date, field_name: str) -> int:
        days = (self.today - d).days
        if days < 0:
            raise RecordInvalid(field_name, f"date {d} is after the screening date {self.today}")
        return days

    def quantity(self, name: str, value: Fraction, days: int, text: str, *sources: str, data=None) -> None:
        g = checked_grid(value, sources[0] if sources else name)
        self.add(f"quantity({self.p},{name},{g},{g},{days})", name, text, *sources, data=data)

    # -- stages ------------------------------------------------------------
    def build(self) -> Findings:
        r = self.r
        self.add(f"patient({self.p})", "patient", f"patient {r.id}")
        if r.birth_date is not None:
            self.days_before(r.birth_date, "birth_date")
            self.age = clinical.age_in_years(r.birth_date, self.today)
            if self.age > MAX_AGE_YEARS:
                raise RecordInvalid("birth_date", f"{r.birth_date} gives an age of {self.age} years: impossible")
            self.add(f"age({self.p},{self.age})", "age", f"age {self.age} y", "birth_date",
                     data={"value": self.age, "unit": "a"})
        else:
            self.age = None
        if r.sex != "unknown":
            self.add(f"sex({self.p},{r.sex})", "sex", f"sex {r.sex}", "sex")
        if isinstance(r.deceased, date) and r.deceased > self.today:
            # screened as of a date before the death (retrospective feasibility): alive then
            self.out.notes.append(f"patient deceased on {r.deceased}, after the screening date "
                                  f"{self.today}: screened as alive on that date")
        elif r.deceased is not None and r.deceased is not False:
            when = f" on {r.deceased}" if not isinstance(r.deceased, bool) else ""
            self.add(f"deceased({self.p})", "deceased", f"patient deceased{when}: never eligible", "deceased")
            self.out.notes.append(f"patient deceased{when}: never counted eligible")
        for cat in dict.fromkeys(r.complete):
            name, text = _complete_words(cat)
            self._append(Finding(f"complete({self.p},{cat})", name, text, ("complete",)))
        self.observations()
        self.diagnoses()
        self.classification()
        self.sledai()
        self.organs()
        self.assessments()
        self.medications()
        self._doses()
        for kind, events, label in (("transfusion", r.transfusions, "transfusions"),
                                    ("growth_factor", r.growth_factors, "growth_factors")):
            for i, ev in enumerate(events):
                d = self.days_before(ev.date, f"{label}[{i}].date")
                if kind == "growth_factor" and ev.drug is not None and \
                        ev.drug.strip().lower().replace(" ", "_").replace("-", "_") not in self.v.growth_factors:
                    raise RecordInvalid(f"{label}[{i}].drug", f"{ev.drug!r} is not a haematopoietic growth factor"
                                        + _suggest(ev.drug.lower(), self.v.growth_factors))
                what = ev.product or ev.drug or kind.replace("_", " ")
                self.add(f"event({self.p},{kind},{d})", kind, f"{what} on {ev.date} ({d} d before screening)",
                         f"{label}[{i}]", data=partial(_dated, ev.date, d, what=what))
        return self.out

    def observations(self) -> None:
        numeric: dict[tuple[str, int], list] = {}      # (name, days) -> [(value, grid, date, where, text, data)]
        qualitative: dict[tuple[str, int], list] = {}  # (name, days) -> [(value, date, where)]
        weights: list[tuple[date, Fraction, str]] = []
        heights: list[tuple[date, Fraction, str]] = []
        creatinines: list[tuple[date, Fraction, str]] = []
        fvcs: list[tuple[date, Fraction, str]] = []
        series: dict[str, list] = {}  # name -> [(date, value, where)], for the KB's change/5
        changes = bool(self.kb.changes)
        today = self.today
        kinds = self.v.observations
        for i, obs in enumerate(self.r.observations):
            where = _OBSERVATION_FIELDS[i] if i < len(_OBSERVATION_FIELDS) else f"observations[{i}]"
            kind = kinds.get(obs.code) if obs.system == "vocabulary" else None
            if kind is None:
                kind = self._observation_kind(obs, where)
            when = obs.date
            days = (today - when).days
            if days < 0:
                self.days_before(when, f"{where}.date")
            if kind.name == "weight" and obs.status == "final" and isinstance(obs.value, (int, float)) \
                    and not isinstance(obs.value, bool):
                self._weights.append((when, i, obs))
            if obs.status != "final" or obs.value is None:
                state = obs.status if obs.status != "final" else "no value"
                self.out.not_done.append(f"{kind.label} ({state}, {when})")
                continue
            name = kind.name
            if kind.qualitative:
                value = self.v.qualitative_values.get(str(obs.value).strip().lower())
                if value is None:
                    raise RecordInvalid(f"{where}.value", f"{obs.value!r} is not positive or negative "
                                        f"({name} is qualitative)")
                qualitative.setdefault((name, days), []).append((value, when, where))
                continue
            raw, unit = obs.value, obs.unit
            if type(raw) is not float:  # (the usual case, a float, is neither a titre nor text)
                if isinstance(raw, str) and _is_titre(kind.unit):
                    try:
                        raw, unit = _titre(raw, unit, kind, f"{where}.value")
                    except RecordInvalid as e:
                        if obs.source is None:
                            raise
                        self.out.notes.append(f"{obs.source} ({kind.label}, {obs.display or obs.code}, "
                                              f"{obs.value}): {e.reason}: result not used")
                        continue
                if isinstance(raw, (str, bool)):
                    raise RecordInvalid(f"{where}.value", f"{obs.value!r} is not a number "
                                        f"({name} is measured in {kind.unit})")
            fast = _plausible_value(kind, raw, unit)
            if fast is None:  # the slow path, which names the field and the reason
                try:
                    value = self._canonical(kind, raw, unit, f"{where}.unit")
                    self._plausible(kind, value, f"{where}.value", obs.value, unit)
                except RecordInvalid as e:
                    if obs.source is None:
                        raise
                    # An EHR's result: that observation is unusable, the patient is screened.
                    self.out.notes.append(f"{obs.source} ({kind.label}, {obs.display or obs.code}, "
                                          f"{obs.value} {obs.unit or '(no unit)'}): {e.reason}: result not used")
                    continue
                g = grid(value)
            else:
                value, g = fast
            if obs.comparator is not None:
                self._bound(kind, obs, value, days, where)
                continue
            if name == "spo2" and not (obs.room_air if obs.room_air is not None
                                       else self.kb.param("spo2_unflagged_is_room_air")):
                self.out.notes.append(f"{where}: SpO2 not known to be on room air, not read")
                continue
            if changes:
                series.setdefault(name, []).append((when, value, where))
            if name == "weight":
                weights.append((when, value, where))
            elif name == "height":
                heights.append((when, value, where))
            elif name == "creatinine":
                creatinines.append((when, value, where))
            elif kind.uln:
                rr = obs.reference_range
                hit = None
                if fast is not None and rr is not None and type(rr.high) is float and kind.plausible is not None:
                    hit = _range_ratio(kind, raw, unit, rr.high, rr.unit or obs.unit)
                if hit is not None:  # the result's own plausible ULN (what _uln reads first)
                    uln, ratio, rg = hit
                else:
                    uln = self._uln(kind, obs, where)
                    if fast is None:
                        ratio = clinical.uln_multiple(value, uln)
                        rg = grid(ratio)
                    else:
                        ratio, rg = _ratio_of(kind, raw, unit, uln.numerator, uln.denominator)
                if changes:
                    series.setdefault(name + "_x_uln", []).append((when, ratio, where))
                text = partial(_observation_text, kind, value, when, uln)
                data = partial(_observation_data, kind, value, when, days, uln,
                               obs.reference_range is not None and obs.reference_range.high is not None)
                numeric.setdefault((name + "_x_uln", days), []).append((ratio, rg, when, where, text, data))
            else:
                if name == "fvc_pct_predicted":
                    fvcs.append((when, value, where))
                text = partial(_observation_text, kind, value, when, None)
                data = partial(_observation_data, kind, value, when, days, None, False)
                if name == "spo2":  # on room air as recorded, or read so (parameter)
                    data = partial(_with, data, room_air="recorded" if obs.room_air else "assumed")
                numeric.setdefault((name, days), []).append((value, g, when, where, text, data))
        for (name, days), entries in qualitative.items():
            values = {v for v, _, _ in entries}
            wheres = [w for _, _, w in entries]
            label = self.v.observations[name].label
            if len(values) > 1:
                # Kept as an indeterminate result, so that it is the most recent one and an
                # older result does not decide in its place.
                self.out.notes.append(f"{label}: differing results on {entries[0][1]}; read as indeterminate")
                values = {"indeterminate"}
            value = values.pop()
            self.add(f"qualitative({self.p},{name},{value},{days})", name,
                     f"{label} {value} ({entries[0][1]})", *wheres,
                     data=partial(_dated, entries[0][1], days, value=value))
        append, p = self._append, self.p
        for (name, days), entries in numeric.items():
            if len(entries) == 1:  # _same_day's usual case, inline
                _, g, _, where, text, data = entries[0]
                append(Finding(f"quantity({p},{name},{g},{g},{days})", name, text, (where,), data))
            else:
                self._same_day(name, days, entries)
        self._crcl(creatinines, weights, heights)
        self._fvc_decline(fvcs)
        for change in self.kb.changes:
            self._change(change, series.get(change.finding, []))

    def _bound(self, kind, obs, value: Fraction, days: int, where: str) -> None:
        """A result written as a bound ("<0.2", ">90"): the interval it states, on the grid.
        v < b is Hi = grid(b) - 1 when b is on the grid (else grid(b)); v > b likewise Lo."""
        op = obs.comparator
        label = f"{kind.label} {op}{obs.value} {obs.unit or ''}".strip()
        if kind.name in ("weight", "height", "creatinine"):
            self.out.notes.append(f"{where}: {label} is only a bound: not used for CrCl")
            return
        name, bound = kind.name, value
        if kind.uln:
            uln = self._uln(kind, obs, where)
            name, bound = kind.name + "_x_uln", clinical.uln_multiple(value, uln)
        g = grid(bound)
        on_grid = g % 2 == 0
        low = grid(kind.plausible[0]) if kind.plausible and not kind.uln else 0
        if kind.plausible and kind.uln:
            low = 0
        if op in ("<", "<="):
            lo, hi = min(low, g), (g - 1 if op == "<" and on_grid else g)
        else:
            lo, hi = (g + 1 if op == ">" and on_grid else g), UNBOUNDED
        self.add(f"quantity({self.p},{name},{lo},{hi},{days})", name,
                 f"{label} ({obs.date}): only a bound, read as an interval", where)

    def _same_day(self, name: str, days: int, entries: list) -> None:
        """One quantity fact per test and day. Differing results of one day are kept as an
        interval: Lo from the lowest, Hi from the highest, so a threshold between them is
        unknown rather than decided by whichever result happens to be listed last.
        ``entries``: [(value, grid(value), date, where, text, data)]."""
        if len(entries) == 1:
            _, g, _, where, text, data = entries[0]
            self._append(Finding(f"quantity({self.p},{name},{g},{g},{days})", name, text, (where,), data))
            return
        low, high = min(entries, key=_first), max(entries, key=_first)
        lo, hi = low[0], high[0]
        wheres = [e[3] for e in entries]
        data = partial(_range_data, [e[5] for e in entries], lo, hi)
        if lo == hi:
            text, data = entries[-1][4], entries[-1][5]
        else:
            texts = [e[4] for e in entries]
            text = partial(_range_text, texts)
            self.out.notes.append(f"{name}: {len(entries)} differing results on {entries[0][2]}; "
                                  f"{fmt(lo)} to {fmt(hi)} read, thresholds between them stay unknown")
        self.add(f"quantity({self.p},{name},{low[1]},{high[1]},{days})", name, text, *wheres, data=data)

    def _observation_kind(self, obs, where: str):
        if obs.system == "loinc":
            name = self.v.loinc_to_observation.get(obs.code)
            if name is None:
                raise RecordInvalid(f"{where}.code", f"LOINC {obs.code} is not mapped to any finding "
                                    "(docs/vocabulary.md lists the mapped codes)")
            return self.v.observations[name]
        kind = self.v.observations.get(obs.code)
        if kind is None:
            raise RecordInvalid(f"{where}.code", f"unknown observation {obs.code!r}"
                                + _suggest(obs.code, self.v.observations))
        return kind

    def _canonical(self, kind, raw, unit, where: str) -> Fraction:
        value = exact_field(raw, where.rsplit(".", 1)[0] + ".value" if where.endswith(".unit") else where)
        try:
            return units.to_canonical(kind, value, unit)
        except units.UnitError as e:
            raise RecordInvalid(where, str(e)) from None

    def _plausible(self, kind, value: Fraction, where: str, raw, unit) -> None:
        if kind.plausible is None:
            return
        low, high = kind.plausible
        if not (low <= value <= high):
            raise RecordInvalid(where, f"{kind.label} {raw} {unit or ''} is impossible "
                                f"(plausible {fmt(low)}-{fmt(high)} {kind.unit})".replace("  ", " "))

    def _uln(self, kind, obs, where: str) -> Fraction:
        rr = obs.reference_range
        if rr is not None and rr.high is not None:
            if kind.plausible is not None and not isinstance(rr.high, (str, bool)):
                uln = _plausible_uln(kind, rr.high, rr.unit or obs.unit)
                if uln is not None:
                    return uln
            uln = self._canonical(kind, rr.high, rr.unit or obs.unit, f"{where}.reference_range.unit")
            low, high = kind.plausible
            if not (0 < uln <= high):
                raise RecordInvalid(f"{where}.reference_range.high",
                                    f"upper limit of normal {rr.high} is impossible (plausible above 0, "
                                    f"at most {fmt(high)} {kind.unit})")
            return uln
        return self.kb.param(f"site_uln_{kind.name}")

    def _crcl(self, creatinines, weights, heights) -> None:
        if not creatinines:
            return
        method = self.kb.param("crcl_weight")
        missing = [what for what, ok in (("age (birth_date)", self.age is not None),
                                         ("sex", self.r.sex != "unknown"),
                                         ("weight", bool(weights)),
                                         ("height", bool(heights) or method == "actual")) if not ok]
        if missing:
            self.out.notes.append(f"CrCl (Cockcroft-Gault) not computed: {', '.join(missing)} unknown")
            return
        w_date, weight, w_where = max(weights, key=lambda t: t[0])
        height = max(heights, key=lambda t: t[0])[1] if heights else None
        h_where = max(heights, key=lambda t: t[0])[2] if heights else None
        try:
            used, label = clinical.crcl_weight(method, weight, height, self.r.sex)
        except ValueError as e:
            raise RecordInvalid(h_where or w_where, str(e)) from None
        per_day: dict[int, list] = {}
        latest_height = max(heights, key=lambda t: t[0]) if heights and method != "actual" else None
        for when, scr, where in creatinines:
            crcl, g = _crcl_fast(self.age, used, scr, self.r.sex)
            text = partial(_crcl_text, crcl, scr, when, label, used, self.age, self.r.sex)
            days = self.days_before(when, where)
            data = partial(_crcl_data, crcl, scr, when, days, label, used, (w_date, weight, w_where),
                           latest_height, self.age, self.r.sex, where, method)
            per_day.setdefault(days, []).append((crcl, g, when, where, text, data))
        extra = [w_where, "birth_date", "sex"] + ([h_where] if h_where and method != "actual" else [])
        for days, entries in per_day.items():
            self._same_day("crcl", days, entries)
            f = self.out.findings[-1]
            self.out.findings[-1] = Finding(f.fact, f.name, f._text, f.sources + tuple(extra), f._data)

    def _fvc_decline(self, fvcs) -> None:
        """FVC % predicted decline over the 12 months before the latest FVC: the largest
        earlier value within 365 days minus the latest (percentage points)."""
        if len(fvcs) < 2:
            return
        fvcs.sort(key=lambda t: t[0])
        last_date, last, where = fvcs[-1]
        earlier = [v for d, v, _ in fvcs[:-1] if 0 < (last_date - d).days <= 365]
        if not earlier:
            return
        decline = max(earlier) - last
        days = self.days_before(last_date, where)
        self.quantity("fvc_decline_12mo", decline, days,
                      f"FVC decline {fmt(decline, 1)} points of predicted over 12 months (to {last_date})",
                      *[w for _, _, w in fvcs],
                      data=partial(_dated, last_date, days, value=number(decline), unit="%-points",
                                   inputs={"latest": number(last), "highest_earlier": number(max(earlier)),
                                           "unit": "% predicted"}))

    def _change(self, change, results: list) -> None:
        """A change/5 the knowledge base declares (kb/lib/core.lp): the largest decrease (or
        increase) from an earlier result within ``change.window`` days before the most recent
        result, to it; absolute, or relative to the earlier value (%). Results of one day that
        differ make the change an interval (thresholds inside it stay unknown). Exact: Fractions,
        then the half-step grid. None when fewer than two results are that close."""
        if len(results) < 2:
            return
        by_day: dict[date, list] = {}
        for when, value, _ in results:
            by_day.setdefault(when, []).append(value)
        last = max(by_day)
        lo_l, hi_l = min(by_day[last]), max(by_day[last])
        earlier = [(min(vs), max(vs)) for d, vs in by_day.items() if 0 < (last - d).days <= change.window]
        if not earlier:
            return
        if change.direction == "decrease":
            top_lo, top_hi = max(e[0] for e in earlier), max(e[1] for e in earlier)
            if change.kind == "absolute":
                lo, hi = top_lo - hi_l, top_hi - lo_l
            elif top_lo <= 0:
                self.out.notes.append(f"{change.name}: an earlier {change.finding} of 0 or less: no relative change")
                return
            else:
                lo, hi = 100 * (1 - hi_l / top_lo), 100 * (1 - lo_l / top_hi)
        else:
            bottom_lo, bottom_hi = min(e[0] for e in earlier), min(e[1] for e in earlier)
            if change.kind == "absolute":
                lo, hi = lo_l - bottom_hi, hi_l - bottom_lo
            elif bottom_lo <= 0:
                self.out.notes.append(f"{change.name}: an earlier {change.finding} of 0 or less: no relative change")
                return
            else:
                lo, hi = 100 * (lo_l / bottom_hi - 1), 100 * (hi_l / bottom_lo - 1)
        days = self.days_before(last, change.finding)
        label, unit = self.v.quantity_label(change.name)
        unit = "%" if change.kind == "relative" else unit
        value = fmt(lo, 2) if lo == hi else f"{fmt(lo, 2)} to {fmt(hi, 2)}"
        text = f"{label}: {value} {unit} (to {last}, from results within {change.window} days before)".replace("  ", " ")
        wheres = [w for d, _, w in results if d == last or 0 < (last - d).days <= change.window]
        self.add(f"quantity({self.p},{change.name},{checked_grid(lo, wheres[0])},{checked_grid(hi, wheres[0])},{days})",
                 change.name, text, *wheres)

    def _doses(self) -> None:
        """Every daily_dose/3 the knowledge base declares (kb/lib/core.lp): the daily dose at
        screening of every ongoing course of the drug (every systemic glucocorticoid, as
        prednisone equivalents), in mg/day or per kg of the latest body weight. A point value
        when the medication list is complete and every dose is known; otherwise the recorded
        doses are a lower bound (Hi open); nothing when neither bound is known."""
        if not self.kb.doses:
            return
        weight = self._latest_weight()
        systemic = ("oral", "iv", "sc", "im")
        for dose in self.kb.doses:
            total, known, wheres = Fraction(0), True, []
            for k, med in enumerate(self.r.medications):
                where = f"medications[{k}]"
                drug = self._drug_name(med, where, note=False)
                if drug is None or (med.end is not None and med.end < self.today) or med.start > self.today:
                    continue
                if dose.drug == "prednisone_equivalent":
                    if drug not in self.v.glucocorticoids or med.route not in systemic:
                        continue
                elif drug != dose.drug:
                    continue
                wheres.append(where)
                doses = self._gc_doses(med, where)
                if not doses or doses[-1] is None:  # no dose recorded, or not known at screening
                    known = False
                    continue
                mg = doses[-1]
                total += clinical.prednisone_equivalent_mg(drug, mg) if dose.drug == "prednisone_equivalent" else mg
            exact_total = known and "medications" in self.r.complete
            if dose.per == "mg_per_kg":
                if weight is None:
                    if not (exact_total and total == 0):
                        continue
                    value = Fraction(0)
                else:
                    value = total / weight[0]
                    wheres.append(weight[1])
            else:
                value = total
            if not exact_total and value <= 0:
                continue
            label, unit = self.v.quantity_label(dose.name)
            hi = checked_grid(value, dose.name) if exact_total else UNBOUNDED
            text = (f"{label}: {fmt(value, 2)} {unit}" if exact_total else
                    f"{label}: at least {fmt(value, 2)} {unit} (medication list not complete, or a dose unknown)")
            self.add(f"quantity({self.p},{dose.name},{checked_grid(value, dose.name)},{hi},0)", dose.name, text,
                     *(wheres or ["complete"]))

    def diagnoses(self) -> None:
        for i, dx in enumerate(self.r.diagnoses):
            where = f"diagnoses[{i}]"
            name = self._diagnosis_name(dx, where)
            if name is None:
                continue
            label = self.v.diagnoses[name].label
            if dx.present == "unknown":
                self.add(f"diagnosis_unknown({self.p},{name})", name, f"{label}: unknown", where)
                continue
            yes = "yes" if dx.present else "no"
            self.add(f"diagnosis({self.p},{name},{yes})", name,
                     f"{label}: {'present' if dx.present else 'absent'}", where)
            if dx.present and dx.onset is not None:
                self.days_before(dx.onset, f"{where}.onset")
                months = clinical.completed_months(dx.onset, self.today)
                self.add(f"disease_duration_months({self.p},{name},{months})", f"{name}_duration",
                         f"{label} since {dx.onset} ({months} months)", f"{where}.onset",
                         data={"value": months, "unit": "mo", "onset": dx.onset.isoformat()})
            if dx.present and dx.subtype:
                if name != "ssc" or dx.subtype not in ("diffuse", "limited"):
                    raise RecordInvalid(f"{where}.subtype", f"{dx.subtype!r}: only ssc has a subtype, diffuse or limited")
                self.add(f"assessment({self.p},ssc_subtype,{dx.subtype},0)", "ssc_subtype",
                         f"SSc subtype {dx.subtype} cutaneous", f"{where}.subtype")

    def _diagnosis_name(self, dx, where: str) -> str | None:
        if dx.system == "vocabulary":
            if dx.code not in self.v.diagnoses:
                raise RecordInvalid(f"{where}.code", f"unknown diagnosis {dx.code!r}"
                                    + _suggest(dx.code, self.v.diagnoses))
            return dx.code
        name = (self.v.snomed_to_diagnosis.get(dx.code) if dx.system == "snomed"
                else self.v.diagnosis_from_icd10(dx.code))
        if name is None:
            self.out.notes.append(f"{where}: {dx.system} {dx.code} ({dx.display or 'no display'}) "
                                  "is read by no criterion")
        return name

    def _items(self, scheme: str, items: dict, where: str) -> None:  # noqa: C901 -- one pass per item
        # organ systems are the vocabulary's; score items are the knowledge base's (kb/lib/scores.lp)
        known = (frozenset(self.v.organs) if scheme == "organ_involvement"
                 else self.kb.scheme_items.get(scheme, frozenset()))
        if items and not known:  # data this knowledge base does not read: not an error
            self.out.notes.append(f"{where}: {scheme.replace('_', ' ')} are read by no criterion of {self.kb.name}")
            return
        for item, value in items.items():
            if item not in known:
                raise RecordInvalid(f"{where}.{item}", f"unknown item of {scheme}" + _suggest(item, known))
            head, tail, name, text, sources = _item_words(self.v, scheme, item, value, where)
            self._append(Finding(f"{head}({self.p},{tail}", name, text, sources))

    def classification(self) -> None:
        for scheme, category in self.v.classification_schemes.items():
            c = getattr(self.r.classification, scheme)
            if c is None:
                continue
            where = f"classification.{scheme}"
            if c.met is not None and c.met != "unknown":
                self.add(f"classification({self.p},{scheme},{'yes' if c.met else 'no'})", scheme,
                         f"{scheme} classification criteria {'met' if c.met else 'not met'} (recorded assertion)",
                         f"{where}.met")
            self._items(category, c.items, f"{where}.items")

    def sledai(self) -> None:
        assessments = [(a.date, i, a) for i, a in enumerate(self.r.sledai2k)]
        for d, i, _ in assessments:
            self.days_before(d, f"sledai2k[{i}].date")
        if not assessments:
            return
        when, i, a = max(assessments, key=lambda t: (t[0], t[1]))
        where = f"sledai2k[{i}]"
        days = self.days_before(when, f"{where}.date")
        self.add(f"sledai2k_assessed({self.p},{days})", "sledai2k_assessed",
                 f"SLEDAI-2K assessed {when}", f"{where}.date")
        self._items("sledai2k_descriptors", a.descriptors, f"{where}.descriptors")
        if a.total is not None:
            if not 0 <= a.total <= 105:
                raise RecordInvalid(f"{where}.total", f"SLEDAI-2K total {a.total} is impossible (0-105)")
            self._total_agrees("sledai2k_descriptors", a.total, a.descriptors, f"{where}.total", "SLEDAI-2K")
            self.add(f"sledai2k_total({self.p},{a.total})", "sledai2k_total",
                     f"SLEDAI-2K total {a.total} (recorded total, {when})", f"{where}.total",
                     data=partial(_dated, when, days, value=a.total, unit="{score}"))

    def _total_agrees(self, scheme: str, total: int, items: dict, where: str, label: str) -> None:
        """A recorded total beside the items it is the sum of (the knowledge base's
        scheme_weight/3) must lie between what the items allow: present ones count, absent
        ones do not, unknown ones (and, unless the scheme is declared complete, unrecorded
        ones) may. Otherwise the record contradicts itself: a total of 12 with every
        descriptor absent is not silently read as 0 (the descriptors decide when recorded)."""
        weights = self.kb.scheme_weights.get(scheme)
        closed = scheme in self.r.complete
        if not weights or not (items or closed):
            return
        low = sum(w for i, w in weights.items() if items.get(i) is True)
        high = low + sum(w for i, w in weights.items()
                         if items.get(i) == "unknown" or (i not in items and not closed))
        if not low <= total <= high:
            allowed = f"{low}" if low == high else f"{low} to {high}"
            basis = "declared complete" if closed else "recorded"
            group = self.v.scheme_groups.get(scheme, scheme)
            raise RecordInvalid(where, f"{label} total {total} contradicts the {group} {basis} with it, which "
                                f"sum to {allowed}: correct the total or the {group}")

    def organs(self) -> None:
        self._items("organ_involvement", self.r.organ_involvement, "organ_involvement")

    def assessments(self) -> None:
        """The latest assessment of each name is read (undated ones count as made at
        screening; on one date the one listed last), except for dated occurrences
        (assessments declared ``event: true``), which are all read."""
        latest: dict[str, tuple] = {}
        values: dict[str, set] = {}
        for i, a in enumerate(self.r.assessments):
            when = a.date or self.today
            values.setdefault(a.name, set()).add(str(a.value))
            if a.name not in latest or when >= latest[a.name][0]:
                latest[a.name] = (when, i, a)
        for name, vs in values.items():
            if len(vs) > 1 and not self._event(name):
                when, i, a = latest[name]
                self.out.notes.append(f"{name}: differing assessments recorded; the latest "
                                      f"({a.value}, {when}) is read")
        for i, a in enumerate(self.r.assessments):
            if a.name in latest and latest[a.name][1] != i and not self._event(a.name):
                if a.date is not None:
                    self.days_before(a.date, f"assessments[{i}].date")
                continue
            where = f"assessments[{i}]"
            spec = self.v.assessments.get(a.name)
            if spec is None:
                raise RecordInvalid(f"{where}.name", f"unknown assessment {a.name!r}" + _suggest(a.name, self.v.assessments))
            allowed, meaning = spec.values, spec.label
            value = ("yes" if a.value else "no") if isinstance(a.value, bool) else str(a.value)
            if value not in allowed:
                raise RecordInvalid(f"{where}.value", f"{a.value!r} is not one of {', '.join(allowed)} for {a.name}")
            days = self.days_before(a.date, f"{where}.date") if a.date else 0
            self.add(f"assessment({self.p},{a.name},{value},{days})", a.name, f"{meaning}: {value}", where,
                     data=partial(_dated, a.date or self.today, days, value=value))

    def medications(self) -> None:
        steroid_total = Fraction(0)
        steroid_known = True
        steroid_sources: list[str] = []
        steroid_parts: list[dict] = []  # the data of the total: each current oral course
        weight = self._latest_weight()
        for k, med in enumerate(self.r.medications):
            where = f"medications[{k}]"
            drug = self._drug_name(med, where)
            if drug is None:
                continue
            start = -(self.today - med.start).days
            if start > 0:
                self.days_before(med.start, f"{where}.start")
            end = 0 if med.end is None or med.end >= self.today else -(self.today - med.end).days
            if end < start:
                raise RecordInvalid(f"{where}.end", f"end {med.end} is before start {med.start}")
            self.add(f"course({self.p},{k},{drug},{med.route},{start},{end})", f"course:{drug}",
                     partial(_course_text, drug, med.route, med.start, med.end, med.end_known), where)
            if med.end is not None and not med.end_known:
                self.add(f"course_end_unknown({self.p},{k})", f"course:{drug}",
                         f"{drug.replace('_', ' ')}: the day it ended is not known (after {med.end})", where)
            for j, ch in enumerate(med.dose_changes):
                day = -self.days_before(ch.date, f"{where}.dose_changes[{j}].date")
                if ch.date < med.start:
                    raise RecordInvalid(f"{where}.dose_changes[{j}].date",
                                        f"dose change on {ch.date} is before the course started ({med.start})")
                dose = exact_field(ch.dose, f"{where}.dose_changes[{j}].dose") if ch.dose is not None else None
                if ch.changed is True:
                    self.add(f"dose_change({self.p},{k},{day})", f"dose_change:{drug}",
                             partial(_dose_change_text, drug, dose, med.unit, ch.date, True),
                             f"{where}.dose_changes[{j}]")
                elif ch.changed == "unknown":
                    self.add(f"dose_change_unknown({self.p},{k},{day})", f"dose_change:{drug}",
                             partial(_dose_change_text, drug, dose, med.unit, ch.date, False),
                             f"{where}.dose_changes[{j}]")
            if drug not in self.v.glucocorticoids:
                continue
            doses = self._gc_doses(med, where)
            known = [d for d in doses if d is not None]
            if weight is not None and known:
                # With a dose not known at some time the highest is only a lower bound.
                per_kg = max(_prednisone_equivalent_mg(drug, d) for d in known) / weight[0]
                g = grid(per_kg)
                hi = g if len(known) == len(doses) else UNBOUNDED
                self.add(f"gc_dose_per_kg({self.p},{k},{g},{hi})", f"gc_dose_per_kg:{drug}",
                         partial(_per_kg_text, drug, hi == g, per_kg), where, weight[1],
                         data=partial(_per_kg_data, drug, per_kg, max(known), weight))
            if end == 0 and med.route == "oral":
                steroid_sources.append(where)
                if doses and doses[-1] is not None:
                    steroid_total += _prednisone_equivalent_mg(drug, doses[-1])
                    steroid_parts.append({"drug": drug, "dose_mg_per_day": number(doses[-1]), "field": where,
                                          "prednisone_equivalent_mg_per_day":
                                          number(_prednisone_equivalent_mg(drug, doses[-1]))})
                else:
                    steroid_known = False
        # The oral prednisone-equivalent dose at screening is a point value only when the
        # medication history is complete and every current dose is known; otherwise the
        # recorded doses are a lower bound and the upper bound is open.
        exact_total = steroid_known and "medications" in self.r.complete
        if exact_total or steroid_total > 0:
            hi = grid(steroid_total) if exact_total else UNBOUNDED
            text = partial(_steroid_text, steroid_total, exact_total, len(steroid_sources))
            data = {"value" if exact_total else "at_least": number(steroid_total), "unit": "mg/day",
                    "exact": exact_total, "days_before_screening": 0, "inputs": steroid_parts}
            self.add(f"quantity({self.p},prednisone_equivalent,{grid(steroid_total)},{hi},0)",
                     "prednisone_equivalent", text, *(steroid_sources or ["complete"]), data=data)

    def _latest_weight(self):
        """(weight in kg, field) of the latest final numeric weight (on one date the one
        listed last), or None. observations() collected them: it has checked every result's
        code and date (a date after screening, or an unknown code, stopped the record)."""
        ws = self._weights
        if not ws:
            return None
        _, i, o = max(ws, key=lambda t: (t[0], t[1]))
        kind = self.v.observations["weight"]
        value = _plausible_value(kind, o.value, o.unit)
        if value is not None:
            return value[0], f"observations[{i}]"
        return self._canonical(kind, o.value, o.unit, f"observations[{i}].unit"), f"observations[{i}]"

    def _gc_doses(self, med: Medication, where: str) -> list[Fraction | None]:
        """Daily doses in mg, in date order up to the screening date (start dose first); None
        for a time the dose is not known. [] when no dose is recorded at all."""
        if med.dose is None and all(c.dose is None for c in med.dose_changes):
            return []
        unit = med.unit or "mg"
        fast = _doses_in_mg(med, unit, self.today)
        if fast is not None:
            return fast
        try:
            factor = units.ucum_factor(unit, "mg")
        except units.UnitError as e:
            raise RecordInvalid(f"{where}.unit", str(e)) from None
        doses = [(med.start, exact_field(med.dose, f"{where}.dose") if med.dose is not None else None)]
        doses += [(c.date, exact_field(c.dose, f"{where}.dose_changes[{j}].dose") if c.dose is not None else None)
                  for j, c in enumerate(med.dose_changes) if c.date <= self.today]
        out: list[Fraction | None] = []
        for _, d in sorted(doses, key=lambda t: t[0]):
            if d is None:
                out.append(None)
                continue
            if d < 0 or d * factor > MAX_DAILY_DOSE_MG:
                raise RecordInvalid(f"{where}.dose", f"daily dose {fmt(d)} {unit} is impossible "
                                    f"(0 to {fmt(MAX_DAILY_DOSE_MG)} mg)")
            out.append(d * factor)
        return out

    def _drug_name(self, med: Medication, where: str, note: bool = True) -> str | None:
        if med.system == "vocabulary":
            if med.drug not in self.v.drugs:
                raise RecordInvalid(f"{where}.drug", f"unknown drug {med.drug!r}" + _suggest(med.drug, self.v.drugs))
            return med.drug
        name = self.v.rxnorm_to_drug.get(med.drug) if med.system == "rxnorm" else None
        name = name or self.v.drug_from_text(med.display or med.drug)
        if name is None and note:
            self.out.notes.append(f"{where}: {med.system} {med.drug} ({med.display or 'no display'}) "
                                  "is read by no criterion")
        return name


def derive(record: Record, kb: KnowledgeBase) -> Findings:
    """The findings of one record under one knowledge base's parameters.

    Raises RecordInvalid(field, reason) for content that cannot be screened: an unknown
    code or unit, an impossible value, a date after the screening date.
    """
    findings = _Builder(record, kb).build()
    findings.screening_date = record.screening_date
    findings.notes[:0] = list(record.mapping_notes)
    findings.vocabulary_only = True
    return findings

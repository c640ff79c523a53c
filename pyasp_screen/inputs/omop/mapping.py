"""One OMOP person -> one native record (stage 1; pure Python, no database library).

:func:`to_record` turns an :class:`~pyasp_screen.inputs.omop.OmopPerson` (the person's mapped
rows, already tagged with the vocabulary name each concept maps to by
:mod:`~pyasp_screen.inputs.omop.source`) into the record format of docs/records.md, then
validates it with :func:`~pyasp_screen.inputs.record.parse_record`, as every other input is.
Values keep their units: the findings stage converts them exactly (UCUM), as for FHIR and
native records. Every choice below is documented in docs/omop.md; the record's
``mapping_notes`` say what was read, what was skipped and why.

- **Screening date**: the one given, else the end of the person's latest observation period.
- **Deaths**: a person who died on or before the screening date is not screened (a RecordError
  naming death.death_date).
- **Sex**: gender_concept_id 8507 (MALE) / 8532 (FEMALE), the OMOP Gender concepts; anything
  else is unknown. **Birth date**: year, month and day of birth, else birth_datetime; a partial
  birth date is left unknown.
- **Complete lists**: diagnoses, medications, transfusions and growth factors are declared
  complete when the screening date lies in an observation period that began at least
  ``settings.complete_days`` days before it (the CDM's definition of an observation period:
  events that happened in it are recorded, the absence of a record means the event did not
  happen).
- **Observations** (measurement, observation): value_as_number with the UCUM code of
  unit_concept_id (else unit_source_value, noted); qualitative results from the name of
  value_as_concept_id (else value_as_string / value_source_value) through the vocabulary's
  qualitative values; a value with an operator other than "=" is a bound and is skipped;
  range_high / range_low are the reference range. Exact repeats are kept once.
- **Diagnoses** (condition_occurrence): one per vocabulary name, onset the earliest
  condition_start_date on or before the screening date.
- **Medications** (drug_exposure): exposures of one drug and route are one course while at
  most ``settings.drug_gap_days`` days without drug lie between the course's last day and the
  next exposure's start; the course ends on the
  last exposure's end (ongoing if that is on or after the screening date). Daily dose =
  drug_strength amount x quantity / days_supply (the OHDSI dose-era formula), in the amount's
  unit; a different daily dose in a later exposure is a dose change on its start.
- **Growth factors** (drug_exposure) and **transfusions** (procedure_occurrence): an event on
  the first day and one on the last day given on or before the screening date.
- **Assessments, SLEDAI-2K, classification items, organ involvement** (observation, local
  ``pyasp_screen`` concepts): values Yes / No / Unknown from value_as_concept_id's name,
  value_as_string or value_as_number 1 / 0.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from pyasp_screen.inputs.fhir import ROUTE_CODES, ROUTE_WORDS
from pyasp_screen.inputs.omop import Exposure, Measured, OmopPerson
from pyasp_screen.inputs.record import Loaded, RecordError, parse_record
from pyasp_screen.knowledge.vocabulary import Vocabulary, library

__all__ = ["to_record", "MALE", "FEMALE"]

#: OMOP Gender concepts (vocabulary Gender: M 8507 MALE, F 8532 FEMALE).
MALE, FEMALE = 8507, 8532
LISTS = ["diagnoses", "medications", "transfusions", "growth_factors"]
_YES = {"yes", "true", "present", "positive", "y", "1"}
_NO = {"no", "false", "absent", "negative", "n", "0"}
_UNKNOWN = {"unknown", "unk", "not known", "indeterminate"}


class _Reject(Exception):
    def __init__(self, field: str, reason: str):
        super().__init__(reason)
        self.field = field
        self.reason = reason


def to_record(p: OmopPerson, screening_date: dt.date | None = None,
              vocabulary: Vocabulary | None = None) -> Loaded | RecordError:
    """The native record of one OMOP person, validated, or the RecordError that rejects it.

    ``screening_date``: the date the person is screened at (``--screening-date``); None: the
    end of the person's latest observation period. Pure function of its arguments; never
    raises for bad content (a row that cannot be read rejects the person with a RecordError
    naming the table, the row id and the column). ``vocabulary``: the knowledge base's (default:
    the shared library's): its observation kinds and qualitative values.
    """
    builder = _Builder(p, vocabulary or library())
    try:
        data = builder.build(screening_date)
    except _Reject as e:
        return RecordError(p.file, p.patient, e.field, e.reason)
    except Exception as e:  # noqa: BLE001 - content this mapper did not foresee: one line
        return RecordError(p.file, p.patient, builder.where,
                           " ".join(f"cannot map: {type(e).__name__}: {e}".split()))
    result = parse_record(data, p.file)
    if isinstance(result, Loaded):
        return Loaded(p.file, result.record)
    return result


def _day(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def _exact(value: Any) -> Fraction | None:
    """A database number (int, Decimal, float, numeric text) as an exact fraction; None if
    absent. Raises ValueError for text that is not a number."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, (int, Decimal)):
        return Fraction(value)
    if isinstance(value, float):
        return Fraction(repr(value))
    text = str(value).strip()
    if not text:
        return None
    try:
        return Fraction(Decimal(text))
    except (InvalidOperation, ValueError):
        raise ValueError(f"{text!r} is not a number") from None


def _num(value: Fraction | int | float) -> int | float:
    if isinstance(value, (int, float)):
        return value
    return int(value) if value.denominator == 1 and abs(value) < 2**53 else float(value)


def _number(value: Any) -> int | float | None:
    """A database number as the record holds it (int, or the float nearest the decimal);
    None if absent. Raises ValueError for text that is not a number."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and abs(value) < 2**53 else float(value)
    return _num(_exact(value)) if _exact(value) is not None else None


def _tristate(m: Measured) -> bool | str | None:
    """Yes / No / Unknown from a row's value; the raw text when it is none of them (the
    record's validation then names it); None when the row has no value."""
    for text in (m.value_concept, m.value_text):
        if text is not None and str(text).strip():
            low = str(text).strip().lower()
            if low in _YES:
                return True
            if low in _NO:
                return False
            if low in _UNKNOWN:
                return "unknown"
            return str(text).strip()
    if m.value_number is not None:
        n = _exact(m.value_number)
        if n == 1:
            return True
        if n == 0:
            return False
        return str(m.value_number)
    return None


class _Builder:
    def __init__(self, p: OmopPerson, vocabulary: Vocabulary):
        self.p = p
        self.v = vocabulary
        self.notes: list[str] = []
        self.where: str | None = None
        self.later: Counter = Counter()

    def build(self, screening_date: dt.date | None) -> dict:
        p = self.p
        today = self.screening_date(screening_date)
        self.today = today
        for d in p.deaths:
            d = _day(d)
            if d is not None and d <= today:
                raise _Reject("death.death_date", f"died on {d}, on or before the screening date {today}:"
                              " not screened")
        record: dict[str, Any] = {"id": p.patient, "screening_date": today.isoformat(),
                                  "source": f"OMOP CDM {p.file}, person_id {p.patient}"}
        record["sex"] = self.sex()
        birth = self.birth_date()
        if birth is not None:
            record["birth_date"] = birth.isoformat()
        record["complete"] = self.complete()
        record["observations"] = self.observations()
        record.update(self.scored())
        record["diagnoses"] = self.diagnoses()
        record["medications"], record["growth_factors"] = self.drugs()
        record["transfusions"] = self.transfusions()
        if self.later:
            self.notes.append("dated after the screening date, not read: "
                              + ", ".join(f"{k} x{v}" for k, v in sorted(self.later.items())))
        self.notes.append(self.unmapped_note())
        record["mapping_notes"] = self.notes
        return record

    # -- person ----------------------------------------------------------------------------------
    def screening_date(self, given: dt.date | None) -> dt.date:
        if given is not None:
            self.notes.append(f"screening date given: {given.isoformat()}")
            return given
        ends = [e for e in (_day(end) for _, end in self.p.periods) if e is not None]
        if not ends:
            raise _Reject("observation_period", "no observation period to take the screening date from:"
                          " give --screening-date")
        today = max(ends)
        self.notes.append(f"screening date taken as the end of the latest observation period: {today.isoformat()}")
        return today

    def sex(self) -> str:
        g = self.p.gender_concept_id
        try:
            g = int(g) if g is not None else None
        except (TypeError, ValueError):
            g = None
        if g == FEMALE:
            return "female"
        if g == MALE:
            return "male"
        self.notes.append(f"gender_concept_id {self.p.gender_concept_id} is neither 8507 (MALE) nor 8532 (FEMALE):"
                          " sex unknown")
        return "unknown"

    def birth_date(self) -> dt.date | None:
        year, month, day, when = self.p.birth
        try:
            if year is not None and month is not None and day is not None:
                return dt.date(int(year), int(month), int(day))
        except (TypeError, ValueError):
            pass
        d = _day(when)
        if d is not None:
            return d
        self.notes.append(f"birth date partial (year {year}, month {month}, day {day}, no birth_datetime):"
                          " age unknown")
        return None

    def complete(self) -> list[str]:
        days = self.p.settings.complete_days
        periods = sorted((s, e) for s, e in ((_day(a), _day(b)) for a, b in self.p.periods) if s is not None)
        inside = [(s, e) for s, e in periods if s <= self.today and (e is None or self.today <= e)]
        if days is None:
            self.notes.append("lists not declared complete (--omop-complete-days never)")
            return []
        if not inside:
            self.notes.append("lists not declared complete: the screening date lies in no observation period"
                              + (f" ({', '.join(f'{s}..{e}' for s, e in periods)})" if periods else ""))
            return []
        start, end = inside[0]
        observed = (self.today - start).days
        if observed < days:
            self.notes.append(f"lists not declared complete: the observation period {start}..{end} began "
                              f"{observed} days before the screening date (fewer than {days})")
            return []
        self.notes.append(f"diagnoses, medications, transfusions and growth factors declared complete: the "
                          f"screening date lies in the observation period {start}..{end}, which began "
                          f"{observed} days before it (at least {days})")
        return list(LISTS)

    # -- observations ------------------------------------------------------------------------------
    def _dated(self, what: str, d: Any) -> dt.date | None:
        day = _day(d)
        if day is None:
            return None
        if day > self.today:
            self.later[what] += 1
            return None
        return day

    def observations(self) -> list[dict]:
        out: list[dict] = []
        seen: set = set()
        skipped: Counter = Counter()
        per_name: dict[str, Counter] = defaultdict(Counter)
        repeats: Counter = Counter()
        for m in self.p.measured:
            if m.target.kind != "observation":
                continue
            self.where = f"{m.table} {m.row_id}"
            name = m.target.name
            kind = self.v.observations[name]
            day = self._dated(m.table, m.date)
            if day is None:
                if _day(m.date) is None:
                    skipped[f"{name}: no date"] += 1
                continue
            item: dict[str, Any] = {"code": name, "date": day.isoformat(),
                                    "display": f"{m.concept_name or name} ({m.table}_id {m.row_id})"}
            if kind.qualitative:
                found = None
                for text in (m.value_concept, m.value_text):
                    if text is not None and str(text).strip():
                        found = self.v.qualitative_values.get(" ".join(str(text).lower().split()))
                        if found is None:
                            skipped[f"{name}: result {str(text).strip()!r} not read as positive/negative"] += 1
                        break
                else:
                    skipped[f"{name}: no result"] += 1
                if found is None:
                    continue
                item["value"] = found
            else:
                if m.operator not in (None, "=", "0"):
                    skipped[f"{name}: value with operator {m.operator!r} is a bound, not a result"] += 1
                    continue
                try:
                    value = _number(m.value_number)
                except ValueError as e:
                    raise _Reject(f"{m.table} {m.row_id}.value_as_number", str(e)) from None
                if value is None:
                    skipped[f"{name}: no value_as_number"] += 1
                    continue
                item["value"] = value
                unit = m.unit_code
                if unit is None and m.unit_source:
                    unit = m.unit_source.strip()
                    skipped[f"{name}: unit taken from unit_source_value {unit!r} (unit_concept_id "
                            f"{m.unit_concept or 0} is not a UCUM concept)"] += 1
                if unit is not None:
                    item["unit"] = unit
                # Named by its row: a result whose unit cannot be read (or whose value is
                # impossible) is then set aside with a note, and the person is still screened,
                # as for FHIR (docs/omop.md).
                item["source"] = f"{m.table} {m.row_id}"
                ref = self.reference_range(m, unit)
                if ref:
                    item["reference_range"] = ref
            ref = item.get("reference_range")
            key = (name, item["date"], item.get("value"), item.get("unit"), tuple(ref.items()) if ref else None)
            if key in seen:
                repeats[name] += 1
                continue
            seen.add(key)
            per_name[name][m.target.how] += 1
            out.append(item)
        self.where = None
        latest: dict[str, str] = {}
        for o in out:
            latest[o["code"]] = max(latest.get(o["code"], ""), o["date"])
        for name in sorted(per_name, key=list(self.v.observations).index):
            n = sum(per_name[name].values())
            self.notes.append(f"{name}: {n} result{'s' * (n != 1)} from "
                              f"{', '.join(f'{h} ({k})' for h, k in per_name[name].most_common())}; "
                              f"latest {latest[name]}")
        for name, n in repeats.items():
            self.notes.append(f"{name}: {n} exact repeat{'s' * (n != 1)} (same day, value and unit) counted once")
        for what, n in sorted(skipped.items()):
            self.notes.append(f"skipped {what}" + (f" (x{n})" if n > 1 else ""))
        return out

    def reference_range(self, m: Measured, unit: str | None) -> dict | None:
        out: dict[str, Any] = {}
        for key, raw in (("low", m.range_low), ("high", m.range_high)):
            try:
                v = _number(raw)
            except ValueError as e:
                raise _Reject(f"{m.table} {m.row_id}.range_{key}", str(e)) from None
            if v is not None:
                out[key] = v
        if out and unit is not None:
            out["unit"] = unit
        return out or None

    # -- assessments, scores, items ----------------------------------------------------------------
    def scored(self) -> dict:
        assessments: list[dict] = []
        sledai: dict[dt.date, dict] = {}
        schemes: dict[str, dict] = {}
        organs: dict[str, tuple[dt.date, Any]] = {}
        skipped: Counter = Counter()
        for m in self.p.measured:
            t = m.target
            if t.kind == "observation":
                continue
            self.where = f"{m.table} {m.row_id}"
            day = self._dated(m.table, m.date)
            if day is None:
                if _day(m.date) is None:
                    skipped[f"{t.how}: no date"] += 1
                continue
            if t.kind == "sledai2k" and t.name == "total":
                try:
                    total = _exact(m.value_number)
                except ValueError as e:
                    raise _Reject(f"{m.table} {m.row_id}.value_as_number", str(e)) from None
                if total is None:
                    skipped[f"{t.how}: no value_as_number"] += 1
                    continue
                if total.denominator != 1:
                    raise _Reject(f"{m.table} {m.row_id}.value_as_number", f"SLEDAI-2K total {float(total)} is not a"
                                  " whole number")
                sledai.setdefault(day, {"date": day.isoformat(), "descriptors": {}})["total"] = int(total)
                continue
            value = _tristate(m)
            if value is None:
                skipped[f"{t.how}: no value"] += 1
                continue
            if t.kind == "assessment":
                if value == "unknown":
                    skipped[f"{t.how}: recorded unknown (nothing assessed)"] += 1
                    continue
                if isinstance(value, str):
                    value = value.lower()
                assessments.append({"name": t.name, "value": value, "date": day.isoformat()})
            elif t.kind == "sledai2k":
                sledai.setdefault(day, {"date": day.isoformat(), "descriptors": {}})["descriptors"][t.name] = value
            elif t.kind == "organ":
                if t.name not in organs or organs[t.name][0] <= day:
                    organs[t.name] = (day, value)
            else:  # item / classification
                scheme = schemes.setdefault(t.scheme if t.kind == "classification" else
                                            t.scheme.removesuffix("_items"), {"items": {}, "_dates": {}})
                key = "met" if t.kind == "classification" else t.name
                if key not in scheme["_dates"] or scheme["_dates"][key] <= day:
                    scheme["_dates"][key] = day
                    if key == "met":
                        scheme["met"] = value
                    else:
                        scheme["items"][key] = value
        self.where = None
        out: dict[str, Any] = {"assessments": assessments, "sledai2k": [sledai[d] for d in sorted(sledai)],
                               "organ_involvement": {k: v for k, (_, v) in sorted(organs.items())}}
        classification = {}
        for scheme, spec in schemes.items():
            dates = spec.pop("_dates")
            entry = {k: v for k, v in spec.items() if k != "items" or v}
            entry["date"] = max(dates.values()).isoformat()
            classification[scheme] = entry
        if classification:
            out["classification"] = classification
        counts = [f"{len(assessments)} assessment{'s' * (len(assessments) != 1)}"] if assessments else []
        if sledai:
            counts.append(f"{len(sledai)} SLEDAI-2K assessment{'s' * (len(sledai) != 1)}")
        if classification:
            counts.append("classification " + ", ".join(sorted(classification)))
        if organs:
            counts.append(f"organ involvement ({', '.join(sorted(organs))})")
        if counts:
            self.notes.append("from local pyasp_screen concepts: " + "; ".join(counts))
        for what, n in sorted(skipped.items()):
            self.notes.append(f"skipped {what}" + (f" (x{n})" if n > 1 else ""))
        return out

    # -- diagnoses ---------------------------------------------------------------------------------
    def diagnoses(self) -> list[dict]:
        first: dict[str, tuple[dt.date, Any, str]] = {}
        rows: Counter = Counter()
        hows: dict[str, set] = defaultdict(set)
        undated: Counter = Counter()
        for c in self.p.conditions:
            day = self._dated("condition_occurrence", c.start)
            if day is None:
                if _day(c.start) is None:
                    undated[c.target.name] += 1
                continue
            name = c.target.name
            rows[name] += 1
            hows[name].add(c.target.how)
            if name not in first or day < first[name][0]:
                first[name] = (day, c.row_id, c.concept_name or name)
        out = []
        for name in self.v.diagnoses:
            if name in first:
                day, row_id, display = first[name]
                out.append({"code": name, "onset": day.isoformat(),
                            "display": f"{display} (condition_occurrence_id {row_id})"})
                self.notes.append(f"{name}: {rows[name]} condition row{'s' * (rows[name] != 1)} from "
                                  f"{'; '.join(sorted(hows[name]))}; onset {day} (the earliest)")
        for name, n in undated.items():
            self.notes.append(f"skipped {name}: {n} condition row{'s' * (n != 1)} without a start date")
        return out

    # -- drugs ------------------------------------------------------------------------------------
    def drugs(self) -> tuple[list[dict], list[dict]]:
        gap = self.p.settings.drug_gap_days
        by_key: dict[tuple[str, str], list] = defaultdict(list)
        growth: list[dict] = []
        notes: list[str] = []
        for e in self.p.exposures:
            self.where = f"drug_exposure {e.row_id}"
            start = self._dated("drug_exposure", e.start)
            if start is None:
                if _day(e.start) is None:
                    notes.append(f"drug_exposure {e.row_id} ({e.target.name}): no start date, not read")
                continue
            end = self.exposure_end(e, start)
            if e.target.kind == "growth_factor":
                last = min(end, self.today)
                growth.append({"date": start.isoformat(), "drug": e.target.name})
                if last > start:
                    growth.append({"date": last.isoformat(), "drug": e.target.name})
                continue
            route, how = self.route(e)
            if how:
                notes.append(f"drug_exposure {e.row_id} ({e.target.name}): route {route} {how}")
            dose, unit, why = self.daily_dose(e)
            by_key[e.target.name, route].append((start, end, dose, unit, why, e))
        self.where = None
        courses = []
        for (drug, route), exposures in by_key.items():
            exposures.sort(key=lambda x: (x[0], str(x[5].row_id)))
            course = None
            for start, end, dose, unit, why, e in exposures:
                if course is not None and start <= course["_end"] + dt.timedelta(days=gap + 1) and \
                        (dose is None or course["_unit"] in (None, unit)):
                    course["_end"] = max(course["_end"], end)
                    course["_n"] += 1
                    if dose is not None:
                        if course["_last"] is not None and dose != course["_last"]:
                            course["dose_changes"].append({"date": start.isoformat(), "dose": _num(dose)})
                        if course["_last"] is None and course.get("dose") is None:
                            course["_unknown_first"] = True
                        course["_last"] = dose
                        course["_unit"] = unit
                    else:
                        course["_unknown"].append(f"{e.row_id} ({why})")
                    continue
                course = {"drug": drug, "route": route, "start": start.isoformat(), "_end": end, "_n": 1,
                          "_last": dose, "_unit": unit if dose is not None else None, "dose_changes": [],
                          "display": e.drug_name or drug, "_unknown": [] if dose is not None else [f"{e.row_id} ({why})"],
                          "_how": e.target.how}
                if dose is not None:
                    course["dose"], course["unit"] = _num(dose), unit
                courses.append(course)
        out = []
        for c in sorted(courses, key=lambda c: (c["start"], c["drug"], c["route"])):
            end = c.pop("_end")
            c["end"] = None if end >= self.today else end.isoformat()
            n, unknown, how = c.pop("_n"), c.pop("_unknown"), c.pop("_how")
            c.pop("_last"), c.pop("_unit"), c.pop("_unknown_first", None)
            dose = (f"{_show(c['dose'])} {c['unit']}/day" if "dose" in c else "dose not known")
            changes = "; ".join(f"{ch['dose']} from {ch['date']}" for ch in c["dose_changes"])
            notes.append(f"{c['drug']} ({c['route']}) from {how}: {n} exposure{'s' * (n != 1)}, {c['start']} to "
                         f"{c['end'] or 'screening (ongoing)'}, {dose}{'; changes ' + changes if changes else ''}"
                         + (f"; daily dose unknown in exposure {', '.join(unknown)}" if unknown else ""))
            out.append(c)
        if growth:
            notes.append("growth factors: " + ", ".join(f"{g['drug']} {g['date']}" for g in growth))
        self.notes.extend(notes)
        return out, growth

    def exposure_end(self, e: Exposure, start: dt.date) -> dt.date:
        """drug_exposure_end_date, else start + days_supply - 1, else the start day (the OHDSI
        era-building convention)."""
        end = _day(e.end)
        if end is None:
            try:
                days = _exact(e.days_supply)
            except ValueError:
                days = None
            end = start + dt.timedelta(days=int(days) - 1) if days is not None and days >= 1 else start
        return max(end, start)

    def route(self, e: Exposure) -> tuple[str, str]:
        if e.route_code and e.route_code.upper() in ROUTE_CODES:
            return ROUTE_CODES[e.route_code.upper()], ""
        for text in (e.route_name, e.drug_name):
            low = (text or "").lower()
            for word, route in ROUTE_WORDS:
                if word in low.replace("/", " ").split() or (" " in word and word in low):
                    return route, "(from the drug's name)" if text is e.drug_name else "(from the route's name)"
        return "other", "(route not stated)"

    def daily_dose(self, e: Exposure) -> tuple[Fraction | None, str | None, str]:
        """(daily dose, its UCUM unit, '') or (None, None, why not): drug_strength amount x
        quantity / days_supply."""
        if e.strength_kind == "concentration":
            return None, None, "strength is a concentration"
        if e.strength_kind != "amount" or e.amount_value is None:
            return None, None, "no drug_strength amount"
        if not e.amount_unit:
            return None, None, "drug_strength amount unit is not a UCUM concept"
        try:
            amount, quantity, days = _exact(e.amount_value), _exact(e.quantity), _exact(e.days_supply)
        except ValueError as err:
            return None, None, str(err)
        if not quantity or quantity <= 0:
            return None, None, "no quantity"
        if not days or days <= 0:
            return None, None, "no days_supply"
        return amount * quantity / days, e.amount_unit, ""

    # -- transfusions -------------------------------------------------------------------------------
    def transfusions(self) -> list[dict]:
        out = []
        for pr in self.p.procedures:
            day = self._dated("procedure_occurrence", pr.date)
            if day is None:
                continue
            product = pr.concept_name or "transfusion"
            out.append({"date": day.isoformat(), "product": product})
            last = _day(pr.end)
            if last is not None and last > day:
                last = min(last, self.today)
                if last > day:
                    out.append({"date": last.isoformat(), "product": product})
        if out:
            self.notes.append("transfusions: " + ", ".join(f"{t['product']} {t['date']}" for t in out))
        return out

    def unmapped_note(self) -> str:
        if self.p.unmapped is None:
            return ("rows of concepts read by no criterion are not read; they are counted per concept for the "
                    "whole database (pyasp-screen omop URL)")
        if not self.p.unmapped:
            return "every row of this person maps to a finding"
        n = sum(r[5] for r in self.p.unmapped)
        shown = sorted(self.p.unmapped, key=lambda r: -r[5])[:12]
        text = ", ".join(f"{r[0]} {r[1]} {r[2] or ''} {r[3] or ''} {r[4] or '(no concept row)'!r} x{r[5]}"
                         .replace("  ", " ") for r in shown)
        more = len(self.p.unmapped) - len(shown)
        return (f"{n} row{'s' * (n != 1)} of {len(self.p.unmapped)} concept{'s' * (len(self.p.unmapped) != 1)} read by "
                f"no criterion: {text}" + (f" and {more} more" if more > 0 else ""))


def _show(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)

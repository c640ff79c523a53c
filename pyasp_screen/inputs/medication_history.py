"""A medication history read the way a pharmacist reads it: orders, statements, dispenses and
administrations of one drug become treatment courses (stage 1, FHIR input).

An EHR does not record courses. It records *orders* (MedicationRequest: written, renewed,
completed, stopped), what the patient says they take (MedicationStatement), what the pharmacy
handed over (MedicationDispense, with a days' supply) and what a nurse gave
(MedicationAdministration). :func:`build_courses` turns the :class:`Order` s of one patient into
the record's courses (``medications[]`` of docs/records.md) and notes saying how:

Coverage of one order (the days it says the drug was taken)
    From ``start`` (the first day: ``timing.repeat.boundsPeriod.start``, else ``authoredOn`` /
    ``effective[x]`` / ``whenHandedOver``) to its stated ``end`` when one is given
    (``boundsPeriod.end``, start + ``boundsDuration``, ``dispenseRequest.validityPeriod.end``,
    start + ``expectedSupplyDuration`` x (1 + ``numberOfRepeatsAllowed``), ``effectivePeriod.end``,
    handed over + ``daysSupply``). An ``active`` order or statement covers up to the screening
    date. A ``completed`` or ``stopped`` one ended on its stated end when that is on or before
    the screening date; otherwise it ended on a day that is not known, after the last day it is
    known to have been taken (then ``end`` is that day and ``end_known`` is false).

Renewals are one course
    Orders of one drug by one route are one course while each starts no later than
    ``renewal_gap_days`` (default :data:`RENEWAL_GAP_DAYS`) after the last day an order of the
    course was meant to cover (its stated end, even a planned end after the screening date:
    an order renewed before it ran out was replaced by the renewal; else its first day). A renewal at the same daily dose changes nothing; a renewal at another
    dose is a dose change on its first day; one whose daily dose cannot be computed makes the
    dose unknown from that day (it *may* have changed: ``changed: unknown``), never a guessed
    dose. A renewal that states the dose after orders that did not (unknown -> known) is also a
    possible change. Dispenses and administrations without a dose instruction say the drug was
    taken, not at what dose, and leave the dose as it is.

Several courses of one drug at once (two active orders of different doses) are kept as they
are, with a note: they may be a dose split or a duplicate, which the record cannot tell.

Pure functions of their arguments; dates are ``datetime.date``; doses are exact Fractions in
mg/day. Source for the reading: the FHIR R4 Medication* resources (https://hl7.org/fhir/R4/
medicationrequest.html, medicationstatement.html, medicationdispense.html,
medicationadministration.html); the interpretation choices are listed in docs/fhir.md.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from fractions import Fraction

__all__ = ["Order", "RENEWAL_GAP_DAYS", "build_courses"]

#: Longest gap (days) between the last day a course is known to be covered and the next order
#: of the drug for that order to continue the course (a renewal) rather than start a new one:
#: a 90-day supply, the longest usual dispensing, plus 10 days of lateness (docs/fhir.md).
RENEWAL_GAP_DAYS = 100


@dataclass(frozen=True)
class Order:
    """One resource saying a drug was (to be) taken.

    source: "MedicationRequest/abc" (what a note names); kind: request | statement | dispense
    | administration; drug: vocabulary name; route: oral | iv | sc | im | topical | other;
    start: first day; end: last day stated (None: not stated); ongoing: True for an active
    order or statement; dose: exact mg/day or None; dose_stated: False when the resource says
    nothing about the dose (no dosage instruction: a dispense or administration then leaves the
    course's dose as it is); dose_note: why the dose is not known; display: the drug as written.
    """

    source: str
    kind: str
    drug: str
    route: str
    start: dt.date
    end: dt.date | None = None
    ongoing: bool = False
    dose: Fraction | None = None
    dose_stated: bool = True
    dose_note: str = ""
    display: str | None = None
    route_stated: bool = True


@dataclass
class _Course:
    drug: str
    route: str
    start: dt.date
    route_stated: bool = True
    orders: list[Order] = field(default_factory=list)
    covered: dt.date | None = None      # last day known covered (up to the screening date)
    reach: dt.date | None = None        # last day any order of it was meant to cover
    ongoing: bool = False
    dose: Fraction | None = None
    dose_known: bool = False
    start_dose: Fraction | None = None
    changes: list[dict] = field(default_factory=list)


def _fmt(x: Fraction | None) -> str:
    if x is None:
        return "unknown"
    return f"{float(x):g}"


def build_courses(orders: list[Order], today: dt.date,
                  renewal_gap_days: int = RENEWAL_GAP_DAYS) -> tuple[list[dict], list[str]]:
    """The courses of ``orders`` as record medication entries, and notes for people.

    Each course: ``{"drug", "route", "start", "end", "end_known", "dose", "unit",
    "dose_changes": [{"date", "dose", "changed"}], "display", "sources"}`` with ISO dates; ``end``
    None while ongoing at ``today`` (the screening date); ``dose`` None when unknown. Orders
    starting after ``today`` are left out (and named in a note).
    """
    notes: list[str] = []
    later = [o for o in orders if o.start > today]
    for o in later:
        notes.append(f"{o.source} {o.drug} starts {o.start}, after the screening date: not read")
    groups: dict[str, list[Order]] = {}
    for o in orders:
        if o.start <= today:
            groups.setdefault(o.drug, []).append(o)
    courses: list[_Course] = []
    for drug, group in groups.items():
        group.sort(key=lambda o: (o.start, o.kind != "request", o.source))
        open_: list[_Course] = []
        for o in group:
            # An order continues the latest course of the drug by the same route (an order
            # that states no route continues one that does, and the other way round).
            fits = [c for c in open_ if (c.route == o.route or not o.route_stated or not c.route_stated)
                    and _continues(c, o, today, renewal_gap_days)]
            if fits:
                c = max(fits, key=lambda c: (c.reach, c.start))
                if not c.route_stated and o.route_stated:
                    c.route, c.route_stated = o.route, True
            else:
                c = _Course(drug, o.route, o.start, o.route_stated)
                courses.append(c)
                open_.append(c)
            _extend(c, o, today)
    courses.sort(key=lambda c: (c.start, c.drug))
    out = []
    by_drug: dict[str, list[_Course]] = {}
    for c in courses:
        by_drug.setdefault(c.drug, []).append(c)
        entry = _entry(c, today)
        out.append(entry)
        notes.append(_describe(c, entry))
    for drug, cs in by_drug.items():
        ongoing = [c for c in cs if c.ongoing]
        if len(ongoing) > 1:
            notes.append(f"{drug}: {len(ongoing)} courses ongoing at once ("
                         + ", ".join(f"{c.route} from {c.start}, {_fmt(c.dose)} mg/day" for c in ongoing)
                         + "): kept apart; a split dose or a duplicate order cannot be told apart")
    return out, notes


def _covered_until(o: Order, today: dt.date) -> dt.date:
    """The last day an order is known to cover (up to the screening date)."""
    if o.ongoing and (o.end is None or o.end >= today):
        return today
    if o.end is not None and o.end <= today:
        return o.end
    return o.start  # ended on a day not stated (or stated after the screening date)


def _continues(c: _Course, o: Order, today: dt.date, gap: int) -> bool:
    """A renewal: the order starts while the course is ongoing, or within ``gap`` days of the
    last day an order of it was meant to cover (its stated end, even one after the screening
    date: an order renewed before it ran out was replaced by the renewal; else its start)."""
    if c.ongoing:
        return True
    return (o.start - c.reach).days <= gap


def _extend(c: _Course, o: Order, today: dt.date) -> None:
    first = not c.orders
    c.orders.append(o)
    until = _covered_until(o, today)
    c.covered = until if c.covered is None else max(c.covered, until)
    meant = o.end if o.end is not None and o.end >= o.start else o.start
    c.reach = meant if c.reach is None else max(c.reach, meant)
    c.ongoing = c.ongoing or (o.ongoing and (o.end is None or o.end >= today))
    # The dose: requests and statements say it (or fail to); dispenses and administrations
    # without a dose instruction say nothing about it.
    if not o.dose_stated and o.kind in ("dispense", "administration"):
        return
    if o.kind == "administration":
        return  # a dose per administration is not a daily dose
    if first:
        c.dose, c.dose_known, c.start_dose = o.dose, o.dose is not None, o.dose
        return
    if o.dose is None:
        if c.dose_known:
            c.changes.append({"date": o.start, "dose": None, "changed": "unknown", "source": o.source,
                              "why": o.dose_note or "dose not computable"})
            c.dose, c.dose_known = None, False
        return
    if not c.dose_known:
        c.changes.append({"date": o.start, "dose": o.dose, "changed": "unknown", "source": o.source,
                          "why": "the dose before was not known"})
    elif o.dose != c.dose:
        c.changes.append({"date": o.start, "dose": o.dose, "changed": True, "source": o.source,
                          "why": f"{_fmt(c.dose)} -> {_fmt(o.dose)} mg/day"})
    c.dose, c.dose_known = o.dose, True


def _entry(c: _Course, today: dt.date) -> dict:
    end = None
    end_known = True
    if not c.ongoing:
        last = max(c.orders, key=lambda o: _covered_until(o, today))
        end = c.covered
        # Known only when the order that covers longest states its end (on or before today).
        end_known = last.end is not None and last.end <= today and (
            last.kind in ("request", "statement", "dispense"))
    start_dose = c.start_dose
    changes = c.changes
    display = next((o.display for o in reversed(c.orders) if o.display), None)
    entry = {"drug": c.drug, "route": c.route, "start": c.start.isoformat(),
             "end": end.isoformat() if end else None, "end_known": end_known,
             "dose": _number(start_dose),
             "dose_changes": [{"date": ch["date"].isoformat(), "dose": _number(ch["dose"]),
                               "changed": ch["changed"]} for ch in changes],
             "display": display, "sources": [o.source for o in c.orders]}
    if start_dose is not None or any(ch["dose"] is not None for ch in changes):
        entry["unit"] = "mg"
    entry["_why"] = [f"{ch['date']} {ch['why']} ({ch['source']})" for ch in changes]
    return entry


def _number(x: Fraction | None) -> float | int | None:
    if x is None:
        return None
    f = float(x)
    return int(f) if f.is_integer() else f


def _describe(c: _Course, e: dict) -> str:
    kinds: dict[str, int] = {}
    for o in c.orders:
        kinds[o.kind] = kinds.get(o.kind, 0) + 1
    what = ", ".join(f"{n} {k}{'s' * (n != 1)}" for k, n in kinds.items())
    if e["end"] is None:
        span = f"from {e['start']}, ongoing"
    elif e["end_known"]:
        span = f"{e['start']} to {e['end']}"
    else:
        span = f"from {e['start']}, ended on an unknown day after {e['end']}"
    dose = f"{_fmt(c.start_dose)} mg/day"
    if c.start_dose is None:
        why = next((o.dose_note for o in c.orders if o.dose_note), "")
        dose = "dose unknown" + (f" ({why})" if why else "")
    changes = "; ".join(e["_why"])
    return (f"course {c.drug} {c.route} {span}, {dose}: {what} ({', '.join(o.source for o in c.orders[:4])}"
            f"{' ...' if len(c.orders) > 4 else ''})" + (f"; dose changes: {changes}" if changes else ""))

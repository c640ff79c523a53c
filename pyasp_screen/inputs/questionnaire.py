"""What EHRs do not code, as FHIR Questionnaire items and QuestionnaireResponse answers.

A knowledge base reads findings no EHR codes: SLEDAI-2K descriptors, classification-criteria
items (EULAR/ACR 2019, ACR/EULAR 2013), organ involvement, clinicians' assessments, tests with
no LOINC code, diagnoses with no code, and a coordinator's word that a list (medications,
transfusions, diagnoses ...) is complete. ``pyasp-screen questionnaire`` writes a FHIR R4
Questionnaire holding one item for each of them (pyasp_screen/outputs/questionnaire.py); a
coordinator fills it in, and a QuestionnaireResponse to it inside a Bundle or a Bulk export
is read here into the record's fields.

Items (``linkId``; answer; record field)
    ``complete.<category>``           boolean            ``complete``
    ``assessment.<name>``             coding (values)    ``assessments`` (dated ``authored``)
    ``sledai2k.date`` / ``.total``    date / integer     ``sledai2k[]``
    ``sledai2k.<descriptor>``         Y / N / UNK        ``sledai2k[].descriptors``
    ``classification.<scheme>.met``   Y / N / UNK        ``classification.<scheme>.met``
    ``classification.<scheme>.item.<item>``  Y / N / UNK ``classification.<scheme>.items``
    ``organ.<organ>``                 Y / N / UNK        ``organ_involvement``
    ``observation.<name>`` (``.date``) quantity or coding ``observations`` (source: the response)
    ``diagnosis.<name>`` (``.onset``) Y / N / UNK        ``diagnoses``
    ``patient.birth_date`` / ``patient.sex``             ``birth_date`` / ``sex``
    ``event.<transfusion|growth_factor>.date``  date     ``transfusions`` / ``growth_factors``

Y / N / UNK are HL7 v2 table 0136 (``http://terminology.hl7.org/CodeSystem/v2-0136``) yes and
no and the v3 NullFlavor UNK (unknown); ``valueBoolean`` and the words yes / no / unknown are
read too. An answer is dated by the response's ``authored`` day (else the screening date). A
response to another questionnaire (``questionnaire`` not starting with :data:`CANONICAL`) is
not read; an item this reader does not know, or an answer it cannot read, is named in a note
and not read (the rest of the response is).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from pyasp_screen.inputs import fhir_types as ft
from pyasp_screen.knowledge.vocabulary import Vocabulary, library

#: Canonical URL prefix of the Questionnaires pyasp-screen writes ("<CANONICAL>/<kb name>").
CANONICAL = "urn:pyasp-screen:questionnaire"

YES_NO = "http://terminology.hl7.org/CodeSystem/v2-0136"
NULL_FLAVOR = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"
#: The code system of assessment values that are not yes / no (ssc_subtype: diffuse ...).
VALUES = f"{CANONICAL}/values"

SCHEME_CATEGORY = {"sledai2k": "sledai2k_descriptors", "organ": "organ_involvement"}


def tristate(answer: ft.Answer) -> bool | str | None:
    """True / False / "unknown" from a Y / N / UNK coding, a boolean or a word; None if none."""
    if answer.valueBoolean is not None:
        return answer.valueBoolean
    code = None
    if answer.valueCoding is not None:
        code = answer.valueCoding.code
    elif answer.valueString is not None:
        code = answer.valueString
    if code is None:
        return None
    word = code.strip().lower()
    if word in ("y", "yes", "true"):
        return True
    if word in ("n", "no", "false"):
        return False
    if word in ("unk", "unknown", "asku", "nask"):
        return "unknown"
    return None


def _word(answer: ft.Answer) -> str | None:
    if answer.valueCoding is not None and answer.valueCoding.code:
        code = answer.valueCoding.code
        return {"Y": "yes", "N": "no"}.get(code, code)
    if answer.valueBoolean is not None:
        return "yes" if answer.valueBoolean else "no"
    if answer.valueString is not None:
        return answer.valueString.strip().lower()
    return None


def _date(answer: ft.Answer) -> dt.date | None:
    text = answer.valueDate or answer.valueDateTime
    ft.check_date(text)
    return ft.day(text)


def _flat(items: list[ft.ResponseItem]) -> list[ft.ResponseItem]:
    """Every item of a response, nested ones included (groups, and items under answers)."""
    out = []
    stack = list(reversed(items))
    while stack:
        it = stack.pop()
        out.append(it)
        nested = list(it.item)
        for a in it.answer:
            nested += a.item
        stack += reversed(nested)
    return out


class Answers:
    """What the QuestionnaireResponses of one patient say, as record fields (applied once the
    screening date is known)."""

    def __init__(self, vocabulary: Vocabulary | None = None) -> None:
        self.v = vocabulary or library()
        self.notes: list[str] = []
        self.complete: set[str] = set()
        self.assessments: list[dict] = []
        self.sledai: list[dict] = []
        self.classification: dict[str, dict] = {}
        self.organs: dict[str, Any] = {}
        self.observations: list[dict] = []
        self.diagnoses: list[dict] = []
        self.patient: dict[str, Any] = {}
        self.events: dict[str, list[dict]] = {"transfusions": [], "growth_factors": []}
        self.read_count: Counter = Counter()
        self._dated: list[tuple[dt.date | None, str, Any]] = []

    def organ_from_condition(self, organ: str, value: bool) -> None:
        self.organs.setdefault(organ, value)

    def read(self, name: str, r: ft.QuestionnaireResponse, authored: dt.date | None) -> None:
        if r.questionnaire and not r.questionnaire.startswith(CANONICAL):
            self.notes.append(f"{name} answers {r.questionnaire}, not a pyasp-screen Questionnaire: not read")
            return
        if r.status in ("entered-in-error", "stopped"):
            self.notes.append(f"{name}: status {r.status}: not read")
            return
        when = authored.isoformat() if authored else None
        items = {it.linkId: it for it in _flat(r.item)}
        sledai: dict[str, Any] = {}
        dates: dict[str, dt.date | None] = {}
        for link, it in items.items():
            if link.endswith((".date", ".onset")):
                a = it.answer[0] if it.answer else None
                try:
                    dates[link] = _date(a) if a is not None else None
                except ft.BadDate as e:
                    self.notes.append(f"{name} item {link}: {e}: not read")
        unread: list[str] = []
        for link, it in items.items():
            if not it.answer or link.endswith((".date", ".onset")):
                continue
            a = it.answer[0]
            parts = link.split(".")
            try:
                ok = self._item(name, parts, a, when, dates, sledai)
            except ValueError as e:
                self.notes.append(f"{name} item {link}: {e}: not read")
                continue
            if ok:
                self.read_count[parts[0]] += 1
            else:
                unread.append(link)
        if sledai:
            sd = dates.get("sledai2k.date")
            sledai.setdefault("date", sd.isoformat() if sd else when)
            self.sledai.append(sledai)
        for kind in ("transfusion", "growth_factor"):
            d = dates.get(f"event.{kind}.date")
            if d:
                self.events[kind + "s"].append({"date": d.isoformat()})
                self.read_count["event"] += 1
        for scheme, c in self.classification.items():
            d = dates.get(f"classification.{scheme}.date")
            if d and "date" not in c:
                c["date"] = d.isoformat()
        if unread:
            self.notes.append(f"{name}: {len(unread)} item{'s' * (len(unread) != 1)} not read"
                              f" (not a pyasp-screen item): {', '.join(sorted(unread)[:8])}")
        self.notes.append(f"{name} ({when or 'undated'}): " + (", ".join(
            f"{k} x{v}" for k, v in sorted(self.read_count.items())) or "no answer read"))
        self.read_count = Counter()

    def _item(self, name: str, parts: list[str], a: ft.Answer, when: str | None,
              dates: dict, sledai: dict) -> bool:
        head = parts[0]
        if head == "complete" and len(parts) == 2:
            if parts[1] not in self.v.categories:
                raise ValueError(f"{parts[1]!r} is not a list a record can declare complete")
            v = tristate(a)
            if v is True:
                self.complete.add(parts[1])
            elif v is None:
                raise ValueError("not a yes/no answer")
            return True
        if head == "assessment" and len(parts) == 2:
            allowed = self.v.assessments.get(parts[1])
            if allowed is None:
                raise ValueError(f"unknown assessment {parts[1]!r}")
            value = _word(a)
            if value not in allowed.values:
                raise ValueError(f"{value!r} is not one of {', '.join(allowed.values)}")
            self.assessments.append({"name": parts[1], "value": value, "date": when})
            return True
        if head == "sledai2k" and len(parts) == 2:
            if parts[1] == "total":
                if a.valueInteger is None:
                    raise ValueError("the total is an integer")
                sledai["total"] = a.valueInteger
                return True
            v = tristate(a)
            if v is None:
                raise ValueError("not a yes/no/unknown answer")
            sledai.setdefault("descriptors", {})[parts[1]] = v
            return True
        if head == "classification" and len(parts) in (3, 4) and parts[1] in self.v.classification_schemes:
            v = tristate(a)
            if v is None:
                raise ValueError("not a yes/no/unknown answer")
            c = self.classification.setdefault(parts[1], {})
            if when and "date" not in c:
                c["date"] = when
            if len(parts) == 3 and parts[2] == "met":
                c["met"] = v
                return True
            if len(parts) == 4 and parts[2] == "item":
                c.setdefault("items", {})[parts[3]] = v
                return True
            return False
        if head == "organ" and len(parts) == 2:
            v = tristate(a)
            if v is None:
                raise ValueError("not a yes/no/unknown answer")
            self.organs[parts[1]] = v
            return True
        if head == "observation" and len(parts) == 2:
            return self._observation(name, parts[1], a, when, dates)
        if head == "diagnosis" and len(parts) == 2:
            if parts[1] not in self.v.diagnoses:
                raise ValueError(f"unknown diagnosis {parts[1]!r}")
            v = tristate(a)
            if v is None:
                raise ValueError("not a yes/no/unknown answer")
            onset = dates.get(f"diagnosis.{parts[1]}.onset")
            self.diagnoses.append({"code": parts[1], "present": v,
                                   "onset": onset.isoformat() if onset else None,
                                   "display": f"{name}: {self.v.diagnoses[parts[1]].label}"})
            return True
        if head == "patient" and len(parts) == 2 and parts[1] == "sex":
            word = _word(a)
            if word not in ("female", "male"):
                raise ValueError(f"{word!r} is not female or male")
            self.patient["sex"] = word
            return True
        if head == "patient" and len(parts) == 2 and parts[1] == "birth_date":
            d = _date(a)
            if d is None:
                raise ValueError("not a full date")
            self.patient["birth_date"] = d.isoformat()
            return True
        return False

    def _observation(self, name: str, obs: str, a: ft.Answer, when: str | None, dates: dict) -> bool:
        kind = self.v.observations.get(obs)
        if kind is None:
            raise ValueError(f"unknown observation {obs!r}")
        d = dates.get(f"observation.{obs}.date")
        date = d.isoformat() if d else when
        item: dict[str, Any] = {"code": obs, "date": date, "source": name,
                                "display": f"{kind.label} (questionnaire)"}
        if kind.qualitative:
            word = _word(a)
            value = self.v.qualitative_values.get(word or "")
            if value is None:
                raise ValueError(f"{word!r} is not positive, negative or indeterminate")
            item["value"] = value
        elif a.valueQuantity is not None and a.valueQuantity.value is not None:
            q = a.valueQuantity
            item["value"] = _number(q.value)
            item["unit"] = (q.code if q.system == "http://unitsofmeasure.org" and q.code else q.unit or q.code)
            if q.comparator in ("<", "<=", ">", ">="):
                item["comparator"] = q.comparator
        elif a.valueDecimal is not None or a.valueInteger is not None:
            item["value"] = _number(a.valueDecimal if a.valueDecimal is not None else a.valueInteger)
            item["unit"] = kind.unit
        else:
            raise ValueError("not a number or a quantity")
        self.observations.append(item)
        return True

    def until(self, today: dt.date, later: Counter) -> "Answers":
        """Drop answers dated after the screening date (counted in ``later``)."""
        t = today.isoformat()

        def keep(entries: list[dict], key: str = "date") -> list[dict]:
            kept = []
            for e in entries:
                if e.get(key) and e[key] > t:
                    later["questionnaire answers"] += 1
                else:
                    kept.append(e)
            return kept
        self.assessments = keep(self.assessments)
        self.sledai = keep(self.sledai)
        self.observations = keep(self.observations)
        self.diagnoses = keep(self.diagnoses, "onset")
        for k in self.events:
            self.events[k] = keep(self.events[k])
        return self

    def apply(self, record: dict) -> None:
        """Merge the answers into a record dict (dates still ISO strings)."""
        today = record["screening_date"]
        if self.complete:
            record["complete"] = sorted(set(record.get("complete", [])) | self.complete)
        if self.assessments:
            record.setdefault("assessments", []).extend(self.assessments)
        for s in self.sledai:
            s["date"] = s.get("date") or today
        if self.sledai:
            record.setdefault("sledai2k", []).extend(self.sledai)
        if self.classification:
            record.setdefault("classification", {}).update(self.classification)
        if self.organs:
            record.setdefault("organ_involvement", {}).update(self.organs)
        for o in self.observations:
            o["date"] = o.get("date") or today
        record.setdefault("observations", []).extend(self.observations)
        record.setdefault("diagnoses", []).extend(self.diagnoses)
        for k in ("transfusions", "growth_factors"):
            record.setdefault(k, []).extend(self.events[k])
        for k, v in self.patient.items():
            record.setdefault(k, v)


def _number(v: float | int) -> float | int:
    f = float(v)
    return int(f) if f.is_integer() else f

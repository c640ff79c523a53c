"""What-if edits of a patient record: set or unset findings by their vocabulary names.

An edit changes a copy of the validated record, never the file. The edited record goes
through the same pipeline as any other (findings, ground, solve), so a what-if answer is
exactly the answer the record would get had it been written that way.

    anc=0.8                 a new ANC result on the screening date (canonical unit 10*9/L)
    hb=11g/dL               with a UCUM unit
    ana=positive            a qualitative result
    ssc_ild=absent          a diagnosis: present / absent / unknown
    hydration_assistance=no an assessment, one of its values
    complete=medications    declare a category complete
    sex=male, birth_date=1990-05-01   demographics

``--unset NAME`` removes every entry of that finding (its observations, diagnosis or
assessment), which makes it unknown.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from dataclasses import dataclass

import msgspec

from pyasp_screen.engine.engine import Engine, Result
from pyasp_screen.engine.screening import Screened
from pyasp_screen.explain.explainer import Reason, ScopeExplanation, explain
from pyasp_screen.explain.summary import event_caveats, summarise
from pyasp_screen.findings.derive import derive
from pyasp_screen.inputs.record import (
    Assessment,
    Diagnosis,
    Observation,
    Record,
    RecordInvalid,
)
from pyasp_screen.knowledge.kb import KnowledgeBase
from pyasp_screen.knowledge.vocabulary import Vocabulary, library
from pyasp_screen.outputs.render import kb_header, short_explanation


class EditError(ValueError):
    """A what-if edit that names no finding, or gives a value the finding cannot take."""


def settable_names(vocabulary: Vocabulary | None = None) -> list[str]:
    """Every finding name ``--set`` and ``--unset`` accept."""
    return sorted((vocabulary or library()).names() | {"complete", "sex", "birth_date"})


def _unknown(name: str, vocabulary: Vocabulary) -> EditError:
    derived = vocabulary.derived.get(name)
    if derived is not None:
        return EditError(f"{name} is derived: change {derived.inputs or 'what it is computed from'} instead")
    close = difflib.get_close_matches(name, settable_names(vocabulary), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else " (docs/vocabulary.md lists the names)"
    return EditError(f"unknown finding {name!r}{hint}")


NUMBER = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")


def apply_edits(record: Record, sets: list[str], unsets: list[str],
                vocabulary: Vocabulary | None = None) -> Record:
    """A copy of ``record`` with the edits applied, in order: unsets first, then sets.
    Names are those of ``vocabulary`` (the knowledge base's; default: the shared library's).

    Raises EditError with a one-line message for a misspelt finding or a bad value.
    """
    vocabulary = vocabulary or library()
    data = msgspec.to_builtins(record)
    rec = msgspec.convert(data, Record, strict=False)  # a deep copy
    for name in unsets:
        name = name.strip()
        if name in vocabulary.observations:
            rec.observations = [o for o in rec.observations if _obs_name(o, vocabulary) != name]
        elif name in vocabulary.diagnoses:
            rec.diagnoses = [d for d in rec.diagnoses if d.code != name]
        elif name in vocabulary.assessments:
            rec.assessments = [a for a in rec.assessments if a.name != name]
        elif name == "complete":
            rec.complete = []
        elif name in ("sex", "birth_date"):
            setattr(rec, name, "unknown" if name == "sex" else None)
        else:
            raise _unknown(name, vocabulary)
    for edit in sets:
        name, sep, value = edit.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not value:
            raise EditError(f"--set {edit!r}: expected FINDING=VALUE[UNIT]")
        if name in vocabulary.observations:
            rec.observations = [o for o in rec.observations if _obs_name(o, vocabulary) != name]
            rec.observations.append(_observation(vocabulary.observations[name], value, rec))
        elif name in vocabulary.diagnoses:
            present = {"present": True, "yes": True, "absent": False, "no": False, "unknown": "unknown"}.get(value)
            if present is None:
                raise EditError(f"--set {name}={value}: a diagnosis is present, absent or unknown")
            kept = [d for d in rec.diagnoses if d.code == name]
            onset = kept[0].onset if kept else None
            rec.diagnoses = [d for d in rec.diagnoses if d.code != name]
            rec.diagnoses.append(Diagnosis(code=name, present=present, onset=onset))
        elif name in vocabulary.assessments:
            allowed = vocabulary.assessments[name].values
            if value not in allowed:
                raise EditError(f"--set {name}={value}: one of {', '.join(allowed)}")
            rec.assessments = [a for a in rec.assessments if a.name != name]
            rec.assessments.append(Assessment(name=name, value=value, date=rec.screening_date))
        elif name == "sex":
            if value not in ("female", "male", "unknown"):
                raise EditError(f"--set sex={value}: female, male or unknown")
            rec.sex = value
        elif name == "birth_date":
            try:
                rec.birth_date = msgspec.convert(value, dt.date, strict=False)
            except msgspec.ValidationError:
                raise EditError(f"--set birth_date={value}: a date YYYY-MM-DD") from None
        elif name == "complete":
            if value not in vocabulary.categories:
                raise EditError(f"--set complete={value}: one of {', '.join(vocabulary.categories)}")
            rec.complete = list(dict.fromkeys([*rec.complete, value]))
        else:
            raise _unknown(name, vocabulary)
    return rec


def _obs_name(o: Observation, vocabulary: Vocabulary) -> str | None:
    if o.system == "loinc":
        return vocabulary.loinc_to_observation.get(o.code)
    return o.code


def _observation(kind, text: str, rec: Record) -> Observation:
    name = kind.name
    if kind.qualitative:
        return Observation(code=name, date=rec.screening_date, value=text)
    m = NUMBER.match(text)
    if not m:
        raise EditError(f"--set {name}={text}: expected a number with an optional UCUM unit, e.g. "
                        f"{name}=1.2" + (f" (in {kind.unit})" if kind.unit not in ('', '1') else ""))
    unit = m.group(2) or kind.unit
    return Observation(code=name, date=rec.screening_date, value=float(m.group(1)), unit=unit)


@dataclass
class Comparison:
    """A patient as recorded (``before``, under the baseline knowledge base) and as edited
    (``after``, under the what-if's parameters), with every criterion whose status changes and
    the explanation of the new overall verdict."""

    edits: dict
    before: Result
    after: Result
    changed: list[tuple[str, str, str]]         # (criterion or component, before, after)
    explanation: ScopeExplanation               # the what-if's overall verdict
    answer: dict                                # the new verdict in brief (render.short_explanation)
    caveats: list = None                        # events that would undo what the edit makes met

    @property
    def reason(self) -> Reason | None:
        """The shortest sufficient reason for the new verdict (None when undetermined)."""
        return self.explanation.sufficient_reasons[0] if self.explanation.sufficient_reasons else None

    def document(self) -> dict:
        """The comparison as ``whatif --format json`` prints it."""
        reason, ex = self.reason, self.explanation
        return {"patient": self.before.patient, "edits": self.edits,
                "before": {"overall": self.before.overall, **self.before.verdicts},
                "after": {"overall": self.after.overall, **self.after.verdicts},
                "criteria_changed": [{"id": c, "before": x, "after": y} for c, x, y in self.changed],
                "answer": self.answer, "caveats": self.caveats or [],
                "reason": ({"findings": reason.findings, "criteria": reason.criteria} if reason else None),
                "missing": ({g: [" + ".join(r.findings) for r in rs] for g, rs in ex.missing.items()}
                            if ex.missing else None)}


def compare(record: Record, sets: list[str], unsets: list[str], base: KnowledgeBase,
            what_if: KnowledgeBase) -> Comparison:
    """Screen ``record`` as recorded under ``base`` and edited (``sets``, ``unsets``, names of
    the what-if's vocabulary) under ``what_if`` (the same knowledge base with other parameters,
    or another one), and explain the new overall verdict.

    Raises EditError (one line) for a bad edit or an edited record that cannot be screened.
    """
    edited = apply_edits(record, sets, unsets, what_if.vocabulary)
    outcomes = []
    for kb, rec in ((base, record), (what_if, edited)):
        try:
            findings = derive(rec, kb)
        except RecordInvalid as e:
            raise EditError(f"what-if record: field {e.field}: {e.reason}") from None
        outcomes.append((findings, Engine(kb).screen([findings])[0]))
    (_, before), (findings, after) = outcomes
    explained = explain(what_if, findings, max_results=10, scopes=["overall"])
    scopes = explained[1]
    patient = Screened(record.id, findings, after)
    answer = short_explanation(summarise(what_if, patient, 10, ["overall"], explained))
    ids = list(dict.fromkeys(base.criterion_ids() + what_if.criterion_ids()))
    changed = [(c, before.statuses.get(c, "unknown"), after.statuses.get(c, "unknown"))
               for c in ids if before.statuses.get(c) != after.statuses.get(c)]
    edits = {"set": list(sets), "unset": list(unsets), "parameters": kb_header(what_if)["parameters_changed"]}
    # a result the edit sets counts only if no transfusion or growth factor was used to reach
    # it (SLE-IN-7b): asked of the engine for the criteria the edit makes met
    caveats = event_caveats(what_if, patient, explained, [c for c, x, y in changed if y == "met"]) \
        if sets else []
    return Comparison(edits, before, after, changed, scopes[0], answer, caveats)

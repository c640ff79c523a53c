"""An explanation at a glance: the answer first, in the protocol's words, then the details.

:func:`summarise` turns one patient's explanations (:mod:`.explainer`) into plain data with a
stable JSON form (docs/output.md, "explain"; docs/schema/explain-output.schema.json). The CLI's
text and JSON and the web page all read this one structure, so they say the same thing:

- **undetermined**: what to measure or record, in order, with the values that would make the
  patient eligible and those that would exclude (``answer.to_measure``);
- **ineligible**: the smallest sufficient reason, each value against the threshold it misses,
  and the nearest miss (``answer.reason``, ``answer.nearest_miss``);
- **eligible**: the criteria met with the thinnest margins, value against threshold
  (``answer.thinnest_margins``), and what the eligibility rests on;
- a population is described only where it differs from the overall answer;
- every finding is named for people (never by record position); closed-world declarations
  are said in words ("no systemic sclerosis in a problem list declared complete");
- every derived value (CrCl with the weight used, ULN multiples, the prednisone-equivalent
  dose, SLEDAI-2K, EULAR/ACR 2019 and ACR/EULAR 2013 totals) is a number with its unit and
  inputs, and every dated finding carries its age against its look-back window.

Nothing here decides eligibility: every statement is read off the explanation engine's
answers (sufficient reasons, near misses, missing data) or off the engine's statuses.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from fractions import Fraction

from pyasp_screen.engine.screening import Screened
from pyasp_screen.explain.explainer import Explainer, Reason, ScopeExplanation, _args, _values_for, explain
from pyasp_screen.findings.derive import Finding, fmt, number
from pyasp_screen.knowledge.vocabulary import display_unit
from pyasp_screen.knowledge.kb import SCALE, KnowledgeBase

SUMMARY_VERSION = "2"
# When no unknown finding can make a patient eligible although the verdict is undetermined:
# the explanation hypothesises values of findings (docs/explanations.md), never new treatment
# courses, so what is missing is of another kind.
NO_ROUTE = ("no lab value, diagnosis, assessment or declaration the explanation can try makes the "
            "patient eligible, yet the verdict is undetermined: a fuller record could settle it")
NO_SETTLING = ("nothing the explanation can try (a lab value, diagnosis, assessment or declaration) settles "
               "it either way, yet the verdict is undetermined: a fuller record could settle it")
OPS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
MARGINS_SHOWN = 3  # thinnest margins in the answer (all are in the data)

# Scores the knowledge-base library computes (kb/lib/scores.lp), with their item tables.
# (key, label, low atom, high atom, item scheme, item table (name, arity, weight position), rule, source)
SCORES = (
    ("sledai2k", "SLEDAI-2K", "sledai2k_lo", "sledai2k_hi", "sledai2k_descriptors",
     ("sledai2k_descriptor", 3, 2), "sum of the weights of the descriptors present",
     "Gladman DD et al., J Rheumatol 2002;29:288-91"),
    ("eular_acr_2019_sle", "EULAR/ACR 2019 SLE classification score", "sle2019_lo", "sle2019_hi",
     "eular_acr_2019_sle_items", ("sle2019_item", 4, 3),
     "highest weight per domain, summed; classified at >= 10 with ANA >= 1:80 and a clinical item",
     "Aringer M et al., Ann Rheum Dis 2019;78:1151-9"),
    ("acr_eular_2013_ssc", "ACR/EULAR 2013 SSc classification score", "ssc2013_lo", "ssc2013_hi",
     "acr_eular_2013_ssc_items", ("ssc2013_item", 3, 2),
     "highest weight per item group, summed; classified at >= 9",
     "van den Hoogen F et al., Ann Rheum Dis 2013;72:1747-55"),
)

# What a closed-world declaration says, per category (the diagnoses' words are computed).
CLOSED_WORDS = {
    "medications": ("medication history", "no medication besides those listed"),
    "transfusions": ("transfusion history", "no transfusion besides those listed"),
    "growth_factors": ("growth-factor history", "no growth factor besides those listed"),
    "diagnoses": ("problem list", "no diagnosis besides those listed"),
    "sledai2k_descriptors": ("SLEDAI-2K descriptors", "no SLEDAI-2K descriptor besides those listed"),
    "eular_acr_2019_sle_items": ("EULAR/ACR 2019 items", "no EULAR/ACR 2019 item besides those listed"),
    "acr_eular_2013_ssc_items": ("ACR/EULAR 2013 items", "no ACR/EULAR 2013 item besides those listed"),
    "organ_involvement": ("organ involvement", "no organ involvement besides that listed"),
}

# What to do to learn an unknown finding, by the kind of its slot.
ACTIONS = {"quantity": "measure", "qualitative": "test", "assessment": "record", "diagnosis": "record",
           "complete": "declare", "event": "record", "item": "record", "classification": "record",
           "duration": "record", "sledai2k_total": "assess", "age": "record", "sex": "record"}
DERIVED_INPUTS = {"crcl": "creatinine, for the CrCl (Cockcroft-Gault, with weight, age and sex)",
                  "prednisone_equivalent": "the current oral glucocorticoid dose",
                  "fvc_decline_12mo": "FVC % predicted (decline over 12 months)"}
# A step is done in one of two places: a blood draw (or another test), or the chart.
TASKS = {"measure": "lab", "test": "lab", "record": "chart", "assess": "chart", "declare": "chart"}
# The fact a finding (slot) is given by, for asking which criteria read it (kb.conditions).
SLOT_FACT = {"quantity": "quantity", "qualitative": "qualitative", "diagnosis": "diagnosis",
             "assessment": "assessment", "classification": "classification", "item": "item",
             "complete": "complete", "event": "event", "duration": "disease_duration_months",
             "sledai2k_total": "sledai2k_total", "age": "age", "sex": "sex"}
# The facts a treatment course gives (findings/derive.py): never hypothesised by the explainer.
COURSE_FACTS = ("course", "dose_change", "gc_dose_per_kg")


def summarise(kb: KnowledgeBase, screened: Screened, max_results: int = 10,
              scopes: Sequence[str] | None = None,
              explained: tuple[Explainer, list[ScopeExplanation]] | None = None) -> dict:
    """One patient's explanation at a glance, as plain data (JSON-ready).

    kb: the knowledge base the patient was screened with (its changed parameters are
    named); screened: the patient (``Screened`` from :func:`~pyasp_screen.engine.screening.
    screen_records`); max_results: the bound on each list of explanations (``--max``);
    scopes: "overall" and/or populations to explain (default: all); explained: explanations
    already computed (``explain()``'s result), to avoid computing them twice.

    Returns ``{"patient", "file", "overall", "verdicts", "headline", "answer",
    "populations", "notes", "closed_world", "parameters_changed", "criteria", "findings",
    "derived", "explanations", "complete"}``: docs/output.md describes each key.
    """
    ex, explanations = explained or explain(kb, screened.findings, max_results, scopes)
    return _Summary(kb, screened, ex, explanations).build()


def event_caveats(kb: KnowledgeBase, screened: Screened, explained: tuple[Explainer, list[ScopeExplanation]],
                  criteria: list[str]) -> list[dict]:
    """The events (a transfusion, a growth factor just before screening) that would undo
    ``criteria`` as the patient's record stands, asked of the engine: ``[{"events",
    "days", "criteria", "text"}]`` ("provided no growth factor or transfusion is given
    within 7 days before screening to reach it (SLE-IN-7b)"). For what-if edits."""
    ex, scopes = explained
    s = _Summary(kb, screened, ex, scopes)
    return s.event_caveats([c for c in criteria if c in s.crit], range(len(ex.units)))


def short_answer(summary: dict) -> str:
    """The answer in one line (screen --explain, whatif): what to get (tests, then the
    chart), the smallest reason, or the value closest to its threshold."""
    a = summary["answer"]
    if a["verdict"] == "undetermined" and a.get("to_measure"):
        steps = a["to_measure"]
        parts = []
        for task, name in (("lab", "tests"), ("chart", "from the chart")):
            mine = [s["label"] for s in steps if s.get("task") == task]
            if mine:
                parts.append(f"{name}: {', '.join(mine)}")
        head = "to get" if "then" in a else "could still exclude"
        return f"{head} ({len(steps)}) - " + "; ".join(parts)
    if a["verdict"] == "undetermined" and a.get("unexplored"):
        return "a fuller record could settle it: " + "; ".join(u["text"] for u in a["unexplored"])
    if a["verdict"] == "ineligible" and a.get("reason"):
        names = " and ".join(p["name"] for p in summary["populations"]
                             if summary.get("scope", "overall") in ("overall", p["population"]))
        return f"{names}: {a['reason']['text']}"
    if a["verdict"] == "eligible":
        margins = [f"{m['value_text']} ({m['need_text']}; {m['criterion']})" for m in a.get("thinnest_margins", [])[:1]]
        names = ", ".join(summary["populations"][k]["name"] for k in range(len(summary["populations"]))
                          if summary["populations"][k]["population"] in a.get("populations", []))
        return f"eligible for {names}" + ("; closest to a threshold: " + margins[0] if margins else "")
    return summary["headline"]


# ---------------------------------------------------------------------------------------

def _dedupe(items):
    return list(dict.fromkeys(items))


def _slot_kind(ex: Explainer, slot: str) -> str:
    """quantity, qualitative, or the prefix of a slot key (diagnosis, assessment, ...)."""
    if ":" in slot:
        return slot.split(":", 1)[0]
    if slot in ("sledai2k_total", "age", "sex"):
        return slot
    s = ex.slots.get(slot)
    return "quantity" if s is None or s.quantity else "qualitative"


class _Summary:
    """The working state of one summary (the explainer, the findings by unit, caches)."""

    def __init__(self, kb: KnowledgeBase, s: Screened, ex: Explainer, scopes: list[ScopeExplanation]):
        self.kb, self.s, self.ex = kb, s, ex
        self.v = kb.vocabulary
        self.scopes = {e.scope: e for e in scopes}
        self.scope = scopes[0].scope if scopes else "overall"
        self.now = ex.criterion_statuses([c for crit in kb.criteria for c in (crit.id, *crit.components)]) or {}
        self.crit = {c.id: c for c in kb.criteria}
        self.component_of = {part: c.id for c in kb.criteria for part in c.components}
        by_fact: dict[str, Finding] = {}
        for f in s.findings.findings:
            by_fact.setdefault(f.fact, f)
        self.unit_findings = [[by_fact[fact] for fact in u.facts if fact in by_fact] for u in ex.units]
        self._dx_words: dict[tuple, str] = {}
        self._dx_named: dict[str, set] = {}  # diagnoses said absent in words -> criteria
        self._stale_said: list[str] = []  # findings whose value on record is said to be too old
        self._views: dict[int, dict] = {}
        self._status_cache: dict = {}
        self.windows = kb.windows
        self.current = self._current_units()

    def status_with(self, known=None, picks: tuple = ()) -> dict[str, str]:
        """The criteria's statuses (criteria only, not components) with ``known`` units
        (all) and the values ``picks`` set; {} if there is no model. Asked once per question."""
        key = (frozenset(range(len(self.ex.units)) if known is None else known), picks)
        if key not in self._status_cache:
            self._status_cache[key] = self.ex.criterion_statuses(self.crit, key[0], picks) or {}
        return self._status_cache[key]

    # -- what the criteria read, and where their numbers come from ------------------------
    def criterion_reads(self, cid: str) -> frozenset:
        """(fact predicate, name) pairs the rules of a criterion and its components read
        (the compiled knowledge base's ``conditions``; never the rule text)."""
        key = ("reads", cid)
        if key not in self._status_cache:
            c = self.crit[cid]
            self._status_cache[key] = frozenset().union(
                *(self.kb.conditions[x].reads for x in (c.id, *c.components) if x in self.kb.conditions))
        return self._status_cache[key]

    def reads(self, cid: str, pred: str, name: str = "") -> bool:
        r = self.criterion_reads(cid)
        return (pred, name) in r or (pred, "*") in r or (not name and any(p == pred for p, _ in r))

    def readers(self, slot: str) -> list[str]:
        """The criteria whose rules read an unknown finding (statically, from the compiled
        knowledge base)."""
        kind = _slot_kind(self.ex, slot)
        pred = SLOT_FACT.get(kind, kind)
        if kind in ("quantity", "qualitative"):
            name = slot
        elif kind == "item":
            name = slot.split(":")[1]
        elif ":" in slot:
            name = slot.split(":", 1)[1]
        else:
            name = ""
        return [c.id for c in self.kb.criteria if self.reads(c.id, pred, name)]

    def threshold_source(self, comp: str, name: str, op: str, t: int) -> dict:
        """Where a threshold comes from: ``parameter`` (the knowledge-base parameter that
        sets it, or None) and ``registry`` (does the criterion's registry sentence state this
        number? If not, the number is the knowledge base's reading, and the text says so)."""
        cid = self.component_of.get(comp, comp)
        cond = self.kb.conditions.get(comp)
        param = next((p for f, o, p in (cond.thresholds if cond else ()) if f == name and o == op), None)
        return {"parameter": param if param in self.kb.parameters else None,
                "registry": Fraction(t, SCALE) in _numbers(self.crit[cid].sentence)}

    def window_source(self, name: str) -> dict | None:
        """The look-back window of a finding: ``days``, the ``parameter`` that sets it (an
        integer parameter in days, of that value, used by the criteria reading the finding)
        and ``registry`` (does a reading criterion's sentence state the number?)."""
        days = self.windows.get(name)
        if days is None:
            return None
        kind = "qualitative" if name in self.ex.slots and not self.ex.slots[name].quantity else "quantity"
        readers = [c.id for c in self.kb.criteria if self.reads(c.id, kind, name)]
        params = set()
        for cid in readers:
            for x in (cid, *self.crit[cid].components):
                for p in getattr(self.kb.conditions.get(x), "parameters", ()):
                    q = self.kb.parameters.get(p)
                    if q is not None and q.kind == "integer" and q.unit == "d" and q.value == days:
                        params.add(p)
        param = sorted(params, key=lambda p: ("window" not in p, p))[0] if params else None
        return {"days": days, "parameter": param, "criteria": readers,
                "registry": any(Fraction(days) in _numbers(self.crit[c].sentence) for c in readers)}

    def screening_date(self) -> str | None:
        """The screening date the findings stage used; for hand-made findings without one,
        from any dated finding (its date + days before screening)."""
        if self.s.findings.screening_date is not None:
            return self.s.findings.screening_date.isoformat()
        for f in self.s.findings.findings:
            d = f.data if f.data is not None else None
            if isinstance(d, dict) and d.get("date") and isinstance(d.get("days_before_screening"), int):
                try:
                    day = dt.date.fromisoformat(str(d["date"])[:10])
                except ValueError:
                    continue
                return (day + dt.timedelta(days=d["days_before_screening"])).isoformat()
        return None

    def unexplored(self) -> list[dict]:
        """What the record leaves open that the explanation does not try value by value
        (docs/explanations.md, "Values a finding could take"), where a criterion that reads
        it is unknown: treatment courses beyond those listed (a medication history not
        declared complete), and the items of a scheme none of whose items is recorded (a
        SLEDAI-2K given as a total only). ``criteria``: the unknown criteria reading it."""
        if "unexplored" in self._status_cache:
            return self._status_cache["unexplored"]
        units = self.ex.units
        closed = {u.slot.split(":", 1)[1] for u in units if u.slot and u.slot.startswith("complete:")}
        recorded = {u.slot.split(":")[1] for u in units if u.slot and u.slot.startswith("item:")}
        unknown = [c for c in self.open_criteria()]
        out = []
        if "medications" not in closed:
            readers = [c for c in unknown if any(self.reads(c, f) for f in COURSE_FACTS)]
            if readers:
                n = len({u.key for u in units if u.key.startswith("medications[")})
                what = (f"treatment courses beyond the {n} listed (the medication history is not declared complete)"
                        if n else "treatment courses (none listed; the medication history is not declared complete)")
                out.append({"category": "medications", "label": "treatment courses",
                            "criteria": readers, "text": what})
        covered = {self.v.classification_schemes.get(k.split(":", 1)[1]) for k in self.ex.slots
                   if k.startswith("classification:")}
        total = any(u.slot == "sledai2k_total" for u in units)
        for scheme, group in self.v.scheme_groups.items():
            if scheme in closed or scheme in recorded or scheme in covered:
                continue
            readers = [c for c in unknown if self.reads(c, "item", scheme)]
            if readers:
                how = "only a total is recorded" if scheme == "sledai2k_descriptors" and total else "none recorded"
                out.append({"category": scheme, "label": group, "criteria": readers,
                            "text": f"the {group} ({how})"})
        self._status_cache["unexplored"] = out
        return out

    def open_criteria(self) -> list[str]:
        """The unknown criteria that can still matter: in scope, and of a population whose
        verdict is undetermined (a settled population's unknown criteria change nothing)."""
        verdicts = self.s.result.verdicts
        return [c.id for c in self.kb.criteria if self.now.get(c.id) == "unknown" and self.in_scope(c.id)
                and (c.population == "all" or verdicts.get(c.population) == "undetermined")]

    def event_caveats(self, criteria: list[str], known, picks: tuple = ()) -> list[dict]:
        """Events within a window that would undo ``criteria`` (met as they stand with
        ``known`` units and the values ``picks``): asked of the engine, one event just before
        screening at a time ("no transfusion or growth factor within 7 days")."""
        out = []
        for event in sorted(self.kb.event_windows):
            slot = f"event:{event}"
            readers = [c for c in criteria if self.reads(c, "event", event)]
            j = next((k for k, h in enumerate(self.ex.hyps) if h.slot == slot), None)
            if not readers or j is None:
                continue
            st = self.status_with(known, tuple(picks) + (j,))
            broken = [c for c in readers if st.get(c) != ("met" if self.crit[c].kind == "inclusion" else "not_met")]
            if broken:
                out.append({"event": event, "days": self.kb.event_windows[event], "criteria": broken})
        if not out:
            return []
        names = " or ".join(e["event"].replace("_", " ") for e in out)
        days = sorted({e["days"] for e in out})
        crit = _dedupe(c for e in out for c in e["criteria"])
        text = (f"provided no {names} is given within {'/'.join(map(str, days))} days before screening "
                f"to reach it ({', '.join(crit)})")
        return [{"events": [e["event"] for e in out], "days": days[0] if len(days) == 1 else days,
                 "criteria": crit, "text": text}]

    def slot_labels(self, slots: list[str]) -> list[str]:
        """Unknown findings for people, the items of one scheme gathered:
        "SLEDAI-2K descriptors: fever, seizure"."""
        out, schemes = [], {}
        for key in slots:
            if key.startswith("item:"):
                _, scheme, item = key.split(":", 2)
                schemes.setdefault(scheme, []).append(self.v.item_label(item))
            elif key.startswith("complete:"):
                cat = key.split(":", 1)[1]
                name = self.category_name(cat)
                out.append(f"whether the {name} {'are' if name.endswith('s') else 'is'} complete")
            else:
                out.append(self.measure_label(key))
        out += [f"{self.v.scheme_groups.get(k, k)}: {', '.join(v)}" for k, v in schemes.items()]
        return out

    def category_name(self, cat: str) -> str:
        """A category for people: "medication history", "SLEDAI-2K descriptors"."""
        if cat in self.v.scheme_groups:
            return self.v.scheme_groups[cat]
        return CLOSED_WORDS.get(cat, (cat.replace("_", " "),))[0]

    def cannot_change(self, e: ScopeExplanation, gap: bool) -> tuple[list[str], list[str]]:
        """The unknown findings that cannot change the outcome, split in two: those the
        explanation proves useless, and those whose use it cannot judge because the record
        leaves open what it does not try (:meth:`unexplored`): a finding read by a criterion
        that is unknown is never said useless then. A SLEDAI-2K assessment at screening is
        left out when one is recorded (it is not unknown)."""
        if not e.complete:
            return [], []
        relevant = {s for rs in e.missing.values() for r in rs for s in r.slots}
        assessed = any(u.facts[0].startswith("sledai2k_assessed(") for u in self.ex.units)
        useless = [s for s in self.ex.unknown_slots if s not in relevant
                   and not (s == "sledai2k_total" and assessed)]
        if not (gap or self.unexplored()):
            return useless, []
        still = set(self.open_criteria())
        sure = [s for s in useless if not any(c in still for c in self.readers(s))]
        return sure, [s for s in useless if s not in sure]

    # -- findings ----------------------------------------------------------------------
    def _quantity(self, i: int) -> tuple[str, int, int, int] | None:
        """(name, lo grid, hi grid, days) of a quantity unit."""
        fact = self.ex.units[i].facts[0]
        if not fact.startswith("quantity("):
            return None
        name, lo, hi, days = _args(fact)
        return name, int(lo), int(hi), int(days)

    def _days(self, i: int) -> int | None:
        fact = self.ex.units[i].facts[0]
        if fact.startswith(("quantity(", "qualitative(", "event(", "assessment(")):
            return int(_args(fact)[-1])
        return None

    def _current_units(self) -> dict[str, int]:
        """For each quantity or test, the unit the rules read: the most recent result
        within its window (kb/lib/core.lp current/4)."""
        best: dict[str, tuple[int, int]] = {}
        for i, u in enumerate(self.ex.units):
            fact = u.facts[0]
            if not fact.startswith(("quantity(", "qualitative(")):
                continue
            name, days = _args(fact)[0], int(_args(fact)[-1])
            window = self.windows.get(name)
            if window is not None and days > window:
                continue
            if name not in best or days < best[name][0]:
                best[name] = (days, i)
        return {name: i for name, (_, i) in best.items()}

    def finding_text(self, i: int) -> str:
        u = self.ex.units[i]
        if u.slot and u.slot.startswith("complete:"):
            return f"{self.category_name(u.slot.split(':', 1)[1])} declared complete"
        if u.slot and u.slot.startswith("item:") and u.facts[0].startswith("item("):
            # "SLEDAI-2K: increased DNA binding present" (the vocabulary's item labels)
            _, scheme, item = u.slot.split(":", 2)
            value = {"yes": "present", "no": "absent"}.get(_args(u.facts[0])[-1], _args(u.facts[0])[-1])
            return f"{self.v.scheme_labels.get(scheme, scheme)}: {self.v.item_label(item)} {value}"
        if u.slot and u.slot.startswith("event:"):  # "transfusion: red blood cells on 2026-02-22 (...)"
            kind = u.slot.split(":", 1)[1].replace("_", " ")
            return u.text if u.text.startswith(kind) else f"{kind}: {u.text}"
        return u.text

    def finding_view(self, i: int) -> dict:
        if i not in self._views:
            self._views[i] = self._finding_view(i)
        return self._views[i]

    def _finding_view(self, i: int) -> dict:
        u = self.ex.units[i]
        data = next((f.data for f in self.unit_findings[i] if f.data is not None), None)
        view = {"id": f"f{i}", "text": self.finding_text(i), "finding": u.slot or self.unit_findings[i][0].name}
        if data:
            view.update(data)
        days = self._days(i)
        name = _args(u.facts[0])[0] if u.facts[0].startswith(("quantity(", "qualitative(")) else None
        if days is not None:
            view["days_before_screening"] = days
            window = self.windows.get(name) if name else None
            if window is not None:
                view["window_days"] = window
                view["in_window"] = days <= window
                view["read"] = self.current.get(name) == i
        view["record_fields"] = _dedupe(u.sources)
        return view

    def closed_world_text(self, i: int, criteria: list[str]) -> str:
        """A closed-world declaration in words, for the criteria it decides here: "no
        systemic sclerosis in the problem list, which the record declares complete"; "no
        transfusion (the transfusion history, declared complete, lists none)"."""
        cat = self.ex.units[i].slot.split(":", 1)[1]
        name = self.category_name(cat)
        if cat == "diagnoses":
            return f"{self._absent_diagnoses(criteria)} in the problem list, which the record declares complete"
        n = self.entries(cat)
        thing = {"medications": "treatment", "transfusions": "transfusion", "growth_factors": "growth factor",
                 "organ_involvement": "organ involvement"}.get(cat)
        if thing is None:  # a scheme's items: "no SLEDAI-2K descriptor besides those recorded"
            thing = CLOSED_WORDS.get(cat, (None, f"no {name} item besides those listed"))[1].split(" besides")[0][3:]
        if n == 0:
            return f"no {thing} (the {name}, declared complete in the record, lists none)"
        return f"no {thing} besides the {n} listed (the record declares the {name} complete)"

    def entries(self, cat: str) -> int:
        """How many entries the record lists in a category."""
        units = self.ex.units
        if cat == "medications":
            return len({u.key for u in units if u.key.startswith("medications[")})
        if cat in ("transfusions", "growth_factors"):
            return sum(1 for u in units if u.slot == f"event:{cat[:-1]}")
        if cat == "diagnoses":
            return sum(1 for u in units if u.slot and u.slot.startswith("diagnosis:"))
        return sum(1 for u in units if u.slot and u.slot.startswith(f"item:{cat}:"))

    def declaration(self, i: int, criteria: list[str]) -> dict:
        """A closed-world declaration a reason rests on: its category, its words, and a
        short form ("problem list (no active tuberculosis)")."""
        cat = self.ex.units[i].slot.split(":", 1)[1]
        name = CLOSED_WORDS.get(cat, (cat.replace("_", " "),))[0]
        short = f"{name} ({self._absent_diagnoses(criteria)})" if cat == "diagnoses" else name
        return {"category": cat, "finding_id": f"f{i}", "text": self.closed_world_text(i, criteria), "short": short}

    def _absent_diagnoses(self, criteria: list[str]) -> str:
        """"no systemic sclerosis or ...": the diagnoses not listed whose presence would
        change one of ``criteria`` (asked of the engine: each one present, one at a time)."""
        key = tuple(criteria)
        if key in self._dx_words:
            return self._dx_words[key]
        listed = {u.slot for u in self.ex.units if u.slot and u.slot.startswith("diagnosis:")}
        names = []
        for d in sorted(self.kb.diagnoses):
            slot = f"diagnosis:{d}"
            if slot in listed or slot not in self.ex.slots:
                continue
            present = next((j for j, h in enumerate(self.ex.hyps) if h.slot == slot and h.label.endswith(" present")), None)
            if present is None:
                continue
            st = self.status_with(picks=(present,))
            changed = [c for c in criteria if st.get(c) != self.now.get(c)]
            if changed:
                names.append(self.v.label(d))
                self._dx_named.setdefault(d, set()).update(changed)
        listing = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else "".join(names)
        text = f"no {listing}" if names else "no diagnosis besides those listed"
        self._dx_words[key] = text
        return text

    def short_name(self, i: int) -> str:
        """A finding by its name only ("APTT", "EULAR/ACR 2019: anti-dsDNA or anti-Smith")."""
        u = self.ex.units[i]
        if u.facts and u.facts[0].startswith("deceased("):  # kb/lib/core.lp's verdict rule
            return "death on record"
        if u.slot and u.slot in self.ex.slots and not u.slot.startswith(("complete:", "diagnosis:")):
            label = self.slot_label(u.slot)
            if u.slot in DERIVED_INPUTS:  # "CrCl", not "CrCl (Cockcroft-Gault)"
                label = label.split(" (")[0]
            return label if not u.slot.startswith("item:") else \
                self.finding_text(i).removesuffix(" present").removesuffix(" absent")
        return self.finding_text(i)

    def people_text(self, i: int, criteria: list[str]) -> str:
        u = self.ex.units[i]
        if u.slot and u.slot.startswith("complete:"):
            return self.closed_world_text(i, criteria)
        return self.finding_text(i)

    # -- comparisons -------------------------------------------------------------------
    def comparisons(self, units: list[int], criteria: list[str] | None = None) -> list[dict]:
        """Each quantity among ``units`` against every threshold a criterion in
        ``criteria`` (all) compares it with, the status from the engine."""
        out = []
        for i in units:
            q = self._quantity(i)
            if q is None:
                continue
            name, lo, hi, _ = q
            data = self.finding_view(i)
            for comp, cname, op, t in self.kb.checks:
                if cname != name:
                    continue
                cid = self.component_of.get(comp, comp)
                if criteria is not None and cid not in criteria:
                    continue
                out.append(self._comparison(i, data, comp, cid, name, op, t, lo, hi))
        return out

    def _comparison(self, i, data, comp, cid, name, op, t, lo, hi) -> dict:
        label, unit = self.v.quantity_label(name)
        label = label.split(" (")[0] if name == "crcl" else label
        threshold = Fraction(t, SCALE)
        # the end of a range (or a lower bound) that the comparison reads
        low_end = op in ("ge", "gt")
        value = data.get("value", data.get("at_least", data.get("low" if low_end else "high")))
        status = self.now.get(comp, "unknown")
        holds = {"met": True, "not_met": False}.get(status)
        margin = None
        if value is not None and threshold:
            margin = float(abs(Fraction(value) - threshold) / abs(threshold))
        u = f" {unit}" if unit else ""
        shown = _show(value, unit) if value is not None else "?"
        if "measured" in data:  # "ALT 32 U/L = 0.8 x ULN"
            m = data["measured"]
            mu = display_unit(m["unit"]) if m["unit"] else ""
            shown = f"{_show(m['value'], mu)}{' ' + mu if mu else ''} = {shown}"
        need = f"{'needs' if self.crit[cid].kind == 'inclusion' else 'excluded at'} {OPS[op]} {fmt(threshold)}{u}"
        value_text = f"{label} {shown}{u}"
        if name == "spo2" and data.get("room_air") == "recorded":
            value_text += " (room air)"
        elif name == "spo2" and data.get("room_air") == "assumed":  # SLE-IN-7e asks for room air
            value_text += " (room air not recorded; read as room air)"
        date = data.get("date")
        text = f"{value_text} ({need}; {cid})"
        source = self.threshold_source(comp, name, op, t)
        above = value is not None and Fraction(value) > threshold
        relative = (f"{round(margin * 100)}% {'above' if above else 'below'} it" if margin is not None
                    and value is not None and Fraction(value) != threshold else "at it" if margin == 0 else None)
        return {"criterion": cid, "component": comp, "finding_id": f"f{i}", "finding": label, "kind": self.crit[cid].kind,
                "value": value, "unit": data.get("unit", unit), "op": OPS[op], "threshold": number(threshold),
                "holds": holds, "margin": margin, "date": date, "text": text,
                "value_text": value_text, "need_text": need, "relative": relative,
                "dated_text": f"{value_text} on {date}" if date else value_text,
                "parameter": source["parameter"], "in_registry": source["registry"],
                "uln_from": data.get("uln", {}).get("from")}

    # -- what decides what ---------------------------------------------------------------
    def criteria_text(self, ids: list[str]) -> str:
        return ", ".join(ids)

    def slot_label(self, slot: str) -> str:
        s = self.ex.slots.get(slot)
        label = s.label if s else slot
        if slot.endswith("_x_uln"):
            label = self.v.quantity_label(slot)[0]
        return label

    def slot_criteria(self, slot: str) -> list[str]:
        """The criteria (of the scope explained) some value of an unknown finding would
        decide (asked of the engine). A quantity is asked at its lowest and highest value
        only: the criteria are monotone in it (docs/semantics.md), so a criterion some value
        decides is decided by one of the two."""
        out: set[str] = set()
        values = [j for j, h in enumerate(self.ex.hyps) if h.slot == slot]
        if slot in self.ex.slots and self.ex.slots[slot].quantity and len(values) > 2:
            values = [values[0], values[-1]]
        for j in values:
            st = self.status_with(picks=(j,))
            out |= {c.id for c in self.kb.criteria if st.get(c.id) != self.now.get(c.id)}
        return [c.id for c in self.kb.criteria if c.id in out and self.in_scope(c.id)]

    def in_scope(self, cid: str) -> bool:
        return self.scope == "overall" or self.crit[cid].population in (self.scope, "all")

    def by_criterion(self, units: list[int], scope: str) -> dict[str, list[str]]:
        """A sufficient reason's findings grouped by the criteria they settle (protocol
        order): criterion ID -> finding IDs."""
        touches = self.touches(units, scope)
        order = [c.id for c in self.kb.criteria]
        out: dict[str, list[str]] = {}
        for cid in order + ["(the verdict only)"]:
            ids = [f"f{i}" for i in units if cid in (touches[i] or ["(the verdict only)"])]
            if ids:
                out[cid] = ids
        return out

    def touches(self, units: list[int], scope: str) -> dict[int, list[str]]:
        """For a sufficient reason, the criteria each of its findings settles: those whose
        status changes when that finding alone is dropped from the reason."""
        base = self.status_with(units)
        out = {}
        for i in units:
            st = self.status_with([j for j in units if j != i])
            out[i] = [c.id for c in self.kb.criteria if c.population in (scope, "all") or scope == "overall"
                      if st.get(c.id) != base.get(c.id)]
        return out

    # -- building ----------------------------------------------------------------------
    def build(self) -> dict:
        r = self.s.result
        overall = self.scopes.get("overall")
        first = overall or next(iter(self.scopes.values()))
        doc = {"summary_version": SUMMARY_VERSION, "patient": r.patient, "file": self.s.file,
               "overall": r.overall,
               "verdicts": {p: r.verdicts.get(p, "undetermined") for p in self.kb.populations},
               "scope": first.scope}
        answer = self.answer(first)
        doc["headline"] = answer.pop("headline")
        doc["answer"] = answer
        doc["populations"] = self.population_lines(first, answer)
        doc["notes"] = self.notes(answer)
        relied = {x["category"] for x in answer.get("rests_on", [])}
        doc["closed_world"] = [{"category": u.slot.split(":", 1)[1], "text": self.finding_text(i),
                                "name": self.category_name(u.slot.split(":", 1)[1]),
                                "entries": self.entries(u.slot.split(":", 1)[1]),
                                "relied_on": u.slot.split(":", 1)[1] in relied}
                               for i, u in enumerate(self.ex.units) if u.slot and u.slot.startswith("complete:")]
        doc["screening_date"] = self.screening_date()
        doc["parameters_changed"] = {p.name: p.display() for p in self.kb.parameters.values() if p.value != p.default}
        doc["parameters"] = [parameter_view(self.kb, p.name) for p in self.kb.parameters.values()
                             if p.value != p.default]
        doc["unexplored"] = self.unexplored()
        doc["interpretations"] = self.interpretations(doc)
        doc["findings"] = [self.finding_view(i) for i in range(len(self.ex.units))]
        doc["derived"] = self.derived()
        doc["explanations"] = self.details()
        doc["complete"] = all(e.complete for e in self.scopes.values())
        doc["criteria"] = [{"id": c, "sentence": self.crit[c].sentence} for c in _cited(doc) if c in self.crit]
        doc["criteria_status"] = [{"id": c.id, "population": c.population, "kind": c.kind,
                                   "status": r.statuses.get(c.id, "unknown"), "sentence": c.sentence}
                                  for c in self.kb.criteria]
        return doc

    def interpretations(self, doc: dict) -> list[dict]:
        """What the text relies on that the registry does not say, named as the knowledge
        base's choice: a look-back window, a threshold the criterion's sentence does not
        state (``threshold_source``), a diagnosis the knowledge base codes more narrowly
        than the sentence words it ("(stage 4-5)"), SpO2 without a room-air flag."""
        a = doc["answer"]
        out: dict[tuple, dict] = {}
        windows = [st["window"] for st in a.get("to_measure", []) if st.get("window")]
        windows += [w for w in (self.window_source(n) for n in self._stale_said) if w]
        for w in windows:
            w = {"days": w["days"], "parameter": w["parameter"], "in_registry": w.get("in_registry", w.get("registry"))}
            if w["parameter"] and not w["in_registry"]:
                out.setdefault(("window", w["parameter"]), {
                    "kind": "window", "parameter": w["parameter"], "value": w["days"],
                    "text": f"a result counts only if taken at most {w['days']} days before the screening date "
                            f"(parameter {w['parameter']}; the registry gives no window)"})
        cmps = list(a.get("reason", {}).get("comparisons", [])) if a["verdict"] == "ineligible" else []
        cmps += a.get("thinnest_margins", [])[:MARGINS_SHOWN]
        cmps += [c for st in a.get("to_measure", []) for c in st.get("on_record", [])]
        cmps += [c for ev in a.get("evidence", []) for c in ev.get("comparisons", [])]
        for line in doc["populations"]:
            if not line["same_as_overall"] and line.get("reason"):
                cmps += line["reason"].get("comparisons", [])
        spo2 = False
        for c in cmps:
            spo2 = spo2 or c["value_text"].endswith("; read as room air)")
            if c.get("uln_from") not in (None, "reference range"):  # no reference range on the result
                site = out.setdefault(("uln", ""), {"kind": "uln", "findings": [], "parameters": []})
                if c["finding"] not in site["findings"]:
                    site["findings"].append(c["finding"])
                    site["parameters"].append(c["uln_from"].split("(")[-1].rstrip(")"))
            p = self.kb.parameters.get(c.get("parameter") or "")
            if p is not None and p.value != p.default:  # this run's own setting
                unit = self.v.quantity_label(self._quantity(int(c["finding_id"][1:]))[0])[1]
                d = parameter_view(self.kb, p.name)
                out.setdefault(("threshold", c["parameter"]), {
                    "kind": "changed", "parameter": p.name, "criteria": [c["criterion"]],
                    "text": f"{c['finding']} {c['op']} {fmt(Fraction(c['threshold']).limit_denominator(SCALE))} "
                            f"{unit} for {c['criterion']} is this run's parameter {p.name} (protocol default "
                            f"{d['default']})"})
            elif c.get("parameter") and not c.get("in_registry"):
                unit = self.v.quantity_label(self._quantity(int(c["finding_id"][1:]))[0])[1]
                out.setdefault(("threshold", c["parameter"]), {
                    "kind": "threshold", "parameter": c["parameter"], "criteria": [c["criterion"]],
                    "text": f"{c['finding']} {c['op']} {fmt(Fraction(c['threshold']).limit_denominator(SCALE))} {unit} for {c['criterion']} "
                            f"(parameter {c['parameter']}; the registry sentence gives no number)"})
        if ("uln", "") in out:
            site = out[("uln", "")]
            site["text"] = (f"the ULN of {', '.join(site['findings'])} is the site's table (parameters "
                            f"{', '.join(site['parameters'])}): "
                            + ("the result carries" if len(site["findings"]) == 1 else "the results carry")
                            + " no reference range")
        if spo2:
            out[("room_air", "")] = {"kind": "reading", "parameter": "spo2_unflagged_is_room_air",
                                     "text": "an SpO2 result without a room-air flag is read as on room air "
                                             "(parameter spo2_unflagged_is_room_air)"}
        for d, crits in self._dx_named.items():
            label = self.v.label(d)
            m = re.search(r"\(([^)]*)\)", label)
            if not m or all(m.group(1).lower() in self.crit[c].sentence.lower() for c in crits):
                continue
            codes = self.v.diagnoses[d].icd10 if d in self.v.diagnoses else ()
            out.setdefault(("diagnosis", d), {
                "kind": "coding", "diagnosis": d, "criteria": sorted(crits),
                "text": f"\"{label}\" is how the knowledge base codes {', '.join(sorted(crits))}"
                        + (f" (ICD-10 {', '.join(codes)})" if codes else "")})
        return list(out.values())

    def scope_name(self, scope: str) -> str:
        if scope == "overall":
            return "overall"
        text = self.kb.populations.get(scope, "")
        return text[text.rindex("(") + 1:-1] if "(" in text and text.endswith(")") else scope.upper()

    def answer(self, e: ScopeExplanation) -> dict:
        if e.verdict == "undetermined":
            return self.undetermined(e)
        if e.verdict == "ineligible":
            return self.ineligible(e)
        return self.eligible(e)

    # -- undetermined --------------------------------------------------------------------
    def undetermined(self, e: ScopeExplanation) -> dict:
        routes = e.missing.get("eligible", [])
        excluders = e.missing.get("ineligible", [])
        # gap: a verdict the engine says some completion reaches (the verdict is undetermined)
        # but no value the explanation tries does: what reaches it is something it does not try
        gap = {"eligible": not routes and e.complete, "ineligible": not excluders and e.complete}
        sure, unsure = self.cannot_change(e, gap["eligible"] or gap["ineligible"])
        answer = {"verdict": "undetermined", "to_measure": [], "other_ways_to_eligible": 0,
                  "cannot_change_outcome": len(self.slot_labels(sure)), "cannot_tell": self.slot_labels(unsure),
                  "gap": gap, "unexplored": self.unexplored()}
        if not routes:
            self.plan_populations = [e.scope] if e.scope != "overall" else list(self.kb.populations)
            steps = [self.step([s], {}) for s in _dedupe(s for r in excluders if len(r.slots) == 1 for s in r.slots)]
            answer["to_measure"] = self._ordered(steps)
            answer["headline"] = f"undetermined: {NO_ROUTE if excluders else NO_SETTLING}"
            return answer
        size = min(len(r.slots) for r in routes)
        best = [r for r in routes if len(r.slots) == size]
        answer["other_ways_to_eligible"] = len(routes) - len(best)
        pops = ([e.scope] if e.scope != "overall" else
                [p for p in self.kb.populations if p in self._route_populations(best[0])])
        self.plan_populations = pops or list(self.kb.populations)
        core = [s for s in best[0].slots if all(s in r.slots for r in best)]
        rests = [[s for s in r.slots if s not in core] for r in best]
        eligible_values = {}
        for r in best:
            for s, v in zip(r.slots, r.values):
                eligible_values.setdefault(s, v)
        steps = [self.step([s], eligible_values) for s in core]
        if any(rests):
            if all(len(x) == 1 for x in rests):
                steps.append(self.step([x[0] for x in rests], eligible_values, any_of=True))
            else:
                steps.append(self.step(_dedupe(s for x in rests for s in x), eligible_values,
                                       any_of=True, sets=rests))
        answer["to_measure"] = self._ordered(steps)
        answer["then"] = {"verdict": "eligible", "populations": pops}
        n = len(steps)
        names = ", ".join(self.scope_name(p) for p in pops) or "a population"
        answer["headline"] = (f"undetermined: {n} finding{'s' if n != 1 else ''} to get; eligible for {names} "
                              f"if {'it comes' if n == 1 else 'they all come'} back as below")
        return answer

    def _ordered(self, steps: list[dict]) -> list[dict]:
        """Steps by task (blood draw and other tests first, then the chart), each task in
        protocol order."""
        order = {c.id: k for k, c in enumerate(self.kb.criteria)}
        return sorted(steps, key=lambda st: (st["task"] != "lab",
                                             min((order.get(c, 999) for c in st["criteria"]), default=999)))

    def _route_populations(self, route: Reason) -> list[str]:
        atoms = self.ex.solve(range(len(self.ex.units)), free=route.slots, target=("overall", "eligible"))
        if atoms is None:
            return []
        return [a.arguments[1].name for a in atoms if a.name == "verdict" and a.arguments[2].name == "eligible"]

    def step(self, slots: list[str], eligible_values: dict,
             any_of: bool = False, sets: list[list[str]] | None = None) -> dict:
        """One thing to measure or record (or a choice of them, ``any_of``): the values
        that lead to eligibility (from the route's missing-data set) and, asked of the
        engine for these findings alone, the values that would exclude."""
        labels = [self.measure_label(s) for s in slots]
        kind = _slot_kind(self.ex, slots[0])
        action = ACTIONS.get(kind, "record")
        eligible_if = [self.value_words(s, eligible_values[s], None) for s in slots if s in eligible_values]
        known = list(range(len(self.ex.units)))
        target = (self.scope, "ineligible")
        singles = [s for s in slots if self.ex.holds(known, free=[s], target=target)]
        groups = [[s] for s in singles]
        if not singles and len(slots) > 1 and not sets and self.ex.holds(known, free=slots, target=target):
            groups = [slots]  # "INR or APTT": excluded only if both are out of range
        ineligible_if, alone = [], bool(singles)
        for g in groups:
            values = _values_for(self.ex, known, g, target)
            crit = [c for s in g for c in self.slot_criteria(s)]
            bounds = [self.value_words(s, v, crit) for s, v in zip(g, values)]
            ineligible_if.append({"all_of": bounds, "text": " and ".join(b["text"] for b in bounds)})
        every = _dedupe(c for s in slots for c in self.slot_criteria(s))
        # the criteria of the populations the plan leads to (an SLE plan cites no SSc criterion)
        plan = getattr(self, "plan_populations", list(self.kb.populations))
        criteria = [c for c in every if self.crit[c].population in (*plan, "all")] or every
        joiner = " or " if any_of else " + "
        schemes = {s.split(":")[1] for s in slots if s.startswith("item:")}
        one_scheme = any_of and not sets and len(schemes) == 1 and all(s.startswith("item:") for s in slots)
        if sets:
            head = " or ".join(" + ".join(self.measure_label(s) for s in x) for x in sets)
        elif one_scheme:  # "organ involvement, any one of: renal, serosal, ..."
            scheme = schemes.pop()
            head = (f"{self.v.scheme_labels.get(scheme, scheme)}, any one of: "
                    + ", ".join(self.v.item_label(s.split(":", 2)[2]) for s in slots))
        else:
            head = joiner.join(labels)
        def short(bound: dict) -> str:  # "ALT <= 2 x ULN" of the step "ALT" is "<= 2 x ULN"
            if slots[0].startswith("complete:") and len(slots) == 1:
                return bound["short"]
            if len(slots) > 1 or slots[0] in DERIVED_INPUTS:  # "CrCl >= 50 mL/min"
                label = self.slot_label(slots[0])
                return bound["text"].replace(label, label.split(" (")[0]) if slots[0] in DERIVED_INPUTS \
                    else bound["text"]
            for prefix in (self.slot_label(slots[0]) + ": ", self.slot_label(slots[0]) + " "):
                if bound["text"].startswith(prefix):
                    return bound["text"][len(prefix):]
            return bound["text"]
        need = " or ".join(short(b) for b in eligible_if)
        if one_scheme:
            need = "one of them is present" if eligible_if else ""
        text = f"{head}: eligible if {need}" if need else head
        if one_scheme and ineligible_if:
            text += "; excluded if all are absent"
        elif ineligible_if:
            both = any(len(x["all_of"]) > 1 for x in ineligible_if)
            text += "; excluded " + ("only if " if both else "if ") + " or ".join(
                " and ".join(short(b) for b in x["all_of"]) for x in ineligible_if)
        if slots == ["assessment:hydration_assistance"] and ineligible_if:
            # the registry asks for a CrCl "without the need for hydration assistance": a yes
            # makes the CrCl on record not count, which a CrCl repeated without it can mend
            # (a yes is not met as recorded, which a coordinator reads as "repeat", not "exclude")
            text = (f"{head}: eligible if {need}; if yes, the CrCl on record does not count: "
                    "not met until a CrCl is repeated without hydration assistance") if need else text
        note = self.stale_note(slots)
        step = {"action": action, "task": TASKS.get(action, "chart"), "label": head,
                "findings": [{"slot": s, "label": lbl} for s, lbl in zip(slots, labels)],
                "any_of": any_of, "eligible_if": eligible_if, "ineligible_if": ineligible_if,
                "can_exclude_alone": alone, "criteria": criteria, "all_criteria": every, "text": text}
        if sets:
            step["sets"] = sets
        if note:
            step["note"] = note
        # what the record already holds for these criteria ("INR 1.9 = 1.58 x ULN, not met")
        step["on_record"] = [c for c in self.comparisons(sorted(self.current.values()), criteria)
                             if c["holds"] is not None]
        windows = [w for w in (self.window_source(s) for s in slots) if w]
        if windows:
            w = windows[0]
            step["window"] = {"days": w["days"], "parameter": w["parameter"], "in_registry": w["registry"]}
        return step

    def value_words(self, slot: str, text: str, criteria: list[str] | None) -> dict:
        """A value phrase as data (:func:`_bound`); a closed-world declaration in words:
        declaring the problem list complete as it stands excludes because of what it does
        not list ("no systemic sclerosis"), and is needed for eligibility together with the
        other findings of its set."""
        if not slot.startswith("complete:"):
            return _bound(text)
        cat = slot.split(":", 1)[1]
        name = CLOSED_WORDS.get(cat, (cat.replace("_", " "),))[0]
        if criteria is None:
            return {"text": f"the {name} declared complete (with the rest of the set recorded as needed)",
                    "short": "declared complete, with the rest recorded as needed"}
        why = f" ({self._absent_diagnoses(criteria)} listed)" if cat == "diagnoses" else ""
        return {"text": f"the {name} declared complete as it stands{why}",
                "short": f"declared complete as it stands{why}"}

    def measure_label(self, slot: str) -> str:
        if slot in DERIVED_INPUTS:
            return DERIVED_INPUTS[slot]
        kind = _slot_kind(self.ex, slot)
        label = self.slot_label(slot)
        if kind == "complete":
            cat = slot.split(":", 1)[1]
            return f"whether the {CLOSED_WORDS.get(cat, (cat.replace('_', ' '),))[0]} is complete"
        if kind == "assessment" and slot == "assessment:hydration_assistance":
            return "hydration assistance for the creatinine clearance"
        return label

    def stale_note(self, slots: list[str]) -> str | None:
        """A value on record that is too old to count: said, with its date, so that it does
        not seem to contradict the criterion's unknown status."""
        notes = []
        for s in slots:
            stale = [(self._days(i), i) for i, u in enumerate(self.ex.units) if u.slot == s
                     and self._days(i) is not None and s in self.windows and self._days(i) > self.windows[s]]
            if stale:  # the most recent of them
                days, i = min(stale)
                self._stale_said.append(s)
                older = f" (and {len(stale) - 1} older)" if len(stale) > 1 else ""
                notes.append(f"the {self._stale_words(i)}{older}, is from {days} days before the screening date, "
                             f"older than the {self.windows[s]}-day look-back, so it is not used")
        return "; ".join(notes) or None

    def _stale_words(self, i: int) -> str:
        """"CrCl on record, 94.2 mL/min (2026-01-10)"."""
        u, view = self.ex.units[i], self.finding_view(i)
        head = u.text.split(" (")[0]
        label, unit = self.v.quantity_label(u.slot) if u.slot else (head, "")
        label = label.split(" (")[0]
        if head.startswith(label + " "):
            value = head[len(label) + 1:]
            if isinstance(view.get("value"), (int, float)) and "measured" not in view:
                value = f"{_show(view['value'], unit)}{' ' + unit if unit else ''}"
            return f"{label} on record, {value}" + (f" ({view['date']})" if view.get("date") else "")
        return f"{head} on record" + (f" ({view['date']})" if view.get("date") else "")

    # -- ineligible ----------------------------------------------------------------------
    def reason_view(self, r: Reason, scope: str, split: bool = True) -> dict:
        """A sufficient reason in words, one part per set of criteria its findings fail:
        each value against the threshold it misses, the other findings named briefly
        ("ANC 0.9 x10^9/L (needs >= 1 x10^9/L; SLE-IN-7b, SSC-IN-4b)"). Made once per
        reason and scope (a population's reasons are often the overall ones). ``split``: one
        part per criterion the findings settle (asked of the engine, a solve per finding);
        otherwise one part for all the reason's criteria (for the other reasons, named briefly)."""
        key = ("reason", tuple(r.units), tuple(r.criteria), scope, split)
        if key not in self._status_cache:
            self._status_cache[key] = self._reason_view(r, scope, split)
        return dict(self._status_cache[key])

    def _reason_view(self, r: Reason, scope: str, split: bool = True) -> dict:
        texts = [self.people_text(i, r.criteria) for i in r.units]
        cmps = [c for c in self.comparisons(r.units, r.criteria)
                if c["holds"] is (self.crit[c["criterion"]].kind == "exclusion")]
        # which criteria each finding settles: asked of the engine only when there is a choice
        # (with one deciding criterion every finding of a minimal reason settles it)
        touches = (self.touches(r.units, scope) if split and len(r.units) > 1 and len(r.criteria) > 1
                   else {i: r.criteria for i in r.units})
        groups: dict[tuple, list[int]] = {}
        for i in r.units:
            key = tuple(c for c in touches.get(i, []) if c in r.criteria) or tuple(r.criteria)
            groups.setdefault(key, []).append(i)
        parts = []
        for crits, units in groups.items():
            mine = [c for c in cmps if c["finding_id"] in {f"f{i}" for i in units} and c["criterion"] in crits]
            named = {c["finding_id"] for c in mine}
            unnamed = [i for i in units if f"f{i}" not in named]
            meds = [i for i in unnamed if self.ex.units[i].slot == "complete:medications"]
            courses = [i for i in unnamed if self.ex.units[i].key.startswith("medications[")]
            if meds and courses:  # the complete medication history and what it lists: one phrase
                rest = [self.brief(i, list(crits), alone=False) for i in unnamed if i not in meds + courses]
                rest.insert(0, "the medication history, declared complete, lists only: "
                            + "; ".join(self.finding_text(i).split("; ")[0] for i in courses))
            else:
                rest = [self.brief(i, list(crits), alone=len(units) == 1) for i in unnamed]
            text = ", with ".join(x for x in ("; ".join(_merged(mine, with_criteria=False)), ", ".join(rest)) if x)
            if len(units) == 1 and mine:  # "ANC 0.9 x10^9/L (needs >= 1 x10^9/L; SLE-IN-7b, SSC-IN-4b)"
                text = "; ".join(_merged(mine))
            elif not crits:  # a verdict rule beside the criteria (kb/lib/core.lp: deceased)
                text = f"{text} (a rule of the knowledge base beside the registry's criteria)"
            elif len(units) == 1:
                text = f"{text} ({', '.join(crits)})"
            else:  # "SLE-IN-3: oral prednisone-equivalent dose 5 mg/day (...), with ..."
                text = f"{', '.join(crits)}: {text}"
            parts.append({"criteria": list(crits), "finding_ids": [f"f{i}" for i in units], "text": text})
        return {"finding_ids": [f"f{i}" for i in r.units], "findings": texts, "criteria": r.criteria,
                "comparisons": cmps, "parts": parts, "text": "; ".join(p["text"] for p in parts)}

    def brief(self, i: int, criteria: list[str], alone: bool) -> str:
        """A finding named briefly inside a reason: a course by its drug and dates, a
        closed-world declaration in full words when it is the whole reason for its criteria,
        a closed list of items with the items it records present."""
        u = self.ex.units[i]
        if u.slot and u.slot.startswith("complete:"):
            if alone:
                return self.closed_world_text(i, criteria)
            cat = u.slot.split(":", 1)[1]
            if cat in self.v.scheme_groups:
                present = [self.v.item_label(x.slot.split(":", 2)[2]) for x in self.ex.units
                           if x.slot and x.slot.startswith(f"item:{cat}:") and x.facts[0].endswith(",yes)")]
                listed = f"recorded: {', '.join(present)}" if present else "none recorded"
                return f"the {self.category_name(cat)}, declared complete ({listed})"
            return "the " + self.declaration(i, criteria)["short"] + " declared complete"
        return self.finding_text(i).split("; ")[0]

    def miss_view(self, r: Reason, verdict: str, scope: str | None = None) -> dict:
        """A near miss in words: "eligible if ANC >= 1 x10^9/L (now 0.9), all else equal";
        a finding that has no other value the explanation tries (a treatment course, a
        declaration) by its absence: "undetermined without the prednisone course on record".
        With ``scope``: the populations the changed values reach, and the events that would
        undo it (asked of the engine, :meth:`event_caveats`)."""
        changes = []
        for s, v in zip(r.slots, r.values):
            now = next((self.ex.units[i] for i in r.units if self.ex.units[i].slot == s), None)
            cur = self.finding_view(self.ex.units.index(now)) if now else {}
            value = cur.get("value")
            if v.endswith(": no single value"):  # no other value would do: only its absence
                changes.append(f"the {self.finding_text(self.ex.units.index(now)) if now else v} were not on record")
                continue
            changes.append(self._tidy(v) + (f" (now {_show(value, '')})" if isinstance(value, (int, float)) else ""))
        absent = []
        for i in r.units:
            if self.ex.units[i].slot in r.slots:
                continue
            u = self.ex.units[i]
            if u.slot and u.slot.startswith("complete:"):
                absent.append(f"the {self.category_name(u.slot.split(':', 1)[1])} were not declared complete")
            elif u.key.startswith("medications["):
                absent.append(f"the course of {self.finding_text(i).split('; ')[0]} were not on record "
                              "(a course has no other value to try)")
            else:
                absent.append(f"{self.finding_text(i)} were not on record")
        changes += absent
        retest = " on retest" if verdict == "ineligible" and all(_slot_kind(self.ex, s) in ("quantity", "qualitative")
                                                                   for s in r.slots) and r.slots else ""
        outcome = r.outcome if r.outcome in ("eligible", "ineligible", "undetermined") else "undetermined"
        view = {"finding_ids": [f"f{i}" for i in r.units], "findings": [self.finding_text(i) for i in r.units],
                "outcome": outcome, "values": [_bound(v) for v in r.values], "criteria": r.criteria}
        pops: list[str] = []
        if scope is not None and r.slots and outcome == "eligible":
            keep = [i for i in range(len(self.ex.units)) if i not in r.units]
            picks = self._working_picks(keep, r.slots, (scope, outcome))
            atoms = self.ex.solve(keep, picks=picks) if picks is not None else None
            if atoms is not None:
                pops = [a.arguments[1].name for a in atoms if a.name == "verdict" and a.arguments[2].name == "eligible"]
                crit = _dedupe(c for s in r.slots for c in self.readers(s)
                               if self.crit[c].population in (*pops, "all"))
                view["caveats"] = self.event_caveats(crit, keep, tuple(picks))
            view["populations"] = pops
        who = f" for {', '.join(self.scope_name(p) for p in pops)}" if pops else ""
        view["text"] = f"{outcome}{who} if {' and '.join(changes)}{retest}, all else equal"
        if absent and not r.slots and outcome == "undetermined" and verdict == "ineligible":
            # only the absence of a course or a declaration unsettles it: say what that means
            meds = any(self.ex.units[i].slot == "complete:medications" for i in r.units)
            view["text"] += (" (a treatment course missing from the list could then change it)" if meds
                             else " (what is then unknown could go either way)")
        return view

    def _working_picks(self, known: list[int], slots: list[str], target: tuple[str, str]) -> list[int] | None:
        """One value per slot that reaches ``target`` together (the first that works)."""
        picks: list[int] = []
        for k, s in enumerate(slots):
            rest = slots[k + 1:]
            found = next((j for j, h in enumerate(self.ex.hyps) if h.slot == s
                          and self.ex.holds(known, rest, target, picks=picks + [j])), None)
            if found is None:
                return None
            picks.append(found)
        return picks

    def _tidy(self, text: str) -> str:
        """A value phrase of the explainer for people: "ANC >= 1.0 x10^9/L"."""
        b = _bound(text)
        if "op" not in b:
            return text
        finding = b["finding"].split(" (")[0] if b["finding"].startswith("CrCl") else b["finding"]
        return f"{finding} {b['op']} {_show(b['value'])} {b['unit']}".rstrip()

    def nearest(self, misses: list[Reason], flip: str) -> Reason | None:
        def distance(r: Reason) -> float:
            d = []
            for cmp in self.comparisons(r.units, r.criteria):
                if cmp["margin"] is not None:
                    d.append(cmp["margin"])
            return min(d) if d else 1.0
        ranked = sorted(misses, key=lambda r: (r.outcome != flip, len(r.units), distance(r)))
        return ranked[0] if ranked else None

    def ineligible(self, e: ScopeExplanation) -> dict:
        answer = {"verdict": "ineligible", "other_reasons": max(len(e.sufficient_reasons) - 1, 0)}
        if e.sufficient_reasons:
            answer["reason"] = self.reason_view(e.sufficient_reasons[0], e.scope)
            answer["reason"]["by_criterion"] = self.by_criterion(e.sufficient_reasons[0].units, e.scope)
        answer["other_reasons_named"] = [self.reason_view(r, e.scope, split=False)["text"]
                                         for r in e.sufficient_reasons[1:3]]
        # a near miss that only takes away a verdict rule's finding (the patient were not
        # deceased) is no change a coordinator can make: not offered
        miss = self.nearest([m for m in e.near_misses if m.criteria], "eligible")
        answer["nearest_miss"] = self.miss_view(miss, "ineligible", e.scope) if miss else None
        n = len(e.sufficient_reasons[0].units) if e.sufficient_reasons else 0
        pops = [p for p in self.kb.populations if e.scope in ("overall", p)]
        names = " and ".join(self.scope_name(p) for p in pops)
        answer["headline"] = (f"ineligible for {names}: {n} finding{'s' if n != 1 else ''} "
                              f"settle{'s' if n == 1 else ''} it" if n else f"ineligible for {names}")
        return answer

    # -- eligible ------------------------------------------------------------------------
    def eligible(self, e: ScopeExplanation) -> dict:
        r = self.s.result
        pops = [p for p in self.kb.populations if r.verdicts.get(p) == "eligible"] if e.scope == "overall" else [e.scope]
        met = [c.id for c in self.kb.criteria if c.population in (*pops, "all")
               and self.now.get(c.id) == ("met" if c.kind == "inclusion" else "not_met")]
        current = sorted(self.current.values())
        cmps = [c for c in self.comparisons(current, met) if c["holds"] is (self.crit[c["criterion"]].kind == "inclusion")]
        cmps.sort(key=lambda c: (c["margin"] is None, c["margin"] or 0))
        # the closest comparisons the criteria rest on (asked of the engine, closest first)
        binding = []
        for c in cmps:
            if len(binding) == MARGINS_SHOWN:
                break
            if self.binding(c):
                binding.append(c)
        cmps = binding
        answer = {"verdict": "eligible", "populations": pops, "criteria_met": met,
                  "thinnest_margins": cmps, "other_reasons": max(len(e.sufficient_reasons) - 1, 0)}
        names = ", ".join(self.scope_name(p) for p in pops)
        inclusions = [c for c in met if self.crit[c].kind == "inclusion"]
        exclusions = [c for c in met if self.crit[c].kind == "exclusion"]
        answer["no_exclusions"] = [p for p in pops if not any(c.population == p and c.kind == "exclusion"
                                                              for c in self.kb.criteria)]
        answer["text"] = (f"all {len(inclusions)} {names} inclusion criteria are met"
                          + (f" and none of its {len(exclusions)} exclusion criteria applies" if exclusions else ""))
        if e.sufficient_reasons:
            first = e.sufficient_reasons[0]
            by = {c: ids for c, ids in self.by_criterion(first.units, e.scope).items()
                  if c not in self.crit or self.crit[c].population in (*pops, "all")}
            answer["reason"] = {"finding_ids": [f"f{i}" for i in first.units],
                                "findings": [self.people_text(i, first.criteria) for i in first.units],
                                "criteria": first.criteria, "by_criterion": by, "count": len(first.units),
                                "text": f"{len(first.units)} recorded findings settle it"}
            answer["rests_on"] = [self.declaration(i, first.criteria) for i in first.units
                                  if self.ex.units[i].slot and self.ex.units[i].slot.startswith("complete:")]
            answer["swaps"] = self.swaps(e.sufficient_reasons, by)
            # the margins shown say their own findings; every criterion's other findings follow
            # (a second reader missed SSC-IN-4b's ANC and SSC-IN-4d's INR beside their margins)
            shown = {(m["criterion"], m["finding_id"]) for m in cmps[:MARGINS_SHOWN]}
            # a criterion rests on the reason's findings whose loss would unsettle it, and on
            # those it reads that another finding could stand in for (two SLEDAI-2K descriptors
            # of organ groups, each enough for SLE-IN-6)
            evidence = {c: [i for i in ids if (c, i) not in shown] for c, ids in by.items() if c in self.crit}
            for c in evidence:
                evidence[c] += [f"f{i}" for i in first.units if f"f{i}" not in evidence[c]
                                and (self.ex.units[i].slot or "").startswith("item:") and self.unit_read_by(i, c)]
                evidence[c].sort(key=lambda f: first.units.index(int(f[1:])))
            answer["evidence"] = [{"criterion": c, "finding_ids": ids, "findings": self.evidence(ids, c),
                                   "comparisons": self.comparisons([int(i[1:]) for i in ids], [c]),
                                   "beside_margin": any(c == m for m, _ in shown)}
                                  for c, ids in evidence.items() if ids]
            answer["scores"] = self.score_lines([c for c in met])
        answer["headline"] = f"eligible for {names}"
        return answer

    def score_lines(self, criteria: list[str]) -> list[dict]:
        """The scores the rules compute for ``criteria`` (those reading the score's items), in
        words: "SLEDAI-2K at least 12 points (2026-02-24; items not recorded could add more)"."""
        out = []
        schemes = {key: scheme for key, _, _, _, scheme, *_ in SCORES}
        for sc in self.scores():
            readers = [c for c in criteria if self.reads(c, "item", schemes[sc["name"]])]
            if not readers:
                continue
            if "value" in sc:
                value = f"{sc['value']} points"
            else:
                value = f"at least {sc['low']} points from the items recorded present"
            out.append({"name": sc["name"], "criteria": readers, "text": f"{sc['label']} {value}"})
        return out

    def unit_read_by(self, i: int, cid: str) -> bool:
        """Do the rules of a criterion read this recorded finding (statically)?"""
        u = self.ex.units[i]
        if u.key.startswith("medications["):
            return self.reads(cid, "course")
        if u.facts[0].startswith("sledai2k_assessed("):
            return self.reads(cid, "sledai2k_assessed")
        return bool(u.slot) and cid in self.readers(u.slot) if u.slot in self.ex.slots or (
            u.slot and u.slot.startswith(("item:", "complete:", "diagnosis:", "assessment:"))) else False

    def binding(self, cmp: dict) -> bool:
        """Does the criterion rest on this comparison? Asked of the engine: with the quantity
        unknown (every result of it), does the criterion lose its status? If it keeps it, no
        value of the quantity changes it ("prednisone-equivalent >= 7.5 mg/day" does not bind
        SLE-IN-3 when a combination therapy meets it; the INR does not bind SLE-IN-7d when the
        APTT also meets it); if it loses it, some value does (the criteria are monotone in the
        quantity, docs/semantics.md). One solve per quantity, shared by its comparisons."""
        q = self._quantity(int(cmp["finding_id"][1:]))
        if q is None:
            return True
        name = q[0]
        known = [k for k, u in enumerate(self.ex.units) if u.slot != name]
        return self.status_with(known).get(cmp["criterion"]) != self.now.get(cmp["criterion"])

    def evidence(self, ids: list[str], cid: str) -> list[str]:
        """The findings a criterion rests on, briefly: a value against its threshold, a
        closed list in words, the items of one scheme together ("EULAR/ACR 2019: ANA >=
        1:80, joint involvement present")."""
        out, items = [], {}
        for fid in ids:
            i = int(fid[1:])
            u = self.ex.units[i]
            cmps = [c for c in self.comparisons([i], [cid])]
            if u.slot and u.slot.startswith("complete:"):
                out.append(self.brief(i, [cid], alone=True))
            elif cmps:
                out.append(f"{cmps[0]['dated_text']} ({'; '.join(_dedupe(c['need_text'] for c in cmps))})")
            elif u.slot and u.slot.startswith("item:") and u.facts[0].startswith("item("):
                _, scheme, item = u.slot.split(":", 2)
                value = {"yes": "present", "no": "absent"}.get(_args(u.facts[0])[-1], "")
                key = (scheme, value)
                if key not in items:
                    items[key] = []
                    out.append(key)
                items[key].append(self.v.item_label(item))
            else:
                out.append(self.finding_text(i).split("; ")[0])
        return [x if isinstance(x, str) else
                f"{self.v.scheme_labels.get(x[0], x[0])}: {', '.join(items[x])} {x[1]}".rstrip() for x in out]

    def swaps(self, reasons: list[Reason], by: dict | None = None) -> list[dict]:
        """How the other sufficient reasons differ from the first: one finding for another,
        with the criteria the replaced findings serve in the first (``by``: by_criterion)."""
        first = set(reasons[0].units)
        serves = {}
        for cid, ids in (by or {}).items():
            for fid in ids:
                serves.setdefault(fid, []).append(cid)
        out = []
        for r in reasons[1:]:
            gone, new = sorted(first - set(r.units)), sorted(set(r.units) - first)
            item = {"instead_of": [self.short_name(i) for i in gone], "use": [self.short_name(i) for i in new],
                    "instead_of_ids": [f"f{i}" for i in gone], "use_ids": [f"f{i}" for i in new],
                    "criteria": _dedupe(c for i in gone for c in serves.get(f"f{i}", []) if c in self.crit)}
            if item not in out:
                out.append(item)
        return out

    # -- populations, notes --------------------------------------------------------------
    def population_lines(self, first: ScopeExplanation, answer: dict) -> list[dict]:
        first_reason = answer.get("reason") if answer.get("verdict") == "ineligible" else None
        out = []
        for pop in self.kb.populations:
            e = self.scopes.get(pop)
            verdict = self.s.result.verdicts.get(pop, "undetermined")
            line = {"population": pop, "name": self.scope_name(pop), "verdict": verdict,
                    "same_as_overall": e is not None and _same(e, first)}
            if e is None:
                line["text"] = f"{line['name']}: {verdict}"
            elif line["same_as_overall"]:
                line["text"] = f"{line['name']}: {verdict}, as above"
            elif verdict == "ineligible" and e.sufficient_reasons:
                first_ids = set(first_reason["finding_ids"]) if first_reason else None
                views = [self.reason_view(x, pop, split=k == 0) for k, x in enumerate(e.sufficient_reasons[:3])]
                line["reason"] = views[0]
                line["other_reasons"] = [x["text"] for x in views[1:]]
                if len(views) == 1 and set(views[0]["finding_ids"]) == first_ids:  # said above
                    line["same_as_overall"] = True
                    line["text"] = f"{line['name']}: ineligible, as above"
                    out.append(line)
                    continue
                texts = []
                for x, r in zip(views, e.sufficient_reasons):
                    if set(x["finding_ids"]) == first_ids:
                        texts.append(f"the {' + '.join(self.short_name(i) for i in r.units)} above"
                                     + (f" ({', '.join(x['criteria'])})" if x["criteria"] else ""))
                    else:
                        texts.append(x["text"])
                if len(texts) == 1:
                    line["text"] = f"{line['name']}: ineligible: {texts[0]}"
                else:  # every reason named: "for 2 separate reasons, each enough alone: A; and B"
                    more = len(e.sufficient_reasons) - len(texts)
                    line["text"] = (f"{line['name']}: ineligible for {len(texts) + max(more, 0)} separate reasons, "
                                    f"each enough alone: " + "; and ".join(texts)
                                    + (f" (and {more} more)" if more > 0 else ""))
            elif verdict == "undetermined":
                routes = e.missing.get("eligible", [])
                outs = [r for r in e.missing.get("ineligible", []) if len(r.slots) == 1]
                rule_out = next((r for r in outs if r.slots[0].startswith("complete:")), outs[0] if outs else None)
                why = ""
                if rule_out is not None:  # the one finding that would rule the population out
                    s0 = rule_out.slots[0]
                    b = self.value_words(s0, rule_out.values[0], rule_out.criteria)
                    label = self.measure_label(s0)
                    what = (f"declaring the {self.category_name(s0.split(':', 1)[1])} complete as it stands"
                            f"{b['text'].split('as it stands', 1)[1]}" if s0.startswith("complete:")
                            else b["text"] if b["text"].startswith(label.split(" (")[0])
                            else f"{label}: {b['text']}")
                    why = f"; {what} would rule it out"
                    line["rule_out"] = {"slot": s0, "text": what, "criteria": rule_out.criteria}
                if routes:
                    best = min(routes, key=lambda r: len(r.slots))
                    labels = [self.measure_label(s) for s in best.slots]
                    line["text"] = (f"{line['name']}: undetermined{why}; eligibility for {line['name']} would need "
                                    f"{len(labels)} more finding{'s' if len(labels) != 1 else ''}")
                    line["to_measure"] = [{"slot": s, "label": lbl} for s, lbl in zip(best.slots, labels)]
                else:
                    line["text"] = f"{line['name']}: undetermined{why}; {NO_ROUTE}"
            else:
                line["text"] = f"{line['name']}: {verdict}"
            out.append(line)
        return out

    def notes(self, answer: dict) -> list[str]:
        """Values on record that are not read: results the findings stage set aside (an
        impossible value, a unit it cannot read), and values too old, where that is why a
        criterion is unknown: the most recent such value of each finding that has no current
        one, said once (not again when a step of the answer says it)."""
        said = {f["slot"] for st in answer.get("to_measure", []) if st.get("note") for f in st["findings"]}
        stale: dict[str, list[tuple[int, int]]] = {}
        for i, u in enumerate(self.ex.units):
            fact = u.facts[0]
            if not fact.startswith(("quantity(", "qualitative(")) or u.slot in said:
                continue
            name, days = _args(fact)[0], int(_args(fact)[-1])
            window = self.windows.get(name)
            if window is not None and days > window and name not in self.current:
                stale.setdefault(name, []).append((days, i))
        # results the findings stage set aside (an EHR's impossible value or unreadable unit):
        # the patient was screened without them, which the reader of the explanation must know
        out = [n.removesuffix(": result not used") + " (set aside)" for n in self.s.findings.notes
               if n.endswith(": result not used")]
        for name, items in stale.items():
            days, i = min(items)
            crit = _dedupe(self.component_of.get(comp, comp) for comp, n, _, _ in self.kb.checks if n == name)
            crit = [c for c in crit if self.in_scope(c)]
            reader = f", so {', '.join(crit)} {'has' if len(crit) == 1 else 'have'} no current value" if crit else ""
            older = f" (and {len(items) - 1} older)" if len(items) > 1 else ""
            self._stale_said.append(name)
            out.append(f"the {self._stale_words(i)}{older}, is from {days} days before the screening date, older "
                       f"than the {self.windows[name]}-day look-back{reader}")
        return out

    # -- derived values --------------------------------------------------------------------
    def derived(self) -> list[dict]:
        unit_of = {f.fact: i for i, fs in enumerate(self.unit_findings) for f in fs}
        out = derived_values(self.kb, self.s.findings)
        for view, f in zip(out, [f for f in self.s.findings.findings if _is_derived(f)]):
            if f.fact in unit_of:
                view["finding_id"] = f"f{unit_of[f.fact]}"
        return out + self.scores()

    def scores(self) -> list[dict]:
        """Score totals as the knowledge base computes them (kb/lib/scores.lp): a value,
        or low/high bounds when items are unknown, with the items and their weights."""
        if "scores" not in self._status_cache:
            self._status_cache["scores"] = self._scores()
        return self._status_cache["scores"]

    def _scores(self) -> list[dict]:
        sigs = [(lo, 2) for _, _, lo, _, *_ in SCORES] + [(hi, 2) for _, _, _, hi, *_ in SCORES]
        atoms = {a.name: a.arguments[1].number for a in self.ex.atoms(sigs)}
        items = {}
        for u in self.ex.units:
            if u.slot and u.slot.startswith("item:"):
                _, scheme, item = u.slot.split(":", 2)
                value = _args(u.facts[0])[-1] if u.facts[0].startswith("item(") else "unknown"
                items.setdefault(scheme, []).append((item, value))
        out = []
        for key, label, lo, hi, scheme, (table, arity, w), rule, source in SCORES:
            if lo not in atoms or hi not in atoms:
                continue
            weights = {str(a.arguments[0]): a.arguments[w].number for a in self.ex.facts(table, arity)}
            view = {"name": key, "label": label, "unit": "{score}"}
            if atoms[lo] == atoms[hi]:
                view["value"] = atoms[lo]
            else:
                view["low"], view["high"] = atoms[lo], atoms[hi]
            recorded = [(it, v) for it, v in items.get(scheme, []) if v in ("yes", "unknown")]
            view["inputs"] = [{"item": it, "label": self.v.item_label(it), "present": v == "yes" if v != "unknown" else None,
                               "weight": weights.get(it)} for it, v in recorded]
            if not recorded and key == "sledai2k":
                total = next((f.data for fs in self.unit_findings for f in fs if f.name == "sledai2k_total"), None)
                if total:
                    view["inputs"] = [{"recorded_total": total["value"], "date": total.get("date")}]
            view["rule"], view["source"] = rule, source
            out.append(view)
        return out

    # -- details -----------------------------------------------------------------------
    def details(self) -> list[dict]:
        """Every explanation of every scope (the full lists), a population's marked
        ``same_as: "overall"`` when it says the same as the overall one."""
        out = []
        overall = self.scopes.get("overall")
        for scope, e in self.scopes.items():
            item = {"scope": scope, "verdict": e.verdict, "complete": e.complete}
            if scope != "overall" and overall is not None and _same(e, overall):
                item["same_as"] = "overall"
                out.append(item)
                continue
            if e.verdict in ("eligible", "ineligible"):
                item["sufficient_reasons"] = [
                    {"finding_ids": [f"f{i}" for i in r.units],
                     "findings": [self.people_text(i, r.criteria) for i in r.units],
                     "criteria": r.criteria, "sources": r.sources} for r in e.sufficient_reasons]
                item["near_misses"] = [{**self.miss_view(r, e.verdict), "sources": r.sources} for r in e.near_misses]
            else:
                item["missing"] = {}
                for goal, rs in e.missing.items():
                    item["missing"][goal] = []
                    for r in rs:
                        bounds = [self.value_words(s, v, r.criteria if goal == "ineligible" else None)
                                  for s, v in zip(r.slots, r.values)]
                        item["missing"][goal].append({
                            "slots": r.slots, "findings": [self.slot_label(s) for s in r.slots],
                            "values": [b["text"] for b in bounds], "criteria": r.criteria, "bounds": bounds})
                gap = e.complete and not (e.missing.get("eligible") and e.missing.get("ineligible"))
                sure, unsure = self.cannot_change(e, gap)
                item["cannot_change_outcome"] = self.slot_labels(sure)
                item["cannot_tell"] = self.slot_labels(unsure)
                item["gap"] = {g: e.complete and not e.missing.get(g) for g in ("eligible", "ineligible")}
            out.append(item)
        return out


def _is_derived(f: Finding) -> bool:
    return f.data is not None and (f.name in ("crcl", "prednisone_equivalent", "fvc_decline_12mo")
                                   or f.name.endswith(("_x_uln", "_duration")) or f.name.startswith("gc_dose_per_kg:"))


def derived_values(kb: KnowledgeBase, findings) -> list[dict]:
    """The values the findings stage computes (CrCl with the weight used, ULN multiples,
    the prednisone-equivalent dose, per-kg doses, disease durations, FVC decline) as data:
    ``{"name", "label", "value" (or "low"/"high", "at_least"), "unit", "inputs", ...,
    "days_before_screening", "window_days", "in_window", "read", "read_by"}`` (docs/output.md).
    ``read``: the rules read this one (the latest within its window); ``read_by``: the
    criteria comparing it with a threshold. Scores, which the rules compute, are added by
    :func:`summarise`."""
    component_of = {part: c.id for c in kb.criteria for part in c.components}
    latest: dict[str, tuple[int, str]] = {}
    for f in findings.findings:
        if f.fact.startswith("quantity("):
            name, days = _args(f.fact)[0], int(_args(f.fact)[-1])
            window = kb.windows.get(name)
            if (window is None or days <= window) and (name not in latest or days < latest[name][0]):
                latest[name] = (days, f.fact)
    out = []
    for f in findings.findings:
        if not _is_derived(f):
            continue
        view = {"name": f.name, "label": _derived_label(f, kb.vocabulary), **f.data}
        if f.name in kb.windows:
            days = view.get("days_before_screening", 0)
            view["window_days"] = kb.windows[f.name]
            view["in_window"] = days <= kb.windows[f.name]
            view["read"] = latest.get(f.name, (0, None))[1] == f.fact
        view["read_by"] = _dedupe(component_of.get(comp, comp) for comp, n, _, _ in kb.checks if n == f.name)
        out.append(view)
    return out


def _derived_label(f: Finding, vocab) -> str:
    """A derived value's name for people: "CrCl (Cockcroft-Gault)", "ALT multiple of the ULN",
    "systemic lupus erythematosus: disease duration"."""
    if f.name.endswith("_duration"):
        return f"{vocab.label(f.name[:-9])}: disease duration"
    if f.name.startswith("gc_dose_per_kg:"):
        return f"{f.name.split(':', 1)[1].replace('_', ' ')}: highest prednisone-equivalent dose per kg"
    label = vocab.quantity_label(f.name)[0]
    return f"{label} as a multiple of the ULN" if f.name.endswith("_x_uln") else label


def _show(value, unit: str | None = None) -> str:
    """A number for people: two decimals below 10, one above (the data keep every digit); a
    measured value below 10 keeps one decimal ("INR 1.0", not "INR 1", read as "the first
    INR"), except counts and scores."""
    v = Fraction(value)
    text = fmt(v, 2 if abs(v) < 10 else 1)
    if unit is not None and "." not in text and abs(v) < 10 and unit not in ("{score}", "points", "d", "mo", "a"):
        text += ".0"
    return text


def _cited(doc: dict) -> list[str]:
    """The criteria the answer names (the registry sentences to print with it): those of
    the steps, the reason, the nearest miss, the margins shown and the population lines."""
    a = doc["answer"]
    ids: list[str] = []
    for st in a.get("to_measure", []):
        ids += st["criteria"]
    for key in ("reason", "nearest_miss") if a["verdict"] == "ineligible" else ():
        if a.get(key) and "criteria" in a[key]:
            ids += a[key]["criteria"]
    ids += [m["criterion"] for m in a.get("thinnest_margins", [])[:MARGINS_SHOWN]]
    for line in doc["populations"]:
        if not line["same_as_overall"] and line.get("reason"):
            ids += line["reason"]["criteria"]
    return _dedupe(ids)


def _merged(cmps: list[dict], with_criteria: bool = True) -> list[str]:
    """Comparisons in words, those of one value against one threshold said once with all
    their criteria: "ANC 0.9 x10^9/L (needs >= 1 x10^9/L; SLE-IN-7b, SSC-IN-4b)"."""
    groups: dict[str, dict[str, list[str]]] = {}
    for c in cmps:
        groups.setdefault(c.get("dated_text", c["value_text"]), {}).setdefault(c["need_text"], []).append(c["criterion"])
    out = []
    for value, needs in groups.items():
        if not with_criteria and len(needs) == 1:
            out.append(f"{value} ({next(iter(needs))})")
        elif len(needs) == 1:
            need, ids = next(iter(needs.items()))
            out.append(f"{value} ({need}; {', '.join(_dedupe(ids))})")
        else:
            out.append(f"{value} (" + "; ".join(f"{n}: {', '.join(_dedupe(i))}" for n, i in needs.items()) + ")")
    return out


def _same(a: ScopeExplanation, b: ScopeExplanation) -> bool:
    """Do two scopes say the same (criteria aside, which differ by population)?"""
    def key(e: ScopeExplanation):
        return (e.verdict,
                [(tuple(r.units), tuple(r.values)) for r in e.sufficient_reasons],
                [(tuple(r.units), tuple(r.values), r.outcome) for r in e.near_misses],
                {g: [(tuple(r.slots), tuple(r.values)) for r in rs] for g, rs in e.missing.items()},
                tuple(e.useless))
    return key(a) == key(b)


def _bound(text: str) -> dict:
    """A value phrase of the explainer as data: "ALT <= 2 x ULN" is
    ``{"text": ..., "finding": "ALT", "op": "<=", "value": 2, "unit": "x ULN"}``; a
    phrase without a comparison ("IGRA negative") keeps its text only."""
    for op in (" >= ", " <= ", " > ", " < ", " = "):
        if op in text:
            head, _, tail = text.partition(op)
            num, _, unit = tail.partition(" ")
            try:
                value = Fraction(num)
            except ValueError:
                break
            return {"text": text, "finding": head, "op": op.strip(), "value": number(value), "unit": unit}
    return {"text": text}


def _numbers(text: str) -> set[Fraction]:
    """The numbers a registry sentence states ("≥ 1.0×10⁹/L" gives 1.0 and 10; "1.5×ULN" 1.5)."""
    return {Fraction(m) for m in re.findall(r"\d+(?:\.\d+)?", text)}


def parameter_view(kb: KnowledgeBase, name: str) -> dict:
    """A parameter as the text names it: value and default with their unit, the criteria
    using it and what it means (its doc in the manifest)."""
    from dataclasses import replace as _replace

    p = kb.parameters[name]
    return {"name": name, "value": p.display(), "default": _replace(p, value=p.default).display(),
            "used_by": list(kb.parameter_uses.get(name, ())), "doc": p.doc}

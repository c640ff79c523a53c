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

from collections.abc import Sequence
from fractions import Fraction

from pyasp_screen.engine.screening import Screened
from pyasp_screen.explain.explainer import Explainer, Reason, ScopeExplanation, _args, _values_for, explain
from pyasp_screen.findings.derive import Finding, fmt, number
from pyasp_screen.knowledge.vocabulary import display_unit
from pyasp_screen.knowledge.kb import SCALE, KnowledgeBase

SUMMARY_VERSION = "1"
# When no unknown finding can make a patient eligible although the verdict is undetermined:
# the explanation hypothesises values of findings (docs/explanations.md), never new treatment
# courses, so what is missing is of another kind.
NO_ROUTE = ("no unknown lab value, diagnosis, assessment or declaration could make it eligible "
            "(what is missing may be a treatment course, which the explanation does not hypothesise)")
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
DERIVED_INPUTS = {"crcl": "creatinine (CrCl by Cockcroft-Gault, with weight, age and sex)",
                  "prednisone_equivalent": "the current oral glucocorticoid dose",
                  "fvc_decline_12mo": "FVC % predicted (decline over 12 months)"}


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


def short_answer(summary: dict) -> str:
    """The answer in one line (screen --explain, whatif): the headline and its first item."""
    a = summary["answer"]
    if a["verdict"] == "undetermined" and a.get("to_measure"):
        return "to measure or record, in order: " + ", ".join(s["label"] for s in a["to_measure"])
    if a["verdict"] == "ineligible" and a.get("reason"):
        return a["reason"]["text"]
    if a["verdict"] == "eligible":
        margins = [m["text"] for m in a.get("thinnest_margins", [])[:1]]
        return a["text"] + ("; thinnest margin: " + "; ".join(margins) if margins else "")
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
            cat = u.slot.split(":", 1)[1]
            return f"{CLOSED_WORDS.get(cat, (cat.replace('_', ' '),))[0]} declared complete"
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
        """A closed-world declaration in words, for the criteria it decides here."""
        cat = self.ex.units[i].slot.split(":", 1)[1]
        if cat != "diagnoses":
            return f"{CLOSED_WORDS.get(cat, (cat, 'nothing besides what is listed'))[1]}, in a " \
                   f"{CLOSED_WORDS.get(cat, (cat.replace('_', ' '),))[0]} declared complete"
        return f"{self._absent_diagnoses(criteria)} in a problem list declared complete"

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
            if any(st.get(c) != self.now.get(c) for c in criteria):
                names.append(self.v.label(d))
        listing = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else "".join(names)
        text = f"no {listing}" if names else "no diagnosis besides those listed"
        self._dx_words[key] = text
        return text

    def short_name(self, i: int) -> str:
        """A finding by its name only ("APTT", "EULAR/ACR 2019: anti-dsDNA or anti-Smith")."""
        u = self.ex.units[i]
        if u.slot and u.slot in self.ex.slots and not u.slot.startswith(("complete:", "diagnosis:")):
            label = self.slot_label(u.slot)
            return label if not u.slot.startswith("item:") else u.text.removesuffix(" present").removesuffix(" absent")
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
        shown = _show(value) if value is not None else "?"
        if "measured" in data:  # "ALT 32 U/L = 0.8 x ULN"
            m = data["measured"]
            mu = display_unit(m["unit"]) if m["unit"] else ""
            shown = f"{_show(m['value'])}{' ' + mu if mu else ''} = {shown}"
        u2 = u
        need = f"{'needs' if self.crit[cid].kind == 'inclusion' else 'excluded at'} {OPS[op]} {fmt(threshold)}{u}"
        value_text = f"{label} {shown}{u2}"
        text = f"{value_text} ({need}; {cid})"
        return {"criterion": cid, "component": comp, "finding_id": f"f{i}", "finding": label, "kind": self.crit[cid].kind,
                "value": value, "unit": data.get("unit", unit), "op": OPS[op], "threshold": number(threshold),
                "holds": holds, "margin": margin, "date": data.get("date"), "text": text,
                "value_text": value_text, "need_text": need}

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
        decide (asked of the engine)."""
        out: set[str] = set()
        n = len(self.ex.units)
        for j, h in enumerate(self.ex.hyps):
            if h.slot != slot:
                continue
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
        doc["closed_world"] = [{"category": u.slot.split(":", 1)[1], "text": self.finding_text(i)}
                               for i, u in enumerate(self.ex.units) if u.slot and u.slot.startswith("complete:")]
        doc["parameters_changed"] = {p.name: p.display() for p in self.kb.parameters.values() if p.value != p.default}
        doc["findings"] = [self.finding_view(i) for i in range(len(self.ex.units))]
        doc["derived"] = self.derived()
        doc["explanations"] = self.details()
        doc["complete"] = all(e.complete for e in self.scopes.values())
        doc["criteria"] = [{"id": c, "sentence": self.crit[c].sentence} for c in _cited(doc) if c in self.crit]
        doc["criteria_status"] = [{"id": c.id, "population": c.population, "kind": c.kind,
                                   "status": r.statuses.get(c.id, "unknown"), "sentence": c.sentence}
                                  for c in self.kb.criteria]
        return doc

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
        answer = {"verdict": "undetermined", "to_measure": [], "other_ways_to_eligible": 0,
                  "cannot_change_outcome": len(e.useless)}
        if not routes:
            steps = [self.step([s], {}) for s in _dedupe(s for r in excluders if len(r.slots) == 1 for s in r.slots)]
            answer["to_measure"] = steps
            answer["headline"] = f"undetermined: {NO_ROUTE}"
            return answer
        size = min(len(r.slots) for r in routes)
        best = [r for r in routes if len(r.slots) == size]
        answer["other_ways_to_eligible"] = len(routes) - len(best)
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
        # a result that can exclude on its own first (it can end the screening), then protocol order
        order = {c.id: k for k, c in enumerate(self.kb.criteria)}
        steps.sort(key=lambda st: (not st["can_exclude_alone"],
                                   min((order.get(c, 999) for c in st["criteria"]), default=999)))
        answer["to_measure"] = steps
        pops = ([e.scope] if e.scope != "overall" else
                [p for p in self.kb.populations if p in self._route_populations(best[0])])
        answer["then"] = {"verdict": "eligible", "populations": pops}
        n = len(steps)
        names = ", ".join(self.scope_name(p) for p in pops) or "a population"
        answer["headline"] = (f"undetermined: {n} finding{'s' if n != 1 else ''} to measure or record; "
                              f"eligible for {names} if {'it comes' if n == 1 else 'they come'} back as needed")
        return answer

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
        criteria = _dedupe(c for s in slots for c in self.slot_criteria(s))
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
            if len(slots) > 1 or slots[0] in DERIVED_INPUTS:
                return bound["text"]
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
            text += "; excluded if " + " or ".join(
                " and ".join(short(b) for b in x["all_of"]) for x in ineligible_if)
        note = self.stale_note(slots)
        step = {"action": action, "label": head, "findings": [{"slot": s, "label": lbl} for s, lbl in zip(slots, labels)],
                "any_of": any_of, "eligible_if": eligible_if, "ineligible_if": ineligible_if,
                "can_exclude_alone": alone, "criteria": criteria, "text": text}
        if sets:
            step["sets"] = sets
        if note:
            step["note"] = note
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
        """A value on record that is too old to count: said, so that it does not seem to
        contradict the criterion's unknown status."""
        notes = []
        for s in slots:
            stale = [(self._days(i), u) for i, u in enumerate(self.ex.units) if u.slot == s
                     and self._days(i) is not None and s in self.windows and self._days(i) > self.windows[s]]
            if stale:  # the most recent of them
                days, u = min(stale, key=lambda t: t[0])
                older = f" (and {len(stale) - 1} older)" if len(stale) > 1 else ""
                notes.append(f"{u.text.split(' (')[0]} on record{older} is {days} days old, outside the "
                             f"{self.windows[s]}-day window, so it is not read")
        return "; ".join(notes) or None

    # -- ineligible ----------------------------------------------------------------------
    def reason_view(self, r: Reason, scope: str) -> dict:
        """A sufficient reason in words, one part per set of criteria its findings fail:
        each value against the threshold it misses, the other findings named briefly
        ("ANC 0.9 x10^9/L (needs >= 1 x10^9/L; SLE-IN-7b, SSC-IN-4b)")."""
        texts = [self.people_text(i, r.criteria) for i in r.units]
        cmps = [c for c in self.comparisons(r.units, r.criteria)
                if c["holds"] is (self.crit[c["criterion"]].kind == "exclusion")]
        touches = self.touches(r.units, scope) if len(r.units) > 1 else {r.units[0]: r.criteria} if r.units else {}
        groups: dict[tuple, list[int]] = {}
        for i in r.units:
            key = tuple(c for c in touches.get(i, []) if c in r.criteria) or tuple(r.criteria)
            groups.setdefault(key, []).append(i)
        parts = []
        for crits, units in groups.items():
            mine = [c for c in cmps if c["finding_id"] in {f"f{i}" for i in units} and c["criterion"] in crits]
            named = {c["finding_id"] for c in mine}
            rest = [self.brief(i, list(crits), alone=len(units) == 1) for i in units if f"f{i}" not in named]
            text = ", with ".join(x for x in ("; ".join(_merged(mine, with_criteria=False)), ", ".join(rest)) if x)
            if len(units) == 1 and mine:  # "ANC 0.9 x10^9/L (needs >= 1 x10^9/L; SLE-IN-7b, SSC-IN-4b)"
                text = "; ".join(_merged(mine))
            elif len(units) == 1:
                text = f"{text} ({', '.join(crits)})"
            else:  # "SLE-IN-3: oral prednisone-equivalent dose 5 mg/day (...), with ..."
                text = f"{', '.join(crits)}: {text}"
            parts.append({"criteria": list(crits), "finding_ids": [f"f{i}" for i in units], "text": text})
        return {"finding_ids": [f"f{i}" for i in r.units], "findings": texts, "criteria": r.criteria,
                "comparisons": cmps, "parts": parts, "text": "; ".join(p["text"] for p in parts)}

    def brief(self, i: int, criteria: list[str], alone: bool) -> str:
        """A finding named briefly inside a reason: a course by its drug and dates, a
        closed-world declaration in full words when it is the whole reason for its criteria."""
        u = self.ex.units[i]
        if u.slot and u.slot.startswith("complete:"):
            if alone:
                return self.closed_world_text(i, criteria)
            return "the " + self.declaration(i, criteria)["short"] + " declared complete"
        return self.finding_text(i).split("; ")[0]

    def miss_view(self, r: Reason, verdict: str) -> dict:
        """A near miss in words: "eligible if ANC >= 1 x10^9/L (now 0.9), all else equal"."""
        changes = []
        for s, v in zip(r.slots, r.values):
            now = next((self.ex.units[i] for i in r.units if self.ex.units[i].slot == s), None)
            cur = self.finding_view(self.ex.units.index(now)) if now else {}
            value = cur.get("value")
            if v.endswith(": no single value"):  # no other value would do: only its absence
                changes.append(f"the {self.finding_text(self.ex.units.index(now)) if now else v} were not on record")
                continue
            changes.append(v + (f" (now {_show(value)})" if isinstance(value, (int, float)) else ""))
        for i in r.units:
            if self.ex.units[i].slot in r.slots:
                continue
            u = self.ex.units[i]
            if u.slot and u.slot.startswith("complete:"):
                cat = u.slot.split(":", 1)[1]
                changes.append(f"the {CLOSED_WORDS.get(cat, (cat,))[0]} were not declared complete")
            else:
                changes.append(f"{u.text} were not on record")
        retest = " on retest" if verdict == "ineligible" and all(_slot_kind(self.ex, s) in ("quantity", "qualitative")
                                                                   for s in r.slots) and r.slots else ""
        outcome = r.outcome if r.outcome in ("eligible", "ineligible", "undetermined") else "undetermined"
        text = f"{outcome} if {' and '.join(changes)}{retest}, all else equal"
        return {"finding_ids": [f"f{i}" for i in r.units], "findings": [self.finding_text(i) for i in r.units],
                "outcome": outcome, "values": [_bound(v) for v in r.values], "criteria": r.criteria, "text": text}

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
        miss = self.nearest(e.near_misses, "eligible")
        answer["nearest_miss"] = self.miss_view(miss, "ineligible") if miss else None
        n = len(e.sufficient_reasons[0].units) if e.sufficient_reasons else 0
        answer["headline"] = (f"ineligible: {n} finding{'s' if n != 1 else ''} settle{'s' if n == 1 else ''} it"
                              if n else "ineligible")
        return answer

    # -- eligible ------------------------------------------------------------------------
    def eligible(self, e: ScopeExplanation) -> dict:
        r = self.s.result
        pops = [p for p in self.kb.populations if r.verdicts.get(p) == "eligible"] if e.scope == "overall" else [e.scope]
        met = [c.id for c in self.kb.criteria if c.population in (*pops, "all")
               and self.now.get(c.id) == ("met" if c.kind == "inclusion" else "not_met")]
        current = sorted(self.current.values())
        cmps = [c for c in self.comparisons(current, met)
                if c["holds"] is (self.crit[c["criterion"]].kind == "inclusion")]
        cmps.sort(key=lambda c: (c["margin"] is None, c["margin"] or 0))
        answer = {"verdict": "eligible", "populations": pops, "criteria_met": met,
                  "thinnest_margins": cmps, "other_reasons": max(len(e.sufficient_reasons) - 1, 0)}
        names = ", ".join(self.scope_name(p) for p in pops)
        exclusions = any(self.crit[c].kind == "exclusion" for c in met)
        answer["text"] = (f"all {len(met)} {names} criteria satisfied"
                          + (" (inclusions met, exclusions not met)" if exclusions else ""))
        if e.sufficient_reasons:
            first = e.sufficient_reasons[0]
            answer["reason"] = {"finding_ids": [f"f{i}" for i in first.units],
                                "findings": [self.people_text(i, first.criteria) for i in first.units],
                                "criteria": first.criteria,
                                "by_criterion": {c: ids for c, ids in self.by_criterion(first.units, e.scope).items()
                                                 if c not in self.crit or self.crit[c].population in (*pops, "all")},
                                "count": len(first.units),
                                "text": f"{len(first.units)} recorded findings settle it (listed by criterion with --details)"}
            answer["rests_on"] = [self.declaration(i, first.criteria) for i in first.units
                                  if self.ex.units[i].slot and self.ex.units[i].slot.startswith("complete:")]
            answer["swaps"] = self.swaps(e.sufficient_reasons)
        answer["headline"] = f"eligible for {names}"
        return answer

    def swaps(self, reasons: list[Reason]) -> list[dict]:
        """How the other sufficient reasons differ from the first: one finding for another."""
        first = set(reasons[0].units)
        out = []
        for r in reasons[1:]:
            gone, new = sorted(first - set(r.units)), sorted(set(r.units) - first)
            item = {"instead_of": [self.short_name(i) for i in gone], "use": [self.short_name(i) for i in new],
                    "instead_of_ids": [f"f{i}" for i in gone], "use_ids": [f"f{i}" for i in new]}
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
                reason = self.reason_view(e.sufficient_reasons[0], pop)
                line["reason"] = reason
                said = {x["text"] for x in (first_reason or {}).get("parts", [])}
                if reason["text"] in said:  # already a line of the overall reason
                    line["same_as_overall"] = True
                    line["text"] = f"{line['name']}: ineligible, as above"
                    out.append(line)
                    continue
                more = len(e.sufficient_reasons) - 1
                line["text"] = f"{line['name']}: ineligible: {reason['text']}" + (
                    f" (and {more} other reason{'s' if more > 1 else ''})" if more else "")
            elif verdict == "undetermined":
                routes = e.missing.get("eligible", [])
                if routes:
                    best = min(routes, key=lambda r: len(r.slots))
                    labels = [self.measure_label(s) for s in best.slots]
                    shown = ", ".join(labels[:4]) + (f" and {len(labels) - 4} more" if len(labels) > 4 else "")
                    line["text"] = (f"{line['name']}: undetermined; eligibility would need {len(labels)} "
                                    f"finding{'s' if len(labels) != 1 else ''}: {shown} "
                                    f"(explain --population {pop})")
                    line["to_measure"] = [{"slot": s, "label": lbl} for s, lbl in zip(best.slots, labels)]
                else:
                    line["text"] = f"{line['name']}: undetermined; {NO_ROUTE}"
            else:
                line["text"] = f"{line['name']}: {verdict}"
            out.append(line)
        return out

    def notes(self, answer: dict) -> list[str]:
        """Values on record that are not read because they are too old, where that is why a
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
        out = []
        for name, items in stale.items():
            days, i = min(items)
            crit = _dedupe(self.component_of.get(comp, comp) for comp, n, _, _ in self.kb.checks if n == name)
            reader = f"; {', '.join(crit)} {'reads' if len(crit) == 1 else 'read'} no current value" if crit else ""
            older = f" (and {len(items) - 1} older)" if len(items) > 1 else ""
            out.append(f"{self.ex.units[i].text}{older}: {days} days before screening, outside the "
                       f"{self.windows[name]}-day window{reader}")
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
                item["cannot_change_outcome"] = e.useless
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


def _show(value) -> str:
    """A number for people: two decimals below 10, one above (the data keep every digit)."""
    v = Fraction(value)
    return fmt(v, 2 if abs(v) < 10 else 1)


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
        groups.setdefault(c["value_text"], {}).setdefault(c["need_text"], []).append(c["criterion"])
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

"""Stage 5 of the pipeline: minimal explanations, computed by solving (docs/explanations.md).

Definitions (docs/SPEC.md). A set of findings *settles* a verdict if, with only those
findings known and every other finding unknown, the verdict is already what it is now.

- **sufficient reason** (abductive explanation): a subset-minimal set of the record's known
  findings that settles the verdict;
- **near miss** (contrastive explanation): a subset-minimal set of known findings which, had
  they other values, would change the verdict; the values that would are reported;
- **missing data**: for an undetermined verdict, the subset-minimal sets of unknown findings
  whose measurement could settle it, with the values that would.

How. One program per patient is grounded once: the knowledge base, every known finding behind
an external atom ``known(I)``, and every hypothetical value of every finding (its *value
classes*: each threshold the rules compare it with, and just below and just above it) behind
a choice guarded by an external ``free(S)``. "Settles" is then one solve under assumptions.
Sufficiency is upward closed (knowing more never unsettles a verdict, docs/semantics.md), so
the minimal sets are enumerated with MARCO (Liffiton et al., Constraints 2016): a map solver
(clingo again) proposes unexplored seeds; a sufficient seed is shrunk by deletion to a
sufficient reason, an insufficient one grown to a maximal insufficient set whose complement is
a near miss (the hitting-set duality of abductive and contrastive explanations, Ignatiev et al.,
AI*IA 2020). Every result is re-checked by the same solver before it is reported.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import clingo
from clingo import ast

from pyasp_screen.engine.batch import VOCABULARY_ARITY, is_vocabulary_fact
from pyasp_screen.engine.engine import GroundingStopped, specialised
from pyasp_screen.findings.derive import Findings, fmt
from pyasp_screen.knowledge.grounding import GroundingLimit, run_bounded
from pyasp_screen.knowledge.kb import KB_PARTS, SCALE, KnowledgeBase
from pyasp_screen.knowledge.specialise import Specialised, Unsupported, specialise

SHOW = "#show status/3.\n#show verdict/3.\n#show overall/2.\n#show pick/1.\n"
# What the per-patient program's questions read of the knowledge base's atoms (its own
# constraints read the verdicts); everything else the rules derive is dropped where that is
# exact (specialise's ``needed``), and read, when asked, from a program of its own
# (Explainer.atoms).
READ = (("status", 3), ("verdict", 3), ("overall", 2))

# program text -> its statements (clingo AST), parsed once per process: adding them to a
# Control costs about half of parsing the text again for every patient
_PARSED: dict[str, list] = {}


def _statements(text: str) -> list:
    if text not in _PARSED:
        if len(_PARSED) > 8:
            _PARSED.clear()
        statements: list = []
        ast.parse_string(text, statements.append, logger=lambda code, message: None)
        _PARSED[text] = statements
    return _PARSED[text]


# (program text, clingo arguments, predicates read) -> the statements of _kb_statements
_SPECIALISED: dict[tuple, list] = {}


def _kb_statements(kb: KnowledgeBase, vocabulary_only: bool,
                   needed: Iterable[tuple[str, int]] = READ) -> list:
    """The knowledge base's statements for a patient's program: its programs specialised to
    their static facts (:func:`~pyasp_screen.knowledge.specialise.specialise` with
    split=False, unfold=False: the same predicates, the ``status`` part kept, static atoms
    as facts; about a fifth less grounding) and to the predicates ``needed`` (rules no
    atom of them depends on are dropped where that is exact: the contradiction checks, the
    bounds of scores no criterion compares), with the knowledge base's own #show
    statements. The specialised program is exact for rules and facts whose heads are
    vocabulary predicates (``vocabulary_only``: all the explainer adds are, besides its own
    predicates); otherwise, or if the knowledge base cannot be specialised (nor screened so,
    :func:`~pyasp_screen.engine.engine.specialised`), the programs as written."""
    text = kb.program_text()
    if not vocabulary_only or isinstance(specialised(kb), str):
        return _statements(text)
    key = (text, tuple(kb.clingo_args()), tuple(sorted(set(needed))))
    if key not in _SPECIALISED:
        if len(_SPECIALISED) > 8:
            _SPECIALISED.clear()
        try:
            spec = specialise(text, key[1], list(VOCABULARY_ARITY.items()), split=False, unfold=False,
                              needed=key[2], kb_name=kb.name)
        except (Unsupported, RuntimeError, GroundingLimit):
            _SPECIALISED[key] = _statements(text)
        else:
            shows = [st for st in _statements(text)
                     if st.ast_type in (ast.ASTType.ShowSignature, ast.ASTType.ShowTerm)]
            _SPECIALISED[key] = _statements(spec.text) + shows
    return _SPECIALISED[key]



@dataclass(frozen=True)
class Unit:
    """A known finding: the facts one record entry gave (a course with its dose changes is
    one unit). slot: the finding it is a value of, for near misses (None: no alternative)."""

    key: str
    facts: tuple[str, ...]
    text: str
    slot: str | None
    sources: tuple[str, ...]
    when_unknown: tuple[str, ...] = ()  # facts that hold while the unit is unknown


@dataclass(frozen=True)
class Hypothesis:
    """One value a finding could take: its facts and a label ("ANC < 1 10*9/L")."""

    slot: str
    label: str
    facts: tuple[str, ...]
    order: int = 0  # position among the slot's values, low to high (quantities)
    grid: int | None = None  # quantities: the value on the half-step grid


@dataclass
class Slot:
    """A finding the knowledge base reads, with the value classes that matter."""

    key: str
    label: str
    values: list[Hypothesis] = field(default_factory=list)
    quantity: bool = False


# ---------------------------------------------------------------------------------------
# Units and value classes
# ---------------------------------------------------------------------------------------

def units_of(findings: Findings) -> list[Unit]:
    """The record's known findings as explanation units (every fact but patient/1)."""
    groups: dict[str, list] = {}
    for f in findings.findings:
        if f.name == "patient":
            continue
        head = f.sources[0] if f.sources else ""
        if head.startswith("medications[") and f.fact.startswith(("course(", "dose_change(", "gc_dose_per_kg(",
                                                                          "course_end_unknown(", "dose_change_unknown(")):
            key = head.split(".")[0]               # a course with its dose changes: one unit
        elif head.startswith("group:"):         # facts a caller grouped explicitly
            key = head
        else:
            key = f"{len(groups)}:{f.fact}"
        groups.setdefault(key, []).append(f)
    units = []
    for key, fs in groups.items():
        units.append(Unit(key, tuple(f.fact for f in fs), "; ".join(f.text for f in fs),
                          _slot_of(fs[0].fact), tuple(s for f in fs for s in f.sources),
                          _unknown_markers(fs[0].fact)))
    return units


def _unknown_markers(fact: str) -> tuple[str, ...]:
    """What an unknown diagnosis or item says: it is unknown, so a closed-world declaration
    of its list does not make it absent (the rest of the list stays closed)."""
    pred = fact[:fact.index("(")]
    head = fact[fact.index("(") + 1:]
    patient = head[:len(head) - len(",".join(_args(fact))) - 2] if _args(fact) else head[:-1]
    a = _args(fact)
    if pred == "diagnosis":
        return (f"diagnosis_unknown({patient},{a[0]})",)
    if pred == "item":
        return (f"item_unknown({patient},{a[0]},{a[1]})",)
    return ()


def _settled_slots(kb: KnowledgeBase, units: list[Unit]) -> set[str]:
    """The findings the record already settles, which a new measurement could not change:
    a current value (within the knowledge base's look-back window), a recorded diagnosis,
    assessment or item, and what a closed-world declaration rules out. A result too old to
    count, or an entry recorded as unknown, leaves its finding open."""
    settled, closed = set(), set()
    for u in units:
        if not u.slot:
            continue
        first = u.facts[0]
        pred = first[:first.index("(")]
        if pred in ("diagnosis_unknown", "item_unknown"):
            continue
        if pred in ("quantity", "qualitative"):
            args = _args(first)
            if args[0] in kb.windows and int(args[-1]) > kb.windows[args[0]]:
                continue
        if pred == "complete":
            closed.add(u.slot.split(":", 1)[1])
        settled.add(u.slot)
    open_diagnoses = {u.slot for u in units if u.facts[0].startswith("diagnosis_unknown(")}
    out = set(settled)
    if "diagnoses" in closed:
        out |= {f"diagnosis:{d}" for d in kb.diagnoses} - open_diagnoses
    for event, cat in kb.event_categories.items():
        if cat in closed:
            out.add(f"event:{event}")
    return out


def _in_category(unit: Unit, category: str) -> bool:
    """Is the unit an entry of a closed list of courses or events?"""
    if category == "medications":
        return unit.key.startswith("medications[")
    return unit.slot == f"event:{category[:-1]}"  # transfusions, growth_factors


def _category_members(units: list[Unit]) -> dict[int, list[int]]:
    """For each unit declaring a category complete, the units of that category.

    A closed-world declaration of a list of courses or events is about the list as
    recorded: it says nothing once one of its entries is unknown (otherwise dropping a listed
    course while keeping "the medication history is complete" would assert that the course
    was not taken), so it holds only while every entry is known. A closed list of
    diagnoses or items stays closed for the others when one entry is unknown (that entry
    says so: Unit.when_unknown).
    """
    out = {}
    for i, u in enumerate(units):
        if u.slot and u.slot.startswith("complete:"):
            cat = u.slot.split(":", 1)[1]
            if cat in ("medications", "transfusions", "growth_factors"):
                out[i] = [j for j, v in enumerate(units) if j != i and _in_category(v, cat)]
    return out


def unit_facts(units: list[Unit], members: dict[int, list[int]], on: Iterable[int]) -> list[str]:
    """The facts of a record with only the units ``on`` known (the meaning of "only these
    findings known" that every question here uses)."""
    on = set(on)
    facts = []
    for i, u in enumerate(units):
        if i in on and all(m in on for m in members.get(i, [])):
            facts.extend(u.facts)
        elif i not in on:
            facts.extend(u.when_unknown)
    return facts


def _args(fact: str) -> list[str]:
    """The arguments after the patient term of a vocabulary fact (names and integers only)."""
    inner = fact[fact.index("(") + 1:-1]
    # the patient is the first argument, a string that may hold commas: skip past it
    if inner.startswith('"'):
        i = 1
        while inner[i] != '"':
            i += 2 if inner[i] == "\\" else 1
        inner = inner[i + 2:]
    else:
        inner = inner.partition(",")[2]
    return inner.split(",") if inner else []


# predicate of a vocabulary fact -> the finding (slot) it gives a value of
SLOT_OF = {"quantity": "{0}", "qualitative": "{0}",
           "diagnosis": "diagnosis:{0}", "diagnosis_unknown": "diagnosis:{0}",
           "assessment": "assessment:{0}", "classification": "classification:{0}",
           "item": "item:{0}:{1}", "item_unknown": "item:{0}:{1}",
           "complete": "complete:{0}", "event": "event:{0}",
           "sledai2k_total": "sledai2k_total", "disease_duration_months": "duration:{0}",
           "age": "age", "sex": "sex"}


def _slot_of(fact: str) -> str | None:
    pattern = SLOT_OF.get(fact[:fact.index("(")])
    return pattern.format(*_args(fact)) if pattern else None


def _num(scaled: int) -> str:
    from fractions import Fraction
    return fmt(Fraction(scaled, SCALE))


def value_classes(kb: KnowledgeBase, findings: Findings, units: list[Unit]) -> dict[str, Slot]:
    """Every finding the knowledge base reads, with its value classes.

    Quantities: on, just below and just above each threshold the rules compare them with
    (kb.checks), on the exact half-step grid. Qualitative tests: positive / negative.
    Diagnoses, assessments, classification assertions, items of recorded schemes: their
    values. Categories not declared complete: declaring them complete. Events: one within
    the window. Values are dated at the screening date.
    """
    vocab = kb.vocabulary
    p = f"patient({findings.patient})"
    pid = next(f.fact for f in findings.findings if f.name == "patient")[len("patient("):-1]
    known = {u.slot for u in units if u.slot}
    slots: dict[str, Slot] = {}

    def add(slot: Slot) -> None:
        if slot.values:
            slots[slot.key] = slot

    thresholds: dict[str, set[int]] = {}
    for _, name, _, t in kb.checks:
        thresholds.setdefault(name, set()).add(t)
    for name, ts in thresholds.items():
        label, unit = vocab.quantity_label(name)
        s = Slot(name, label, quantity=True)
        grid_values = sorted({g for t in ts for g in (2 * t - 1, 2 * t, 2 * t + 1)})
        ordered = sorted(ts)
        for i, g in enumerate(grid_values):
            s.values.append(Hypothesis(name, _class_label(label, unit, g, ordered),
                                       (f"quantity({pid},{name},{g},{g},0)",), i, g))
        add(s)
    for name in kb.windows:
        o = vocab.observations.get(name)
        if o is not None and o.qualitative:
            s = Slot(name, o.label)
            for v in ("positive", "negative"):
                s.values.append(Hypothesis(name, f"{o.label} {v}", (f"qualitative({pid},{name},{v},0)",)))
            add(s)
    for d in sorted(kb.diagnoses):
        label = vocab.label(d)
        s = Slot(f"diagnosis:{d}", label)
        s.values = [Hypothesis(s.key, f"{label} present", (f"diagnosis({pid},{d},yes)",)),
                    Hypothesis(s.key, f"{label} absent", (f"diagnosis({pid},{d},no)",))]
        add(s)
    # What the rules read comes from the compiled knowledge base (kb.reads), never from
    # the program text.
    for name, spec in vocab.assessments.items():
        if not kb.reads_fact("assessment", name):
            continue
        values, meaning = spec.values, spec.label
        s = Slot(f"assessment:{name}", meaning)
        s.values = [Hypothesis(s.key, f"{meaning}: {v}", (f"assessment({pid},{name},{v},0)",))
                    for v in values]
        add(s)
    recorded_schemes = {u.slot.split(":")[1] for u in units if u.slot and u.slot.startswith("item:")}
    complete = {u.slot.split(":", 1)[1] for u in units if u.slot and u.slot.startswith("complete:")}
    for scheme, assertion in vocab.classification_schemes.items():
        # classification/3 is read only when the scheme's items are not recorded
        if kb.reads_fact("classification", scheme) and assertion not in recorded_schemes \
                and assertion not in complete:
            name = vocab.classification_labels.get(scheme, scheme)
            s = Slot(f"classification:{scheme}", f"{name} classification criteria")
            s.values = [Hypothesis(s.key, f"{name} classification criteria {w}",
                                   (f"classification({pid},{scheme},{v})",))
                        for v, w in (("yes", "met"), ("no", "not met"))]
            add(s)
    for scheme in sorted(recorded_schemes - complete):
        for item in sorted(kb.scheme_items.get(scheme, ())):
            label = f"{vocab.scheme_labels.get(scheme, scheme)}: {vocab.item_label(item)}"
            s = Slot(f"item:{scheme}:{item}", label)
            s.values = [Hypothesis(s.key, f"{label} {w}",
                                   (f"item({pid},{scheme},{item},{v})",))
                        for v, w in (("yes", "present"), ("no", "absent"))]
            add(s)
    for cat in vocab.categories:
        if cat in complete or (cat not in ("medications", "transfusions", "growth_factors",
                                           "diagnoses") and cat not in recorded_schemes):
            continue
        if not (kb.reads_fact("complete", cat) or cat in recorded_schemes):
            continue  # a list this knowledge base never closes
        s = Slot(f"complete:{cat}", f"the complete list of {cat.replace('_', ' ')}")
        s.values = [Hypothesis(s.key, f"the {cat.replace('_', ' ')} recorded declared complete",
                               (f"complete({pid},{cat})",))]
        add(s)
    # A disease history of unknown length, a score total when none is current, an age: the
    # values on and beside each integer parameter the criteria reading that fact compare
    # (kb.compared).
    def values_of(fact: str) -> list[int]:
        return sorted({kb.parameters[n].value for n in kb.compared.get(fact, ())})

    months = values_of("disease_duration_months")
    durations = kb.reads.get("disease_duration_months", frozenset())
    for d in sorted(kb.diagnoses if "*" in durations else durations):
        if months:
            label = vocab.label(d)
            s = Slot(f"duration:{d}", f"{label}: onset date", quantity=False)
            for m in sorted({max(m - 1, 0) for m in months} | set(months)):
                s.values.append(Hypothesis(s.key, f"onset {m} completed months before screening",
                                           (f"disease_duration_months({pid},{d},{m})",)))
            add(s)
    scores = values_of("sledai2k_total")
    if scores and kb.reads_fact("sledai2k_total"):
        s = Slot("sledai2k_total", "SLEDAI-2K at screening")
        for t in sorted({max(t - 1, 0) for t in scores} | set(scores)):
            s.values.append(Hypothesis(s.key, f"SLEDAI-2K {t}", (f"sledai2k_assessed({pid},0)",
                                                                  f"sledai2k_total({pid},{t})")))
        add(s)
    # Age and sex, when the knowledge base reads them and the record lacks them.
    ages = values_of("age")
    if ages and kb.reads_fact("age"):
        s = Slot("age", "age (date of birth)")
        for a in sorted({x for v in ages for x in (v - 1, v, v + 1) if x >= 0}):
            s.values.append(Hypothesis("age", f"age {a} years", (f"age({pid},{a})",)))
        add(s)
    if kb.reads_fact("sex"):
        s = Slot("sex", "sex")
        s.values = [Hypothesis("sex", f"sex {v}", (f"sex({pid},{v})",)) for v in ("female", "male")]
        add(s)
    for event in sorted(kb.event_windows):
        if not kb.reads_fact("event", event):
            continue
        s = Slot(f"event:{event}", event.replace("_", " "))
        s.values = [Hypothesis(s.key, f"a {event.replace('_', ' ')} just before screening",
                               (f"event({pid},{event},0)",))]
        add(s)
    # Unknown slots are those with no known unit; a known unit's slot keeps its values for
    # near misses.
    del p, known
    return slots


def _class_label(label: str, unit: str, g: int, thresholds: list[int]) -> str:
    """The value class of grid value g among the thresholds, in words."""
    u = f" {unit}" if unit else ""
    if g % 2 == 0:
        return f"{label} = {_num(g // 2)}{u}"
    lo, hi = (g - 1) // 2, (g + 1) // 2
    below = [t for t in thresholds if t <= lo]
    above = [t for t in thresholds if t >= hi]
    if below and above:
        return f"{label} between {_num(below[-1])} and {_num(above[0])}{u}"
    if below:
        return f"{label} > {_num(below[-1])}{u}"
    return f"{label} < {_num(above[0])}{u}"


# ---------------------------------------------------------------------------------------
# The per-patient program
# ---------------------------------------------------------------------------------------

SCOPES_TARGETS = ("eligible", "ineligible", "undetermined", "not_eligible", "not_ineligible")


class Explainer:
    """One grounded program per patient; ``settles`` and friends are solves under
    assumptions. ``calls`` counts solves (for benchmarks)."""

    def __init__(self, kb: KnowledgeBase, findings: Findings,
                 slots: dict[str, Slot] | None = None):
        self.kb = kb
        self.findings = findings
        self.units = units_of(findings)
        self.slots = slots if slots is not None else value_classes(kb, findings, self.units)
        self.slot_keys = list(self.slots)
        self.known_slots = {u.slot for u in self.units if u.slot}
        settled = _settled_slots(kb, self.units)
        self.unknown_slots = [s for s in self.slot_keys if s not in settled]
        self.populations = list(kb.populations)
        self.members = _category_members(self.units)
        # every fact the program adds (besides the explainer's own predicates) is vocabulary
        self._vocabulary_only = all(is_vocabulary_fact(f) for u in self.units for f in u.facts + u.when_unknown) \
            and (slots is None or all(is_vocabulary_fact(f) for sl in self.slots.values() for h in sl.values for f in h.facts))
        self.calls = 0
        self._status_symbols: dict = {}
        self._build()

    def _build(self) -> None:
        pid = next(f.fact for f in self.findings.findings if f.name == "patient")[len("patient("):-1]
        self.pid = pid
        scopes = self._scopes = ["overall"] + self.populations
        # Externals are declared [free] and every solve assumes a value for each of them:
        # an external left at its default (false) would make a contrary assumption unsat.
        common = [f"patient({pid}).", f"#external known(I) : I = 0..{len(self.units) - 1}. [free]"]
        for i, u in enumerate(self.units):
            body = ", ".join(f"known({j})" for j in [i] + self.members.get(i, []))
            common += [f"{fact} :- {body}." for fact in u.facts]
            common += [f"{fact} :- not known({i})." for fact in u.when_unknown]
        for scope in scopes:
            common += [f"#external target({scope},{t}). [free]" for t in SCOPES_TARGETS]
            def v(value: str, scope: str = scope) -> str:  # the verdict atom (never a text substitution:
                # the patient id may hold any letter)
                return f"overall({pid},{value})" if scope == "overall" else f"verdict({pid},{scope},{value})"
            common.append(f":- target({scope},T), T != not_eligible, T != not_ineligible, not {v('T')}.")
            common.append(f":- target({scope},not_eligible), {v('eligible')}.")
            common.append(f":- target({scope},not_ineligible), {v('ineligible')}.")
        # Hypothetical values: pick(J) sets value J of a slot; at most one per free slot.
        # A free slot chooses among its extreme values only: every criterion is monotone in
        # each finding (docs/semantics.md), so if some value of a quantity settles a
        # verdict, its lowest or highest class does. force(J) sets any value J outright
        # (to find every value that works, _values_for).
        hyp_lines = [f"#external free(I) : I = 0..{len(self.slot_keys) - 1}. [free]",
                     f"#external force(J) : J = 0..{max(sum(len(self.slots[k].values) for k in self.slot_keys) - 1, 0)}. [free]",
                     "pick(J) :- force(J)."]
        self.hyps: list[Hypothesis] = []
        self._slot_hyps: dict[str, list[int]] = {}  # slot -> its values' indices into hyps
        for s, key in enumerate(self.slot_keys):
            ids = self._slot_hyps[key] = []
            for h in self.slots[key].values:
                ids.append(len(self.hyps))
                self.hyps.append(h)
                hyp_lines += [f"{fact} :- pick({ids[-1]})." for fact in h.facts]
            choice = [ids[0], ids[-1]] if self.slots[key].quantity else ids
            hyp_lines.append(f"{{ {'; '.join(f'pick({j})' for j in dict.fromkeys(choice))} }} 1 :- free({s}).")
        # One program answers every question: those about known findings alone assume
        # every free(I) and force(J) false, which leaves no hypothetical value. (A second,
        # lean program without the hypothetical values made those solves cheaper, but its
        # grounding cost more than it saved: bench_explain, docs/scale.md "Third pass".)
        self._slot_index = {k: i for i, k in enumerate(self.slot_keys)}
        self.ctl = ctl = self._ground(common + hyp_lines)

        def lits(name, args_list):
            return [ctl.symbolic_atoms[clingo.Function(name, args)].literal for args in args_list]

        n_units = len(self.units)
        target_keys = [(sc, t) for sc in scopes for t in SCOPES_TARGETS]
        # An assumption list has known(I) at position I, then target(S,T) in the order of
        # target_keys, then free(I), force(J); _none has every one false.
        self._none = [-lit for lit in lits("known", [[clingo.Number(i)] for i in range(n_units)])
                      + lits("target", [[clingo.Function(sc), clingo.Function(t)] for sc, t in target_keys])
                      + lits("free", [[clingo.Number(i)] for i in range(len(self.slot_keys))])
                      + lits("force", [[clingo.Number(j)] for j in range(len(self.hyps))])]
        self._target_at = {key: n_units + k for k, key in enumerate(target_keys)}
        self._free_at = n_units + len(target_keys)
        self._force_at = self._free_at + len(self.slot_keys)
        # The verdict atoms: (scope, verdict, literal) of each the program has.
        p = clingo.parse_term(pid)
        self._verdict_lits = []
        for sc in scopes:
            for v in ("eligible", "ineligible", "undetermined"):
                atom = ctl.symbolic_atoms[clingo.Function("overall", [p, clingo.Function(v)]) if sc == "overall"
                                          else clingo.Function("verdict", [p, clingo.Function(sc), clingo.Function(v)])]
                if atom is not None:
                    self._verdict_lits.append((sc, v, atom.literal))
        self._pick_lits = lits("pick", [[clingo.Number(j)] for j in range(len(self.hyps))])
        self._met: dict = {}  # (known, free, picks) -> targets some model meets (frozensets)
        self._unmet: dict = {}  # (known, free, picks) -> targets no model meets
        self._models: dict = {}  # known -> the shown atoms of its one model (None: no model)
        self._seen: dict = {}  # scope -> [(known, verdict)] of the models read
        # (known, picks) -> [(free, targets met)] of models found, [(free, target)] of none
        self._witnesses: dict = {}
        self._refuted: dict = {}
        self._decoded: dict = {}  # shown atom (its handle) -> (name, arguments as Python values)

    def _ground(self, lines: list[str]) -> clingo.Control:
        ctl = clingo.Control(self.kb.clingo_args() + ["--warn=none"])
        with ast.ProgramBuilder(ctl) as builder:
            for statement in _kb_statements(self.kb, self._vocabulary_only):
                builder.add(statement)
        ctl.add("base", [], "#program base.\n" + SHOW + "\n".join(lines))
        try:  # under the time and memory limits of every grounding
            run_bounded(lambda: ctl.ground(KB_PARTS), kb=self.kb.name, patients=1)
        except GroundingLimit as e:
            raise GroundingStopped(str(e)) from None
        return ctl

    def _assumptions(self, known: Iterable[int], free: Iterable[str] = (),
                     target: tuple[str, str] | None = None, picks: Iterable[int] = ()) -> list[int]:
        """A literal for every external: those named true, all others false."""
        none = self._none
        out = none.copy()
        for i in known:
            out[i] = -none[i]
        if target is not None:
            k = self._target_at[target]
            out[k] = -none[k]
        for s in free:
            k = self._free_at + self._slot_index[s]
            out[k] = -none[k]
        for j in picks:
            k = self._force_at + j
            out[k] = -none[k]
        return out

    def _targets_met(self, model: clingo.Model) -> set:
        """The targets (scope, verdict) a model meets, and None (any model meets it): the
        constraints of _build read the other way round."""
        true: dict[str, set[str]] = {}
        for scope, verdict, lit in self._verdict_lits:
            if model.is_true(lit):
                true.setdefault(scope, set()).add(verdict)
        out: set = {None}
        for scope in self._scopes:
            vs = true.get(scope, set())
            out.update((scope, v) for v in vs)
            if "eligible" not in vs:
                out.add((scope, "not_eligible"))
            if "ineligible" not in vs:
                out.add((scope, "not_ineligible"))
        return out

    def _ask(self, key: tuple, target, on_model=None) -> bool:
        """Solve the question ``key`` = (known, free, picks) under ``target``, and note what
        the answer tells of the other targets: a model found meets every target it meets
        (targets only add constraints), and without free slots the model is the only one
        (the program is stratified once every external is fixed), so one solve answers every
        target of the question."""
        known, free, picks = key
        self.calls += 1
        met: set = set()
        unique = not free
        chosen: dict[str, int | None] = {}  # free slot -> the value the model picks for it

        def seen(m) -> None:
            met.update(self._targets_met(m))
            for slot in free:
                chosen[slot] = next((j for j in self._slot_hyps[slot] if m.is_true(self._pick_lits[j])), None)
            if on_model is not None:
                on_model(m)

        ask = None if unique else target
        sat = self.ctl.solve(assumptions=self._assumptions(known, free, ask, picks),
                                     on_model=seen).satisfiable
        if sat:
            self._met.setdefault(key, set()).update(met)
            if unique and not picks:
                for scope in self._scopes:
                    for v in ("eligible", "ineligible", "undetermined"):
                        if (scope, v) in met:
                            self._seen.setdefault(scope, []).append((known, v))
            # The model is also one with any free slot's value set outright (force) instead
            # of chosen, or with a slot not free that it leaves without a value; and a model
            # with fewer free slots is one with more (a free slot may stay without a value).
            witnesses = self._witnesses.setdefault((known, picks), [])
            witnesses.append((free, met))
            for slot, j in chosen.items():
                rest = free - {slot}
                self._witnesses.setdefault((known, picks if j is None else picks | {j}), []).append((rest, met))
        elif not unique:
            self._refuted.setdefault((known, picks), []).append((free, target))
        unmet = self._unmet.setdefault(key, set())
        if unique:  # the one model meets what it meets, and nothing else
            unmet.update(t for t in (None, *self._target_at) if t not in met)
        elif not sat:  # no model meets the target (none at all, if there is no target)
            unmet.update([target] if target is not None else (None, *self._target_at))
        return target in met

    def holds(self, known: Iterable[int], free: Iterable[str] = (),
              target: tuple[str, str] | None = None, picks: Iterable[int] = ()) -> bool:
        """Is there a model with ``known`` units, ``free`` slots (and ``picks``) meeting
        ``target``? (No model is read: the fast question.)"""
        key = (frozenset(known), frozenset(free), frozenset(picks))
        if target in self._met.get(key, ()):
            return True
        if target in self._unmet.get(key, ()):
            return False
        if not free and not picks and target is not None and target[1] in ("eligible", "ineligible"):
            known_answer = self._by_monotony(key[0], *target)
            if known_answer is not None:
                return known_answer
        elif free or picks:
            for fewer, met in self._witnesses.get((key[0], key[2]), ()):
                if target in met and fewer <= key[1]:
                    return True
            for more, refuted in self._refuted.get((key[0], key[2]), ()):
                if refuted == target and key[1] <= more:
                    return False
        return self._ask(key, target)

    def _by_monotony(self, known: frozenset[int], scope: str, verdict: str) -> bool | None:
        """Whether the verdict of ``scope`` is ``verdict`` (eligible or ineligible) with only
        ``known`` units known, if the verdicts already seen tell (None if not). Knowing more
        never unsettles a verdict (docs/semantics.md: the property MARCO relies on too):
        a subset with this verdict gives it, a subset with the other settled verdict or a
        superset without this one rules it out."""
        for seen, v in self._seen.get(scope, ()):
            if seen <= known:
                if v == verdict:
                    return True
                if v != "undetermined":
                    return False
            elif v != verdict and known <= seen:
                return False
        return None

    def solve(self, known: Iterable[int], free: Iterable[str] = (),
              target: tuple[str, str] | None = None, picks: Iterable[int] = ()) -> list[clingo.Symbol] | None:
        """The shown atoms of a model with ``known`` units, ``free`` slots and the values
        ``picks`` set, meeting ``target`` (scope, verdict), or None if there is none."""
        key = (frozenset(known), frozenset(free), frozenset(picks))
        if not key[1] and key in self._models:  # the one model, read before
            found = self._models[key]
            return found if found is not None and target in self._met[key] else None
        found: list = []

        def on_model(m) -> None:
            symbols = m.symbols(shown=True)
            raw = getattr(symbols, "_p_symbols", None)  # clingo's handles, read in one call
            found.append(_Atoms(symbols, list(raw) if raw is not None else None))

        met = self._ask(key, target, on_model)
        if not key[1]:
            self._models[key] = found[0] if found else None
        return found[0] if met else None

    def _decode(self, atoms) -> list[tuple]:
        """(name, arguments) of each shown atom, with arguments as strings, names or numbers;
        decoded once per distinct atom (a patient's atoms recur from solve to solve)."""
        keys = getattr(atoms, "keys", None)
        out = []
        for i, sym in enumerate(atoms) if keys is None else enumerate(keys):
            d = self._decoded.get(sym)
            if d is None:
                a = atoms[i]
                d = (a.name, tuple(x.string if x.type == clingo.SymbolType.String else
                                 x.number if x.type == clingo.SymbolType.Number else
                                 x.name if x.type == clingo.SymbolType.Function and not x.arguments else str(x)
                                 for x in a.arguments))
                self._decoded[sym] = d
            out.append(d)
        return out

    # -- the three questions -------------------------------------------------------------
    def verdict(self, known: Iterable[int] | None = None) -> dict[str, str]:
        """Verdict per scope ("overall" and each population) with ``known`` units (all)."""
        atoms = self.solve(range(len(self.units)) if known is None else known)
        out = {}
        for name, args in self._decode(atoms):
            if name == "overall":
                out["overall"] = args[1]
            elif name == "verdict":
                out[args[1]] = args[2]
        return out

    def atoms(self, signatures: Iterable[tuple[str, int]], known: Iterable[int] | None = None,
              picks: Iterable[int] = ()) -> list[clingo.Symbol]:
        """Every atom of the given signatures in the model with ``known`` units (all) and
        the values ``picks`` set: values the rules derive that no verdict shows, such as a
        score's bounds (sledai2k_lo/2). Statuses and verdicts (:data:`READ`) are read from
        the per-patient program; it has dropped the rules nothing of them reads, so any other
        predicate comes from a program of its own: the knowledge base specialised to
        ``signatures`` (:func:`_lean`: for the scores' bounds, 19 rules), grounded on those
        findings as plain facts. Facts of the program (score tables) come from :meth:`facts`."""
        self.calls += 1
        wanted = set(signatures)
        known = range(len(self.units)) if known is None else known
        picks = list(picks)
        found: list = []
        if wanted & set(READ):
            candidates = [a.symbol for sig in sorted(wanted & set(READ))
                          for a in self.ctl.symbolic_atoms.by_signature(*sig)]
            self.ctl.solve(assumptions=self._assumptions(known, picks=picks),
                           on_model=lambda m: found.extend(c for c in candidates if m.contains(c)))
        sigs = tuple(sorted(wanted - set(READ)))
        return found + (self._lean_atoms(sigs, known, picks) if sigs else [])

    def _lean_atoms(self, sigs: tuple[tuple[str, int], ...], known: Iterable[int],
                    picks: list[int]) -> list[clingo.Symbol]:
        """Explainer.atoms for predicates the per-patient program may have dropped."""
        facts = unit_facts(self.units, self.members, known)
        facts += [f for j in picks for f in self.hyps[j].facts]
        spec = _lean(self.kb, sigs) if self._vocabulary_only else None
        ctl = clingo.Control(self.kb.clingo_args() + ["--warn=none"])
        with ast.ProgramBuilder(ctl) as builder:
            for statement in _statements(spec.text if spec else self.kb.program_text()):
                builder.add(statement)
        shown = spec.shown(sigs) if spec else "\n#show.\n" + "".join(f"#show {n}/{a}.\n" for n, a in sigs)
        ctl.add("base", [], f"patient({self.pid}).\n" + "".join(f"{f}.\n" for f in facts) + shown)
        try:  # under the time and memory limits of every grounding
            run_bounded(lambda: ctl.ground([("base", [])] if spec else KB_PARTS), kb=self.kb.name, patients=1)
        except GroundingLimit as e:
            raise GroundingStopped(str(e)) from None
        found: list = []

        def on_model(m) -> None:
            for a in m.symbols(shown=True):
                found.append(clingo.Function(*spec.original(a)) if spec else a)

        ctl.solve(on_model=on_model)
        return found

    def criterion_statuses(self, ids: Iterable[str], known: Iterable[int] | None = None,
                           picks: Iterable[int] = ()) -> dict[str, str] | None:
        """The statuses of the conditions ``ids`` in the model with ``known`` units (all) and
        the values ``picks`` set, or None if there is none. Reads no symbol of the model (it
        asks whether each of a condition's three status atoms is in it): the cheap question
        for callers that need a few statuses many times (explain/summary.py)."""
        self.calls += 1
        picks = list(picks)
        key = tuple(ids)
        if key not in self._status_symbols:
            pid = clingo.parse_term(self.pid)
            self._status_symbols[key] = [(c, st, clingo.Function("status", [pid, clingo.String(c), clingo.Function(st)]))
                                         for c in key for st in ("met", "not_met", "unknown")]
        candidates = self._status_symbols[key]
        out: dict[str, str] = {}
        result = self.ctl.solve(
            assumptions=self._assumptions(range(len(self.units)) if known is None else known, picks=picks),
            on_model=lambda m: out.update({c: st for c, st, sym in candidates if m.contains(sym)}))
        return out if result.satisfiable else None

    def facts(self, name: str, arity: int) -> list[clingo.Symbol]:
        """The knowledge base's facts of one signature (a score's item table, for example),
        from its static part, grounded once per process (they hold for every patient)."""
        key = (self.kb.program_text(), tuple(self.kb.clingo_args()))
        if key not in _FACTS:
            if len(_FACTS) > 8:
                _FACTS.clear()
            ctl = clingo.Control(self.kb.clingo_args() + ["--warn=none"])
            ctl.add("base", [], key[0])
            run_bounded(lambda: ctl.ground([("base", [])]), kb=self.kb.name)
            table: dict[tuple[str, int], list] = {}
            for a in ctl.symbolic_atoms:
                if a.is_fact:
                    table.setdefault((a.symbol.name, len(a.symbol.arguments)), []).append(a.symbol)
            _FACTS[key] = table
        return list(_FACTS[key].get((name, arity), ()))

    def statuses(self, atoms) -> dict[str, str]:
        """Condition ID -> met | not_met | unknown, in the model ``atoms``."""
        return {args[1]: args[2] for name, args in self._decode(atoms) if name == "status"}

    def picks(self, atoms) -> list[Hypothesis]:
        return [self.hyps[args[0]] for name, args in self._decode(atoms) if name == "pick"]


# (program text, clingo arguments) -> signature -> the facts of the knowledge base's base
# part without any patient (Explainer.facts)
_FACTS: dict[tuple, dict] = {}
# (program text, clingo arguments, signatures) -> _lean
_LEAN: dict[tuple, Specialised | None] = {}


def _lean(kb: KnowledgeBase, signatures: tuple[tuple[str, int], ...]) -> Specialised | None:
    """The knowledge base specialised to what reading ``signatures`` needs, once per process
    (about 0.2 s): derived predicates split on their constants as the engine splits them
    (so that ``overall(P,undetermined) :- not overall(P,eligible)`` is stratified), static
    atoms as facts (not unfolded: one patient's grounding), every rule nothing needed reads
    dropped where that is exact. None if it cannot be specialised (the programs as written
    are read instead)."""
    key = (kb.program_text(), tuple(kb.clingo_args()), signatures)
    if key not in _LEAN:
        if len(_LEAN) > 8:
            _LEAN.clear()
        spec = None
        if not isinstance(specialised(kb), str):
            try:
                spec = specialise(key[0], key[1], list(VOCABULARY_ARITY.items()), needed=signatures,
                                  unfold=False, kb_name=kb.name)
            except (Unsupported, RuntimeError, GroundingLimit):
                spec = None
        _LEAN[key] = spec
    return _LEAN[key]


class _Atoms(list):
    """The shown atoms of a model (a list of clingo Symbols), with clingo's handles of them
    (``keys``, None where the clingo module does not expose them) for decoding once."""

    def __init__(self, symbols, keys):
        super().__init__(symbols)
        self.keys = keys


# ---------------------------------------------------------------------------------------
# MARCO: all minimal sets of an upward-closed predicate
# ---------------------------------------------------------------------------------------

def _grow(seed: frozenset[int], rest: list[int], test) -> frozenset[int]:
    """A maximal set G with seed <= G <= seed | rest and not test(G), given not test(seed).

    Divide and conquer (the dual of QuickXplain, Junker AAAI 2004): try all of ``rest`` at
    once and split only where it fails, so a set that needs k elements left out costs about
    k log(n/k) tests instead of n. Maximal because test is upward closed: an element left
    out made some subset of the final G hold.
    """
    if not rest:
        return seed
    whole = seed | frozenset(rest)
    if not test(whole):
        return whole
    if len(rest) == 1:
        return seed
    half = len(rest) // 2
    return _grow(_grow(seed, rest[:half], test), rest[half:], test)


_X_OF: dict[int, dict] = {}


def smallest_minimal_sets(n: int, holds: Callable[[frozenset[int]], bool], most: int = 10):
    """The subset-minimal sets S of {0..n-1} with holds(S), smallest first, at most ``most``.

    ``holds`` must be upward closed. Implicit hitting sets, in the manner of MARCO
    (Liffiton et al., Constraints 2016) with a minimising map: the map solver (clingo)
    proposes a smallest set that is no superset of a set found and hits the complement of
    every maximal set known not to hold. If it holds, it is minimal (a smaller holding set
    would have been a smaller proposal) and it is the next smallest; if not, it is grown to a
    maximal set that does not hold, whose complement every answer must hit.

    Returns (minimal sets, maximal non-holding sets met on the way, complete) where complete
    means the map ran out: every minimal set was returned.
    """
    cache: dict[frozenset[int], bool] = {}
    holding: list[frozenset[int]] = []   # sets known to hold (a superset holds too)
    failing: list[frozenset[int]] = []   # sets known not to (a subset does not either)

    def test(s: frozenset[int]) -> bool:
        if s not in cache:
            # Upward closed: a set holds if a subset is known to, and does not if a superset
            # is known not to; only the other questions reach the solver.
            if any(t <= s for t in holding):
                cache[s] = True
            elif any(s <= f for f in failing):
                cache[s] = False
            else:
                cache[s] = holds(s)
                (holding if cache[s] else failing).append(s)
        return cache[s]

    if not test(frozenset(range(n))):
        return [], [frozenset(range(n))], True
    mp = clingo.Control(["--opt-mode=opt"])
    mp.add("base", [], f"{{ x(0..{n - 1}) }}.\n#minimize {{ 1,I : x(I) }}." if n else "")
    mp.ground([("base", [])])
    if n not in _X_OF:  # the map's atoms x(I) -> I (symbols are process-wide)
        _X_OF[n] = {clingo.Function("x", [clingo.Number(i)]): i for i in range(n)}
    x_of = _X_OF[n]
    minimal: list[frozenset[int]] = []
    maximal_not: list[frozenset[int]] = []
    for k in range(10_000):
        best: list[frozenset[int]] = []

        def on_model(m) -> None:
            best.append(frozenset(x_of[sym] for sym in m.symbols(atoms=True)))

        if not mp.solve(on_model=on_model).satisfiable:
            return minimal, maximal_not, True
        seed = best[-1]  # the optimum
        if test(seed):
            if len(minimal) >= most:  # one more exists: the list is cut short
                return minimal, maximal_not, False
            minimal.append(seed)
            clause = (":- " + ", ".join(f"x({e})" for e in sorted(seed)) + ".") if seed else ":- ."
        else:
            grown = _grow(seed, [e for e in range(n) if e not in seed], test)
            maximal_not.append(grown)
            rest = [e for e in range(n) if e not in grown]
            clause = (":- " + ", ".join(f"not x({e})" for e in rest) + ".") if rest else ":- ."
        # (Added through the grounder: the solver's order of search, and so which of equally
        # small sets comes first, depends on how a clause arrives; the backend changed it.)
        mp.add(f"b{k}", [], clause)
        mp.ground([(f"b{k}", [])])
    return minimal, maximal_not, False


# ---------------------------------------------------------------------------------------
# Explanations
# ---------------------------------------------------------------------------------------

@dataclass
class Reason:
    """A set of findings, the criteria it decides, and (near misses, missing data) the
    values that would change or settle the verdict."""

    findings: list[str]
    sources: list[str]
    criteria: list[str]
    values: list[str] = field(default_factory=list)
    outcome: str = ""
    # For programs (explain/summary.py): the known findings as indices into
    # Explainer.units, and the findings whose values ``values`` gives, in order, as keys of
    # Explainer.slots (missing data: the unknown findings; near misses: those with values).
    units: list[int] = field(default_factory=list)
    slots: list[str] = field(default_factory=list)


@dataclass
class ScopeExplanation:
    scope: str             # "overall" or a population
    verdict: str
    sufficient_reasons: list[Reason] = field(default_factory=list)
    near_misses: list[Reason] = field(default_factory=list)
    missing: dict[str, list[Reason]] = field(default_factory=dict)   # target verdict -> sets
    useless: list[str] = field(default_factory=list)                 # unknowns that change nothing
    complete: bool = True  # False if an enumeration was cut short by the limit


def _deciding(kb: KnowledgeBase, statuses: dict[str, str], scope: str, verdict: str) -> list[str]:
    """Criteria that settle the verdict in a model: for ineligible the failing ones, for
    eligible the ones met (inclusion) or not met (exclusion) in the scope."""
    out = []
    for c in kb.criteria:
        if scope != "overall" and c.population not in (scope, "all"):
            continue
        st = statuses.get(c.id, "unknown")
        failing = (c.kind == "inclusion" and st == "not_met") or (c.kind == "exclusion" and st == "met")
        passing = (c.kind == "inclusion" and st == "met") or (c.kind == "exclusion" and st == "not_met")
        if (verdict == "ineligible" and failing) or (verdict == "eligible" and passing):
            out.append(c.id)
    return out


def _summarise(ex: Explainer, slot_key: str, working: list[Hypothesis]) -> str:
    """The values of one finding that work, as one phrase ("ANC >= 1 10*9/L").

    For a quantity the working value classes of a monotone rule form an upper or a lower
    segment; its end is reported as a bound (an even grid value is the threshold itself, an
    odd one lies just beside it, so the bound is strict).
    """
    slot = ex.slots[slot_key]
    if len(working) == len(slot.values):
        return working[0].label if len(working) == 1 else f"{slot.label}: any value"
    if not slot.quantity:
        return " or ".join(h.label for h in working)
    orders = sorted(h.order for h in working)
    top = len(slot.values) - 1
    contiguous = orders == list(range(orders[0], orders[-1] + 1))
    label, unit = ex.kb.vocabulary.quantity_label(slot_key)
    u = f" {unit}" if unit else ""
    by_order = {h.order: h for h in slot.values}
    if contiguous and orders[-1] == top:
        g = by_order[orders[0]].grid
        return f"{label} >= {_num(g // 2)}{u}" if g % 2 == 0 else f"{label} > {_num((g - 1) // 2)}{u}"
    if contiguous and orders[0] == 0:
        g = by_order[orders[-1]].grid
        return f"{label} <= {_num(g // 2)}{u}" if g % 2 == 0 else f"{label} < {_num((g + 1) // 2)}{u}"
    return " or ".join(h.label for h in working)


def _values_for(ex: Explainer, known: list[int], slots: list[str], target: tuple[str, str]) -> list[str]:
    """For each slot, the values that reach ``target`` with the other slots free."""
    out = []
    for s in slots:
        others = [o for o in slots if o != s]
        working = []
        for h in ex.slots[s].values:
            if ex.holds(known, others, target, picks=[ex.hyps.index(h)]):
                working.append(h)
        out.append(_summarise(ex, s, working) if working else f"{ex.slots[s].label}: no single value")
    return out


def explain_scope(ex: Explainer, scope: str, verdict: str, max_results: int = 10) -> ScopeExplanation:
    """Sufficient reasons and near misses (a settled verdict) or missing data (undetermined),
    smallest first, at most ``max_results`` of each kind."""
    out = ScopeExplanation(scope, verdict)
    n = len(ex.units)
    everything = range(n)
    if verdict in ("eligible", "ineligible"):
        def settles(s: frozenset[int]) -> bool:
            return ex.holds(s, target=(scope, verdict))

        def contrastive(c: frozenset[int]) -> bool:  # unknown c: the verdict is no longer settled
            return not settles(frozenset(everything) - c)

        axps, _, done_a = smallest_minimal_sets(n, settles, max_results)
        cxps, _, done_c = smallest_minimal_sets(n, contrastive, max_results)
        out.complete = done_a and done_c
        for m in axps:
            atoms = ex.solve(m)
            out.sufficient_reasons.append(Reason(
                [ex.units[i].text for i in sorted(m)],
                sorted({src for i in m for src in ex.units[i].sources}),
                _deciding(ex.kb, ex.statuses(atoms), scope, verdict), units=sorted(m)))
        flip = "eligible" if verdict == "ineligible" else "ineligible"
        now = _deciding(ex.kb, ex.statuses(ex.solve(everything)), scope, verdict)
        for c in cxps:
            keep = [i for i in everything if i not in c]
            slots = sorted({ex.units[i].slot for i in c if ex.units[i].slot in ex.slots})
            reached = None
            for goal in (flip, "undetermined"):
                if ex.holds(keep, free=slots, target=(scope, goal)):
                    reached = goal
                    break
            values = _values_for(ex, keep, slots, (scope, reached)) if reached and slots else []
            values += [f"{ex.units[i].text} were unknown" for i in sorted(c)
                       if ex.units[i].slot not in ex.slots]
            unsettled = ex.statuses(ex.solve(keep))
            touched = [cid for cid in now if unsettled.get(cid) == "unknown"]
            out.near_misses.append(Reason(
                [ex.units[i].text for i in sorted(c)],
                sorted({src for i in c for src in ex.units[i].sources}),
                touched, values, reached or "undetermined (only by being unknown)",
                units=sorted(c), slots=slots if reached else []))
        return out
    # undetermined: which unknown findings could settle it, and how
    known = list(everything)
    now = ex.statuses(ex.solve(known))
    unknown = ex.unknown_slots
    relevant: set[str] = set()
    for goal in ("ineligible", "eligible"):
        def can_settle(s: frozenset[int], goal=goal) -> bool:
            return ex.holds(known, free=[unknown[i] for i in s], target=(scope, goal))

        minimal, _, done = smallest_minimal_sets(len(unknown), can_settle, max_results)
        out.complete = out.complete and done
        reasons = []
        for m in minimal:
            slots = [unknown[i] for i in sorted(m)]
            relevant.update(slots)
            after = ex.statuses(ex.solve(known, free=slots, target=(scope, goal)))
            changed = [c for c in _deciding(ex.kb, after, scope, goal) if now.get(c) != after.get(c)]
            reasons.append(Reason([ex.slots[s].label for s in slots], [], changed,
                                  _values_for(ex, known, slots, (scope, goal)), goal, slots=slots))
        out.missing[goal] = reasons
    if out.complete:
        out.useless = _group_labels(ex, [s for s in unknown if s not in relevant])
    return out


def _group_labels(ex: Explainer, slot_keys: list[str]) -> list[str]:
    """Labels of slots, items of one scheme gathered: "SLEDAI-2K descriptors: fever, cva"."""
    out, schemes = [], {}
    for key in slot_keys:
        if key.startswith("item:"):
            _, scheme, item = key.split(":", 2)
            schemes.setdefault(scheme, []).append(item.replace("_", " "))
        else:
            out.append(ex.slots[key].label)
    names = ex.kb.vocabulary.scheme_groups
    out += [f"{names.get(k, k)}: {', '.join(v)}" for k, v in schemes.items()]
    return out


def explain(kb: KnowledgeBase, findings: Findings, max_results: int = 10,
            scopes: Iterable[str] | None = None) -> tuple[Explainer, list[ScopeExplanation]]:
    """Explanations for one patient: overall first, then each population.

    The cyclic garbage collector is off meanwhile (as while the engine screens a batch):
    a patient's many short-lived solver objects made it run about a tenth of the time,
    for no cycles to collect."""
    collecting = gc.isenabled()
    if collecting:
        gc.disable()
    try:
        ex = Explainer(kb, findings)
        verdicts = ex.verdict()
        out = []
        for scope in (scopes or ["overall"] + ex.populations):
            out.append(explain_scope(ex, scope, verdicts[scope], max_results))
    finally:
        if collecting:
            gc.enable()
    return ex, out

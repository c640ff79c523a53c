"""A knowledge base, compiled once into one frozen object every stage asks (docs/knowledge-base.md).

A knowledge base (KB) is a folder: ``manifest.yaml`` (name, programs, populations, parameters,
``extends``), ASP programs, an optional ``vocabulary.yaml`` and example cases. :func:`load_kb`

1. resolves and confines every file by real path (:mod:`.resolve`: includes, nested or not,
   manifest paths, ``extends``, the protocol), reading each once;
2. parses the programs with clingo's parser (:mod:`.analysis`; nothing runs, ``#script`` and
   ``@functions`` are refused);
3. reads the declarations (``criterion/3``, ``registry_sentence/2``, ``all_of/2``,
   ``any_of/2``, ``check/4``, ``window/2``, ...) by grounding the programs without patients, with
   the parameters as constants;
4. works out, from the parsed rules, what each criterion and component reads (findings and
   their names), which parameters it uses and which thresholds it compares.

The result, :class:`KnowledgeBase`, is frozen and picklable (it travels to worker processes).
:meth:`KnowledgeBase.with_parameters` compiles a new one from the same parsed programs with other
parameter values, so everything that depends on a parameter (a ``check/4`` that exists only
for one interpretation, a rule that is dead for another) is consistent.

Parameter values reach clingo as constants (``-c name=value``): quantities x1000 as integers
(exact to 0.001 of the unit), integers as they are, choices and booleans as symbols.
Parameters with ``stage: findings`` are read by :mod:`pyasp_screen.findings.derive`.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from functools import cache, lru_cache
from pathlib import Path

import clingo

from pyasp_screen.knowledge import analysis, yamlfile
from pyasp_screen.knowledge.analysis import Atom, Location, Rule, constant
from pyasp_screen.knowledge.grounding import GroundingLimit, run_bounded
from pyasp_screen.knowledge.paths import builtin_kb_root
from pyasp_screen.knowledge.resolve import ProgramFile, Resolved, resolve
from pyasp_screen.knowledge.vocabulary import (
    FACT_PREDICATES,
    Vocabulary,
    VocabularyError,
    library,
    load_vocabulary,
)

SCALE = 1000  # quantities reach ASP as value x SCALE (floor and ceil)
# Parameters the findings stage reads (stage: findings), declared in kb/lib/manifest.yaml.
FINDINGS_PARAMETERS = ("crcl_weight", "site_uln_alt", "site_uln_ast", "site_uln_bilirubin_total",
                       "site_uln_inr", "site_uln_aptt", "site_uln_pt", "spo2_unflagged_is_room_air")

# The program parts of a knowledge base: base (the criteria) and status (status/3, for people
# and the explanation engine; see kb/lib/core.lp). Screening grounds base only.
KB_PARTS = [("base", []), ("status", [])]

# Where the name a fact is about sits, per fact predicate of the vocabulary (after the
# patient): quantity(P,Name,...), course(P,K,Drug,...); None: the fact has no name.
NAME_ARGUMENT = {"quantity": 1, "qualitative": 1, "diagnosis": 1, "diagnosis_unknown": 1,
                 "disease_duration_months": 1, "classification": 1, "item": 1, "item_unknown": 1,
                 "assessment": 1, "complete": 1, "course": 2, "event": 1}
FACT_NAMES = {sig.split("/")[0] for sig in FACT_PREDICATES}
CONDITION_PREDICATES = {"holds", "fails"}


class KBError(Exception):
    """A knowledge base that cannot be loaded, or a bad parameter: one line, naming the file."""


@dataclass(frozen=True)
class Parameter:
    """One named parameter: ``value`` is a Fraction (quantity), int (integer), str (choice)
    or bool (boolean)."""

    name: str
    kind: str
    default: object
    value: object
    unit: str
    doc: str
    stage: str = "asp"
    choices: tuple[str, ...] = ()
    range: tuple | None = None  # (low, high) accepted values, in the parameter's unit

    def asp_constant(self) -> str:
        """The value as clingo sees it, e.g. ``1000`` for a quantity of 1.0."""
        if self.kind == "quantity":
            return str(int(self.value * SCALE))
        if self.kind == "integer":
            return str(self.value)
        if self.kind == "boolean":
            return "true" if self.value else "false"
        return str(self.value)

    def asp_term(self) -> tuple:
        """The value as an analysis term (see analysis.py)."""
        if self.kind in ("quantity", "integer"):
            return ("num", int(self.asp_constant()))
        return ("sym", self.asp_constant())

    def display(self) -> str:
        v = self.value
        if self.kind == "quantity":
            v = format(Decimal(v.numerator) / Decimal(v.denominator), "f")
            if "." in v:
                v = v.rstrip("0").rstrip(".")
        elif self.kind == "boolean":
            v = "true" if v else "false"
        unit = "" if self.unit in ("1", "") else self.unit
        return f"{v} {unit}".strip() if self.kind in ("quantity", "integer") else str(v)


@dataclass(frozen=True)
class Criterion:
    id: str
    population: str
    kind: str  # inclusion | exclusion
    sentence: str
    components: tuple[str, ...] = ()
    location: Location | None = None  # where criterion/3 declares it


@dataclass(frozen=True)
class Condition:
    """A criterion or one of its components, as the rules decide it.

    reads: the findings its rules read, as (fact predicate, name) pairs, ``name`` "*" when the
    rules read any name and "" when the fact has none (``("quantity", "anc")``,
    ``("assessment", "ssc_subtype")``, ``("age", "")``); thresholds: (finding, op, parameter or
    value) of its ``check/4``; parameters: every parameter its rules use; parts: the conditions
    it is made of (all_of/any_of); rules: where the rules deciding it are.
    """

    id: str
    reads: frozenset[tuple[str, str]]
    thresholds: tuple[tuple[str, str, str], ...]
    parameters: frozenset[str]
    parts: tuple[str, ...]
    rules: tuple[Location, ...]


@dataclass(frozen=True)
class Change:
    """A change between two results the findings stage computes (``change/5``, kb/lib/core.lp):
    ``name`` is the quantity the rules compare; the largest ``direction`` (decrease or
    increase) from any earlier result of ``finding`` within ``window`` days before its most
    recent result, to that result; ``kind``: absolute (the finding's unit) or relative (% of the
    earlier value)."""

    name: str
    finding: str
    direction: str
    kind: str
    window: int


@dataclass(frozen=True)
class Dose:
    """A daily dose at screening the findings stage computes (``daily_dose/3``): every ongoing
    course of ``drug`` (or every systemic glucocorticoid as prednisone equivalents, for
    ``prednisone_equivalent``), in mg/day (``per`` = mg) or mg/kg/day of the current body
    weight (``per`` = mg_per_kg)."""

    name: str
    drug: str
    per: str


@dataclass(frozen=True)
class KnowledgeBase:
    """A compiled knowledge base: what it is, what it reads and compares, its parameters and
    vocabulary. Frozen: :meth:`with_parameters` returns a new one. Every stage reads a knowledge
    base through this object; none reads its files or searches its rules."""

    name: str
    title: str
    version: str
    directory: Path
    programs: tuple[Path, ...]                  # real paths, in reading order (includes too)
    parameters: dict[str, Parameter]
    populations: dict[str, str]
    vocabulary: Vocabulary
    criteria: tuple[Criterion, ...] = ()
    conditions: dict[str, Condition] = field(default_factory=dict)
    scheme_items: dict[str, frozenset[str]] = field(default_factory=dict)
    # scheme_weight(Scheme, Item, Weight): a scheme's recorded total is the sum of these
    scheme_weights: dict[str, dict[str, int]] = field(default_factory=dict)
    # check(C, Name, Op, T) thresholds (T x1000), window(Name, Days), kb_diagnosis(D),
    # event_window(E, Days), event_category(E, Category)
    checks: tuple[tuple[str, str, str, int], ...] = ()
    windows: dict[str, int] = field(default_factory=dict)
    history_windows: dict[str, int] = field(default_factory=dict)  # history_window(Name, Days)
    diagnoses: frozenset[str] = frozenset()
    event_windows: dict[str, int] = field(default_factory=dict)
    event_categories: dict[str, str] = field(default_factory=dict)
    # every finding a criterion reads: fact predicate -> names ("*": any; "": the fact has none)
    reads: dict[str, frozenset[str]] = field(default_factory=dict)
    # integer parameters compared by the criteria reading each integer-valued fact
    compared: dict[str, frozenset[str]] = field(default_factory=dict)
    parameter_uses: dict[str, tuple[str, ...]] = field(default_factory=dict)
    population_labels: dict[str, str] = field(default_factory=dict)
    defines: frozenset[str] = frozenset()      # predicate signatures some live rule defines
    # derived values the rules declare (change/5, daily_dose/3): the findings stage computes them
    changes: tuple[Change, ...] = ()
    doses: tuple[Dose, ...] = ()
    declared_vocabulary: Vocabulary | None = None  # from the files, before derived values are added
    # what the compiler works from (for with_parameters): the programs' texts and rules
    sources: tuple[ProgramFile, ...] = ()
    rules: tuple[Rule, ...] = ()
    declared_uses: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def param(self, name: str):
        return self.parameters[name].value

    def clingo_args(self) -> list[str]:
        """``-c name=value`` for every ASP-stage parameter."""
        args = []
        for p in self.parameters.values():
            if p.stage == "asp":
                args += ["-c", f"{p.name}={p.asp_constant()}"]
        return args

    def program_text(self) -> str:
        """The programs as clingo reads them: every file from its first line, in the base
        part, its ``#include`` directives resolved (the included files are programs here)."""
        return "".join(f"#program base.\n{p.text}\n" for p in self.sources) + "#program base.\n"

    def criterion_ids(self) -> list[str]:
        return [c.id for c in self.criteria]

    def reads_fact(self, predicate: str, name: str = "") -> bool:
        """Does some criterion read this fact (about this name)? ``reads_fact("assessment",
        "ssc_subtype")``, ``reads_fact("age")``."""
        names = self.reads.get(predicate)
        if not names:
            return False
        return not name or name in names or "*" in names

    def with_parameters(self, overrides: dict[str, str]) -> KnowledgeBase:
        """The knowledge base compiled with parameters set from NAME -> text values (as given by
        --param): every declaration and every read set follows the new values."""
        params = dict(self.parameters)
        for name, text in overrides.items():
            if name not in params:
                hint = difflib.get_close_matches(name, params, n=3)
                msg = f"unknown parameter {name!r}"
                raise KBError(msg + (f" (did you mean {', '.join(hint)}?)" if hint else
                                     " (pyasp-screen params lists them)"))
            params[name] = replace(params[name], value=_parse_value(params[name], text,
                                                                    f"--param {name}"))
        return _compile(replace(self, parameters=params))


def parameter_uses(kb: KnowledgeBase) -> dict[str, list[str]]:
    """For each parameter, the criteria whose rules use it (kb.parameter_uses)."""
    return {n: list(v) for n, v in kb.parameter_uses.items()}


# ---------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------

def _parse_value(p: Parameter, raw: object, where: str) -> object:
    text = str(raw).strip()
    low, high = p.range if p.range else (None, None)
    if p.kind == "quantity":
        try:
            value = Fraction(Decimal(text.replace("_", "!")))  # no digit separators: 1_000 is a typo
        except (InvalidOperation, ValueError, OverflowError):
            raise KBError(f"{where}: {text!r} is not a number (unit {p.unit})") from None
        if (value * SCALE).denominator != 1:
            raise KBError(f"{where}: {text} has more than 3 decimals (thresholds are exact to 0.001)")
        low = Fraction(0) if low is None else Fraction(Decimal(str(low)))
        high = Fraction(1_000_000) if high is None else Fraction(Decimal(str(high)))
        if not low <= value <= high:
            raise KBError(f"{where}: {text} {p.unit} is outside {_num(low)}-{_num(high)} {p.unit}"
                          " (is it in the right unit?)")
        return value
    if p.kind == "integer":
        try:
            value = int(text.replace("_", "!"))
        except ValueError:
            raise KBError(f"{where}: {text!r} is not a whole number (unit {p.unit})") from None
        low = 0 if low is None else int(low)
        high = 100_000 if high is None else int(high)
        if not low <= value <= high:
            raise KBError(f"{where}: {value} {p.unit} is outside {low}-{high} {p.unit}")
        return value
    if p.kind == "boolean":
        if text.lower() in ("true", "yes", "1"):
            return True
        if text.lower() in ("false", "no", "0"):
            return False
        raise KBError(f"{where}: {text!r} is not true or false")
    if p.kind == "choice":
        if text not in p.choices:
            raise KBError(f"{where}: {text!r} is not one of {', '.join(p.choices)}")
        return text
    raise KBError(f"{where}: unknown parameter kind {p.kind!r} (quantity, integer, choice or boolean)")


def _num(value: Fraction) -> str:
    text = format(Decimal(value.numerator) / Decimal(value.denominator), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


PARAMETER_KEYS = {"kind", "default", "unit", "doc", "stage", "choices", "range", "used_by"}


def _parameter(name: str, spec: object, where: str) -> Parameter:
    """A parameter from its manifest declaration, its default parsed and checked."""
    if not isinstance(spec, dict) or "kind" not in spec or "default" not in spec:
        raise KBError(f"{where}: needs kind and default")
    if not isinstance(name, str) or not analysis_name(name):
        raise KBError(f"{where}: a parameter name is lower case letters, digits and _ (an ASP constant)")
    choices = spec.get("choices", ())
    rng = spec.get("range")
    if not isinstance(choices, (list, tuple)) or (rng is not None and not (isinstance(rng, list) and len(rng) == 2)):
        raise KBError(f"{where}: choices is a list, range is [low, high]")
    base = Parameter(name=name, kind=str(spec["kind"]), default=None, value=None,
                     unit=str(spec.get("unit", "")), doc=" ".join(str(spec.get("doc", "")).split()),
                     stage=str(spec.get("stage", "asp")), choices=tuple(str(c) for c in choices),
                     range=tuple(rng) if rng is not None else None)
    if base.stage not in ("asp", "findings"):
        raise KBError(f"{where}: stage {base.stage!r} is neither asp nor findings")
    value = _parse_value(base, spec["default"], where)
    return replace(base, default=value, value=value)


def analysis_name(name: str) -> bool:
    import re

    return bool(re.fullmatch(r"[a-z][A-Za-z0-9_]*", name))


@cache
def _library_parameters() -> dict[str, Parameter]:
    path = builtin_kb_root() / "lib" / "manifest.yaml"
    spec = yamlfile.load(path.read_text(encoding="utf-8"))[0] or {}
    return {name: _parameter(name, p, f"{path}: parameters.{name}")
            for name, p in (spec.get("parameters") or {}).items()}


def manifest_parameters(resolved: Resolved) -> tuple[dict[str, Parameter], dict[str, str], dict[str, tuple]]:
    """(parameters, populations, declared used_by) of a manifest chain: the shared findings-stage
    parameters first, then each manifest's, the furthest ancestor first (an amendment reuses
    and may redeclare). Raises KBError naming the file and the entry."""
    params: dict[str, Parameter] = dict(_library_parameters())
    populations: dict[str, str] = {}
    used_by: dict[str, tuple] = {}
    for m in resolved.chain:
        spec = m.data.get("parameters") or {}
        if not isinstance(spec, dict):
            raise KBError(f"{m.path}:{m.line('parameters')}: parameters: expected a mapping of names")
        for name, p in spec.items():
            where = f"{m.path}:{m.line('parameters', name)}: parameters.{name}"
            params[name] = _parameter(name, p, where)
            if isinstance(p, dict) and p.get("used_by"):
                used_by[name] = tuple(used_by.get(name, ())) + tuple(str(x) for x in p["used_by"])
        pops = m.data.get("populations") or {}
        if not isinstance(pops, dict):
            raise KBError(f"{m.path}:{m.line('populations')}: populations: expected ID: description")
        populations.update({str(k): str(v) for k, v in pops.items()})
    return params, populations, used_by


# ---------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------

DEFAULT_KB = "ct1190b"


def resolve_kb_dir(kb: str | Path | None) -> Path:
    """A KB folder from a path or the name of a bundled KB (default: ct1190b)."""
    if kb is None:
        return builtin_kb_root() / DEFAULT_KB
    path = Path(kb)
    if path.is_dir():
        return path
    bundled = builtin_kb_root() / str(kb)
    if "/" not in str(kb) and bundled.is_dir():
        return bundled
    raise KBError(f"{kb}: no such knowledge base (a folder with manifest.yaml, or one of "
                  f"{', '.join(sorted(p.name for p in builtin_kb_root().iterdir() if (p / 'manifest.yaml').exists() and p.name != 'lib'))})")


def vocabulary_files(kb_dir: Path) -> list[Path]:
    """The vocabulary.yaml of a knowledge base and of those it extends, the furthest first
    (confined like every other file of it)."""
    return [p for p, _ in resolve(kb_dir).vocabulary]


def load_kb(kb: str | Path | None = None, overrides: dict[str, str] | None = None) -> KnowledgeBase:
    """Load and compile a knowledge base folder (or bundled name) with parameter overrides.

    Raises KBError with a one-line message naming the file (and line) for a file outside the
    knowledge base, a missing or malformed manifest, a bad parameter declaration or value, a
    bad vocabulary, a refused or unparsable program, or declarations that do not ground.
    """
    kb_dir = resolve_kb_dir(kb)
    resolved = resolve(kb_dir)
    hint = f" (pyasp-screen check {kb_dir} lists every problem)"
    if resolved.problems:
        raise KBError(f"{resolved.problems[0]}{hint if len(resolved.problems) > 1 else ''}")
    m = resolved.manifest
    params, populations, used_by = manifest_parameters(resolved)
    try:
        vocab = load_vocabulary([p for p, _ in resolved.vocabulary], dict(resolved.vocabulary)) \
            if resolved.vocabulary else library()
    except VocabularyError as e:
        raise KBError(str(e)) from None
    if not resolved.programs:
        raise KBError(f"{m.path}:{m.line('programs')}: programs: lists no ASP file")
    sources = tuple(resolved.programs) + _vocabulary_windows(vocab, resolved)
    parsed = _parse(sources)
    if parsed.problems:
        raise KBError(f"{parsed.problems[0]}{hint if len(parsed.problems) > 1 else ''}")
    kb_obj = KnowledgeBase(
        name=str(m.data.get("name", kb_dir.name)), title=str(m.data.get("title", "")),
        version=str(m.data.get("version", "")), directory=kb_dir,
        programs=tuple(Path(p.path) for p in resolved.programs), parameters=params,
        populations=populations, vocabulary=vocab, declared_vocabulary=vocab, sources=sources,
        rules=tuple(parsed.rules),
        declared_uses=used_by)
    kb_obj = _compile(kb_obj)
    if overrides:
        kb_obj = kb_obj.with_parameters(overrides)
    return kb_obj


@lru_cache(maxsize=16)
def _parse(sources: tuple[ProgramFile, ...]) -> analysis.Parsed:
    """The parsed programs, once per process for the same texts (a what-if loads its knowledge
    base twice; the records are never changed)."""
    return analysis.parse(sources)


def _vocabulary_windows(vocab: Vocabulary, resolved: Resolved) -> tuple[ProgramFile, ...]:
    """Programs made from the vocabulary, each a program of its own: the organ systems of
    ``organs:`` as the items of the scheme organ_involvement (so a record's
    ``complete: [organ_involvement]`` closes every organ system a record may name, in every
    knowledge base), and ``window(Name, W).`` for every finding of the knowledge base's own
    vocabulary that declares its look-back (``window:``)."""
    out = []
    library_file = vocab.files[0] if vocab.files else "kb/lib/vocabulary.yaml"
    if vocab.organs:
        items = "; ".join(vocab.organs)
        out.append(ProgramFile(f"{library_file} (organs:)", f"scheme_item(organ_involvement, ({items})).\n",
                               library_file))
    lines = [f"window({o.name},{o.window})." for o in vocab.observations.values() if o.window is not None]
    if lines:
        file = str(resolved.vocabulary[-1][0])
        out.append(ProgramFile(f"{file} (window:)", "\n".join(lines) + "\n", file))
    return tuple(out)


# ---------------------------------------------------------------------------------------
# Compiling
# ---------------------------------------------------------------------------------------

def _compile(kb: KnowledgeBase) -> KnowledgeBase:
    """Everything that depends on the parameter values, from the parsed rules and a grounding
    of the declarations without patients."""
    ground, ground_terms = _ground_declarations(kb)
    criteria, sentences, parts = {}, {}, {}
    for args in ground.get("criterion/3", ()):
        criteria[args[0]] = {"population": args[1], "kind": args[2]}
    for args in ground.get("registry_sentence/2", ()):
        sentences[args[0]] = args[1]
    for sig in ("all_of/2", "any_of/2"):
        for c, s in ground.get(sig, ()):
            parts.setdefault(c, []).append(s)
    for cid, info in criteria.items():
        if info["kind"] not in ("inclusion", "exclusion"):
            raise KBError(f"knowledge base {kb.directory}: criterion {cid}: kind {info['kind']!r} is neither "
                          "inclusion nor exclusion")
        if info["population"] != "all" and info["population"] not in kb.populations:
            raise KBError(f"knowledge base {kb.directory}: criterion {cid}: population {info['population']!r} is "
                          f"not declared in manifest.yaml (populations: {', '.join(kb.populations) or 'none'})")

    # components in the order the rules list them (all_of/any_of, pools in order), each
    # followed by its own parts: the protocol's order, as for criteria
    listed: dict[str, tuple] = {}
    for n, r in enumerate(kb.rules):
        for i, a in enumerate(r.heads):
            if a.name in ("all_of", "any_of") and len(a.args) == 2 and a.text(1):
                listed.setdefault(a.text(1), (n, i))

    def flatten(c: str, seen=()) -> list[str]:
        out = []
        for s in sorted(parts.get(c, []), key=lambda s: (listed.get(s, (len(kb.rules), 0)), s)):
            if s in seen:
                continue
            out.append(s)
            out.extend(flatten(s, seen + (s,)))
        return out

    declared = {}
    for r in kb.rules:
        for a in r.heads:
            if a.name == "criterion" and len(a.args) == 3 and a.text(0):
                declared.setdefault(a.text(0), a.location)
    crits = tuple(
        Criterion(cid, info["population"], info["kind"], sentences.get(cid, ""),
                  tuple(dict.fromkeys(flatten(cid))), declared.get(cid))
        for cid, info in sorted(criteria.items(), key=lambda kv: _criterion_order(
            kv[0], kv[1], list(kb.populations), declared.get(kv[0]))))
    numbers = {}
    checks = []
    for c, n, op, t in ground.get("check/4", ()):
        if t.lstrip("-").isdigit():
            checks.append((c, n, op, int(t)))
    for sig, target in (("window/2", "windows"), ("event_window/2", "event_windows"),
                        ("history_window/2", "history_windows")):
        numbers[target] = {a: int(b) for a, b in ground.get(sig, ()) if b.lstrip("-").isdigit()}
    changes, doses, vocabulary = _derived_declarations(kb, ground)
    live = tuple(r for r in kb.rules if _live(r, kb.parameters))
    conditions = _conditions(kb, live, ground, ground_terms, crits, parts)
    reads: dict[str, set[str]] = {}
    for c in conditions.values():
        for pred, name in c.reads:
            reads.setdefault(pred, set()).add(name)
    compared: dict[str, set[str]] = {}
    integer_params = {p.name for p in kb.parameters.values() if p.kind == "integer"}
    for c in conditions.values():
        for pred, _ in c.reads:
            if pred in ("age", "disease_duration_months", "sledai2k_total"):
                compared.setdefault(pred, set()).update(
                    p for p in c.parameters & integer_params if kb.parameters[p].unit != "d")
    order = {c.id: i for i, c in enumerate(crits)}
    uses: dict[str, set[str]] = {n: set() for n in kb.parameters}
    for c in crits:
        for cond in (c.id, *c.components):
            for p in conditions[cond].parameters if cond in conditions else ():
                uses.setdefault(p, set()).add(c.id)
    # a criterion uses the parameters of every rule its conditions lead to under any
    # interpretation, dead rules too: sledai_counted(D) :- ..., sledai_exclude_cns = false.
    # is dead under the default true, and still what that parameter changes
    alive = {id(r) for r in live}
    every = _Reader(kb.rules, ground_terms, set(kb.parameters), any_interpretation=True,
                    dead=tuple(r for r in kb.rules if id(r) not in alive))
    for c in crits:
        for cond in (c.id, *c.components):
            for p in every.condition(cond)[1]:
                uses.setdefault(p, set()).add(c.id)
    # a rule naming a criterion's condition uses its parameters under any interpretation
    # (check(..., ssc_fvc_decline_min) :- ssc_progressive_definition = fvc_decline.)
    top = {cond: c.id for c in crits for cond in (c.id, *c.components)}
    for r in kb.rules:
        named = {a.text(1) if a.name in CONDITION_PREDICATES else a.text(0) for a in r.heads
                 if a.name in ("holds", "fails", "check", "check_ever", "all_of", "any_of")}
        for cond in named & set(top):
            for name, _ in r.identifiers:
                if name in kb.parameters:
                    uses[name].add(top[cond])
    for name, crit_ids in kb.declared_uses.items():
        uses.setdefault(name, set()).update(crit_ids)
    return replace(
        kb, criteria=crits, conditions=conditions,
        scheme_items={k: frozenset(v) for k, v in _group(ground.get("scheme_item/2", ())).items()},
        scheme_weights=_weights(ground.get("scheme_weight/3", ())),
        checks=tuple(sorted(checks)), windows=numbers["windows"], history_windows=numbers["history_windows"],
        diagnoses=frozenset(a[0] for a in ground.get("kb_diagnosis/1", ())),
        event_windows=numbers["event_windows"],
        event_categories={a: b for a, b in ground.get("event_category/2", ())},
        reads={k: frozenset(v) for k, v in reads.items()},
        compared={k: frozenset(v) for k, v in compared.items()},
        parameter_uses={n: tuple(sorted(u, key=lambda c: order.get(c, 999))) for n, u in uses.items()},
        population_labels={p: _population_label(p, text) for p, text in kb.populations.items()},
        defines=frozenset(a.signature for r in live for a in r.heads),
        changes=changes, doses=doses, vocabulary=vocabulary)


def _declared_at(kb: KnowledgeBase, predicate: str, name: str) -> str:
    """file:line of the rule declaring ``predicate(name, ...)``, for messages."""
    for r in kb.rules:
        for a in r.heads:
            if a.name == predicate and a.text(0) == name:
                return f"{a.location[0]}:{a.location[1]}"
    return str(kb.directory)


def _derived_declarations(kb: KnowledgeBase, ground) -> tuple[tuple[Change, ...], tuple[Dose, ...], Vocabulary]:
    """change/5 and daily_dose/3 as grounded, checked against the vocabulary, and the
    vocabulary with a label for each (explanations name them)."""
    from pyasp_screen.knowledge.vocabulary import DerivedKind

    v = kb.declared_vocabulary or kb.vocabulary
    quantities = {o.name for o in v.observations.values() if not o.qualitative}
    quantities |= {f"{o.name}_x_uln" for o in v.observations.values() if o.uln}
    taken = set(v.observations) | set(v.derived) | set(v.diagnoses) | set(v.assessments)
    changes, doses, derived = [], [], {}
    for name, finding, direction, kind, window in ground.get("change/5", ()):
        where = _declared_at(kb, "change", name)
        if finding not in quantities:
            raise KBError(f"{where}: change({name}, {finding}, ...): {finding} is not a numeric finding "
                          "(docs/vocabulary.md: an observation, or <name>_x_uln)")
        if direction not in ("decrease", "increase") or kind not in ("absolute", "relative"):
            raise KBError(f"{where}: change({name}, {finding}, {direction}, {kind}, ...): the direction is "
                          "decrease or increase, the kind absolute or relative")
        if not window.lstrip("-").isdigit() or int(window) < 1:
            raise KBError(f"{where}: change({name}, ...): the window {window} is not a number of days "
                          "(an integer parameter, at least 1)")
        if name in taken:
            raise KBError(f"{where}: change({name}, ...): {name} is already a name of the vocabulary")
        changes.append(Change(name, finding, direction, kind, int(window)))
        label, unit = v.quantity_label(finding)
        derived[name] = DerivedKind(name, f"{label} {direction} over {window} days"
                                    + (" (relative)" if kind == "relative" else ""),
                                    "%" if kind == "relative" else unit, f"{finding} results")
    for name, drug, per in ground.get("daily_dose/3", ()):
        where = _declared_at(kb, "daily_dose", name)
        if drug not in v.drugs and drug != "prednisone_equivalent":
            raise KBError(f"{where}: daily_dose({name}, {drug}, ...): {drug} is not a drug of the vocabulary "
                          "(or prednisone_equivalent: every systemic glucocorticoid)")
        if per not in ("mg", "mg_per_kg"):
            raise KBError(f"{where}: daily_dose({name}, {drug}, {per}): per is mg or mg_per_kg")
        if name in taken:
            raise KBError(f"{where}: daily_dose({name}, ...): {name} is already a name of the vocabulary")
        doses.append(Dose(name, drug, per))
        what = "prednisone-equivalent dose" if drug == "prednisone_equivalent" else \
            f"{v.drugs[drug].label} dose"
        derived[name] = DerivedKind(name, f"{what} at screening" + (" per kg body weight" if per == "mg_per_kg" else ""),
                                    "mg/kg/day" if per == "mg_per_kg" else "mg/day",
                                    "the medications" + (" and the body weight" if per == "mg_per_kg" else ""))
    if derived:
        v = replace(v, derived={**v.derived, **derived})
    return tuple(changes), tuple(doses), v


def _weights(atoms) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for scheme, item, weight in atoms:
        if weight.lstrip("-").isdigit():
            out.setdefault(scheme, {})[item] = int(weight)
    return out


def _group(pairs) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for a, b in pairs:
        out.setdefault(a, set()).add(b)
    return out


def _population_label(pop: str, text: str) -> str:
    """The short name of a population: "SSc" from "systemic sclerosis (SSc)"."""
    if "(" in text and text.endswith(")"):
        return text[text.rindex("(") + 1:-1]
    return pop.upper()


def _criterion_order(cid: str, info: dict, populations: list[str], where: Location | None) -> tuple:
    """Protocol order: by population as the manifest lists them (criteria of every population
    first), inclusions before exclusions, then by ID with its numbers compared as numbers
    (INC-2 before INC-10, SLE-IN-7a before SLE-IN-7b), then where they are declared. Never
    alphabetical: EX-1 sorts before INC-1, which no protocol does."""
    pop = info["population"]
    rank = -1 if pop == "all" else populations.index(pop) if pop in populations else len(populations)
    natural = tuple((0, int(part), "") if part.isdigit() else (1, 0, part.lower())
                    for part in re.findall(r"\d+|\D+", cid))
    return (rank, 0 if info["kind"] == "inclusion" else 1, natural, where or ("", 0, 0))


def _symbol_text(s: clingo.Symbol) -> str:
    if s.type == clingo.SymbolType.String:
        return s.string
    if s.type == clingo.SymbolType.Number:
        return str(s.number)
    return str(s)


def _ground_declarations(kb: KnowledgeBase) -> tuple[dict[str, list[tuple[str, ...]]], dict[str, list[tuple]]]:
    """Every atom the programs derive without patients (declarations, drug classes, score
    tables), by predicate signature: arguments as text, and as analysis terms."""
    messages: list[str] = []
    ctl = clingo.Control(kb.clingo_args() + ["--warn=none"], logger=lambda code, msg: messages.append(msg))

    def ground() -> None:
        ctl.add("base", [], kb.program_text())
        ctl.ground(KB_PARTS)

    try:  # under the time and memory limits of every grounding (a rule may never end)
        run_bounded(ground, kb=kb.name)
    except GroundingLimit as e:
        raise KBError(str(e)) from None
    except RuntimeError:
        detail = " ".join(messages[0].split()) if messages else "cannot ground"
        raise KBError(f"knowledge base {kb.directory}: {detail}") from None
    out: dict[str, list[tuple[str, ...]]] = {}
    terms: dict[str, list[tuple]] = {}
    for atom in ctl.symbolic_atoms:
        sym = atom.symbol
        if sym.type != clingo.SymbolType.Function:
            continue
        sig = f"{sym.name}/{len(sym.arguments)}"
        out.setdefault(sig, []).append(tuple(_symbol_text(a) for a in sym.arguments))
        terms.setdefault(sig, []).append(tuple(analysis._term_of_symbol(a) for a in sym.arguments))
    return out, terms


# -- liveness: a rule whose body compares parameters with values it cannot match is dead --------

def _evaluate(t: tuple, params: dict[str, Parameter]):
    """A term's value with parameters substituted, or None if it is not ground."""
    kind = t[0]
    if kind == "sym":
        p = params.get(t[1])
        if p is not None and p.stage == "asp":
            return _evaluate(p.asp_term(), params) if p.asp_term()[0] == "num" else ("sym", p.asp_constant())
        return ("sym", t[1])
    if kind == "num":
        return t[1]
    if kind == "str":
        return ("str", t[1])
    if kind == "un" and t[1] == "-":
        v = _evaluate(t[2], params)
        return -v if isinstance(v, int) else None
    if kind == "bin" and t[1] in "+-*":
        a, b = _evaluate(t[2], params), _evaluate(t[3], params)
        if isinstance(a, int) and isinstance(b, int):
            return a + b if t[1] == "+" else a - b if t[1] == "-" else a * b
    return None


def _live(rule: Rule, params: dict[str, Parameter]) -> bool:
    """False when a comparison of the rule's own body is false whatever the patient, given the
    parameters (``ssc_progressive_definition = clinician`` under fvc_decline)."""
    for c in rule.comparisons:
        if not c.top:
            continue
        a, b = _evaluate(c.left, params), _evaluate(c.right, params)
        if a is None or b is None:
            continue
        if c.op in ("=", "!="):
            if (a == b) != (c.op == "="):
                return False
        elif isinstance(a, int) and isinstance(b, int):
            ok = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[c.op]
            if not ok:
                return False
    return True


# -- what each condition reads: the rules deciding it, followed through helper predicates -----

MAX_BRANCHES = 200


class _Reader:
    """Follows a condition's rules down to the facts they read. A helper atom is followed
    into every live rule defining it, its head unified with the constants the atom carries;
    an atom of a predicate derived without patients (declarations, drug classes) binds the
    rule's variables to each of its ground atoms."""

    def __init__(self, live: tuple[Rule, ...], ground: dict[str, list[tuple[str, ...]]], params: set[str],
                 any_interpretation: bool = False, dead: tuple[Rule, ...] = ()):
        self.defs: dict[str, list[Rule]] = {}
        self.params = params
        # any_interpretation: ``live`` holds every rule, dead ones too, and a declaration that
        # some dead rule could define counts as matched even if no ground atom matches it
        # (agent_class(telitacicept, b_cell) :- telitacicept_is_b_cell = true.): for the
        # parameters a condition uses under some value of them
        self.any_interpretation = any_interpretation
        self.maybe: dict[str, list[Atom]] = {}
        for r in dead if any_interpretation else ():
            for a in r.heads:
                self.maybe.setdefault(a.signature, []).append(a)
        # the heads defining each predicate, by the argument that names what they are about
        # (the condition of holds/2 and fails/2, the first otherwise) when it is a constant
        self.heads: dict[str, tuple[dict[object, list], list]] = {}
        for r in live:
            for a in r.heads:
                if r not in self.defs.setdefault(a.signature, []):
                    self.defs[a.signature].append(r)
                keyed, open_ = self.heads.setdefault(a.signature, ({}, []))
                pos = self._position(a.name)
                arg = a.args[pos] if pos < len(a.args) else ("var", "_")
                if _is_ground(arg) and constant(arg) not in params:
                    keyed.setdefault(_key(arg), []).append((a, r))
                else:
                    open_.append((a, r))
        self.ground = ground
        # ground atoms by the text of their first argument, for binding lookups
        self.index: dict[str, dict[object, list[tuple]]] = {}
        for sig, atoms in ground.items():
            by_first: dict[object, list[tuple]] = {}
            for values in atoms:
                by_first.setdefault(_key(values[0]) if values else None, []).append(values)
            self.index[sig] = by_first
        # predicates whose atoms all exist without patients (declarations, drug classes, score
        # tables, and predicates nothing defines): their atoms are those of the grounding
        sigs = {a.signature for r in live for a in r.heads + r.body} | set(ground)
        self._dependent: dict[str, bool] = {}
        self.static = {sig for sig in sigs if sig.split("/")[0] not in FACT_NAMES
                       and sig.split("/")[0] not in CONDITION_PREDICATES and not self._patient_dependent(sig)}
        self.memo: dict[tuple, tuple[frozenset, frozenset, frozenset]] = {}

    @staticmethod
    def _position(name: str) -> int:
        return 1 if name in CONDITION_PREDICATES else 0

    def _defining(self, sig: str, args: tuple) -> list:
        """(head, rule) pairs that may define an atom of sig with these arguments."""
        keyed, open_ = self.heads.get(sig, ({}, []))
        pos = self._position(sig.split("/")[0])
        if pos < len(args) and _is_ground(args[pos]) and constant(args[pos]) not in self.params:
            return keyed.get(_key(args[pos]), []) + open_
        return [pair for pairs in keyed.values() for pair in pairs] + open_

    def _patient_dependent(self, sig: str, seen=None) -> bool:
        """Does sig depend on a patient fact (then its atoms without patients are not all)?"""
        if sig in self._dependent:
            return self._dependent[sig]
        seen = seen if seen is not None else set()
        if sig in seen:
            return False
        seen.add(sig)
        out = any(a.name in FACT_NAMES or a.name in CONDITION_PREDICATES or self._patient_dependent(a.signature, seen)
                  for r in self.defs.get(sig, ()) for a in r.body)
        self._dependent[sig] = out
        return out

    def atom(self, atom: Atom, binding: dict[str, tuple], depth: int = 0):
        """(reads, parameters, conditions) below one atom under a variable binding."""
        args = tuple(_bind(t, binding) for t in atom.args)
        key = (atom.signature, tuple(a if _is_ground(a) else None for a in args))
        if key in self.memo:
            return self.memo[key]
        self.memo[key] = (frozenset(), frozenset(), frozenset())  # recursion guard
        reads, params, conds = set(), set(), set()
        if atom.name in FACT_NAMES and atom.signature in FACT_PREDICATES:
            pos = NAME_ARGUMENT.get(atom.name)
            name = "" if pos is None else (constant(args[pos]) if pos < len(args) and constant(args[pos]) else "*")
            reads.add((atom.name, name))
        elif atom.name in CONDITION_PREDICATES and len(args) == 2:
            c = constant(args[1])
            if c is not None:
                conds.add(c)
        elif depth < 40:
            for head, rule in self._defining(atom.signature, args):
                b = _unify(head.args, args, self.params)
                if b is None:
                    continue
                r, p, c = self.rule(rule, b, depth + 1)
                reads |= r
                params |= p
                conds |= c
        out = (frozenset(reads), frozenset(params), frozenset(conds))
        self.memo[key] = out
        return out

    def condition(self, cid: str):
        """(reads, parameters, conditions) of the rules deciding a condition (holds/2, fails/2)."""
        reads, params, conds = set(), set(), set()
        args = (("var", "P"), ("str", cid))
        for sig in ("holds/2", "fails/2"):
            for head, rule in self._defining(sig, args):
                b = _unify(head.args, args, self.params)
                if b is None:
                    continue
                r, p, c = self.rule(rule, b, 1)
                reads |= r
                params |= p
                conds |= c
        return reads, params, conds

    def rule(self, rule: Rule, binding: dict[str, tuple], depth: int):
        """(reads, parameters, conditions) of a rule's body under a binding of its head."""
        bindings = self._bindings(rule, binding)
        if not bindings:  # a declaration the rule needs does not exist: it decides nothing here
            return set(), set(), set()
        params = {name for name, _ in rule.identifiers if name in self.params}
        reads, conds = set(), set()
        for b in bindings:
            for atom in rule.body:
                if atom.signature in self.static:
                    r, p, c = self.atom(atom, b, depth)  # its defining rules' parameters
                    params |= p
                    continue
                r, p, c = self.atom(atom, b, depth)
                reads |= r
                params |= p
                conds |= c
        return reads, params, conds

    def _bindings(self, rule: Rule, binding: dict[str, tuple]) -> list[dict[str, tuple]]:
        """The rule's variable bindings extended through its atoms of static predicates."""
        out = [dict(binding)]
        for atom in rule.body:
            if atom.signature not in self.static or atom.sign != 0:
                continue
            grown = []
            for b in out:
                pattern = tuple(_bind(t, b) for t in atom.args)
                first = pattern[0] if pattern else None
                if first is not None and _is_ground(first) and constant(first) not in self.params:
                    candidates = self.index.get(atom.signature, {}).get(_key(first), ())
                else:
                    candidates = self.ground.get(atom.signature, ())
                for values in candidates:
                    nb = _match(pattern, values, b, self.params)
                    if nb is not None:
                        grown.append(nb)
                    if len(grown) > MAX_BRANCHES:
                        return out
            if not grown and any(_unify(h.args, tuple(_bind(t, b) for t in atom.args), self.params) is not None
                                 for h in self.maybe.get(atom.signature, ()) for b in out):
                continue  # another value of a parameter may define a matching atom
            out = grown  # no atom matches: the rule cannot fire under that binding
            if not out:
                return []
        return out


def _bind(t: tuple, binding: dict[str, tuple]) -> tuple:
    return _bind_all(t, binding)


def _key(t: tuple) -> object:
    """A ground term as an index key (a string and a constant of the same text are one key)."""
    c = constant(t)
    return c if c is not None else t


def _is_ground(t: tuple) -> bool:
    if t[0] in ("sym", "str", "num"):
        return True
    if t[0] == "fun":
        return all(_is_ground(a) for a in t[2])
    return False


def _same(a: tuple, b: tuple) -> bool:
    """Equal ground terms (a string and a constant of the same text are the same here)."""
    ca, cb = constant(a), constant(b)
    if ca is not None or cb is not None:
        return ca == cb
    return a[0] == b[0] == "fun" and a[1] == b[1] and len(a[2]) == len(b[2]) and \
        all(_same(x, y) for x, y in zip(a[2], b[2]))


def _unify_term(h: tuple, a: tuple, b: dict[str, tuple], params: set[str]) -> bool:
    """Unify a pattern term h (variables bind) with a term a (ground, or partly open: an open
    part matches anything); extends b. A parameter's name stands for its value: it matches
    anything."""
    if h[0] == "var":
        if h[1] == "_" or not _is_ground(a):
            return True
        if h[1] in b:
            return _same(b[h[1]], a)
        b[h[1]] = a
        return True
    if not _is_ground(a) and a[0] != "fun":
        return True
    hc, ac = constant(h), constant(a)
    if hc in params or ac in params:
        return True
    if hc is not None or ac is not None:
        return hc == ac if hc is not None and ac is not None else (h[0] not in ("fun",) and a[0] not in ("fun",))
    if h[0] == "fun" and a[0] == "fun":
        return h[1] == a[1] and len(h[2]) == len(a[2]) and all(_unify_term(x, y, b, params)
                                                                 for x, y in zip(h[2], a[2]))
    return True  # arithmetic and other shapes: not decided here


def _unify(head_args: tuple, args: tuple, params: set[str]) -> dict[str, tuple] | None:
    """Bindings of the head's variables to the atom's (ground parts of) arguments; None if
    they cannot match."""
    b: dict[str, tuple] = {}
    for h, a in zip(head_args, args):
        if not _unify_term(h, a, b, params):
            return None
    return b


def _match(pattern: tuple, values: tuple, binding: dict[str, tuple],
           params: set[str]) -> dict[str, tuple] | None:
    """Bind a body atom's arguments to one ground atom of a declaration predicate."""
    b = dict(binding)
    for t, v in zip(pattern, values):
        if not _unify_term(_bind_all(t, b), v, b, params):
            return None
    return b


def _bind_all(t: tuple, binding: dict[str, tuple]) -> tuple:
    if t[0] == "var":
        return binding.get(t[1], t)
    if t[0] == "fun":
        return ("fun", t[1], tuple(_bind_all(a, binding) for a in t[2]))
    return t


def _conditions(kb: KnowledgeBase, live: tuple[Rule, ...], ground, ground_terms, crits,
                parts) -> dict[str, Condition]:
    reader = _Reader(live, ground_terms, set(kb.parameters))
    ids = [cid for c in crits for cid in (c.id, *c.components)]
    deciding: dict[str, list[Rule]] = {}  # condition -> the live rules naming it in their head
    for r in live:
        named = {a.text(1) if a.name in CONDITION_PREDICATES else a.text(0) for a in r.heads
                 if a.name in ("holds", "fails", "check", "check_ever", "all_of", "any_of")}
        for cid in named - {None}:
            deciding.setdefault(cid, []).append(r)
    out: dict[str, Condition] = {}
    refers: dict[str, frozenset[str]] = {}  # condition -> the conditions its rules read (holds/2, fails/2)
    for cid in ids:
        reads, params, rules = set(), set(), []
        r, p, refs = reader.condition(cid)
        refers[cid] = frozenset(refs) - {cid}
        reads |= r
        params |= p
        for r in deciding.get(cid, ()):
            rules.append(r.location)
            if any(a.name in ("check", "check_ever", "all_of", "any_of") for a in r.heads):
                params |= {name for name, _ in r.identifiers if name in kb.parameters}
        thresholds = []
        for c, n, op, t in ground.get("check/4", ()):
            if c == cid:
                src = next((a.text(3) for r in live for a in r.heads
                            if a.name == "check" and a.text(0) == cid and a.text(1) == n and a.text(3)), t)
                thresholds.append((n, op, src))
        out[cid] = Condition(cid, frozenset(reads), tuple(thresholds), frozenset(params),
                             tuple(parts.get(cid, ())), tuple(rules))

    def union(cid: str, seen: tuple = ()) -> tuple[set, set]:
        # a condition reads what its parts read, and what the conditions its rules read do
        # (holds(P,"SLE-IN-5") in another criterion's rule)
        c = out[cid]
        reads, params = set(c.reads), set(c.parameters)
        for part in (*c.parts, *sorted(refers.get(cid, ()))):
            if part in out and part not in seen and part != cid:
                r, p = union(part, seen + (cid,))
                reads |= r
                if part in c.parts:
                    params |= p
        return reads, params

    return {cid: replace(c, reads=frozenset(union(cid)[0]), parameters=frozenset(union(cid)[1]))
            for cid, c in out.items()}

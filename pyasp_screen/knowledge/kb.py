"""Knowledge bases: a folder with manifest.yaml, ASP programs and example cases.

A knowledge base (KB) declares its parameters in manifest.yaml (name, kind, default, unit,
documentation) and its criteria in ASP (``criterion/3``, ``registry_sentence/2``,
``all_of/2``, ``any_of/2``). :func:`load_kb` reads both: the manifest with PyYAML, the
criteria by grounding the programs once without patients.

Parameter values reach clingo as constants (``-c name=value``): quantities x1000 as
integers (exact to 0.001 of the unit), integers as they are, choices and booleans as
symbols. Parameters with ``stage: findings`` are read by :mod:`pyasp_screen.findings.derive`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path

import clingo
import yaml

from pyasp_screen.knowledge.confine import refusals
from pyasp_screen.knowledge.paths import builtin_kb_root
from pyasp_screen.knowledge.vocabulary import Vocabulary, VocabularyError, library, load_vocabulary

SCALE = 1000  # quantities reach ASP as value x SCALE (floor and ceil)
# Parameters the findings stage reads (stage: findings), declared in kb/lib/manifest.yaml.
FINDINGS_PARAMETERS = ("crcl_weight", "site_uln_alt", "site_uln_ast", "site_uln_bilirubin_total",
                       "site_uln_inr", "site_uln_aptt", "site_uln_pt", "spo2_unflagged_is_room_air")


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


@dataclass
class KnowledgeBase:
    name: str
    title: str
    version: str
    directory: Path
    programs: list[Path]
    parameters: dict[str, Parameter]
    populations: dict[str, str]
    criteria: list[Criterion] = field(default_factory=list)
    scheme_items: dict[str, frozenset[str]] = field(default_factory=dict)
    # What the rules read, for the explanation engine: check(C, Name, Op, T) thresholds
    # (T x1000), window(Name, Days), kb_diagnosis(D).
    checks: list[tuple[str, str, str, int]] = field(default_factory=list)
    windows: dict[str, int] = field(default_factory=dict)
    diagnoses: frozenset[str] = frozenset()
    # The programs' text, read once at load: a knowledge base shipped to a worker process
    # or a Dask cluster node does not need its folder there.
    sources: tuple[str, ...] = ()
    # The findings it may read: the shared library's vocabulary plus the knowledge base's own
    # vocabulary.yaml (and those of the knowledge bases it extends).
    vocabulary: Vocabulary = field(default_factory=library)

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
        if self.sources:
            return "\n".join(self.sources)
        return "\n".join(p.read_text(encoding="utf-8") for p in self.programs)

    def criterion_ids(self) -> list[str]:
        return [c.id for c in self.criteria]

    def with_parameters(self, overrides: dict[str, str]) -> "KnowledgeBase":
        """A copy with parameters set from NAME -> text values (as given by --param)."""
        params = dict(self.parameters)
        for name, text in overrides.items():
            if name not in params:
                hint = difflib.get_close_matches(name, params, n=3)
                msg = f"unknown parameter {name!r}"
                raise KBError(msg + (f" (did you mean {', '.join(hint)}?)" if hint else
                                     " (pyasp-screen params lists them)"))
            params[name] = replace(params[name], value=_parse_value(params[name], text,
                                                                    f"--param {name}"))
        return replace(self, parameters=params)


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
    raise KBError(f"{where}: unknown parameter kind {p.kind!r}")


def _num(value: Fraction) -> str:
    text = format(Decimal(value.numerator) / Decimal(value.denominator), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


DEFAULT_KB = "ct1190b"


def resolve_kb_dir(kb: str | Path | None) -> Path:
    """A KB folder from a path or the name of a bundled KB (default: ct1190b)."""
    if kb is None:
        return builtin_kb_root() / DEFAULT_KB
    path = Path(kb)
    if path.is_dir():
        return path
    bundled = builtin_kb_root() / str(kb)
    if bundled.is_dir():
        return bundled
    raise KBError(f"{kb}: no such knowledge base (a folder with manifest.yaml, or one of "
                  f"{', '.join(sorted(p.name for p in builtin_kb_root().iterdir() if (p / 'manifest.yaml').exists() and p.name != 'lib'))})")


def _resolve_program(kb_dir: Path, name: str) -> Path:
    """A program named in a manifest: "lib/..." is the shared library beside the knowledge
    base (or, for one made elsewhere, the bundled library); anything else is inside the
    knowledge base's folder."""
    if name.startswith("lib/"):
        candidate = kb_dir.parent / name
        if not candidate.is_file():
            candidate = builtin_kb_root() / name
    else:
        candidate = kb_dir / name
        if kb_dir.resolve() not in candidate.resolve().parents:
            raise KBError(f"{kb_dir / 'manifest.yaml'}: programs: {name}: outside the knowledge base's folder "
                          "(use extends: to reuse another knowledge base)")
    if not candidate.is_file():
        raise KBError(f"{kb_dir / 'manifest.yaml'}: programs: {name}: no such file")
    return candidate


def _read_manifest(kb_dir: Path, seen: tuple[Path, ...] = ()) -> tuple[dict, dict[str, Parameter], list[Path], dict]:
    """(manifest, parameters, programs, populations) of a KB folder, with what it extends.

    ``extends: NAME`` names a sibling knowledge base whose parameters, programs and
    populations come first: a protocol amendment reuses the rules it amends, it does not
    copy them.
    """
    manifest_path = kb_dir / "manifest.yaml"
    try:
        manifest = yaml.safe_load(manifest_path.read_text(encoding="utf-8"))
    except OSError as e:
        raise KBError(f"{manifest_path}: cannot read: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise KBError(f"{manifest_path}: malformed YAML: {' '.join(str(e).split())}") from None
    if not isinstance(manifest, dict):
        raise KBError(f"{manifest_path}: expected a mapping")
    params: dict[str, Parameter] = {}
    programs: list[Path] = []
    populations: dict = {}
    if not manifest.get("extends"):  # the shared findings-stage parameters come first
        params.update(_library_parameters())
    if manifest.get("extends"):
        parent = kb_dir.parent / str(manifest["extends"])
        if parent.resolve() in seen or not (parent / "manifest.yaml").exists():
            raise KBError(f"{manifest_path}: extends: {manifest['extends']}: no such knowledge base beside it"
                          if parent.resolve() not in seen else f"{manifest_path}: extends: a cycle")
        _, params, programs, populations = _read_manifest(parent, seen + (kb_dir.resolve(),))
    for name, spec in (manifest.get("parameters") or {}).items():
        where = f"{manifest_path}: parameters.{name}"
        if not isinstance(spec, dict) or "kind" not in spec or "default" not in spec:
            raise KBError(f"{where}: needs kind and default")
        params[name] = _parameter(name, spec, where)
    programs = programs + [_resolve_program(kb_dir, n) for n in manifest.get("programs", [])
                           if _resolve_program(kb_dir, n) not in programs]
    populations = {**populations, **dict(manifest.get("populations") or {})}
    return manifest, params, programs, populations


def vocabulary_files(kb_dir: Path) -> list[Path]:
    """The vocabulary.yaml of a knowledge base and of those it extends, the furthest first."""
    chain: list[Path] = []
    directory: Path | None = kb_dir
    while directory is not None and directory.resolve() not in [c.parent.resolve() for c in chain]:
        chain.append(directory / "vocabulary.yaml")
        try:
            manifest = yaml.safe_load((directory / "manifest.yaml").read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            break
        parent = manifest.get("extends") if isinstance(manifest, dict) else None
        directory = directory.parent / str(parent) if parent else None
    return [p for p in reversed(chain) if p.is_file()]


def _library_parameters() -> dict[str, Parameter]:
    path = builtin_kb_root() / "lib" / "manifest.yaml"
    spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {name: _parameter(name, p, f"{path}: parameters.{name}")
            for name, p in (spec.get("parameters") or {}).items()}


def _parameter(name: str, spec: dict, where: str) -> Parameter:
    """A parameter from its manifest declaration, its default parsed and checked."""
    base = Parameter(name=name, kind=spec["kind"], default=None, value=None,
                     unit=str(spec.get("unit", "")), doc=" ".join(str(spec.get("doc", "")).split()),
                     stage=spec.get("stage", "asp"), choices=tuple(spec.get("choices", ())),
                     range=tuple(spec["range"]) if "range" in spec else None)
    value = _parse_value(base, spec["default"], where)
    return replace(base, default=value, value=value)


def load_kb(kb: str | Path | None = None, overrides: dict[str, str] | None = None) -> KnowledgeBase:
    """Load a knowledge base folder (or bundled name) and apply parameter overrides.

    Raises KBError with a one-line message naming the file for a missing or malformed
    manifest, a bad parameter declaration or value, or ASP that does not ground.
    """
    kb_dir = resolve_kb_dir(kb)
    manifest, params, programs, populations = _read_manifest(kb_dir)
    try:
        vocab = load_vocabulary(vocabulary_files(kb_dir))
    except VocabularyError as e:
        raise KBError(str(e)) from None
    if not programs:
        raise KBError(f"{kb_dir / 'manifest.yaml'}: programs: lists no ASP file")
    kb_obj = KnowledgeBase(
        name=str(manifest.get("name", kb_dir.name)),
        title=str(manifest.get("title", "")),
        version=str(manifest.get("version", "")),
        directory=kb_dir,
        programs=programs,
        parameters=params,
        populations=populations,
        sources=tuple(_read_program(p) for p in programs),
        vocabulary=vocab,
    )
    if overrides:
        kb_obj = kb_obj.with_parameters(overrides)
    _refuse_unsafe(kb_obj)
    _read_declarations(kb_obj)
    return kb_obj


def _read_program(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise KBError(f"{path}: cannot read the program: {getattr(e, 'strerror', None) or e}") from None


def _refuse_unsafe(kb: KnowledgeBase) -> None:
    """A knowledge base with #script, @functions or #include outside its folders is refused
    before clingo sees it (clingo would run the script)."""
    problems = refusals(kb.programs, [p.parent.resolve() for p in kb.programs])
    if problems:
        raise KBError(f"{problems[0]} (pyasp-screen check {kb.directory} lists every problem)")


# The program parts of a knowledge base: base (the criteria) and status (status/3, for people
# and the explanation engine; see kb/lib/core.lp). Screening grounds base only.
KB_PARTS = [("base", []), ("status", [])]


def _read_declarations(kb: KnowledgeBase) -> None:
    """Ground the programs without patients and read criterion/3, registry_sentence/2,
    all_of/2, any_of/2 and scheme_item/2."""
    messages: list[str] = []
    ctl = clingo.Control(kb.clingo_args() + ["--warn=none"],
                         logger=lambda code, msg: messages.append(msg))
    try:
        for path in kb.programs:
            ctl.load(str(path))
        ctl.ground(KB_PARTS)
    except RuntimeError:
        detail = " ".join(" ".join(messages[0].split()).split("\n")) if messages else "cannot ground"
        raise KBError(f"knowledge base {kb.directory}: {detail}") from None
    criteria: dict[str, dict] = {}
    sentences: dict[str, str] = {}
    parts: dict[str, list[str]] = {}
    items: dict[str, set[str]] = {}
    checks: list[tuple[str, str, str, int]] = []
    windows: dict[str, int] = {}
    diagnoses: set[str] = set()
    for atom in ctl.symbolic_atoms:
        sym = atom.symbol
        name, args = sym.name, sym.arguments
        if name == "criterion" and len(args) == 3:
            criteria[args[0].string] = {"population": str(args[1]), "kind": str(args[2])}
        elif name == "registry_sentence" and len(args) == 2:
            sentences[args[0].string] = args[1].string
        elif name in ("all_of", "any_of") and len(args) == 2:
            parts.setdefault(args[0].string, []).append(args[1].string)
        elif name == "scheme_item" and len(args) == 2:
            items.setdefault(str(args[0]), set()).add(str(args[1]))
        elif name == "check" and len(args) == 4 and args[3].type == clingo.SymbolType.Number:
            checks.append((args[0].string, str(args[1]), str(args[2]), args[3].number))
        elif name == "window" and len(args) == 2 and args[1].type == clingo.SymbolType.Number:
            windows[str(args[0])] = args[1].number
        elif name == "kb_diagnosis" and len(args) == 1:
            diagnoses.add(str(args[0]))

    def flatten(c: str) -> list[str]:
        out = []
        for s in parts.get(c, []):
            out.append(s)
            out.extend(flatten(s))
        return out

    for cid, info in criteria.items():
        if info["kind"] not in ("inclusion", "exclusion"):
            raise KBError(f"knowledge base {kb.directory}: criterion {cid}: kind {info['kind']!r} is neither "
                          "inclusion nor exclusion")
        if info["population"] != "all" and info["population"] not in kb.populations:
            raise KBError(f"knowledge base {kb.directory}: criterion {cid}: population {info['population']!r} is "
                          f"not declared in manifest.yaml (populations: {', '.join(kb.populations) or 'none'})")
    kb.criteria = [
        Criterion(cid, info["population"], info["kind"], sentences.get(cid, ""),
                  tuple(sorted(flatten(cid))))
        for cid, info in sorted(criteria.items(), key=lambda kv: _criterion_order(kv[0]))
    ]
    kb.scheme_items = {k: frozenset(v) for k, v in items.items()}
    kb.checks = sorted(checks)
    kb.windows = windows
    kb.diagnoses = frozenset(diagnoses)


def _criterion_order(cid: str) -> tuple:
    """Protocol order: population prefix as listed, inclusion before exclusion, then number."""
    pop, _, rest = cid.partition("-")
    kind, _, num = rest.partition("-")
    digits = "".join(ch for ch in num if ch.isdigit())
    return (pop, 0 if kind == "IN" else 1, int(digits or 0), num)


def parameter_uses(kb: KnowledgeBase) -> dict[str, list[str]]:
    """For each parameter, the criteria whose rules use it.

    Read from the ASP itself (clingo's parser). A parameter used in a rule is attributed to
    the criteria that rule names; a rule that names none passes it on to its head predicate,
    and from there to every rule reading that predicate (holds/2 and fails/2 excepted: they
    are the criteria's own). Parameters read only by the findings stage, or through a
    generic rule (windows), list their criteria under ``used_by`` in the manifest.
    """
    from clingo import ast

    criteria = {c.id for c in kb.criteria}
    names = set(kb.parameters)
    generic = {"holds", "fails", "status", "condition", "window"}
    statements: list[tuple[set, set, set, set]] = []  # heads, bodies, params, criteria

    def walk(node, params: set, strings: set, atoms: set) -> None:
        if isinstance(node, ast.AST):
            t = node.ast_type
            if t == ast.ASTType.SymbolicAtom and node.symbol.ast_type == ast.ASTType.Function:
                atoms.add(node.symbol.name)
            if t == ast.ASTType.Function and not node.arguments and node.name in names:
                params.add(node.name)
            elif t == ast.ASTType.SymbolicTerm:
                sym = node.symbol
                if sym.type == clingo.SymbolType.String:
                    strings.add(sym.string.split(".")[0])
                elif sym.type == clingo.SymbolType.Function and not sym.arguments and sym.name in names:
                    params.add(sym.name)
            for key in node.keys():
                walk(getattr(node, key), params, strings, atoms)
        elif not isinstance(node, (str, bytes, int)) and hasattr(node, "__iter__"):
            for item in node:
                walk(item, params, strings, atoms)

    def on_statement(stm) -> None:
        if stm.ast_type != ast.ASTType.Rule:
            return
        params, strings, heads, bodies = set(), set(), set(), set()
        walk(stm.head, params, strings, heads)
        walk(stm.body, params, strings, bodies)
        statements.append((heads, bodies - generic, params, strings & criteria))

    ast.parse_files([str(p) for p in kb.programs], on_statement)
    carried: dict[str, set[str]] = {}
    changed = True
    while changed:  # parameters reach predicates through rules that name no criterion
        changed = False
        for heads, bodies, params, crits in statements:
            if crits:
                continue
            reach = params.union(*(carried.get(b, set()) for b in bodies))
            for h in heads - generic:
                if not reach <= carried.setdefault(h, set()):
                    carried[h] |= reach
                    changed = True
    uses: dict[str, set[str]] = {n: set() for n in names}
    for heads, bodies, params, crits in statements:
        for p in params.union(*(carried.get(b, set()) for b in bodies)):
            uses[p] |= crits
    for name, crits in _declared_used_by(kb).items():
        uses.setdefault(name, set()).update(crits)
    order = {c.id: i for i, c in enumerate(kb.criteria)}
    return {n: sorted(u, key=lambda c: order.get(c, 999)) for n, u in uses.items()}


def _declared_used_by(kb: KnowledgeBase) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    directory = kb.directory
    seen = set()
    while directory is not None and directory not in seen:
        seen.add(directory)
        manifest = yaml.safe_load((directory / "manifest.yaml").read_text(encoding="utf-8"))
        for name, spec in (manifest.get("parameters") or {}).items():
            if isinstance(spec, dict) and spec.get("used_by"):
                out.setdefault(name, []).extend(str(x) for x in spec["used_by"])
        directory = directory.parent / manifest["extends"] if manifest.get("extends") else None
    return out

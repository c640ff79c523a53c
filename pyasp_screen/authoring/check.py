"""Checks a knowledge base before any patient is screened (``pyasp-screen check``).

A knowledge base is code that clingo runs, so it is read with clingo's own parser (which
executes nothing) before it is ever handed to a solver. Findings are reported as
``file:line:col: message``, each with a sentence of advice:

- ASP syntax errors and clingo's warnings (unsafe variables, undefined atoms), in clingo's words;
- predicates read in rule bodies that neither the fact vocabulary nor any rule provides;
- criteria declared without rules, rules for criteria never declared, duplicate IDs, criteria
  without their registry sentence;
- parameters used but not declared, declared but never used, thresholds in a unit other than
  the unit of the finding they are compared with;
- ``#script`` blocks, ``#include`` outside the knowledge base's folders, and ``@function``
  calls: refused (a knowledge base from another author must not run programs on your machine).
"""

from __future__ import annotations

import re
from pathlib import Path

import clingo
from clingo import ast

from pyasp_screen.findings import units
from pyasp_screen.knowledge.confine import (
    Problem,
    _includes,
    _loc,
    _scan_refused,
    _walk,
    refused_in,
)
from pyasp_screen.knowledge.vocabulary import FACT_PREDICATES as VOCABULARY
from pyasp_screen.knowledge.vocabulary import Vocabulary, VocabularyError, library, load_vocabulary

ALLOWED_FUNCTIONS: frozenset[str] = frozenset()  # no @function is on the allow-list today
# Symbols that are values, not parameters, when they appear in comparisons.
VALUES = {"true", "false", "yes", "no", "positive", "negative", "indeterminate", "met", "not_met",
          "unknown", "inclusion", "exclusion", "all", "eligible", "ineligible", "undetermined",
          "ge", "gt", "le", "lt", "male", "female"}


class _Reader:
    """Walks the statements of every program once, collecting what the checks need."""

    def __init__(self, params: set[str]):
        self.params = params
        self.problems: list[Problem] = []
        self.heads: set[str] = set()          # name/arity defined by some rule or fact
        self.head_values: set[str] = set()    # constants written as arguments in rule heads
        self.bodies: list[tuple[str, tuple]] = []  # (name/arity, location) read in bodies
        self.constants: dict[str, tuple] = {}  # identifiers used as terms -> first location
        self.compared: dict[str, tuple] = {}   # identifiers used in comparisons/arithmetic
        self.criteria: dict[str, list] = {}    # ID -> declaration locations
        self.sentences: dict[str, tuple] = {}
        self.defined: dict[str, tuple] = {}    # condition IDs with rules (holds/fails/check/...)
        self.checks: list[tuple[str, str, str, tuple]] = []  # (condition, name, threshold, loc)
        self.kinds: dict[str, tuple] = {}      # criterion -> (kind, population, location)

    def statement(self, stm) -> None:
        t = stm.ast_type
        refused = refused_in(stm)
        self.problems += refused
        if t == ast.ASTType.Script:
            return
        if t == ast.ASTType.Rule:
            self._rule(stm)
        elif t == ast.ASTType.Defined:  # #defined p/n: provided on purpose, maybe by nothing
            self.heads.add(f"{stm.name}/{stm.arity}")

    def heads_names(self) -> set[str]:
        return {sig.split("/")[0] for sig in self.heads}

    def _rule(self, stm) -> None:
        head_atoms = [a for a in _walk(stm.head) if a.ast_type == ast.ASTType.SymbolicAtom]
        for a in head_atoms:
            self.heads.update(_signatures(a.symbol))
            for node in _walk(a.symbol):
                ident = _identifier(node)
                if ident:
                    self.head_values.add(ident)
        for lit in stm.body:
            for a in _walk(lit):
                if a.ast_type == ast.ASTType.SymbolicAtom:
                    for sig in _signatures(a.symbol):
                        self.bodies.append((sig, _loc(a)))
                if a.ast_type == ast.ASTType.Comparison:
                    for term in _walk(a):
                        ident = _identifier(term)
                        if ident:
                            self.compared.setdefault(ident, _loc(term))
                if a.ast_type == ast.ASTType.BinaryOperation:
                    for term in _walk(a):
                        ident = _identifier(term)
                        if ident:
                            self.compared.setdefault(ident, _loc(term))
        for node in _walk(stm):
            ident = _identifier(node)
            if ident:
                self.constants.setdefault(ident, _loc(node))
        for a in head_atoms:
            sym = a.symbol
            if sym.ast_type != ast.ASTType.Function:
                continue
            args = [_text(x) for x in sym.arguments]
            if sym.name == "criterion" and len(args) == 3 and args[0]:
                self.criteria.setdefault(args[0], []).append(_loc(a))
                self.kinds[args[0]] = (args[2] or "?", args[1] or "?", _loc(a))
            elif sym.name == "registry_sentence" and len(args) == 2 and args[0]:
                if args[0] in self.sentences:
                    self.problems.append(Problem(*_loc(a), f"{args[0]}: a second registry sentence; "
                                                 "one criterion, one sentence"))
                self.sentences[args[0]] = _loc(a)
            elif sym.name in ("holds", "fails") and len(args) == 2 and args[1]:
                self.defined.setdefault(args[1], _loc(a))
            elif sym.name in ("all_of", "any_of") and len(args) == 2 and args[0]:
                self.defined.setdefault(args[0], _loc(a))
                for part in _pool(sym.arguments[1]):
                    self.defined.setdefault(f"part:{part}", _loc(a))
            elif sym.name == "check" and len(args) == 4 and args[0]:
                self.defined.setdefault(args[0], _loc(a))
                self.checks.append((args[0], args[1] or "", args[3] or "", _loc(a)))


def _signatures(sym) -> list[str]:
    """The predicates of an atom's symbol: one, or several for a pool p(a;b) written as p(...)."""
    if sym.ast_type == ast.ASTType.Pool:
        return [s for arg in sym.arguments for s in _signatures(arg)]
    sig = _signature(sym)
    return [sig] if sig else []


def _signature(sym) -> str | None:
    if sym.ast_type == ast.ASTType.Function and sym.name:
        return f"{sym.name}/{len(sym.arguments)}"
    if sym.ast_type == ast.ASTType.SymbolicTerm and sym.symbol.type == clingo.SymbolType.Function:
        return f"{sym.symbol.name}/{len(sym.symbol.arguments)}"
    return None


def _identifier(node) -> str | None:
    """A lower-case constant used as a term (a parameter, or a symbolic value)."""
    if node.ast_type == ast.ASTType.Function and not node.arguments and node.name and not node.external:
        return node.name
    if node.ast_type == ast.ASTType.SymbolicTerm and node.symbol.type == clingo.SymbolType.Function \
            and not node.symbol.arguments and node.symbol.name:
        return node.symbol.name
    return None


def _text(node) -> str | None:
    """A string or constant argument as text (None for variables and compound terms)."""
    if node.ast_type == ast.ASTType.SymbolicTerm:
        sym = node.symbol
        if sym.type == clingo.SymbolType.String:
            return sym.string
        if sym.type == clingo.SymbolType.Function and not sym.arguments:
            return sym.name
    if node.ast_type == ast.ASTType.Function and not node.arguments:
        return node.name
    return None


def _pool(node) -> list[str]:
    """The strings of a pooled term ("a"; "b")."""
    out = []
    for n in _walk(node):
        if n.ast_type == ast.ASTType.SymbolicTerm and n.symbol.type == clingo.SymbolType.String:
            out.append(n.symbol.string)
    return out


def check_programs(programs: list[Path], parameters: dict, manifest: Path, roots: list[Path],
                   populations: dict | None = None, vocab: Vocabulary | None = None) -> list[Problem]:
    """Every problem of a set of ASP programs with their declared parameters, reading the
    findings of ``vocab`` (default: the shared library's)."""
    vocab = vocab or library()
    problems: list[Problem] = []
    for p in programs:
        problems += _includes(p, roots)
    if problems:  # clingo's parser would open the included file: scan the text instead
        return problems + _scan_refused(programs)
    reader = _Reader(set(parameters))
    messages: list[str] = []
    try:
        ast.parse_files([str(p) for p in programs], reader.statement,
                        logger=lambda code, msg: messages.append(msg))
    except RuntimeError:
        for msg in messages:
            problems.append(_from_clingo(msg, "fix the syntax: a statement ends with a period, "
                                              "strings use double quotes, variables start upper-case"))
        return problems
    problems += reader.problems
    if not any(" is refused" in p.message for p in problems):  # refused: never handed to a solver
        problems += _clingo_messages(programs, parameters)
    # predicates read that nothing provides
    provided = reader.heads | VOCABULARY
    seen = set()
    for sig, loc in reader.bodies:
        if sig == "status/3" and sig not in seen:
            seen.add(sig)
            problems.append(Problem(*loc, "status/3 is read here, but it is for people and the explanation "
                                    "engine (kb/lib/core.lp) and screening does not derive it: "
                                    "read holds/2 and fails/2 instead"))
            continue
        if sig not in provided and sig not in seen:
            seen.add(sig)
            problems.append(Problem(*loc, f"{sig} is read here but neither the fact vocabulary "
                                    "(docs/vocabulary.md) nor any rule provides it: a misspelt predicate?"))
    # criteria
    ids = set(reader.criteria)
    for cid, (kind, pop, loc) in reader.kinds.items():
        if kind not in ("inclusion", "exclusion"):
            problems.append(Problem(*loc, f"{cid}: kind {kind} is neither inclusion nor exclusion"))
        if populations is not None and pop not in populations and pop != "all":
            problems.append(Problem(*loc, f"{cid}: population {pop} is not declared in {manifest.name} "
                                    f"(populations: {', '.join(populations) or 'none'})"))
    for cid, locs in reader.criteria.items():
        if len(locs) > 1:
            problems.append(Problem(*locs[1], f"{cid} is declared {len(locs)} times: criterion IDs must be unique"))
        if cid not in reader.defined:
            problems.append(Problem(*locs[0], f"{cid} is declared but no rule decides it (holds/2, fails/2, "
                                    "check/4, all_of/2 or any_of/2)"))
        if cid not in reader.sentences:
            problems.append(Problem(*locs[0], f"{cid} has no registry_sentence/2: cite the sentence it encodes"))
    for cond, loc in reader.defined.items():
        if cond.startswith("part:"):
            continue
        if cond.split(".")[0] not in ids:
            problems.append(Problem(*loc, f"rules for {cond}, but no criterion {cond.split('.')[0]} is declared"))
    for cid, loc in reader.sentences.items():
        if cid not in ids:
            problems.append(Problem(*loc, f"registry sentence for {cid}, which is not declared"))
    # parameters
    used = {name for name in reader.constants if name in parameters}
    choices = {c for p in parameters.values() for c in p.choices}
    for name, loc in reader.compared.items():
        if name not in parameters and name not in VALUES | choices | reader.head_values \
                and name not in reader.heads_names():
            problems.append(Problem(*loc, f"{name} is compared here but is not a declared parameter: "
                                    f"declare it in {manifest.name} (or quote it if it is a value)"))
    for name, p in parameters.items():
        if p.stage == "asp" and name not in used:
            problems.append(Problem(str(manifest), 1, 1, f"parameter {name} is declared but no rule uses it"))
    for cond, name, threshold, loc in reader.checks:
        if threshold and not threshold.lstrip("-").isdigit() and threshold not in parameters:
            problems.append(Problem(*loc, f"{threshold} in check/4 is not a declared parameter: declare it in "
                                    f"{manifest.name} (thresholds are parameters, never bare numbers)"))
        p = parameters.get(threshold)
        kind = vocab.observations.get(name)
        if p is None or kind is None or kind.qualitative:
            continue
        try:
            same = units.ucum_factor(p.unit, kind.unit) == 1
        except units.UnitError:
            same = False
        if not same:
            problems.append(Problem(*loc, f"{threshold} is in {p.unit or 'no unit'} but {name} is compared in "
                                    f"{kind.unit}: give the threshold in {kind.unit}"))
    return problems


GROUND_SECONDS = 20
GROUND_MEMORY = 1024**3

_GROUNDER = """
import json, resource, sys
import clingo
resource.setrlimit(resource.RLIMIT_AS, ({mem}, {mem}))
args, files = json.loads(sys.argv[1]), json.loads(sys.argv[2])
messages, failure = [], None
try:
    ctl = clingo.Control(args + ["--warn=all"], logger=lambda code, msg: messages.append(msg))
    for f in files:
        ctl.load(f)
    ctl.ground([("base", []), ("status", [])])
except MemoryError:
    failure = "memory"
except RuntimeError as e:
    failure = "memory" if "alloc" in str(e) else None
print(json.dumps({{"messages": messages, "failure": failure}}))
"""


def _ground_messages(programs: list[Path], parameters: dict) -> list[str] | str:
    """clingo's messages from grounding without patients, in a child process with a time
    and memory limit (a rule like p(X+1) :- p(X) never finishes grounding); a string
    says why there are none."""
    import json
    import subprocess
    import sys

    args = [f"-c{p.name}={p.asp_constant()}" for p in parameters.values() if p.stage == "asp"]
    try:
        done = subprocess.run([sys.executable, "-c", _GROUNDER.format(mem=GROUND_MEMORY), json.dumps(args),
                               json.dumps([str(p) for p in programs])],
                              capture_output=True, text=True, timeout=GROUND_SECONDS)
    except subprocess.TimeoutExpired:
        return f"grounding did not finish in {GROUND_SECONDS} s"
    if done.returncode != 0 or not done.stdout.strip():
        return f"grounding ran out of memory ({GROUND_MEMORY // 1024**2} MiB)"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["failure"] == "memory":
        return f"grounding ran out of memory ({GROUND_MEMORY // 1024**2} MiB)"
    return result["messages"]


def _clingo_messages(programs: list[Path], parameters: dict) -> list[Problem]:
    """clingo's own errors and warnings, grounding without patients. Undefined atoms are
    left out (vocabulary predicates are undefined there by design; the AST check reports
    the others)."""
    messages = _ground_messages(programs, parameters)
    if isinstance(messages, str):
        return [Problem(str(programs[-1]), 1, 1, f"{messages}: a rule generates atoms without bound "
                        "(like p(X+1) :- p(X)); bound it with a domain predicate")]
    out = []
    for msg in messages:
        if "atom does not occur in any rule head" in msg:
            continue
        if "unsafe variables in" in msg:
            for m in UNSAFE.finditer(msg):
                out.append(Problem(m.group("file"), int(m.group("line")), int(m.group("col")),
                                   f"unsafe variable {m.group('var')}: a rule must bind every variable "
                                   "in a positive body literal (safety)"))
            continue
        out.append(_from_clingo(msg, "see clingo's message" if "error" not in msg else
                                "fix the rule: clingo cannot ground it"))
    return out


UNSAFE = re.compile(r"(?P<file>[^\s:]+):(?P<line>\d+):(?P<col>\d+)(?:-\d+)?: note: '(?P<var>\w+)' is unsafe")
LOCATION = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+)(?:-\d+(?::\d+)?)?:\s*(?P<rest>.*)$", re.S)


def _from_clingo(msg: str, advice: str) -> Problem:
    text = " ".join(msg.split())
    m = LOCATION.match(text)
    if m:
        return Problem(m.group("file"), int(m.group("line")), int(m.group("col")), f"{m.group('rest')} ({advice})")
    return Problem("<clingo>", 0, 0, f"{text} ({advice})")


def check_kb_dir(kb_dir: Path) -> list[Problem]:
    """Every problem of a knowledge base folder, its manifest included."""
    import yaml

    from pyasp_screen.knowledge.kb import KBError, _read_manifest

    manifest = kb_dir / "manifest.yaml"
    try:
        raw, params, programs, populations = _read_manifest(kb_dir)
    except KBError as e:
        return [Problem(str(manifest), 1, 1, str(e).split(": ", 1)[-1])]
    problems = []
    known_keys = {"name", "title", "version", "protocol", "programs", "populations", "parameters", "extends"}
    for key in raw:
        if key not in known_keys:
            problems.append(Problem(str(manifest), _line_of(manifest, f"{key}:"), 1,
                                    f"unknown key {key}: (one of {', '.join(sorted(known_keys))})"))
    if not programs or programs[0].name != "core.lp":
        problems.append(Problem(str(manifest), _line_of(manifest, "programs:"), 1,
                                "programs: must start with lib/core.lp (statuses and verdicts)"))
    if not populations:
        problems.append(Problem(str(manifest), 1, 1, "populations: declares no population"))
    from pyasp_screen.knowledge.kb import vocabulary_files

    try:
        vocab = load_vocabulary(vocabulary_files(kb_dir))
    except VocabularyError as e:
        problems.append(_from_message(str(e)))
        vocab = library()
    problems += _vocabulary_units(vocab)
    roots = sorted({p.parent.resolve() for p in programs} | {kb_dir.resolve(), kb_dir.parent.resolve() / "lib"})
    problems += check_programs(programs, params, manifest, roots, populations, vocab)
    if any(" is refused" in p.message for p in problems):
        return problems
    # example patients must name criteria and populations that exist
    criteria = _criterion_ids(programs)
    for exp in sorted((kb_dir / "cases").glob("*.expected.yaml")):
        try:
            data = yaml.safe_load(exp.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            problems.append(Problem(str(exp), 1, 1, f"malformed YAML: {' '.join(str(e).split())}"))
            continue
        for cid in list((data.get("statuses") or {})) + list((data.get("components") or {})):
            if cid.split(".")[0] not in criteria:
                problems.append(Problem(str(exp), _line_of(exp, cid), 1, f"{cid}: no such criterion"))
        for pop in (data.get("verdicts") or {}):
            if pop not in populations:
                problems.append(Problem(str(exp), _line_of(exp, pop), 1, f"{pop}: no such population"))
        words = {"met", "not_met", "unknown", "eligible", "ineligible", "undetermined"}
        values = [data.get("overall")] + list((data.get("verdicts") or {}).values()) + \
            list((data.get("statuses") or {}).values()) + list((data.get("components") or {}).values())
        for v in values:
            if v is not None and v not in words:
                problems.append(Problem(str(exp), _line_of(exp, str(v)), 1, f"{v}: not a status or verdict "
                                        f"({', '.join(sorted(words))})"))
    from pyasp_screen.knowledge.kb import FINDINGS_PARAMETERS

    for name in FINDINGS_PARAMETERS:
        if name not in params:
            problems.append(Problem(str(manifest), 1, 1, f"parameter {name} (stage: findings) is not declared: "
                                    "the findings stage needs it (copy it from kb/ct1190b/manifest.yaml)"))
    problems += _sentences_in_protocol(kb_dir, programs)
    return problems


def _from_message(text: str) -> Problem:
    """A Problem from a "file:line: message" line."""
    m = re.match(r"^(?P<file>.+?):(?P<line>\d+): (?P<rest>.*)$", text)
    if m:
        return Problem(m.group("file"), int(m.group("line")), 1, m.group("rest"))
    file, _, rest = text.partition(": ")
    return Problem(file, 1, 1, rest or text)


def _vocabulary_units(vocab: Vocabulary) -> list[Problem]:
    """The canonical unit of every finding a knowledge base declares must be UCUM (records'
    values are converted to it)."""
    out = []
    lib = library()
    for o in vocab.observations.values():
        if o.qualitative or o.name in lib.observations:
            continue
        try:
            units.check_ucum(o.unit)
        except units.UnitError as e:
            file = next((f for f in vocab.files[1:] if f"{o.name}:" in Path(f).read_text(encoding="utf-8")),
                        vocab.files[-1])
            out.append(Problem(file, _line_of(Path(file), f"{o.name}:"), 1,
                               f"observations.{o.name}: {e} (the canonical unit is a UCUM code: g/L, 10*9/L, %, mL/min)"))
    return out


def _line_of(path: Path, needle: str) -> int:
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return n
    return 1


def _criterion_ids(programs: list[Path]) -> set[str]:
    ids = set()
    for p in programs:
        ids |= set(re.findall(r'criterion\("([^"]+)"', p.read_text(encoding="utf-8")))
    return ids


def _normalise(text: str) -> str:
    return " ".join(text.replace("\u00a0", " ").split())


def _sentences_in_protocol(kb_dir: Path, programs: list[Path]) -> list[Problem]:
    """Every registry_sentence/2 must be found, word for word (spacing aside), in the
    protocol text the manifest names (``protocol:``, relative to the knowledge base or the
    repository it sits in)."""
    import yaml

    manifest_path = kb_dir / "manifest.yaml"
    manifest = yaml.safe_load(manifest_path.read_text(encoding="utf-8")) or {}
    name = manifest.get("protocol")
    if not name:
        return [Problem(str(manifest_path), 1, 1, "no protocol: the text the criteria cite must be named")]
    from pyasp_screen.knowledge.kb import builtin_kb_root

    candidates = [kb_dir / name, kb_dir.parent / name, kb_dir.parent.parent / name,
                  builtin_kb_root().parent / "protocol" / Path(name).name]  # installed package
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        return [Problem(str(manifest_path), 1, 1, f"protocol: {name}: no such file (looked beside the "
                        "knowledge base and in the repository)")]
    text = _normalise(found.read_text(encoding="utf-8"))
    out = []
    for p in programs:
        if kb_dir.resolve() not in p.resolve().parents:
            continue
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            m = re.match(r'\s*registry_sentence\("([^"]+)",\s*"((?:[^"\\]|\\.)*)"\)', line)
            if m and _normalise(m.group(2).replace('\\"', '"')) not in text:
                out.append(Problem(str(p), n, 1, f"{m.group(1)}: the registry sentence is not in {found.name} "
                                   "word for word: quote the protocol, do not paraphrase"))
    return out

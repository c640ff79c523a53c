"""Checks a knowledge base before any patient is screened (``pyasp-screen check``).

A knowledge base is code that clingo runs, so it is resolved and confined by real path
(:mod:`pyasp_screen.knowledge.resolve`, the resolver loading uses) and read with clingo's own
parser (which executes nothing) before it is ever handed to a solver. Findings are reported as
``file:line:col: message``, each with a sentence of advice:

- files outside the knowledge base's folders and the shared library (``#include``, nested or
  not, manifest ``programs:``, ``extends:``, ``protocol:``), refused like ``#script`` blocks and
  ``@function`` calls (a knowledge base from another author must not run programs or read files
  on your machine);
- ASP syntax errors and clingo's warnings (unsafe variables), in clingo's words;
- predicates read in rule bodies that neither the fact vocabulary nor any rule provides;
- criteria declared without rules, rules for criteria never declared, duplicate IDs, criteria
  without their registry sentence, registry sentences not found word for word in the protocol;
- parameters used but not declared, declared but never used, thresholds in a unit other than
  the unit of the finding they are compared with;
- the knowledge base's own vocabulary (vocabulary.yaml), its manifest and its example cases;
- exactness: every criterion's met / not_met against the completion semantics, by brute force
  on generated records (:mod:`pyasp_screen.authoring.exactness`).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from pyasp_screen.findings import units
from pyasp_screen.knowledge import analysis
from pyasp_screen.knowledge.confine import Problem
from pyasp_screen.knowledge.kb import FINDINGS_PARAMETERS, KBError, _vocabulary_windows, manifest_parameters
from pyasp_screen.knowledge.resolve import Resolved, resolve
from pyasp_screen.knowledge.vocabulary import FACT_PREDICATES as VOCABULARY
from pyasp_screen.knowledge.vocabulary import Vocabulary, VocabularyError, library, load_vocabulary

ALLOWED_FUNCTIONS: frozenset[str] = frozenset()  # no @function is on the allow-list today
# Symbols that are values, not parameters, when they appear in comparisons.
VALUES = {"true", "false", "yes", "no", "positive", "negative", "indeterminate", "met", "not_met",
          "unknown", "inclusion", "exclusion", "all", "eligible", "ineligible", "undetermined",
          "ge", "gt", "le", "lt", "male", "female"}
MANIFEST_KEYS = {"name", "title", "version", "protocol", "programs", "populations", "parameters", "extends"}


def check_kb_dir(kb_dir: Path, exactness: bool = True, params: dict[str, str] | None = None,
                 every_reading: bool = False) -> list[Problem]:
    """Every problem of a knowledge base folder, its manifest, vocabulary and cases included.

    ``exactness``: also run the exactness check (a few seconds; only when nothing else is
    wrong), under the parameters ``params`` (NAME -> text, as --param gives them; default: the
    manifest's) and, with ``every_reading``, under every other value of each choice and
    boolean parameter of the rules, one at a time (:func:`readings`). A problem found under
    other values than the manifest's says which ("with sledai_exclude_cns=false: ...")."""
    overrides = dict(params or {})
    resolved = resolve(kb_dir)
    problems = list(resolved.problems)
    m = resolved.manifest
    if m is None:
        return problems
    for key in m.data:
        if key not in MANIFEST_KEYS:
            problems.append(Problem(str(m.path), m.line(key), 1,
                                    f"unknown key {key}: (one of {', '.join(sorted(MANIFEST_KEYS))})"))
    if resolved.programs and resolved.library and \
            resolved.programs[0].path != str(resolved.library / "core.lp"):
        where = next(c for c in resolved.chain if c.data.get("programs"))
        problems.append(Problem(str(where.path), where.line("programs"), 1,
                                "programs: must start with lib/core.lp (statuses and verdicts)"))
    try:
        params, populations, _ = manifest_parameters(resolved)
    except KBError as e:
        problems.append(_from_message(str(e)))
        return problems
    if not populations:
        problems.append(Problem(str(m.path), m.line("populations"), 1, "populations: declares no population"))
    try:
        vocab = load_vocabulary([p for p, _ in resolved.vocabulary], dict(resolved.vocabulary)) \
            if resolved.vocabulary else library()
    except VocabularyError as e:
        problems.append(_from_message(str(e)))
        vocab = library()
    problems += _vocabulary_units(vocab)
    sources = tuple(resolved.programs) + _vocabulary_windows(vocab, resolved)
    parsed = analysis.parse(sources)
    problems += parsed.problems
    if any(" is refused" in p.message for p in problems):
        return problems  # refused: never handed to a solver
    if any("syntax" in p.message or "lexer" in p.message for p in parsed.problems):
        return problems
    problems += _rules(parsed, params, m.path, populations, vocab)
    problems += _clingo_messages(sources, params)
    criteria = {a.text(0) for r in parsed.rules for a in r.heads if a.name == "criterion" and a.text(0)}
    parts = {a.text(1) for r in parsed.rules for a in r.heads if a.name in ("all_of", "any_of") and a.text(1)}
    problems += _cases(kb_dir, criteria, populations, parts, params)
    for name in FINDINGS_PARAMETERS:
        if name not in params:
            problems.append(Problem(str(m.path), 1, 1, f"parameter {name} (stage: findings) is not declared: "
                                    "the findings stage needs it (copy it from kb/ct1190b/manifest.yaml)"))
    problems += _sentences_in_protocol(resolved, parsed)
    try:
        from pyasp_screen.knowledge.kb import load_kb

        compiled = load_kb(kb_dir)
    except KBError:
        compiled = None  # what stops it is reported above
    if compiled is not None:
        problems += _never_known(compiled, parsed)
        problems += _parameters_linked(compiled, parsed)
    if exactness and not problems:
        problems += exactness_under_readings(kb_dir, overrides, every_reading)
    return problems


def readings(kb) -> list[dict[str, str]]:
    """The other readings of a compiled knowledge base: for each choice or boolean parameter
    the rules read (stage asp), each value it does not have, one parameter at a time."""
    out = []
    for p in kb.parameters.values():
        if p.stage != "asp" or p.kind not in ("choice", "boolean"):
            continue
        values = p.choices if p.kind == "choice" else ("true", "false")
        out += [{p.name: v} for v in values if v != p.asp_constant()]
    return out


def exactness_under_readings(kb_dir: Path, params: dict[str, str], every_reading: bool) -> list[Problem]:
    """The exactness check under ``params``, and with ``every_reading`` under each of
    :func:`readings` too; a problem already found under an earlier reading is not repeated."""
    from pyasp_screen.authoring.exactness import check_exactness
    from pyasp_screen.knowledge.kb import load_kb

    try:
        kb = load_kb(kb_dir, params)
    except KBError as e:
        return [Problem(str(kb_dir / "manifest.yaml"), 1, 1, f"cannot be loaded for the exactness check: {e}")]
    out, seen = [], set()
    scenarios = [dict(params)] + ([{**params, **r} for r in readings(kb)] if every_reading else [])
    for scenario in scenarios:
        try:
            this = kb if scenario == params else kb.with_parameters(scenario)
        except KBError as e:
            out.append(Problem(str(kb_dir / "manifest.yaml"), 1, 1, f"{_reading(scenario)}cannot be loaded: {e}"))
            continue
        for p in check_exactness(this):
            key = (p.file, p.line, p.message.split(" for a record")[0])  # the same fault
            if key in seen:
                continue
            seen.add(key)
            out.append(Problem(p.file, p.line, p.column, _reading(scenario) + p.message))
    return out


def _reading(scenario: dict[str, str]) -> str:
    return f"with {', '.join(f'{k}={v}' for k, v in scenario.items())}: " if scenario else ""


def _from_message(text: str) -> Problem:
    """A Problem from a "file:line: message" (or "file: message") line."""
    m = re.match(r"^(?P<file>.+?):(?P<line>\d+)(?::(?P<col>\d+))?: (?P<rest>.*)$", text)
    if m:
        return Problem(m.group("file"), int(m.group("line")), int(m.group("col") or 1), m.group("rest"))
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


def _rules(parsed: analysis.Parsed, parameters: dict, manifest: Path, populations: dict,
           vocab: Vocabulary) -> list[Problem]:
    """What the parsed rules declare and read, checked against each other and the manifest."""
    problems: list[Problem] = []
    heads = {a.signature for r in parsed.rules for a in r.heads} | {sig for sig, _ in parsed.defined}
    head_values = {n for r in parsed.rules for a in r.heads for arg in a.args for n, _ in analysis._symbols(arg)}
    head_names = {s.split("/")[0] for s in heads}
    provided = heads | VOCABULARY
    seen = set()
    for r in parsed.rules:
        for a in r.body:
            sig = a.signature
            if sig in seen:
                continue
            if sig == "status/3":
                seen.add(sig)
                problems.append(Problem(*a.location, "status/3 is read here, but it is for people and the "
                                        "explanation engine (kb/lib/core.lp) and screening does not derive it: "
                                        "read holds/2 and fails/2 instead"))
            elif sig not in provided:
                seen.add(sig)
                problems.append(Problem(*a.location, f"{sig} is read here but neither the fact vocabulary "
                                        "(docs/vocabulary.md) nor any rule provides it: a misspelt predicate?"))
    criteria: dict[str, list] = {}
    kinds: dict[str, tuple] = {}
    sentences: dict[str, tuple] = {}
    defined: dict[str, tuple] = {}
    checks: list[tuple] = []
    for r in parsed.rules:
        for a in r.heads:
            if a.name == "criterion" and len(a.args) == 3 and a.text(0):
                criteria.setdefault(a.text(0), []).append(a.location)
                kinds[a.text(0)] = (a.text(2) or "?", a.text(1) or "?", a.location)
            elif a.name == "registry_sentence" and len(a.args) == 2 and a.text(0):
                if a.text(0) in sentences:
                    problems.append(Problem(*a.location, f"{a.text(0)}: a second registry sentence; "
                                            "one criterion, one sentence"))
                sentences[a.text(0)] = a.location
            elif a.name in ("holds", "fails") and len(a.args) == 2 and a.text(0) is not None:
                # holds(P, Condition): a constant first is the arguments swapped (or no patient)
                problems.append(Problem(*a.location, f"{a.name}/2 takes the patient first, then the condition: "
                                        f"its first argument here is the constant {a.text(0)} (arguments "
                                        f"swapped? write {a.name}(P,\"{a.text(0)}\"))"))
            elif a.name in ("holds", "fails") and len(a.args) == 2 and a.text(1):
                defined.setdefault(a.text(1), a.location)
            elif a.name in ("all_of", "any_of") and len(a.args) == 2 and a.text(0):
                defined.setdefault(a.text(0), a.location)
                if a.text(1):
                    defined.setdefault(f"part:{a.text(1)}", a.location)
            elif a.name in ("check", "check_ever") and len(a.args) == 4 and a.text(0):
                defined.setdefault(a.text(0), a.location)
                checks.append((a.text(0), a.text(1) or "", a.text(3) or "", a.location))
    for cid, (kind, pop, loc) in kinds.items():
        if kind not in ("inclusion", "exclusion"):
            problems.append(Problem(*loc, f"{cid}: kind {kind} is neither inclusion nor exclusion"))
        if pop not in populations and pop != "all":
            problems.append(Problem(*loc, f"{cid}: population {pop} is not declared in {manifest.name} "
                                    f"(populations: {', '.join(populations) or 'none'})"))
    for cid, locs in criteria.items():
        if len(locs) > 1:
            problems.append(Problem(*locs[1], f"{cid} is declared {len(locs)} times: criterion IDs must be unique"))
        if cid not in defined:
            problems.append(Problem(*locs[0], f"{cid} is declared but no rule decides it (holds/2, fails/2, "
                                    "check/4, all_of/2 or any_of/2)"))
        if cid not in sentences:
            problems.append(Problem(*locs[0], f"{cid} has no registry_sentence/2: cite the sentence it encodes"))
    parts = {cond[5:] for cond in defined if cond.startswith("part:")}
    read_conditions = {a.text(1) for r in parsed.rules for a in r.body if a.name in ("holds", "fails") and a.text(1)}
    for cond, loc in defined.items():
        if cond.startswith("part:"):
            continue
        if cond.split(".")[0] not in criteria:
            problems.append(Problem(*loc, f"rules for {cond}, but no criterion {cond.split('.')[0]} is declared"))
        elif cond not in criteria and cond not in parts and cond not in read_conditions:
            parent = cond.rsplit(".", 1)[0]
            problems.append(Problem(*loc, f"rules for {cond}, but no all_of/any_of lists it as a part (of "
                                    f"{parent}?): it decides nothing and is never shown "
                                    f"(all_of(\"{parent}\", (..., \"{cond}\")) or a misspelt ID?)"))
    for r in parsed.rules:
        for a in r.heads:
            if a.name in ("all_of", "any_of") and len(a.args) == 2 and a.text(0) and a.text(1) \
                    and a.text(1) not in defined:
                never = "never be met" if a.name == "all_of" else "never be ruled out"
                problems.append(Problem(*a.location, f"{a.text(1)} is a part of {a.text(0)} but no rule decides "
                                        f"it (holds/2, fails/2, check/4, all_of/2 or any_of/2): it stays unknown "
                                        f"for every patient, so {a.text(0)} can {never}"))
    for cid, loc in sentences.items():
        if cid not in criteria:
            problems.append(Problem(*loc, f"registry sentence for {cid}, which is not declared"))
    # parameters
    used = {name for r in parsed.rules for name, _ in r.identifiers if name in parameters}
    choices = {c for p in parameters.values() for c in p.choices}
    reported = set()
    for r in parsed.rules:
        for name, loc in r.compared:
            if name in reported or name in parameters or name in VALUES | choices | head_values | head_names:
                continue
            reported.add(name)
            problems.append(Problem(*loc, f"{name} is compared here but is not a declared parameter: "
                                    f"declare it in {manifest.name} (or quote it if it is a value)"))
    for name, p in parameters.items():
        if p.stage == "asp" and name not in used:
            problems.append(Problem(str(manifest), 1, 1, f"parameter {name} is declared but no rule uses it"))
    # the quantities a check/4 may compare: the vocabulary's, their multiples of the ULN, the
    # derived values, and names the rules themselves declare (change/5, daily_dose/3, helpers)
    declared = {n for r in parsed.rules for a in r.heads if a.name not in ("check", "check_ever", "window")
                for arg in a.args for n, _ in analysis._symbols(arg)}
    quantities = (set(vocab.observations) | {f"{n}_x_uln" for n, o in vocab.observations.items() if o.uln}
                  | set(vocab.derived) | declared)
    for cond, name, threshold, loc in checks:
        if name and name not in quantities:
            near = difflib.get_close_matches(name, sorted(quantities), n=1, cutoff=0.5)
            problems.append(Problem(*loc, f"{name} in check/4 is not a finding of the vocabulary "
                                    f"(docs/vocabulary.md), so {cond} stays unknown for every patient"
                                    + (f": did you mean {near[0]}?" if near else "")))
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


# Shared predicates that read a finding's most recent result within its look-back window
# (kb/lib/core.lp): the argument naming the finding.
WINDOWED = {"current/4": 1, "current_result/3": 1, "in_window/3": 1, "newer_in_window/3": 1,
            "result_in_window/3": 1, "newer_result/3": 1}
# ... and every result within its history window (history_window/2)
HISTORY = {"result_ever/3": 1, "result_never/3": 1, "ever_in_window/4": 1}
# Shared predicates whose "no" needs the scheme's items declared (scheme_item/2): a complete
# scheme closes only the items it knows.
CLOSED_BY_ITEMS = {"item_no/3", "item_maybe/3", "scheme_recorded/2"}


def _never_known(kb, parsed: analysis.Parsed) -> list[Problem]:
    """Mistakes that leave a criterion unknown for every patient whatever the record says:
    a result read without a look-back window (no result is ever current), an item a scheme
    does not declare (a complete scheme never closes it), a scheme with no items at all."""
    out, said = [], set()
    windows = set(kb.windows)
    for r in parsed.rules:
        for a in r.heads:
            if a.name == "check_ever" and len(a.args) == 4 and a.text(1) and a.text(1) not in kb.history_windows \
                    and (a.text(1), "history") not in said:
                said.add((a.text(1), "history"))
                out.append(Problem(*a.location, _no_window(a.text(1), a.text(0) or "it", "history_window")))
            if a.name == "check" and len(a.args) == 4 and a.text(1) and a.text(1) not in windows \
                    and (a.text(1), "check") not in said and any(c[1] == a.text(1) for c in kb.checks):
                said.add((a.text(1), "check"))
                out.append(Problem(*a.location, _no_window(a.text(1), a.text(0) or "it")))
        for a in r.body:
            pos = WINDOWED.get(a.signature)
            name = a.text(pos) if pos is not None else None
            if name and name not in windows and (name, "read") not in said and name not in kb.parameters:
                said.add((name, "read"))
                out.append(Problem(*a.location, _no_window(name, "the rule")))
            pos = HISTORY.get(a.signature)
            name = a.text(pos) if pos is not None else None
            if name and name not in kb.history_windows and (name, "history") not in said \
                    and name not in kb.parameters:
                said.add((name, "history"))
                out.append(Problem(*a.location, _no_window(name, "the rule", "history_window")))
            if a.signature in CLOSED_BY_ITEMS or a.signature == "item_yes/3":
                scheme = a.text(1)
                items = kb.scheme_items.get(scheme or "", frozenset())
                if not scheme or scheme in kb.parameters or (scheme, "items") in said:
                    continue
                if not items and a.signature in CLOSED_BY_ITEMS:
                    said.add((scheme, "items"))
                    out.append(Problem(*a.location, f"{scheme} has no items declared (scheme_item({scheme}, Item); "
                                       "the score schemes' are in lib/scores.lp): a record's complete: "
                                       f"[{scheme}] closes nothing, so {a.name} never holds"))
                item = a.text(2) if len(a.args) == 3 else None
                if items and item and item not in items and item not in kb.parameters \
                        and (scheme, item) not in said:
                    said.add((scheme, item))
                    hint = difflib.get_close_matches(item, items, n=2)
                    out.append(Problem(*a.location, f"{item} is not an item of {scheme}"
                                       + (f" (did you mean {', '.join(hint)}?)" if hint else "")
                                       + f": no record can state it and a complete {scheme} never closes it "
                                       + (f"(the organ systems are those of kb/lib/vocabulary.yaml's organs: "
                                          f"{', '.join(sorted(items))})" if scheme == "organ_involvement" else
                                          f"(declare scheme_item({scheme}, {item}) if it is one)")))
    return out


def _no_window(name: str, who: str, declaration: str = "window") -> str:
    if declaration == "history_window":
        return (f"{name} is read as every result within its history window, but no history_window({name}, "
                f"Days) is declared: no result of it is ever read and {who} stays unknown for every patient "
                f"(declare history_window({name}, some_history_days))")
    return (f"{name} is read as the most recent result within its look-back window, but no window({name}, "
            f"Days) is declared: no result of it is ever read and {who} stays unknown for every patient "
            f"(declare window({name}, some_window_days) in the rules, or window: in vocabulary.yaml)")


def _parameters_linked(kb, parsed: analysis.Parsed) -> list[Problem]:
    """A parameter the rules use must lead to the criteria it changes (params shows them as
    "used by"); one used only where the compiled knowledge base cannot follow it to a
    criterion is reported, with the fix (used_by: in the manifest)."""
    out = []
    where: dict[str, tuple] = {}
    for r in parsed.rules:
        for name, loc in r.identifiers:
            if name in kb.parameters:
                where.setdefault(name, loc)
    for name, loc in where.items():
        p = kb.parameters[name]
        if p.stage == "asp" and not kb.parameter_uses.get(name):
            out.append(Problem(*loc, f"parameter {name} is used here but no criterion's rules lead to this rule: "
                               f"params cannot say which criteria it changes (add used_by: [criterion IDs] to "
                               f"its declaration in manifest.yaml)"))
    return out


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


def _ground_messages(sources, parameters: dict) -> list[str] | str:
    """clingo's messages from grounding without patients, in a child process with a time
    and memory limit (a rule like p(X+1) :- p(X) never finishes grounding); a string
    says why there are none. The child reads copies of the resolved programs (their
    #include directives blanked), so it opens nothing the resolver did not confine; messages
    name the real files."""
    args = [f"-c{p.name}={p.asp_constant()}" for p in parameters.values() if p.stage == "asp"]
    with tempfile.TemporaryDirectory(prefix="pyasp-check-") as tmp:
        copies = {}
        for i, program in enumerate(sources):
            copy = Path(tmp) / f"{i}.lp"
            copy.write_text(program.text, encoding="utf-8")
            copies[str(copy)] = program.path
        try:
            done = subprocess.run([sys.executable, "-c", _GROUNDER.format(mem=GROUND_MEMORY), json.dumps(args),
                                   json.dumps(list(copies))],
                                  capture_output=True, text=True, timeout=GROUND_SECONDS)
        except subprocess.TimeoutExpired:
            return f"grounding did not finish in {GROUND_SECONDS} s"
    if done.returncode != 0 or not done.stdout.strip():
        return f"grounding ran out of memory ({GROUND_MEMORY // 1024**2} MiB)"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["failure"] == "memory":
        return f"grounding ran out of memory ({GROUND_MEMORY // 1024**2} MiB)"
    out = []
    for msg in result["messages"]:
        for copy, real in copies.items():
            msg = msg.replace(copy, real)
        out.append(msg)
    return out


def _clingo_messages(sources, parameters: dict) -> list[Problem]:
    """clingo's own errors and warnings, grounding without patients. Undefined atoms are
    left out (vocabulary predicates are undefined there by design; the AST check reports
    the others)."""
    messages = _ground_messages(sources, parameters)
    if isinstance(messages, str):
        return [Problem(sources[-1].path, 1, 1, f"{messages}: a rule generates atoms without bound "
                        "(like p(X+1) :- p(X)); bound it with a domain predicate")]
    out = []
    for msg in messages:
        if "atom does not occur in any rule head" in msg:
            continue
        out += analysis.grounding_problems(msg)
    return out


def _cases(kb_dir: Path, criteria: set[str], populations: dict, parts: set[str] = frozenset(),
           parameters: dict | None = None) -> list[Problem]:
    """Example patients' expectations must name criteria, components, populations and
    parameters that exist, and parameter values the manifest accepts."""
    from pyasp_screen.knowledge.kb import _parse_value

    parameters = parameters or {}
    problems = []
    words = {"met", "not_met", "unknown", "eligible", "ineligible", "undetermined"}
    real = Path(os.path.realpath(kb_dir))
    for exp in sorted((kb_dir / "cases").glob("*.expected.yaml")):
        if not Path(os.path.realpath(exp)).is_relative_to(real):
            problems.append(Problem(str(exp), 1, 1, "a link to a file outside the knowledge base's folder"))
            continue
        try:
            data = yaml.safe_load(exp.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError, OSError) as e:
            problems.append(Problem(str(exp), 1, 1, f"cannot be read: {' '.join(str(e).split())}"))
            continue
        if not isinstance(data, dict):
            problems.append(Problem(str(exp), 1, 1, "expected a mapping (overall:, verdicts:, statuses:)"))
            continue
        for cid in list((data.get("statuses") or {})) + list((data.get("components") or {})):
            cid = str(cid)
            if cid.split(".")[0] not in criteria:
                problems.append(Problem(str(exp), _line_of(exp, cid), 1, f"{cid}: no such criterion"))
            elif cid not in criteria and cid not in parts:
                siblings = sorted(p for p in parts if p.startswith(cid.split(".")[0] + "."))
                hint = difflib.get_close_matches(cid, siblings, n=2)
                problems.append(Problem(str(exp), _line_of(exp, cid), 1, f"{cid}: no such component" + (
                    f" (did you mean {', '.join(hint)}?)" if hint else
                    f" ({cid.split('.')[0]} has {', '.join(siblings) if siblings else 'none'})")))
        for name, value in (data.get("params") or {}).items() if isinstance(data.get("params"), dict) else ():
            name = str(name)
            if name not in parameters:
                hint = difflib.get_close_matches(name, parameters, n=2)
                problems.append(Problem(str(exp), _line_of(exp, name), 1, f"params: {name} is not a parameter of this "
                                        "knowledge base" + (f" (did you mean {', '.join(hint)}?)" if hint else "")))
                continue
            raw = str(value).lower() if isinstance(value, bool) else str(value)
            try:
                _parse_value(parameters[name], raw, f"params: {name}")
            except KBError as e:
                problems.append(Problem(str(exp), _line_of(exp, name), 1, str(e)))
        for pop in (data.get("verdicts") or {}):
            if pop not in populations:
                problems.append(Problem(str(exp), _line_of(exp, str(pop)), 1, f"{pop}: no such population"))
        values = [data.get("overall")] + list((data.get("verdicts") or {}).values()) + \
            list((data.get("statuses") or {}).values()) + list((data.get("components") or {}).values())
        for v in values:
            if v is not None and v not in words:
                problems.append(Problem(str(exp), _line_of(exp, str(v)), 1, f"{v}: not a status or verdict "
                                        f"({', '.join(sorted(words))})"))
    return problems


def _line_of(path: Path, needle: str) -> int:
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return n
    return 1


def _normalise(text: str) -> str:
    return " ".join(text.replace("\u00a0", " ").split())


def _sentences_in_protocol(resolved: Resolved, parsed: analysis.Parsed) -> list[Problem]:
    """Every registry_sentence/2 of the knowledge base's own programs must be found, word for
    word (spacing aside), in the protocol text the manifest names (``protocol:``). Read from the
    parsed rules: a sentence written over several lines is compared like any other."""
    m = resolved.manifest
    if not any(c.data.get("protocol") for c in resolved.chain):
        return [Problem(str(m.path), 1, 1, "no protocol: the text the criteria cite must be named")]
    if resolved.protocol is None:
        return []  # the resolver reported why
    text = _normalise(resolved.protocol.read_text(encoding="utf-8", errors="replace"))
    own = Path(os.path.realpath(resolved.directory))
    out = []
    for r in parsed.rules:
        for a in r.heads:
            if a.name != "registry_sentence" or len(a.args) != 2 or not a.text(0) or a.args[1][0] != "str":
                continue
            if not Path(a.location[0]).is_relative_to(own):
                continue
            if _normalise(a.args[1][1]) not in text:
                out.append(Problem(*a.location, f"{a.text(0)}: the registry sentence is not in "
                                   f"{resolved.protocol.name} word for word: quote the protocol, do not paraphrase"))
    return out

"""Tools for protocol authors: run a knowledge base's example patients (``pyasp-screen
test``) and start a new knowledge base (``pyasp-screen new``).

An example patient is ``cases/<name>.yaml`` (a record) beside ``cases/<name>.expected.yaml``::

    overall: eligible            # eligible | ineligible | undetermined
    verdicts: {main: eligible}   # per population
    statuses: {INC-1: met}       # criterion or component ID -> met | not_met | unknown
    params: {anc_min: 1.5}       # optional: parameters for this case
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pyasp_screen.engine.engine import Engine
from pyasp_screen.findings.derive import derive
from pyasp_screen.inputs.files import load_file
from pyasp_screen.inputs.record import Loaded, RecordError, RecordInvalid
from pyasp_screen.knowledge.kb import KBError, load_kb


@dataclass
class CaseResult:
    """One example patient: passed, the differences from its expectations (one line each),
    and the statuses it got (condition ID -> met | not_met | unknown; empty if it could not
    be screened)."""

    name: str
    passed: bool
    differences: list[str] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)


def example_cases(kb_dir: Path, pattern: str | None = None) -> list[Path]:
    cases = sorted(p for p in (kb_dir / "cases").glob("*.yaml") if not p.name.endswith(".expected.yaml"))
    if pattern:
        cases = [p for p in cases if fnmatch.fnmatch(p.stem, f"*{pattern}*")]
    return cases


def run_case(kb_dir: Path, case: Path, engines: dict) -> CaseResult:
    """Screen one example patient and compare with its expectations."""
    expected_file = case.with_name(case.stem + ".expected.yaml")
    if not expected_file.exists():
        return CaseResult(case.stem, False, [f"{expected_file.name} is missing"])
    try:
        expected = yaml.safe_load(expected_file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        return CaseResult(case.stem, False, [f"{expected_file.name}: malformed YAML: {' '.join(str(e).split())}"])
    params = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in (expected.get("params") or {}).items()}
    key = tuple(sorted(params.items()))
    try:
        if key not in engines:
            kb = load_kb(kb_dir, params)
            engines[key] = (kb, Engine(kb))
        kb, engine = engines[key]
    except KBError as e:
        return CaseResult(case.stem, False, [f"params: {e}"])
    loaded = list(load_file(case))
    if len(loaded) != 1 or isinstance(loaded[0], RecordError):
        return CaseResult(case.stem, False, [str(x) for x in loaded if isinstance(x, RecordError)]
                          or [f"{case.name} must hold exactly one patient"])
    assert isinstance(loaded[0], Loaded)
    try:
        result = engine.screen([derive(loaded[0].record, kb)])[0]
    except RecordInvalid as e:
        return CaseResult(case.stem, False, [f"field {e.field}: {e.reason}"])
    diffs = []
    stated = {**(expected.get("statuses") or {}), **(expected.get("components") or {})}
    if "overall" in expected and result.overall != expected["overall"]:
        why = "; ".join(filter(None, (_responsible(kb, result, pop, stated) for pop in kb.populations)))
        diffs.append(f"overall: expected {expected['overall']}, got {result.overall}" + (f" ({why})" if why else ""))
    for pop, v in (expected.get("verdicts") or {}).items():
        if result.verdicts.get(pop) != v:
            why = _responsible(kb, result, pop, stated) if pop in kb.populations else ""
            diffs.append(f"verdict {pop}: expected {v}, got {result.verdicts.get(pop, '(no such population)')}"
                         + (f" ({why})" if why else ""))
    for cid, v in stated.items():
        got = result.statuses.get(cid, "(no such criterion or component)")
        if got != v:
            diffs.append(f"{cid}: expected {v}, got {got}")
    for c in result.contradictions:
        diffs.append(f"{c}: both holds and fails (a knowledge-base error)")
    if not any(k in expected for k in ("overall", "verdicts", "statuses", "components")):
        diffs.append("the expected file states nothing to check")
    return CaseResult(case.stem, not diffs, diffs, dict(result.statuses))


def _responsible(kb, result, pop: str, stated: dict) -> str:
    """The criteria that make a population's verdict what it is: those against the patient
    (an inclusion not met, an exclusion met) for ineligible, those unknown for undetermined;
    each marked when the expectations do not state it."""
    verdict = result.verdicts.get(pop)
    against = {"inclusion": "not_met", "exclusion": "met"}
    names = []
    for c in kb.criteria:
        if c.population not in (pop, "all"):
            continue
        status = result.statuses.get(c.id, "unknown")
        if (verdict == "ineligible" and status == against[c.kind]) or \
                (verdict == "undetermined" and status == "unknown"):
            names.append(f"{c.id} {status}" + ("" if c.id in stated else ", not in the expectations"))
    if not names:
        return ""
    label = kb.population_labels.get(pop, pop)
    return f"{label}: " + "; ".join(names) if len(kb.populations) > 1 else "; ".join(names)


def run_cases(kb_dir: Path, pattern: str | None = None) -> list[CaseResult]:
    engines: dict = {}
    return [run_case(kb_dir, c, engines) for c in example_cases(kb_dir, pattern)]


@dataclass
class Coverage:
    """How many example patients reached each status, per condition in protocol order
    (``counts``: condition ID -> {met, not_met, unknown} -> patients)."""

    counts: dict[str, dict[str, int]]

    def gaps(self, components: bool = False) -> dict[str, list[str]]:
        """Status -> the criteria (with ``components``, also the components) no example reached."""
        out: dict[str, list[str]] = {}
        for cid, n in self.counts.items():
            if "." in cid and not components:
                continue
            for status, k in n.items():
                if k == 0:
                    out.setdefault(status, []).append(cid)
        return out


def coverage(kb_dir: Path, results: list[CaseResult]) -> Coverage:
    """Which statuses the example patients reached, criterion by criterion and component by
    component (patients that could not be screened are left out)."""
    kb = load_kb(kb_dir)
    counts = {cid: {"met": 0, "not_met": 0, "unknown": 0}
              for c in kb.criteria for cid in (c.id, *c.components)}
    for r in results:
        for cid, status in r.statuses.items():
            if cid in counts and status in counts[cid]:
                counts[cid][status] += 1
    return Coverage(counts)


SKELETON_MANIFEST = """\
# {name}: a knowledge base made by `pyasp-screen new`. docs/authoring.md explains every part.
name: {name}
title: "{name} -- edit me: the trial's title"
version: "0.1"
protocol: protocol.txt   # the registry text the criteria quote (edit me)
# ASP programs, in order: the shared core (statuses and verdicts) first, then yours. Add
# lib/dates.lp for "within N days of" a date, lib/drugs.lp for drug classes, lib/scores.lp for
# SLEDAI-2K and classification scores. Findings of your own: vocabulary.yaml beside this file.
programs: [lib/core.lp, criteria.lp]
populations:
  main: the trial population
parameters:
  anc_min:
    kind: quantity
    default: 1.0
    unit: 10*9/L
    range: [0, 20]
    doc: Lowest ANC that meets INC-1 (edit me).
  lab_window_days:
    kind: integer
    default: 28
    unit: d
    range: [0, 3650]
    used_by: [INC-1]
    doc: Laboratory results count if taken at most this many days before screening.
"""

SKELETON_CRITERIA = """\
% ============================================================================
% {name} -- eligibility criteria. One block per criterion: its ID and registry
% sentence in a comment, then criterion/3, registry_sentence/2 and the rules
% that decide it (holds/2 when recorded data prove it, fails/2 when they rule it
% out; check/4 for a comparison of a quantity with a parameter).
% ============================================================================

window(anc, lab_window_days).   % read ANC results of the last lab_window_days days

% ---------------------------------------------------------------------------
% INC-1
% "Absolute neutrophil count (ANC) >= 1.0x10^9/L." (edit me: the registry sentence)
% ---------------------------------------------------------------------------
criterion("INC-1", main, inclusion).
registry_sentence("INC-1", "Absolute neutrophil count (ANC) >= 1.0x10^9/L.").
check("INC-1", anc, ge, anc_min).
"""

SKELETON_CASES = {
    "eligible.yaml": """\
# Meets INC-1: ANC 2.0x10^9/L five days before screening.
id: ELIGIBLE
screening_date: 2026-03-01
observations:
  - {code: anc, value: 2.0, unit: 10*9/L, date: 2026-02-24}
""",
    "eligible.expected.yaml": """\
overall: eligible
verdicts: {main: eligible}
statuses: {INC-1: met}
""",
    "anc-low.yaml": """\
# Fails INC-1: ANC 0.9x10^9/L.
id: ANC-LOW
screening_date: 2026-03-01
observations:
  - {code: anc, value: 0.9, unit: 10*9/L, date: 2026-02-24}
""",
    "anc-low.expected.yaml": """\
overall: ineligible
verdicts: {main: ineligible}
statuses: {INC-1: not_met}
""",
    "anc-unknown.yaml": """\
# INC-1 unknown: no ANC at all (absent data is unknown, never false).
id: ANC-UNKNOWN
screening_date: 2026-03-01
""",
    "anc-unknown.expected.yaml": """\
overall: undetermined
verdicts: {main: undetermined}
statuses: {INC-1: unknown}
""",
}


def new_kb(path: Path) -> list[Path]:
    """Write a knowledge-base skeleton at ``path`` (which must not exist). Returns the files."""
    if path.exists():
        raise FileExistsError(f"{path} already exists")
    name = path.name
    (path / "cases").mkdir(parents=True)
    files = {path / "manifest.yaml": SKELETON_MANIFEST.format(name=name),
             path / "criteria.lp": SKELETON_CRITERIA.format(name=name),
             path / "protocol.txt": "Inclusion criteria\nAbsolute neutrophil count (ANC) >= 1.0x10^9/L.\n"}
    files.update({path / "cases" / k: v for k, v in SKELETON_CASES.items()})
    for f, text in files.items():
        f.write_text(text, encoding="utf-8")
    return list(files)

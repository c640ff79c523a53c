"""`check` proves what it can (issue 12.3): the completion oracle runs on generated records for
any knowledge base and reports, at file:line, a criterion whose met / not_met is not exact;
registry sentences are compared from the parsed rules (however they are laid out); every
message is located, never a crash; `screen --facts` shows the facts a record becomes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pyasp_screen.authoring.cases import new_kb
from pyasp_screen.authoring.check import check_kb_dir
from pyasp_screen.authoring.exactness import check_exactness, slot_table
from pyasp_screen.cli import main
from pyasp_screen.knowledge.kb import load_kb

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def kb(tmp_path) -> Path:
    path = tmp_path / "trial"
    new_kb(path)
    return path


def add_criterion(kb: Path, cid: str, kind: str, sentence: str, rules: str) -> None:
    lp = kb / "criteria.lp"
    lp.write_text(lp.read_text() + f'\ncriterion("{cid}", main, {kind}).\n'
                  f'registry_sentence("{cid}", "{sentence}").\n{rules}\n')
    (kb / "protocol.txt").write_text((kb / "protocol.txt").read_text() + f"\n{sentence}\n")


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


@pytest.mark.parametrize("name", ["ct1190b", "ct1190b-amendment1", "nct07193667"])
def test_every_bundled_knowledge_base_is_exact(name):
    kb = load_kb(name)
    assert check_exactness(kb) == []
    slots, _ = slot_table(kb, __import__("random").Random(0))
    assert len(slots) > 15  # the check looks at what the criteria read, not at nothing


def test_a_rule_reading_an_unknown_finding_as_absent_is_reported(kb):
    add_criterion(kb, "EX-1", "exclusion", "Active tuberculosis.",
                  'kb_diagnosis(active_tuberculosis).\n'
                  'holds(P,"EX-1") :- diagnosis_yes(P,active_tuberculosis).\n'
                  'fails(P,"EX-1") :- patient(P), not diagnosis_yes(P,active_tuberculosis).')
    problems = [p for p in check_kb_dir(kb) if "not exact" in p.message]
    assert len(problems) == 1, [str(p) for p in problems]
    p = problems[0]
    assert p.file.endswith("criteria.lp") and p.line == line_of(kb / "criteria.lp", 'criterion("EX-1"')
    assert "EX-1 is not_met for a record with diagnosis active_tuberculosis unknown" in p.message
    assert "reads an unknown finding as absent" in p.message


def test_a_criterion_reading_a_finding_both_ways_is_reported(kb):
    """Non-monotone: ANC below the threshold or at least the threshold is always true, but
    three-valued evaluation of the parts cannot see it when ANC is unknown."""
    add_criterion(kb, "INC-2", "inclusion", "ANC recorded.",
                  'any_of("INC-2", ("INC-2.low"; "INC-2.high")).\n'
                  'check("INC-2.low", anc, lt, anc_min).\ncheck("INC-2.high", anc, ge, anc_min).')
    problems = [p for p in check_kb_dir(kb) if "not exact" in p.message]
    assert [p.line for p in problems] == [line_of(kb / "criteria.lp", 'criterion("INC-2"')]
    assert "INC-2 stays unknown for a record with quantity anc unknown, although every value of it " \
           "makes it met" in problems[0].message


def test_opposite_directions_across_criteria_are_reported_on_the_verdict(kb):
    add_criterion(kb, "EX-1", "exclusion", "ANC at least the minimum.", 'check("EX-1", anc, ge, anc_min).')
    problems = [p for p in check_kb_dir(kb) if "not exact" in p.message or "verdict" in p.message]
    assert any("population main: the verdict is undetermined" in p.message and "every completion" in p.message
               for p in problems), [str(p) for p in problems]


def test_a_broken_rule_in_a_bundled_knowledge_base_is_found(tmp_path):
    """Mutation: SSC-IN-2 made to fail when the ILD diagnosis is merely unrecorded."""
    copy = tmp_path / "ct1190b"
    shutil.copytree(ROOT / "kb" / "ct1190b", copy)
    ssc = copy / "ssc.lp"
    text = ssc.read_text()
    ssc.write_text(text.replace('fails(P,"SSC-IN-2") :- diagnosis_no(P,ssc_ild).',
                                'fails(P,"SSC-IN-2") :- patient(P), not diagnosis_yes(P,ssc_ild).'))
    problems = check_exactness(load_kb(copy))
    assert [(Path(p.file).name, p.line) for p in problems if "SSC-IN-2" in p.message] == \
        [("ssc.lp", line_of(ssc, 'criterion("SSC-IN-2"'))]


def test_a_registry_sentence_over_several_lines_is_compared(kb):
    lp = kb / "criteria.lp"
    text = lp.read_text().replace('registry_sentence("INC-1", "Absolute neutrophil count (ANC) >= 1.0x10^9/L.").',
                                  'registry_sentence("INC-1",\n    "Absolute neutrophil count (ANC) >= 1.0x10^9/L.")\n    .')
    lp.write_text(text)
    assert check_kb_dir(kb) == []
    lp.write_text(text.replace("Absolute neutrophil count", "Neutrophil count"))
    problems = check_kb_dir(kb)
    assert any("INC-1: the registry sentence is not in protocol.txt" in p.message and
               p.line == line_of(lp, "registry_sentence(") for p in problems), [str(p) for p in problems]


@pytest.mark.parametrize("text, where", [
    ('note("a \\^ b").', "note("),                      # an escape clingo does not know
    ('note("caf\u00e9 \\").', "note("),                 # an unterminated string after a non-ASCII letter
    ('holds(P,"INC-1") :- quantity(P,anc,Lo,_,_), Lo \u2265 2*anc_min.', "\u2265"),  # >= typed as a symbol
    ('#include "more.lp".\nx :- \u00e9.', "\u00e9"),    # the same in a file with an include
])
def test_every_message_is_located_and_nothing_crashes(kb, text, where):
    """clingo's lexer aborted the whole process (PANIC) on an error beside a non-ASCII
    character; check and every command now report it at its place."""
    lp = kb / "criteria.lp"
    lp.write_text(lp.read_text() + "\n" + text + "\n")
    (kb / "more.lp").write_text("more.\n")
    line = line_of(lp, where)
    for args in (["check", str(kb)], ["screen", str(kb / "cases"), "--kb", str(kb)]):
        done = subprocess.run([sys.executable, "-m", "pyasp_screen.cli", *args], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode in (1, 2), done.stderr
        assert "PANIC" not in done.stderr and "Traceback" not in done.stderr
        assert f"criteria.lp:{line}:" in done.stdout + done.stderr, done.stdout + done.stderr


def test_screen_facts_shows_what_a_record_becomes():
    case = ROOT / "kb" / "ct1190b" / "cases" / "ssc-in-4e-unknown.yaml"
    r = CliRunner().invoke(main, ["screen", str(case), "--facts"], catch_exceptions=False)
    assert r.exit_code == 0
    lines = r.output.splitlines()
    assert lines[0].startswith("% patient SSC-IN-4E-UNKNOWN")
    anc = next(line for line in lines if line.startswith('quantity("SSC-IN-4E-UNKNOWN",anc,'))
    assert anc.startswith('quantity("SSC-IN-4E-UNKNOWN",anc,6200,6200,6).') and "ANC 3.1" in anc
    assert "[observations[" in anc
    # the facts are ASP: the knowledge base runs on them with clingo itself
    import clingo

    ctl = clingo.Control(load_kb("ct1190b").clingo_args())
    ctl.add("base", [], load_kb("ct1190b").program_text() + "\n" + r.output)
    ctl.ground([("base", []), ("status", [])])
    with ctl.solve(yield_=True) as h:
        model = next(iter(h))
        assert model.contains(clingo.parse_term('status("SSC-IN-4E-UNKNOWN","SSC-IN-4e",unknown)'))

"""A knowledge base a new protocol author wrote from the guide alone (tests/data/authored/
nct07432334, README.md there): `check` (exactness included) and `test` pass on it, and the
mistakes the author showed `check` missing (/work/coord/author-report-1.md, findings 2 and 6)
are reported on copies of it that make them.

Finding 2: a criterion that reads a finding the other way round from another criterion of its
population leaves the verdict undetermined although every completion is ineligible. The
author's two broken variants: an exclusion EX-9 `check("EX-9", lvef, ge, lvef_min)` beside
INC-6's LVEF >= lvef_min, and INC-3 counting the neurologic SLEDAI-2K descriptors
(sledai_exclude_cns=false) which EX-1 reads as excluding."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from pyasp_screen.authoring.cases import run_cases
from pyasp_screen.authoring.check import check_kb_dir
from pyasp_screen.cli import main

AUTHORED = Path(__file__).resolve().parent / "data" / "authored" / "nct07432334"


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


@pytest.fixture
def copy(tmp_path) -> Path:
    out = tmp_path / "nct07432334"
    shutil.copytree(AUTHORED, out)
    return out


def test_the_authored_knowledge_base_checks_clean_exactness_included():
    assert [str(p) for p in check_kb_dir(AUTHORED)] == []


def test_every_example_patient_of_the_authored_knowledge_base_passes():
    results = run_cases(AUTHORED)
    assert len(results) == 93
    assert [(r.name, r.differences) for r in results if not r.passed] == []


def test_an_exclusion_reading_an_inclusions_finding_the_other_way_round_is_reported(copy):
    lp = copy / "criteria.lp"
    lp.write_text(lp.read_text() + '\ncriterion("EX-9", sle, exclusion).\n'
                  'registry_sentence("EX-9", "Women who are pregnant or breastfeeding.").\n'
                  'check("EX-9", lvef, ge, lvef_min).\n')
    problems = check_kb_dir(copy)
    verdict = [p for p in problems if "population sle: the verdict is undetermined" in p.message]
    assert len(verdict) == 1, [str(p) for p in problems]
    p = verdict[0]
    assert "quantity lvef unknown" in p.message and "every completion of the unknown findings gives ineligible" \
        in p.message
    assert "INC-6 (inclusion) and EX-9 (exclusion) read it in opposite directions" in p.message
    # located at the first criterion (protocol order) that reads the finding
    assert (Path(p.file).name, p.line) == ("criteria.lp", line_of(lp, 'criterion("INC-6"'))


def _cns_counted_problems(problems):
    return [p for p in problems if "population sle: the verdict is undetermined" in p.message
            and "sledai2k_descriptors" in p.message and "INC-3 (inclusion) and EX-1 (exclusion)" in p.message]


def test_a_non_default_reading_is_checked_when_it_is_the_default(copy):
    m = copy / "manifest.yaml"
    text = m.read_text()
    at = text.index("  sledai_exclude_cns:")
    m.write_text(text[:at] + text[at:].replace("default: true", "default: false", 1))
    problems = check_kb_dir(copy)
    assert len(_cns_counted_problems(problems)) == 1, [str(p) for p in problems]


def test_a_non_default_reading_is_checked_with_param():
    problems = check_kb_dir(AUTHORED, params={"sledai_exclude_cns": "false"})
    found = _cns_counted_problems(problems)
    assert len(found) == 1, [str(p) for p in problems]
    assert found[0].message.startswith("with sledai_exclude_cns=false: population sle")


def test_check_every_reading_finds_the_one_reading_that_is_not_exact():
    problems = check_kb_dir(AUTHORED, every_reading=True)
    assert [p.message.split(":")[0] for p in problems] == ["with sledai_exclude_cns=false"], \
        [str(p) for p in problems]


def test_check_command_takes_param_and_refuses_a_bad_one():
    r = CliRunner().invoke(main, ["check", str(AUTHORED), "--param", "sledai_exclude_cns=false"])
    assert r.exit_code == 1 and "with sledai_exclude_cns=false: population sle" in r.output
    r = CliRunner().invoke(main, ["check", str(AUTHORED), "--param", "lvef_min=555"])
    assert r.exit_code == 2 and "lvef_min: 555 % is outside 0-100 %" in r.output
    r = CliRunner().invoke(main, ["check", str(AUTHORED)])
    assert r.exit_code == 0 and "add --every-reading to check them too" in r.output

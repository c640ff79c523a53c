"""A knowledge base reads nothing outside its folders and the shared library (issue 13.3).

Every file is resolved by real path at load time, by the resolver `check` uses too: every
#include (nested or not, however clingo's tokenizer would accept it: comments between its
parts, a bare CR, split over lines), every manifest path, `extends`. An outside file is refused
before it is read, and its content never appears in a message.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from clingo import ast

from pyasp_screen.authoring.cases import new_kb
from pyasp_screen.authoring.check import check_kb_dir
from pyasp_screen.cli import main
from pyasp_screen.engine.screening import screen_records
from pyasp_screen.inputs.files import load_file
from pyasp_screen.knowledge.kb import KBError, load_kb
from pyasp_screen.knowledge.resolve import find_includes, scan_includes

SECRET = 'et_fact("TOPSECRET", 1).\n'


@pytest.fixture
def kb(tmp_path) -> Path:
    path = tmp_path / "trial"
    new_kb(path)
    return path


@pytest.fixture
def secret(tmp_path) -> Path:
    """A file outside the knowledge base whose content must never be read or shown."""
    path = tmp_path / "secret.lp"
    path.write_text(SECRET)
    return path


def refused_everywhere(kb: Path, pattern: str) -> None:
    """load_kb refuses, check reports it (never "no problems"), and no message, nor the CLI's
    output, shows the outside file's content or a traceback."""
    with pytest.raises(KBError, match=pattern) as e:
        load_kb(kb)
    assert "TOPSECRET" not in str(e.value)
    problems = check_kb_dir(kb)
    assert any(__import__("re").search(pattern, str(p)) for p in problems), [str(p) for p in problems]
    assert not any("TOPSECRET" in str(p) for p in problems)
    for args in (["check", str(kb)], ["screen", str(kb / "cases"), "--kb", str(kb)]):
        r = CliRunner().invoke(main, args, catch_exceptions=False)
        assert r.exit_code in (1, 2), r.output
        assert "TOPSECRET" not in r.output and "Traceback" not in r.output
        assert "no problems" not in r.output


def append(kb: Path, text: str, name: str = "criteria.lp") -> None:
    lp = kb / name
    lp.write_text(lp.read_text() + text)


@pytest.mark.parametrize("directive", [
    '#include "{p}".',
    '#include % a comment\n"{p}".',
    '#include %* a block *% "{p}".',
    '#include %* nested %* block *% *% "{p}" %* before the period *% .',
    '#include\r"{p}".',
    '#include\n  "{p}"\n  .',
    '#include %* "decoy.lp" *% "{p}".',
    '#include % "decoy.lp"\n "{p}".',
])
def test_an_include_of_an_outside_file_is_refused_however_it_is_written(kb, secret, directive):
    append(kb, "\n" + directive.format(p=secret) + "\n")
    refused_everywhere(kb, r'#include ".*secret.lp" is refused')


def test_a_relative_include_leaving_the_folder_is_refused(kb, secret):
    append(kb, '\n#include "../secret.lp".\n')
    refused_everywhere(kb, r'#include "../secret.lp" is refused')


def test_an_include_inside_an_included_file_is_checked(kb, secret):
    (kb / "more").mkdir()
    (kb / "more" / "inner.lp").write_text(f'inner_ok.\n#include "../../{secret.name}".\n')
    append(kb, '\n#include "more/inner.lp".\n')
    refused_everywhere(kb, r"inner.lp:2:\d+: #include \"../../secret.lp\" is refused")


def test_a_link_inside_the_folder_pointing_outside_is_refused(kb, secret):
    (kb / "innocent.lp").symlink_to(secret)
    append(kb, '\n#include "innocent.lp".\n')
    refused_everywhere(kb, r'#include "innocent.lp" is refused')


def test_library_includes_and_unreadable_includes_are_refused(kb):
    append(kb, "\n#include <incmode>.\n")
    refused_everywhere(kb, r"#include <\.\.\.> .* is refused")


@pytest.mark.parametrize("entry", ["lib/../../../..", "lib/../../secret.lp", "../secret.lp", "{abs}",
                                   "lib/../secret.lp"])
def test_a_manifest_program_outside_the_folders_is_refused(kb, secret, entry):
    manifest = kb / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace(
        "programs: [lib/core.lp, criteria.lp]", f"programs: [lib/core.lp, criteria.lp, '{entry.format(abs=secret)}']"))
    refused_everywhere(kb, r"programs: .*(outside|absolute path)")


def test_extends_names_a_knowledge_base_beside_it_not_a_path(kb, tmp_path):
    elsewhere = tmp_path / "elsewhere" / "parent"
    new_kb(elsewhere)
    (elsewhere / "criteria.lp").write_text((elsewhere / "criteria.lp").read_text() + SECRET)
    manifest = kb / "manifest.yaml"
    manifest.write_text(manifest.read_text() + "extends: ../elsewhere/parent\n")
    refused_everywhere(kb, r"extends: .*not a path")
    manifest.write_text(manifest.read_text().replace("extends: ../elsewhere/parent", "extends: linked"))
    (kb.parent / "linked").symlink_to(elsewhere)
    refused_everywhere(kb, r"extends: linked: a link to a folder elsewhere")


def test_the_vocabulary_and_the_protocol_stay_inside(kb, secret):
    (kb / "vocabulary.yaml").symlink_to(secret)
    refused_everywhere(kb, r"vocabulary.yaml is a link to .*outside")
    (kb / "vocabulary.yaml").unlink()
    manifest = kb / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("protocol: protocol.txt", f"protocol: ../{secret.name}"))
    problems = check_kb_dir(kb)
    assert any("protocol: ../secret.lp: no such file inside" in p.message for p in problems)


def test_includes_are_resolved_against_the_including_file_not_the_working_directory(kb, tmp_path, monkeypatch):
    """A file of the same name in the working directory is never read."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "extra.lp").write_text(SECRET + "from_the_working_directory.\n")
    (kb / "sub").mkdir()
    (kb / "sub" / "extra.lp").write_text("from_the_knowledge_base.\n")
    (kb / "sub" / "hub.lp").write_text('#include "extra.lp".\n')  # sub/extra.lp, beside hub.lp
    append(kb, '\n#include "sub/hub.lp".\n')
    monkeypatch.chdir(cwd)
    k = load_kb(kb)
    assert [p.name for p in k.programs][-2:] == ["hub.lp", "extra.lp"]
    assert all("cwd" not in str(p) for p in k.programs)
    assert "TOPSECRET" not in k.program_text()
    facts = {a.name for r in k.rules for a in r.heads}
    assert "from_the_knowledge_base" in facts and "from_the_working_directory" not in facts
    assert list(screen_records(load_file(kb / "cases" / "anc-unknown.yaml"), k))[0].result.overall
    assert check_kb_dir(kb) == []
    # and an include found only in the working directory is not found at all
    (kb / "sub" / "hub.lp").write_text('#include "missing.lp".\n')
    (cwd / "missing.lp").write_text(SECRET)
    with pytest.raises(KBError, match=r"missing.lp: no such file") as e:
        load_kb(kb)
    assert "TOPSECRET" not in str(e.value)


def test_an_include_inside_the_folder_is_read_once(kb):
    (kb / "shared.lp").write_text("shared_fact.\n")
    (kb / "a.lp").write_text('#include "shared.lp".\n')
    append(kb, '\n#include "a.lp".\n#include "shared.lp".\n#include "./shared.lp".\n')
    k = load_kb(kb)
    assert [p.name for p in k.programs].count("shared.lp") == 1


def test_an_include_in_a_string_or_a_comment_is_no_include(kb, secret):
    append(kb, f'\n% #include "{secret}".\n%* #include "{secret}". *%\n'
               f'note("#include \\"{secret}\\".").\n')
    k = load_kb(kb)
    assert all(p.name != "secret.lp" for p in k.programs)


# -- the scanner finds exactly the directives clingo would follow, with the path it would open ---

LAYOUT = [" ", "\n", "\r", "\t", "% c\n", '% "q.lp"\n', "%* b *%", '%* "q.lp" *%', "%* %* n *% *%",
          "%* x % *% y \n *%"]


def clingo_opens(text: str, probe: Path) -> list[str]:
    """The files clingo's parser tries to open in ``text`` (every path in it is a name in an
    empty folder, so it opens nothing)."""
    opened = []
    try:
        ast.parse_string(text, lambda s: None, logger=lambda c, m: opened.append(" ".join(m.split())),
                         message_limit=1000)
    except RuntimeError:
        pass
    return [m.rsplit("opened:", 1)[1].strip() for m in opened if "could not be opened" in m]


def test_the_scanner_agrees_with_clingo_on_generated_directives():
    rng = random.Random(13)
    with tempfile.TemporaryDirectory() as d:
        probe = Path(d)
        for n in range(300):
            target = str(probe / f"t{n}.lp")
            before = "".join(rng.choice(LAYOUT) for _ in range(rng.randint(0, 3)))
            after = "".join(rng.choice(LAYOUT) for _ in range(rng.randint(0, 3)))
            lead = rng.choice(["", "a.\n", 'p("#include \\"x\\".").\n', '% #include "x".\n', "%* #include *%\n"])
            text = f'{lead}#include{before}"{target}"{after}.\nb.\n'
            wanted = clingo_opens(text.replace("q.lp", str(probe / "decoy.lp")), probe)
            found, bad = scan_includes(text)
            assert [f.path for f in found] == [target] == wanted, repr(text)
            confirmed, problems = find_includes(text, "f.lp", probe)
            assert [c.path for c in confirmed] == [target] and problems == [], repr(text)


def test_a_directive_the_scanner_would_miss_is_refused(tmp_path):
    """An #include token the scanner does not see as a directive is made unreadable in the probe
    clingo parses, so clingo's error refuses it instead of clingo following it."""
    text = '#script (python)\n#end.\n#include "x.lp".\n'
    from pyasp_screen.knowledge import resolve

    original = resolve.scan_includes
    try:
        resolve.scan_includes = lambda t: ([], [])  # a scanner that misses everything
        confirmed, problems = resolve.find_includes(text, "f.lp", tmp_path)
    finally:
        resolve.scan_includes = original
    assert confirmed == [] and problems and "cannot read is refused" in problems[0].message
    assert problems[0].line == 3

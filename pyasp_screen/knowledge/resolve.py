"""Where a knowledge base's files are, and that it stays inside them (issue 13.3).

A knowledge base is a folder: ``manifest.yaml`` (and those of the knowledge bases it
``extends``), the ASP programs it lists and those they ``#include``, its ``vocabulary.yaml``
and the protocol text it cites. :func:`resolve` finds every one of them by real path (symbolic
links and ``..`` followed) and refuses any outside the knowledge base's folders and the shared
library (``kb/lib``; the protocol may also be one of the bundled protocol texts). Loading
(:mod:`pyasp_screen.knowledge.kb`) and ``pyasp-screen check`` use this one resolver, so what
check accepts is what loading reads.

``#include`` is resolved here, never by clingo: clingo would resolve a relative path against the
current directory first and open whatever it names. Directives are found by a scanner of
clingo's lexical rules (strings, ``%`` and nested ``%* *%`` comments, any whitespace between
tokens) and confirmed by clingo's own parser on a probe text in which every directive names a
file that does not exist and every other ``#include`` is made unreadable: clingo then reports
exactly the directives it would have followed, with the path it would have opened, and opens
nothing. A directive clingo would follow that the scanner did not find is refused. Each file
is read once; its text is handed to clingo with its directives blanked out (lines kept), and
every included file, resolved against the folder of the file including it, becomes a program
of its own.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from clingo import ast

from pyasp_screen.knowledge import yamlfile
from pyasp_screen.knowledge.confine import Problem
from pyasp_screen.knowledge.paths import builtin_kb_root

MAX_PROGRAM_BYTES = 8 * 1024 * 1024  # a knowledge-base file larger than this is refused


@dataclass(frozen=True)
class ProgramFile:
    """One ASP program: its real path, its text with ``#include`` directives blanked (same
    line numbers), and why it is read (a manifest entry or an include, as ``file:line``)."""

    path: str
    text: str
    reason: str


@dataclass(frozen=True)
class Manifest:
    """One manifest.yaml of the chain: its folder (as given and real), its data, key lines."""

    directory: Path
    real: Path
    path: Path
    data: dict
    lines: dict

    def line(self, *keys) -> int:
        return self.lines.get(tuple(keys), 1)


@dataclass
class Resolved:
    """Everything a knowledge base reads, resolved and confined. ``problems``: every file or
    path refused or missing; whatever is listed in ``programs`` and ``vocabulary`` is safe to
    read (it has been read: the texts are here)."""

    directory: Path
    chain: list[Manifest] = field(default_factory=list)         # furthest ancestor first
    programs: list[ProgramFile] = field(default_factory=list)
    vocabulary: list[tuple[Path, str]] = field(default_factory=list)
    protocol: Path | None = None
    library: Path | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def manifest(self) -> Manifest | None:
        return self.chain[-1] if self.chain else None


def library_root(kb_dir: Path) -> Path:
    """The shared library a knowledge base's ``lib/...`` programs come from: ``lib/`` beside
    it when that holds core.lp (the source tree, a copied tree), else the bundled one."""
    beside = kb_dir.parent / "lib"
    if (beside / "core.lp").is_file():
        return Path(os.path.realpath(beside))
    return Path(os.path.realpath(builtin_kb_root() / "lib"))


def protocol_roots() -> list[Path]:
    """Where bundled protocol texts live (source tree and installed package)."""
    root = builtin_kb_root().parent
    return [Path(os.path.realpath(p)) for p in (root / "docs" / "protocol", root / "protocol") if p.is_dir()]


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == r or path.is_relative_to(r) for r in roots)


def _read(path: Path, what: str, where: tuple[str, int]) -> tuple[str | None, Problem | None]:
    """The text of a regular file already confined, or the problem reading it."""
    try:
        if not path.is_file():
            return None, Problem(where[0], where[1], 1, f"{what}: {path}: not a regular file")
        if path.stat().st_size > MAX_PROGRAM_BYTES:
            return None, Problem(where[0], where[1], 1, f"{what}: {path}: larger than "
                                 f"{MAX_PROGRAM_BYTES // 1024**2} MiB")
        return path.read_text(encoding="utf-8"), None
    except UnicodeDecodeError:
        return None, Problem(where[0], where[1], 1, f"{what}: {path}: not UTF-8 text")
    except OSError as e:
        return None, Problem(where[0], where[1], 1, f"{what}: {path}: cannot read: {e.strerror or e}")


def read_manifest(kb_dir: Path) -> tuple[Manifest | None, Problem | None]:
    """A folder's manifest.yaml (safe YAML), with the line of every key."""
    path = kb_dir / "manifest.yaml"
    real = Path(os.path.realpath(kb_dir))
    if not (real / "manifest.yaml").is_file():
        return None, Problem(str(path), 1, 1, "no manifest.yaml: not a knowledge base folder")
    if not _inside(Path(os.path.realpath(path)), [real]):
        return None, Problem(str(path), 1, 1, "manifest.yaml is a link to a file outside the knowledge base's folder")
    text, problem = _read(Path(os.path.realpath(path)), "manifest.yaml", (str(path), 1))
    if problem:
        return None, problem
    try:
        data, lines = yamlfile.load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        return None, Problem(str(path), mark.line + 1 if mark else 1, 1,
                             f"malformed YAML: {' '.join(str(e).split())}")
    if not isinstance(data, dict):
        return None, Problem(str(path), 1, 1, "expected a mapping (name:, programs:, populations:, ...)")
    return Manifest(kb_dir, real, path, data, lines), None


def _extends(m: Manifest, value: object) -> tuple[Path | None, Problem | None]:
    """The folder ``extends: NAME`` names: a knowledge base beside this one (or, for one made
    elsewhere, a bundled one). A path is refused: a knowledge base names its parent, it does
    not point into the file system."""
    where = (str(m.path), m.line("extends"))
    name = str(value).strip() if isinstance(value, str) else None
    if not name or "/" in name or "\\" in name or name in (".", "..") or name.startswith("~"):
        return None, Problem(*where, 1, f"extends: {value!r}: the name of a knowledge base beside this "
                             "one (a folder name, not a path)")
    for candidate in (m.directory.parent / name, builtin_kb_root() / name):
        real = Path(os.path.realpath(candidate))
        if (real / "manifest.yaml").is_file():
            if real.parent not in (Path(os.path.realpath(m.directory.parent)),
                                   Path(os.path.realpath(builtin_kb_root()))):
                return None, Problem(*where, 1, f"extends: {name}: a link to a folder elsewhere "
                                     f"({real}); the knowledge base it extends must be beside it")
            return candidate, None
    return None, Problem(*where, 1, f"extends: {name}: no such knowledge base beside it")


def resolve(kb_dir: Path) -> Resolved:
    """Every file of the knowledge base in ``kb_dir``, confined (see the module docstring).
    Never raises for content: every problem is in ``problems``, located."""
    out = Resolved(kb_dir)
    # the manifest chain, furthest ancestor first
    chain: list[Manifest] = []
    directory: Path | None = kb_dir
    seen: set[Path] = set()
    while directory is not None:
        m, problem = read_manifest(directory)
        if problem:
            out.problems.append(problem)
            break
        if m.real in seen:
            out.problems.append(Problem(str(m.path), m.line("extends"), 1, "extends: a cycle"))
            break
        seen.add(m.real)
        chain.append(m)
        directory = None
        if m.data.get("extends") is not None:
            directory, problem = _extends(m, m.data["extends"])
            if problem:
                out.problems.append(problem)
    out.chain = list(reversed(chain))
    if not chain:
        return out
    out.library = library_root(kb_dir)
    roots = [m.real for m in out.chain] + [out.library]
    read: dict[str, int] = {}  # real path -> index in out.programs
    with tempfile.TemporaryDirectory(prefix="pyasp-include-probe-") as probe_dir:
        for m in out.chain:
            entries = m.data.get("programs")
            if entries is None:
                entries = []
            if not isinstance(entries, list):
                out.problems.append(Problem(str(m.path), m.line("programs"), 1,
                                            "programs: expected a list of file names"))
                continue
            for i, entry in enumerate(entries):
                where = (str(m.path), m.line("programs", i) if ("programs", i) in m.lines else m.line("programs"))
                path, problem = _program_path(m, entry, out.library)
                if problem:
                    out.problems.append(Problem(*where, 1, problem))
                    continue
                _add_program(out, path, f"{where[0]}:{where[1]}", where, roots, read, Path(probe_dir))
    # vocabulary.yaml of every folder of the chain
    for m in out.chain:
        path = m.directory / "vocabulary.yaml"
        if not os.path.lexists(path):
            continue
        real = Path(os.path.realpath(path))
        if not _inside(real, [m.real]):
            out.problems.append(Problem(str(path), 1, 1, f"vocabulary.yaml is a link to {real}, outside "
                                        "the knowledge base's folder"))
            continue
        text, problem = _read(real, "vocabulary.yaml", (str(path), 1))
        if problem:
            out.problems.append(problem)
        else:
            out.vocabulary.append((path, text))
    _protocol(out)
    return out


def _program_path(m: Manifest, entry: object, library: Path) -> tuple[Path | None, str | None]:
    """A manifest's program entry: ``lib/NAME`` in the shared library, anything else in the
    knowledge base's own folder; by real path, so ``..`` and links cannot leave them."""
    if not isinstance(entry, str) or not entry.strip():
        return None, f"programs: {entry!r}: expected a file name"
    name = entry.strip()
    if os.path.isabs(name) or name.startswith("~"):
        return None, f"programs: {name}: an absolute path (name a file inside the knowledge base's folder)"
    if name.startswith("lib/"):
        real = Path(os.path.realpath(library / name[len("lib/"):]))
        if not _inside(real, [library]):
            return None, f"programs: {name}: outside the shared library ({library})"
        return real, None
    real = Path(os.path.realpath(m.directory / name))
    if not _inside(real, [m.real]):
        return None, (f"programs: {name}: outside the knowledge base's folder (use extends: to reuse "
                      "another knowledge base)")
    return real, None


def _add_program(out: Resolved, path: Path, reason: str, where: tuple[str, int], roots: list[Path],
                 read: dict[str, int], probe_dir: Path, depth: int = 0) -> None:
    """Read one confined program and, depth first, every file it includes."""
    key = str(path)
    if key in read:
        return
    if not path.exists():
        out.problems.append(Problem(*where, 1, f"{path.name}: no such file ({path})"))
        return
    text, problem = _read(path, "program", where)
    if problem:
        out.problems.append(problem)
        return
    read[key] = len(out.programs)
    directives, problems = find_includes(text, key, probe_dir)
    out.problems += problems
    out.programs.append(ProgramFile(key, blank(text, directives), reason))
    if depth > 50:
        out.problems.append(Problem(key, 1, 1, "#include nested more than 50 deep"))
        return
    for d in directives:
        here = (key, d.line)
        target = Path(d.path).expanduser() if d.path.startswith("~") else Path(d.path)
        real = Path(os.path.realpath(target if target.is_absolute() else path.parent / target))
        if not _inside(real, roots):
            out.problems.append(Problem(key, d.line, d.column, f'#include "{d.path}" is refused: it points '
                                        "outside the knowledge base's folders and the shared library"))
            continue
        _add_program(out, real, f"{key}:{d.line}", here, roots, read, probe_dir, depth + 1)


def _protocol(out: Resolved) -> None:
    """The protocol text the manifest names (``protocol:``): inside a folder of the knowledge
    base (or the repository around it), or a bundled protocol text."""
    m = out.manifest
    name = next((c.data.get("protocol") for c in reversed(out.chain) if c.data.get("protocol")), None)
    if not name:
        return
    if not isinstance(name, str):
        out.problems.append(Problem(str(m.path), m.line("protocol"), 1, "protocol: expected a file name"))
        return
    allowed = [c.real for c in out.chain] + protocol_roots()
    candidates = [c.directory / name for c in reversed(out.chain)]
    candidates += [m.directory.parent / name, m.directory.parent.parent / name]
    candidates += [r / Path(name).name for r in protocol_roots()]
    for c in candidates:
        real = Path(os.path.realpath(c))
        if real.is_file() and _inside(real, allowed):
            out.protocol = real
            return
    out.problems.append(Problem(str(m.path), m.line("protocol"), 1,
                                f"protocol: {name}: no such file inside the knowledge base's folder "
                                "(or among the bundled protocol texts)"))


# ---------------------------------------------------------------------------------------
# #include directives
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Include:
    """One ``#include "path".`` directive: text span [start, end), the path as written
    (escapes undone), and where it starts."""

    start: int
    end: int
    path: str
    path_span: tuple[int, int]
    line: int
    column: int


INCLUDE = "#include"
NEUTRAL = "#inclzde"  # clingo's lexer rejects it; inside strings and comments it is inert


def _skip_layout(text: str, i: int) -> int:
    """Past whitespace and comments (clingo: % to end of line; %* *% nested, in which a % not
    followed by * comments out the rest of the line)."""
    n = len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n\f\v":
            i += 1
        elif text.startswith("%*", i):
            i = _skip_block(text, i + 2)
        elif c == "%":
            j = text.find("\n", i)
            i = n if j < 0 else j + 1
        else:
            break
    return i


def _skip_block(text: str, i: int) -> int:
    depth, n = 1, len(text)
    while i < n and depth:
        if text.startswith("%*", i):
            depth, i = depth + 1, i + 2
        elif text.startswith("*%", i):
            depth, i = depth - 1, i + 2
        elif text[i] == "%":
            j = text.find("\n", i)
            i = n if j < 0 else j + 1
        else:
            i += 1
    return i


def _string_end(text: str, i: int) -> int:
    """The index after the string starting at text[i] == '"' (or where it breaks off)."""
    n = len(text)
    i += 1
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
        elif c == '"':
            return i + 1
        elif c == "\n":
            return i
        else:
            i += 1
    return n


def _unescape(body: str) -> str:
    return re.sub(r'\\(["\\n])', lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), body)


def _position(text: str, i: int) -> tuple[int, int]:
    line = text.count("\n", 0, i) + 1
    return line, i - (text.rfind("\n", 0, i) + 1) + 1


def scan_includes(text: str) -> tuple[list[Include], list[tuple[int, str]]]:
    """The ``#include`` directives of a program by clingo's lexical rules, and the positions of
    ``#include`` tokens that are not well-formed directives (index, reason)."""
    found, bad = [], []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            i = _string_end(text, i)
        elif text.startswith("%*", i):
            i = _skip_block(text, i + 2)
        elif c == "%":
            j = text.find("\n", i)
            i = n if j < 0 else j + 1
        elif text.startswith("#script", i):
            j = text.find("#end.", i)
            i = n if j < 0 else j + len("#end.")
        elif text.startswith(INCLUDE, i) and not (text[i + len(INCLUDE):i + len(INCLUDE) + 1].isalnum()
                                                  or text[i + len(INCLUDE):i + len(INCLUDE) + 1] == "_"):
            j = _skip_layout(text, i + len(INCLUDE))
            if j < n and text[j] == "<":
                bad.append((i, "#include <...> (clingo's own library) is refused: include a file of the "
                            "knowledge base"))
                i = j
                continue
            if j >= n or text[j] != '"':
                bad.append((i, "#include must be followed by a file name in double quotes"))
                i = j
                continue
            k = _string_end(text, j)
            if k > n or text[k - 1] != '"' or k - 1 == j:
                bad.append((i, "#include: the file name's string is not closed on its line"))
                i = k
                continue
            m = _skip_layout(text, k)
            if m >= n or text[m] != ".":
                bad.append((i, "#include: a period must end the directive"))
                i = m
                continue
            line, col = _position(text, i)
            found.append(Include(i, m + 1, _unescape(text[j + 1:k - 1]), (j, k), line, col))
            i = m + 1
        else:
            i += 1
    return found, bad


def find_includes(text: str, file: str, probe_dir: Path) -> tuple[list[Include], list[Problem]]:
    """The include directives clingo would follow in ``text``, confirmed by clingo's parser on
    a probe that can open nothing (module docstring); a directive clingo would follow that the
    scanner did not find, or one it reads differently, is a problem."""
    if INCLUDE not in text:
        return [], []
    found, bad = scan_includes(text)
    problems = [Problem(file, *_position(text, i), reason) for i, reason in bad]
    sentinels = {}
    pieces, last = [], 0
    for n, d in enumerate(found):
        sentinel = str(probe_dir / f"include-{n}.lp")
        sentinels[sentinel] = d
        head = text[d.start + len(INCLUDE):d.path_span[0]].replace('"', " ")
        tail = text[d.path_span[1]:d.end - 1].replace('"', " ")
        middle = head + '"' + sentinel + '"' + tail
        pieces += [text[last:d.start].replace(INCLUDE, NEUTRAL), INCLUDE + middle + "."]
        last = d.end
    pieces.append(text[last:].replace(INCLUDE, NEUTRAL))
    probe = re.sub(r"[^\x00-\x7f]", "\x01", "".join(pieces))  # see analysis.ascii_copy: no PANIC
    messages: list[str] = []
    try:
        ast.parse_string(probe, lambda stm: None, logger=lambda code, msg: messages.append(msg),
                         message_limit=100_000)
    except RuntimeError:
        pass
    confirmed = set()
    for msg in messages:
        text_msg = " ".join(msg.split())
        m = re.match(r"^<string>:(\d+):(\d+)", text_msg)
        line, col = (int(m.group(1)), int(m.group(2))) if m else (1, 1)
        if "file could not be opened" in text_msg:
            path = text_msg.rsplit("opened:", 1)[-1].strip()
            if path in sentinels:
                confirmed.add(path)
        elif NEUTRAL in text_msg and not any(p.line == line for p in problems):
            problems.append(Problem(file, line, col, "an #include pyasp-screen cannot read is refused (write "
                                    '#include "file.lp". with nothing but spaces between its parts)'))
    for sentinel, d in sentinels.items():
        if sentinel not in confirmed:
            problems.append(Problem(file, d.line, d.column, "an #include pyasp-screen cannot read is refused "
                                    '(write #include "file.lp". with nothing but spaces between its parts)'))
    return [d for s, d in sentinels.items() if s in confirmed], problems


def blank(text: str, directives: list[Include]) -> str:
    """``text`` with every directive replaced by spaces (line breaks kept, so every other
    statement keeps its line and column)."""
    if not directives:
        return text
    chars = list(text)
    for d in directives:
        for i in range(d.start, d.end):
            if chars[i] not in "\r\n":
                chars[i] = " "
    return "".join(chars)


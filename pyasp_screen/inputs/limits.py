"""How much one input may hold, and which files are read: the bounds every reader applies.

A record file, a JSON Lines line or a FHIR Bulk line is refused, as that record's one-line
error, when it

- is larger than :func:`max_record_bytes` (128 MiB unless ``PYASP_SCREEN_MAX_RECORD_MB``
  says otherwise; the largest public Synthea Bundle here is under 2 MB);
- nests deeper than :data:`MAX_DEPTH` levels (a native record nests 5, a FHIR R4 Bundle
  12: Bundle.entry.resource.component.code.coding...). Deeper input is not data but an
  attack on recursive readers (Python's own json module stops at about 1,000 levels with
  RecursionError);
- is YAML whose aliases would repeat more than :data:`MAX_ALIAS_NODES` nodes: PyYAML shares
  an aliased node, but every later reader (validation, FHIR mapping) walks it once per
  alias, so 700 bytes of nested aliases ("billion laughs") are 43 million nodes to them;
- holds text that is not text (a lone UTF-16 surrogate, which JSON's ``\\ud800`` escape
  and YAML can produce, and no output can encode) or a number that is not finite (NaN,
  Infinity, 1e400).

Inside a folder only regular files are read: a named pipe would block for ever and a link
to /dev/zero never ends. A file named on the command line may also be a pipe (bash's
``<(...)``), never a device.

Nothing here raises anything but :class:`InputRefused` for bad content.
"""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

MAX_DEPTH = 64
MAX_ALIAS_NODES = 100_000
MAX_ID_CHARS = 256
DEFAULT_MAX_RECORD_MB = 128
MAX_RECORD_ENV = "PYASP_SCREEN_MAX_RECORD_MB"


class InputRefused(Exception):
    """An input no reader should go on with: ``reason`` in words, the ``field`` (JSON
    path, as msgspec names fields) and ``patient`` when they are known."""

    def __init__(self, reason: str, field: str | None = None, patient: str | None = None):
        super().__init__(reason)
        self.reason, self.field, self.patient = reason, field, patient


def max_record_bytes() -> int:
    """The size limit of one record file or line, in bytes (PYASP_SCREEN_MAX_RECORD_MB)."""
    try:
        mb = float(os.environ.get(MAX_RECORD_ENV, DEFAULT_MAX_RECORD_MB))
    except ValueError:
        mb = DEFAULT_MAX_RECORD_MB
    return int(mb * 2**20) if mb > 0 else DEFAULT_MAX_RECORD_MB * 2**20


def _size_words(limit: int) -> str:
    mb = limit / 2**20
    return f"{mb:g} MiB"


def too_large(limit: int) -> str:
    return (f"more than {_size_words(limit)}, the limit for one record "
            f"(set {MAX_RECORD_ENV} to read larger ones)")


# ---------------------------------------------------------------------------------------
# Text for people: one line, encodable

_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match) -> str:
    c = m.group()
    return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def one_line(text: str) -> str:
    """``text`` with line breaks, other control characters and lone surrogates written as
    escapes (``\\n``, ``\\x00``, ``\\ud800``): one line that every output can encode."""
    return _UNPRINTABLE.sub(_escape, text) if _UNPRINTABLE.search(text) else text


def display_path(path: Path | str) -> str:
    """A path as shown in messages and rows: bytes of a file name that are not UTF-8 (which
    Python holds as lone surrogates) written as ``\\xff``, control characters escaped."""
    text = os.fsencode(str(path)).decode("utf-8", "backslashreplace")
    return one_line(text)


def id_problem(pid: str) -> str | None:
    """Why ``pid`` cannot be a patient ID (IDs key every output row), or None."""
    m = _UNPRINTABLE.search(pid)
    if m:
        c = m.group()
        what = "a lone UTF-16 surrogate (not a character)" if "\ud800" <= c <= "\udfff" else \
            "a line break" if c in "\n\r\u2028\u2029" else "a control character"
        return f"a patient ID is one line of printable text; this one holds U+{ord(c):04X}, {what}"
    if len(pid) > MAX_ID_CHARS:
        return f"a patient ID is at most {MAX_ID_CHARS} characters; this one has {len(pid)}"
    return None


# ---------------------------------------------------------------------------------------
# Files

_KINDS = [(stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")]


def kind_of(mode: int) -> str:
    for test, words in _KINDS:
        if test(mode):
            return words
    return "not a regular file"


def open_input(path: Path, *, in_folder: bool = True):
    """Open ``path`` for reading in binary, refusing what never ends or never answers:
    anything but a regular file inside a folder; a device anywhere. A pipe named on the
    command line (``in_folder=False``) is opened: the user asked for it.

    Raises InputRefused (not a regular file) or OSError (cannot open)."""
    # O_NONBLOCK: opening a named pipe nobody writes to would otherwise wait for ever.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode) and (in_folder or not stat.S_ISFIFO(mode)):
            raise InputRefused(f"not a regular file ({kind_of(mode)}): only regular files are read"
                               + (" inside a folder" if in_folder and stat.S_ISFIFO(mode) else ""))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_input(path: Path, *, in_folder: bool = True) -> bytes:
    """The bytes of one record file, at most :func:`max_record_bytes` (see :func:`open_input`)."""
    limit = max_record_bytes()
    with open_input(path, in_folder=in_folder) as fh:
        if os.fstat(fh.fileno()).st_size > limit:
            raise InputRefused(too_large(limit))
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise InputRefused(too_large(limit))
    return data


def iter_lines(fh) -> Iterator[tuple[int, bytes | InputRefused]]:
    """(line number, line) for every line of a binary file, blank lines included; a line
    longer than :func:`max_record_bytes` is an InputRefused in its place (and is skipped
    without being held in memory)."""
    limit = max_record_bytes()
    n = 0
    while True:
        line = fh.readline(limit + 1)
        if not line:
            return
        n += 1
        if len(line) > limit and not line.endswith(b"\n"):
            while (rest := fh.readline(1 << 20)) and not rest.endswith(b"\n"):
                pass
            yield n, InputRefused(too_large(limit))
            continue
        yield n, line


# ---------------------------------------------------------------------------------------
# Decoded data: depth, text, numbers

def _path(parts: list) -> str | None:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or None


def _short(parts: list) -> str | None:
    """The field to name for input nested too deep: its path down to the fourth key, the
    indices after the last key dropped (``notes``, not ``notes[0][0][0]...``)."""
    keys = [i for i, p in enumerate(parts) if not isinstance(p, int)]
    if not keys:
        return None
    return _path(parts[:keys[min(3, len(keys) - 1)] + 1])


def _too_deep() -> str:
    return f"nested deeper than {MAX_DEPTH} levels (no record does: an attack on the reader?)"


def check_tree(data: object) -> None:
    """Raise InputRefused, naming the field, if decoded JSON/YAML ``data`` nests deeper than
    MAX_DEPTH, holds a lone surrogate in a string or key, or a number that is not finite."""
    top_id = data.get("id") if isinstance(data, dict) and isinstance(data.get("id"), str) else None
    stack: list[tuple[object, list]] = [(data, [])]
    while stack:
        node, parts = stack.pop()
        if len(parts) >= MAX_DEPTH:
            raise InputRefused(_too_deep(), _short(parts), top_id)
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            if isinstance(key, str) and not key.isascii() and _UNPRINTABLE.search(key):
                _check_text(key, parts + [one_line(key)], top_id)
            if isinstance(value, (dict, list)):
                if value:
                    stack.append((value, parts + [key if isinstance(key, (int, str)) else str(key)]))
            elif isinstance(value, str):
                if not value.isascii():
                    _check_text(value, parts + [key], top_id)
            elif isinstance(value, float) and not math.isfinite(value):
                raise InputRefused(f"not a finite number ({value})", _path(parts + [key]), top_id)


def _check_text(text: str, parts: list, top_id: str | None) -> None:
    m = re.search("[\ud800-\udfff]", text)
    if m:
        raise InputRefused(f"a lone UTF-16 surrogate (\\u{ord(m.group()):04x}) is not a character: "
                           "text that was not UTF-8?", _path([one_line(p) if isinstance(p, str) else p for p in parts]),
                           one_line(top_id) if top_id else None)


# A JSON token: a string, or one of the structural characters.
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\],:]')


def scan_json_depth(data: bytes) -> InputRefused:
    """For JSON too deep for a recursive decoder: the InputRefused naming where it first
    nests deeper than MAX_DEPTH, and the record's top-level ``id`` when it has one (a scan
    of the tokens, without recursion)."""
    import json

    stack: list[list] = []  # [container kind, key or index, expecting a key]
    found: list | None = None
    pid = None
    want_id = False
    for m in _TOKEN.finditer(data):
        tok = m.group()
        c = tok[:1]
        if c == b'"':
            if stack and stack[-1][0] == "{" and stack[-1][2]:
                try:
                    key = json.loads(tok)
                except ValueError:
                    key = "?"
                stack[-1][1], stack[-1][2] = key, False
                want_id = len(stack) == 1 and key == "id"
                continue
            if want_id and pid is None:
                try:
                    pid = json.loads(tok)
                except ValueError:
                    pass
            want_id = False
            continue
        if c != b":":
            want_id = False
        if c in b"{[":
            if len(stack) >= MAX_DEPTH and found is None:
                found = [f[1] for f in stack]
            stack.append([c.decode(), 0 if c == b"[" else None, c == b"{"])
        elif c in b"}]":
            if stack:
                stack.pop()
        elif c == b",":
            if stack:
                if stack[-1][0] == "[":
                    stack[-1][1] += 1
                else:
                    stack[-1][2] = True
    parts = [p for p in (found or []) if p is not None]
    return InputRefused(_too_deep(), _short(parts), one_line(pid) if isinstance(pid, str) else None)


# What may make decoded JSON fail check_tree, found in its text: a surrogate written as an
# escape (\ud800) or as itself; NaN and Infinity; a number that may be past a float's range
# (an exponent of 100 or more, or 200 digits in a row: below both, |x| < 10**(200 + 99) is
# finite). It over-matches (the same inside a string, an escaped backslash before "ud800"):
# then check_tree decides.
_MAYBE_REFUSED = re.compile(r"\\u[dD][89a-fA-F]|[\ud800-\udfff]|NaN|Infinity|[eE]\+?0*[1-9][0-9]{2}|[0-9]{200}")
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_INNERMOST = re.compile(r"[\[{][\]}]")


def _shallow(text: str) -> bool:
    """Does JSON ``text`` (valid: it decoded) nest at most MAX_DEPTH containers deep, the
    outermost counted? Then no non-empty container lies MAX_DEPTH keys or indices down, and
    check_tree finds nothing too deep. Strings are dropped, then the brackets left lose their
    innermost pairs once per level (regular expressions: no walk in Python)."""
    brackets = _NOT_BRACKETS.sub("", _JSON_STRING.sub("", text))
    for _ in range(MAX_DEPTH):
        if not brackets:
            return True
        brackets = _INNERMOST.sub("", brackets)
    return not brackets


def decode_json(text: str | bytes) -> object:
    """JSON decoded by the standard library (its errors name line and column), then checked
    by :func:`check_tree`. Raises ValueError (json.JSONDecodeError) for malformed JSON,
    InputRefused for JSON too deep, holding a lone surrogate or a number that is not finite.

    check_tree's walk of the decoded data is skipped when the text (a str) shows that it
    would find nothing (no surrogate, no NaN or Infinity, no number that may be out of range,
    nesting within the limit): the same results, at the cost of a few regular expressions."""
    import json

    try:
        data = json.loads(text)
    except RecursionError:
        raise scan_json_depth(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text) from None
    if isinstance(data, (dict, list)):
        # (bytes may be UTF-16 or hold surrogates json reads with surrogatepass: always walked)
        if isinstance(text, bytes) or _MAYBE_REFUSED.search(text) or not _shallow(text):
            check_tree(data)
    elif isinstance(data, float) and not math.isfinite(data):
        raise InputRefused(f"not a finite number ({data})")
    return data


def load_yaml(text: str) -> object:
    """One YAML document, read safely (PyYAML's SafeLoader: no tags that build objects),
    after a pass over its events that refuses nesting deeper than MAX_DEPTH and aliases that
    would repeat more than MAX_ALIAS_NODES nodes; then checked by :func:`check_tree`.

    Raises yaml.YAMLError for malformed YAML, InputRefused as above (the reason says the
    line and column)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        _check_yaml_events(yaml.parse(text, Loader=loader))
    except yaml.YAMLError as e:  # libyaml's own nesting limit: said as ours
        mark = getattr(e, "problem_mark", None)
        if mark is None or "nesting depth" not in str(getattr(e, "problem", "")):
            raise
        raise InputRefused(f"line {mark.line + 1}, column {mark.column + 1}: {_too_deep()}") from None
    try:
        data = yaml.load(text, Loader=loader)
    except ValueError as e:  # a plain scalar YAML reads as a date that is none (2026-02-30)
        where = _bad_date(text, loader)
        if where is None:
            raise
        raise InputRefused(f"{where} is not a date: {e}") from None
    if isinstance(data, (dict, list)):
        check_tree(data)
    elif isinstance(data, float) and not math.isfinite(data):
        raise InputRefused(f"not a finite number ({data})")
    return data


_YAML_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[Tt ].*)?")


def _bad_date(text: str, loader) -> str | None:
    """'line L, column C: 2026-02-30' for the first plain scalar that YAML would read as a
    date (YAML 1.1 timestamps) but that names no day of the calendar; None if there is none."""
    import datetime as dt

    import yaml

    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.ScalarEvent) and not event.style and (m := _YAML_DATE.fullmatch(event.value)):
            try:
                dt.date(int(m[1]), int(m[2]), int(m[3]))
            except ValueError:
                mark = event.start_mark
                return f"line {mark.line + 1}, column {mark.column + 1}: {event.value}"
    return None


def _check_yaml_events(events) -> None:
    import yaml

    # One frame per open collection: [is a mapping, key or index, expecting a key, nodes in it, anchor]
    stack: list[list] = []
    sizes: dict[str, int] = {}  # anchor -> nodes under it, aliases expanded
    extra = 0
    top_id = None
    problem: tuple[str, list, object] | None = None

    def add(n: int) -> None:
        if stack:
            f = stack[-1]
            f[3] += n
            if f[0]:
                f[2] = not f[2]
            else:
                f[1] += 1

    want_id = False  # the next event is the value of the top-level key "id"
    for ev in events:
        is_id_value, want_id = want_id, False
        if isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            if len(stack) >= MAX_DEPTH and problem is None:
                problem = (_too_deep(), [f[1] for f in stack], ev.start_mark)
            is_map = isinstance(ev, yaml.MappingStartEvent)
            stack.append([is_map, None if is_map else 0, True, 1, ev.anchor])
        elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            f = stack.pop()
            if f[4]:
                sizes[f[4]] = f[3]
            if stack:
                if stack[-1][0] and stack[-1][2]:
                    stack[-1][1] = "?"  # a collection as a key
                add(f[3])
        elif isinstance(ev, yaml.ScalarEvent):
            if ev.anchor:
                sizes[ev.anchor] = 1
            if stack and stack[-1][0] and stack[-1][2]:
                stack[-1][1] = ev.value
                want_id = len(stack) == 1 and ev.value == "id"
            elif is_id_value:
                top_id = ev.value
            add(1)
        elif isinstance(ev, yaml.AliasEvent):
            n = sizes.get(ev.anchor, 1)
            extra += n - 1
            if extra > MAX_ALIAS_NODES and problem is None:
                problem = (f"its aliases would repeat more than {MAX_ALIAS_NODES:,} nodes (an alias bomb?); "
                           "write the repeated values out", [f[1] for f in stack], ev.start_mark)
                break
            if stack and stack[-1][0] and stack[-1][2]:
                stack[-1][1] = "?"
            add(n)
    if problem:
        reason, parts, mark = problem
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise InputRefused(where + reason, _short([p for p in parts if p is not None]),
                           one_line(top_id) if top_id else None)

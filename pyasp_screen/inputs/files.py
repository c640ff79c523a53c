"""Stage 1 of the pipeline: record files and folders, read into validated records.

:func:`load_file` reads one file: a native record (YAML or JSON; one record, a list, or
``{"patients": [...]}``, validated by :func:`pyasp_screen.inputs.record.parse_record`), a FHIR
R4 Bundle (mapped by :mod:`pyasp_screen.inputs.fhir`), or JSON Lines (``.jsonl``,
``.ndjson``: a record per line, :func:`record_from_line`). :func:`walk_inputs` says what every
path given is: a record file, a JSON Lines file, a FHIR Bulk Data export folder, or a folder
walked for them (sorted, recursive; other files are named in a note, never skipped
silently). :func:`load_paths` reads them all except Bulk exports
(:mod:`pyasp_screen.inputs.sources` reads every kind).

Every reader applies the bounds of :mod:`pyasp_screen.inputs.limits` (size, nesting depth,
YAML aliases; regular files only inside folders). Nothing here raises for bad content: each
problem is one :class:`~pyasp_screen.inputs.record.RecordError` and reading goes on.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import msgspec
import yaml

from pyasp_screen.inputs.bulk import is_bulk_export
from pyasp_screen.inputs.limits import (
    InputRefused,
    decode_json,
    display_path,
    id_problem,
    iter_lines,
    load_yaml,
    open_input,
    read_input,
)
from pyasp_screen.inputs.record import Loaded, Record, RecordError, parse_record
from pyasp_screen.knowledge.vocabulary import Vocabulary

RECORD_SUFFIXES = (".yaml", ".yml", ".json")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
EXPECTED_SUFFIXES = (".expected.yaml", ".expected.yml")  # a test case's expectations (authoring)

Notify = Callable[[str], None]


def _is_fhir(data: object) -> bool:
    return isinstance(data, dict) and data.get("resourceType") == "Bundle"


def _own_date(result: Loaded | RecordError, screening_date: dt.date | None) -> Loaded | RecordError:
    """A native record keeps its own screening_date (every dated entry is checked against
    it): a --screening-date that differs is said in a note (docs/records.md), never silent."""
    if screening_date is not None and isinstance(result, Loaded) \
            and result.record.screening_date != screening_date:
        result.record.mapping_notes.append(
            f"--screening-date {screening_date.isoformat()} not used: this native record carries its "
            f"own screening_date ({result.record.screening_date.isoformat()}), which its dates are "
            "checked against; --screening-date applies to FHIR and OMOP input")
    return result


def _not_a_bundle(data: object, file: str) -> RecordError | None:
    """The error for a FHIR resource that is not a Bundle (a native record has no
    resourceType): a lone Patient, a misspelt 'Bundle', another resource; else None."""
    if not isinstance(data, dict) or "resourceType" not in data or _is_fhir(data):
        return None
    rt = data["resourceType"]
    pid = data.get("id") if isinstance(data.get("id"), str) and data.get("id") else None
    if rt == "Patient":
        return RecordError(file, pid, None, "a lone FHIR Patient resource: pyasp-screen reads a Bundle "
                           "of the patient's resources (or a Bulk export folder); see docs/records.md")
    return RecordError(file, None, None,
                       f"resourceType {rt!r} is not a FHIR Bundle (expected 'Bundle'); see docs/records.md")


def _from_data(data: object, file: str, screening_date: dt.date | None,
               vocabulary: Vocabulary | None = None, validate_fhir: bool = False) -> Loaded | RecordError:
    """One record from decoded JSON/YAML: a FHIR Bundle mapped (with ``vocabulary``'s codes;
    ``validate_fhir``: also validated with fhir.resources), or a native record."""
    wrong = _not_a_bundle(data, file)
    if wrong is not None:
        return wrong
    if _is_fhir(data):
        from pyasp_screen.inputs import (
            fhir,  # FHIR parsing is heavy: import only when needed
        )

        result = fhir.bundle_to_record(data, file, screening_date, vocabulary, validate=validate_fhir)
        return result if isinstance(result, RecordError) else parse_record(result, file)
    return _own_date(parse_record(data, file), screening_date)


def load_file(path: Path, screening_date: dt.date | None = None,
              vocabulary: Vocabulary | None = None, *, validate_fhir: bool = False,
              in_folder: bool = False) -> Iterator[Loaded | RecordError]:
    """Yield every record of one file (native YAML/JSON, FHIR Bundle, or JSON Lines by its
    suffix), or its errors. ``vocabulary``: the codes a FHIR Bundle is mapped with (default:
    the shared library's); ``validate_fhir``: also validate FHIR with fhir.resources.
    ``in_folder``: the file was found in a folder (then only a regular file is read; see
    :func:`pyasp_screen.inputs.limits.open_input`).

    Never raises for bad content: malformed YAML/JSON, a file too large or too deep, yields
    one RecordError for the file; each invalid record yields its own RecordError and the
    others are still yielded.
    """
    file = display_path(path)
    if path.suffix.lower() in JSONL_SUFFIXES:
        for item in iter_json_lines(path, in_folder=in_folder):
            yield item if isinstance(item, RecordError) else record_from_line(
                item[1], item[0], screening_date, vocabulary, validate_fhir=validate_fhir)
        return
    try:
        raw = read_input(path, in_folder=in_folder)
    except InputRefused as e:
        yield RecordError(file, None, None, e.reason)
        return
    except OSError as e:
        yield RecordError(file, None, None, f"cannot read file: {e.strerror or e}")
        return
    if path.suffix.lower() == ".json":
        records = _valid_records(raw)
        if records is not None:
            for record in records:
                yield _own_date(Loaded(file, record), screening_date)
            return
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark is tolerated
    except UnicodeDecodeError:
        yield RecordError(file, None, None, "not a text file (records are UTF-8 YAML or JSON)")
        return
    try:
        data = decode_json(text) if path.suffix.lower() == ".json" else load_yaml(text)
    except InputRefused as e:
        yield RecordError(file, e.patient, e.field, e.reason)
        return
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        yield RecordError(file, None, None, f"malformed YAML: {where}{problem}")
        return
    except ValueError as e:  # JSON syntax; YAML dates like 2026-02-30; JSON numbers of 5000 digits
        if hasattr(e, "lineno"):
            yield RecordError(file, None, None, f"malformed JSON: line {e.lineno}, column {e.colno}: {e.msg}")
        else:
            yield RecordError(file, None, None, f"malformed {path.suffix.lstrip('.').upper() or 'record'}: {e}")
        return
    if _is_fhir(data):
        yield _from_data(data, file, screening_date, vocabulary, validate_fhir)
        return
    wrong = _not_a_bundle(data, file)
    if wrong is not None:
        yield wrong
        return
    if isinstance(data, dict) and "patients" in data and "id" not in data:
        data = data["patients"]
    if isinstance(data, list):
        if not data:
            yield RecordError(file, None, None, "the file holds no record (an empty list)")
        for i, item in enumerate(data):
            if _is_fhir(item):
                yield RecordError(file, None, f"[{i}]", "FHIR Bundles must be one per file")
                continue
            result = parse_record(item, file)
            if isinstance(result, RecordError) and result.patient is None:
                result = RecordError(file, f"#{i + 1}", result.field, result.reason)
            yield _own_date(result, screening_date)
    elif data is None:
        yield RecordError(file, None, None, "the file is empty")
    else:
        yield _own_date(parse_record(data, file), screening_date)


class _Patients(msgspec.Struct, forbid_unknown_fields=True):
    """A record file's ``{"patients": [...]}`` with nothing else in it."""

    patients: list[Record]


_RECORDS_DECODER = msgspec.json.Decoder(Union[list[Record], Record], strict=False)
_PATIENTS_DECODER = msgspec.json.Decoder(_Patients, strict=False)


def _valid_records(raw: bytes) -> list[Record] | None:
    """The records of a JSON record file when every one of them is valid (a record, a
    non-empty list of records, or ``{"patients": [...]}``), decoded straight into Records by
    msgspec; None for anything else, which the general path of :func:`load_file` reads and
    names problem by problem.

    The same records as the general path (json, :func:`~pyasp_screen.inputs.limits.check_tree`,
    :func:`~pyasp_screen.inputs.record.parse_record`): msgspec's decoding with ``strict=False``
    is the conversion parse_record makes, and what check_tree refuses cannot pass it: a
    record nests a few levels only, msgspec refuses NaN and Infinity (not JSON), numbers out
    of a float's range, lone surrogates (escaped or as bytes) and invalid UTF-8 (a byte-order
    mark too). IDs are checked as parse_record checks them; any doubt goes the general way."""
    try:
        decoded = _RECORDS_DECODER.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        try:
            decoded = _PATIENTS_DECODER.decode(raw).patients
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            return None
    records = decoded if isinstance(decoded, list) else [decoded]
    if not records or not all(r.id.strip() and id_problem(r.id) is None for r in records):
        return None
    return records


# ---------------------------------------------------------------------------------------
# JSON Lines: one record per line

def iter_json_lines(path: Path, *, in_folder: bool = False) -> Iterator[tuple[str, bytes] | RecordError]:
    """(``path:line``, raw line) for every non-blank line of a JSON Lines file, undecoded; a
    file that cannot be read, or a line too long, is a RecordError in its place. A
    byte-order mark on the first line is dropped."""
    name = display_path(path)
    try:
        fh = open_input(path, in_folder=in_folder)
    except InputRefused as e:
        yield RecordError(name, None, None, e.reason)
        return
    except OSError as e:
        yield RecordError(name, None, None, f"cannot read file: {e.strerror or e}")
        return
    lines = 0
    with fh:
        try:
            for n, line in iter_lines(fh):
                if isinstance(line, InputRefused):
                    lines += 1
                    yield RecordError(f"{name}:{n}", None, None, line.reason)
                    continue
                if n == 1 and line.startswith(b"\xef\xbb\xbf"):
                    line = line[3:]
                if line.strip():
                    lines += 1
                    yield f"{name}:{n}", line
        except OSError as e:
            yield RecordError(name, None, None, f"cannot read file: {e.strerror or e}")
            return
    if not lines:
        yield RecordError(name, None, None, "the file holds no record (JSON Lines: one record per line)")


_RECORD_DECODER = msgspec.json.Decoder(Record, strict=False)


def record_from_line(data: bytes, file: str, screening_date: dt.date | None = None,
                     vocabulary: Vocabulary | None = None, *, validate_fhir: bool = False) -> Loaded | RecordError:
    """One JSON Lines record (a native record or a FHIR Bundle, mapped with ``vocabulary``),
    validated; ``file`` is ``path:line``. Never raises for bad content."""
    # The fast path: a valid native record decodes straight into a Record. Anything else
    # (invalid, a FHIR Bundle, an empty or unprintable id, too deep for msgspec) goes the
    # general way below, which names the problem exactly as for a record file.
    try:
        record = _RECORD_DECODER.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        record = None
    if record is not None and record.id.strip() and id_problem(record.id) is None:
        return _own_date(Loaded(file, record), screening_date)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return RecordError(file, None, None, f"not UTF-8 text (byte 0x{data[e.start]:02x} "
                           f"at column {e.start + 1}); JSON Lines files are UTF-8")
    try:
        decoded = decode_json(text)
    except InputRefused as e:
        return RecordError(file, e.patient, e.field, e.reason)
    except ValueError as e:
        if _cut_short(text):
            return RecordError(file, None, None, f"malformed JSON: the line ends after {len(text.rstrip())} "
                               "characters, inside its record (cut short?)")
        msg = getattr(e, "msg", str(e))
        col = getattr(e, "colno", None)
        return RecordError(file, None, None, f"malformed JSON{f' at column {col}' if col else ''}: {msg}")
    return _from_data(decoded, file, screening_date, vocabulary, validate_fhir)


def _cut_short(text: str) -> bool:
    """Does ``text`` end inside a JSON string, object or array that it opened (a line cut
    off, as by a copy that stopped)? Only asked of text that does not decode."""
    depth, in_string, escaped = 0, False, False
    for ch in text.rstrip("\r\n"):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth < 0:
                return False
    return in_string or depth > 0


# ---------------------------------------------------------------------------------------
# Paths: files, folders, exports

@dataclass(frozen=True)
class Found:
    """One input: ``kind`` is ``record`` (a YAML/JSON file), ``jsonl`` (JSON Lines) or
    ``bulk`` (a FHIR Bulk Data export folder); ``in_folder``: found by walking a folder."""

    path: Path
    kind: str
    in_folder: bool = False


def _kind(path: Path) -> str:
    return "jsonl" if path.suffix.lower() in JSONL_SUFFIXES else "record"


def walk_inputs(paths: list[Path], notify: Notify | None = None) -> Iterator[Found | RecordError]:
    """What to read for every path given, in a stable order: a file as given (its kind by
    its suffix), a Bulk export folder as one input, any other folder walked (entries sorted
    by name, subfolders in place; a Bulk export inside is read as one). In folders, files
    that are not record files are named to ``notify`` (one note per folder), test-case
    expectations (``*.expected.yaml``) excepted; a symbolic link that loops is not followed.
    A missing path, or a folder with nothing to read, is a RecordError."""
    for p in paths:
        if p.is_dir():
            if is_bulk_export(p):
                yield Found(p, "bulk")
                continue
            found = 0
            for item in _walk_folder(p, set(), notify):
                found += isinstance(item, Found)
                yield item
            if not found:
                yield RecordError(display_path(p), None, None,
                                  "folder holds no .yaml/.yml/.json/.jsonl record and no FHIR Bulk export")
        elif p.exists():
            yield Found(p, _kind(p))
        else:
            yield RecordError(display_path(p), None, None, "no such file or folder")


def _walk_folder(folder: Path, seen: set, notify: Notify | None) -> Iterator[Found | RecordError]:
    try:
        st = folder.stat()
        if (st.st_dev, st.st_ino) in seen:
            if notify:
                notify(f"{display_path(folder)}: a symbolic link back to a folder being read; not followed")
            return
        seen = seen | {(st.st_dev, st.st_ino)}
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as e:
        yield RecordError(display_path(folder), None, None, f"cannot read the folder: {e.strerror or e}")
        return
    others: list[str] = []
    for entry in entries:
        path = Path(entry.path)
        name = entry.name.lower()
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            if is_bulk_export(path):
                yield Found(path, "bulk", in_folder=True)
            else:
                yield from _walk_folder(path, seen, notify)
        elif name.endswith(EXPECTED_SUFFIXES):
            continue
        elif name.endswith(RECORD_SUFFIXES) or name.endswith(JSONL_SUFFIXES):
            yield Found(path, _kind(path), in_folder=True)
        else:
            others.append(display_path(entry.name))
    if others and notify:
        shown = ", ".join(others[:5]) + (f", ... ({len(others) - 5} more)" if len(others) > 5 else "")
        notify(f"{display_path(folder)}: {len(others)} file{'s' * (len(others) != 1)} not read (not a record "
               f"file: {' '.join(RECORD_SUFFIXES + JSONL_SUFFIXES)}): {shown}")


def expand_paths(paths: list[Path], notify: Notify | None = None) -> Iterator[Path | RecordError]:
    """The files of :func:`walk_inputs` as paths (a Bulk export folder as its own path)."""
    for f in walk_inputs(paths, notify):
        yield f if isinstance(f, RecordError) else f.path


def load_paths(paths: list[Path], screening_date: dt.date | None = None,
               vocabulary: Vocabulary | None = None, notify: Notify | None = None) -> Iterator[Loaded | RecordError]:
    """Every record of every file and folder given, in order. ``screening_date`` applies
    to FHIR Bundles (native records carry their own). A FHIR Bulk export is read by
    :func:`pyasp_screen.inputs.sources.iter_items` only."""
    for f in walk_inputs(paths, notify):
        if isinstance(f, RecordError):
            yield f
        elif f.kind == "bulk":
            yield RecordError(display_path(f.path), None, None, "a FHIR Bulk Data export: read it with "
                              "pyasp_screen.inputs.sources.iter_items (as cohort does)")
        else:
            yield from load_file(f.path, screening_date, vocabulary, in_folder=f.in_folder)


__all__ = ["Found", "expand_paths", "iter_json_lines", "load_file", "load_paths",
           "record_from_line", "walk_inputs"]

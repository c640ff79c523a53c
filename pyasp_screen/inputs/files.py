"""Stage 1 of the pipeline: record files and folders, read into validated records.

:func:`load_file` reads one file: a native record (YAML or JSON; one record, a list, or
``{"patients": [...]}``, validated by :func:`pyasp_screen.inputs.record.parse_record`) or a FHIR
R4 Bundle (mapped by :mod:`pyasp_screen.inputs.fhir`). :func:`expand_paths` and
:func:`load_paths` walk files and folders. Nothing here raises for bad content: each problem
is one :class:`~pyasp_screen.inputs.record.RecordError` and reading goes on.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import yaml

from pyasp_screen.inputs.record import Loaded, RecordError, parse_record
from pyasp_screen.knowledge.vocabulary import Vocabulary


def _is_fhir(data: object) -> bool:
    return isinstance(data, dict) and data.get("resourceType") == "Bundle"


def _parse_text(path: Path, text: str) -> object:
    if path.suffix.lower() == ".json":
        return json.loads(text)
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def load_file(path: Path, screening_date: dt.date | None = None,
              vocabulary: Vocabulary | None = None, *,
              validate_fhir: bool = False) -> Iterator[Loaded | RecordError]:
    """Yield every record of one file (native YAML/JSON or FHIR Bundle), or its errors.
    ``vocabulary``: the codes a FHIR Bundle is mapped with (default: the shared library's).

    Never raises for bad content: malformed YAML/JSON yields one RecordError for the file;
    each invalid record yields its own RecordError and the others are still yielded.
    """
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is tolerated
    except UnicodeDecodeError:
        yield RecordError(file, None, None, "not a text file (records are UTF-8 YAML or JSON)")
        return
    except OSError as e:
        yield RecordError(file, None, None, f"cannot read file: {e.strerror or e}")
        return
    try:
        data = _parse_text(path, text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        yield RecordError(file, None, None, f"malformed YAML: {where}{problem}")
        return
    except json.JSONDecodeError as e:
        yield RecordError(file, None, None, f"malformed JSON: line {e.lineno}, column {e.colno}: {e.msg}")
        return
    except ValueError as e:  # YAML dates like 2026-02-30, JSON numbers of 5000 digits
        yield RecordError(file, None, None, f"malformed {path.suffix.lstrip('.').upper() or 'record'}: {e}")
        return
    if _is_fhir(data):
        from pyasp_screen.inputs import (
            fhir,  # FHIR parsing is heavy: import only when needed
        )

        result = fhir.bundle_to_record(data, file, screening_date, vocabulary, validate=validate_fhir)
        yield result if isinstance(result, RecordError) else parse_record(result, file)
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
            yield result
    elif data is None:
        yield RecordError(file, None, None, "the file is empty")
    else:
        yield parse_record(data, file)


RECORD_SUFFIXES = (".yaml", ".yml", ".json")


def expand_paths(paths: list[Path]) -> Iterator[Path | RecordError]:
    """Files as given, folders expanded to their record files (sorted, recursive); a missing
    path yields a RecordError."""
    for p in paths:
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.suffix.lower() in RECORD_SUFFIXES
                           and not f.name.endswith((".expected.yaml", ".expected.yml")))
            if not files:
                yield RecordError(str(p), None, None, "folder holds no .yaml/.yml/.json record")
            yield from files
        elif p.exists():
            yield p
        else:
            yield RecordError(str(p), None, None, "no such file or folder")


def load_paths(paths: list[Path], screening_date: dt.date | None = None,
               vocabulary: Vocabulary | None = None) -> Iterator[Loaded | RecordError]:
    """Every record of every file and folder given, in order. ``screening_date`` applies
    to FHIR Bundles (native records carry their own)."""
    for p in expand_paths(paths):
        if isinstance(p, RecordError):
            yield p
        else:
            yield from load_file(p, screening_date, vocabulary)

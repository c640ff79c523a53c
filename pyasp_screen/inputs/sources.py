"""Stage 1 at cohort scale: the records of a run as a stream of work items, in a stable order.

A cohort run reads, besides record files and folders (:func:`pyasp_screen.inputs.record.load_paths`):

- **JSON Lines** of native records (``.jsonl``, or ``.ndjson`` whose lines are not FHIR
  resources): one record per line, https://jsonlines.org/;
- a **FHIR Bulk Data export** folder (Patient.ndjson, Observation.ndjson, ...; FHIR Bulk
  Data Access IG, https://hl7.org/fhir/uv/bulkdata/), joined per patient by
  :mod:`pyasp_screen.inputs.bulk` in memory bounded by a partition, not by the export.

The expensive part of reading (JSON decoding, record validation, FHIR mapping) is *not*
done here: an item is a raw line or a patient's raw resources, turned into a record by
:func:`materialize` in whichever process screens it. What this module does in the main
process is cheap: split files into lines and find each item's patient ID
(:func:`patient_of`), so duplicates are caught before any work is shipped.

The order of items is a pure function of the inputs (files in the order given, folders
sorted, lines in file order, a Bulk export in :mod:`pyasp_screen.inputs.bulk`'s order), which is
what lets ``--resume`` skip the first N items of a run.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec

from pyasp_screen.inputs.files import expand_paths, load_file
from pyasp_screen.inputs.record import Loaded, Record, RecordError, parse_record
from pyasp_screen.knowledge.vocabulary import Vocabulary

JSONL_SUFFIXES = (".jsonl", ".ndjson")


@dataclass(frozen=True, slots=True)
class RawLine:
    """One line of a JSON Lines file, not yet decoded. ``file`` is ``path:line``."""

    file: str
    data: bytes


class _IdOnly(msgspec.Struct):
    """What the main process decodes of a JSON Lines record: its ``id`` only."""

    id: object = None


_ID_DECODER = msgspec.json.Decoder(_IdOnly)
_RECORD_DECODER = msgspec.json.Decoder(Record, strict=False)


def _is_bulk_export(path: Path) -> bool:
    from pyasp_screen.inputs.bulk import is_bulk_export

    return is_bulk_export(path)


def _first_line(path: Path) -> bytes:
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                return line
    return b""


def iter_jsonl(path: Path) -> Iterator[RawLine | RecordError]:
    """The records of a JSON Lines file as raw lines; blank lines are skipped (their number
    still counts). A FHIR Bulk resource file given on its own is refused as a whole: it has
    to be read with its export folder, where its patients are."""
    try:
        first = _first_line(path)
    except OSError as e:
        yield RecordError(str(path), None, None, f"cannot read file: {e.strerror or e}")
        return
    try:
        head = json.loads(first.removeprefix(b"\xef\xbb\xbf")) if first else None
    except ValueError:
        head = None
    if isinstance(head, dict) and "resourceType" in head and head["resourceType"] != "Bundle":
        yield RecordError(str(path), None, None,
                          f"this is a FHIR Bulk Data file ({head['resourceType']} resources): give the "
                          "folder that holds it and its Patient file, so its resources are joined to patients")
        return
    lines = 0
    with open(path, "rb") as fh:
        for n, line in enumerate(fh, 1):
            if n == 1 and line.startswith(b"\xef\xbb\xbf"):  # a byte-order mark is tolerated
                line = line[3:]
            if line.strip():
                lines += 1
                yield RawLine(f"{path}:{n}", line)
    if not lines:
        yield RecordError(str(path), None, None, "the file holds no record (JSON Lines: one record per line)")


def iter_items(paths: list[Path], screening_date: dt.date | None = None,
               workdir: Path | None = None,
               vocabulary: Vocabulary | None = None, *,
               validate_fhir: bool = False) -> Iterator[Loaded | RecordError | RawLine | object]:
    """Every work item of every input, in a stable order: Loaded / RecordError for record
    files, RawLine for JSON Lines, :class:`pyasp_screen.inputs.bulk.PatientResources` for a Bulk
    export folder, :class:`pyasp_screen.inputs.omop.OmopPerson` for an OMOP database
    (:class:`pyasp_screen.inputs.omop.source.OmopSource`). ``workdir`` holds a Bulk export's
    temporary partitions."""
    for p in paths:
        if not isinstance(p, Path):  # an OMOP database: its persons, ordered by person_id
            yield from p.persons(vocabulary)
            continue
        if p.is_dir() and _is_bulk_export(p):
            from pyasp_screen.inputs.bulk import iter_bulk_patients

            yield from iter_bulk_patients(p, workdir=workdir)
            continue
        if p.is_file() and p.suffix.lower() in JSONL_SUFFIXES:
            yield from iter_jsonl(p)
            continue
        for f in expand_paths([p]):
            if isinstance(f, RecordError):
                yield f
            elif f.suffix.lower() in JSONL_SUFFIXES:
                yield from iter_jsonl(f)
            else:
                yield from load_file(f, screening_date, vocabulary, validate_fhir=validate_fhir)


def count_hint(paths: list[Path]) -> int | None:
    """The number of items a run will have, when it is cheap to know (JSON Lines files:
    their line count), for a progress bar; None when it is not."""
    total = 0
    for p in paths:
        if not isinstance(p, Path):  # an OMOP database: its person rows
            total += p.count()
            continue
        if not (p.is_file() and p.suffix.lower() in JSONL_SUFFIXES):
            return None
        try:
            with open(p, "rb") as fh:
                total += sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 22), b""))
        except OSError:
            return None
    return total


def patient_of(item: object) -> str | None:
    """The patient ID of an item, decoded as cheaply as possible (None if it has none)."""
    if isinstance(item, Loaded):
        return item.record.id
    if isinstance(item, RawLine):
        try:
            pid = _ID_DECODER.decode(item.data).id
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        return pid if isinstance(pid, str) else None
    return getattr(item, "patient", None)


def materialize(item: object, screening_date: dt.date | None = None,
                vocabulary: Vocabulary | None = None, *, validate_fhir: bool = False) -> Loaded | RecordError:
    """Turn a work item into a validated record (in the process that screens it).
    ``vocabulary``: the codes FHIR resources are mapped with (default: the shared library's);
    ``validate_fhir``: also validate FHIR resources with fhir.resources."""
    if isinstance(item, (Loaded, RecordError)):
        return item
    if isinstance(item, RawLine):
        # The fast path: a valid native record decodes straight into a Record. Anything else
        # (invalid, a FHIR Bundle, an empty id) goes the general way below, which names the
        # problem exactly as for a record file.
        try:
            record = _RECORD_DECODER.decode(item.data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            record = None
        if record is not None and record.id.strip():
            return Loaded(item.file, record)
        try:
            text = item.data.decode("utf-8")
        except UnicodeDecodeError as e:
            return RecordError(item.file, None, None, f"not UTF-8 text (byte 0x{item.data[e.start]:02x} "
                               f"at column {e.start + 1}); JSON Lines files are UTF-8")
        try:
            data = json.loads(text)
        except ValueError as e:
            msg = getattr(e, "msg", str(e))
            col = getattr(e, "colno", None)
            return RecordError(item.file, None, None,
                               f"malformed JSON{f' at column {col}' if col else ''}: {msg}")
        if isinstance(data, dict) and data.get("resourceType") == "Bundle":
            from pyasp_screen.inputs import fhir

            result = fhir.bundle_to_record(data, item.file, screening_date, vocabulary, validate=validate_fhir)
            return result if isinstance(result, RecordError) else parse_record(result, item.file)
        return parse_record(data, item.file)
    from pyasp_screen.inputs.omop import OmopPerson

    if isinstance(item, OmopPerson):
        from pyasp_screen.inputs.omop.mapping import to_record as omop_record

        return omop_record(item, screening_date, vocabulary)
    from pyasp_screen.inputs.bulk import to_record

    return to_record(item, screening_date, vocabulary, validate=validate_fhir)

"""Stage 1 at cohort scale: the records of a run as a stream of work items, in a stable order.

A cohort run reads, besides record files and folders (:func:`pyasp_screen.inputs.files.load_paths`):

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
what lets ``--resume`` skip the first N items of a run. Folders are walked by
:func:`pyasp_screen.inputs.files.walk_inputs` (JSON Lines files and Bulk exports inside them
are read too; other files are named in a note), and every reader keeps the bounds of
:mod:`pyasp_screen.inputs.limits`.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec

from pyasp_screen.inputs.files import (
    JSONL_SUFFIXES,
    Notify,
    iter_json_lines,
    load_file,
    record_from_line,
    walk_inputs,
)
from pyasp_screen.inputs.limits import display_path
from pyasp_screen.inputs.record import Loaded, RecordError
from pyasp_screen.knowledge.vocabulary import Vocabulary


@dataclass(frozen=True, slots=True)
class RawLine:
    """One line of a JSON Lines file, not yet decoded. ``file`` is ``path:line``."""

    file: str
    data: bytes


class _IdOnly(msgspec.Struct):
    """What the main process decodes of a JSON Lines record: its ``id`` only."""

    id: object = None


class _TypeOnly(msgspec.Struct):
    resourceType: object = None


_ID_DECODER = msgspec.json.Decoder(_IdOnly)
_TYPE_DECODER = msgspec.json.Decoder(_TypeOnly)


def _resource_type(line: bytes) -> object:
    try:
        return _TYPE_DECODER.decode(line.removeprefix(b"\xef\xbb\xbf")).resourceType
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None


def iter_jsonl(path: Path, *, in_folder: bool = False) -> Iterator[RawLine | RecordError]:
    """The records of a JSON Lines file as raw lines; blank lines are skipped (their number
    still counts), a line too long is its RecordError. A FHIR Bulk resource file given on its
    own is refused as a whole: it has to be read with its export folder, where its patients
    are."""
    lines = iter_json_lines(path, in_folder=in_folder)
    first = next(lines, None)
    if first is None:
        return
    if not isinstance(first, RecordError):
        rt = _resource_type(first[1])
        if isinstance(rt, str) and rt and rt != "Bundle":
            yield RecordError(display_path(path), None, None,
                              f"this is a FHIR Bulk Data file ({rt} resources): give the folder that "
                              "holds it and its Patient file, so its resources are joined to patients")
            return
    for item in itertools.chain([first], lines):
        yield item if isinstance(item, RecordError) else RawLine(*item)


def iter_items(paths: list[Path], screening_date: dt.date | None = None,
               workdir: Path | None = None, vocabulary: Vocabulary | None = None, *,
               validate_fhir: bool = False, notify: Notify | None = None,
               ) -> Iterator[Loaded | RecordError | RawLine | object]:
    """Every work item of every input, in a stable order: Loaded / RecordError for record
    files, RawLine for JSON Lines, :class:`pyasp_screen.inputs.bulk.PatientResources` for a Bulk
    export folder (also one inside a folder given), :class:`pyasp_screen.inputs.omop.OmopPerson`
    for an OMOP database (:class:`pyasp_screen.inputs.omop.source.OmopSource`). ``workdir``
    holds a Bulk export's temporary partitions; ``vocabulary`` maps the FHIR codes of Bundle files
    (default: the shared library's); ``notify`` is told of files in folders that are not read."""
    for p in paths:
        if not isinstance(p, Path):  # an OMOP database: its persons, ordered by person_id
            yield from p.persons(vocabulary)
        else:
            yield from _iter_path(p, screening_date, workdir, vocabulary, validate_fhir, notify)


def _iter_path(path: Path, screening_date, workdir, vocabulary, validate_fhir, notify):
    """The work items of one file or folder given (iter_items)."""
    for found in walk_inputs([path], notify):
        if isinstance(found, RecordError):
            yield found
        elif found.kind == "bulk":
            from pyasp_screen.inputs.bulk import export_diagnostics, iter_bulk_patients

            if found.in_folder and notify:  # (the command shows those of an export it is given)
                for line in export_diagnostics(found.path):
                    notify(f"{display_path(found.path)}: export diagnostics (what the export reports; "
                           f"not errors): {line}")
            yield from iter_bulk_patients(found.path, workdir=workdir)
        elif found.kind == "jsonl":
            yield from iter_jsonl(found.path, in_folder=found.in_folder)
        else:
            yield from load_file(found.path, screening_date, vocabulary, validate_fhir=validate_fhir,
                                 in_folder=found.in_folder)


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
    """The patient ID of an item, decoded as cheaply as possible (None if it has none).
    Never raises."""
    if isinstance(item, Loaded):
        return item.record.id
    if isinstance(item, RawLine):
        try:
            pid = _ID_DECODER.decode(item.data).id
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            return None
        return pid if isinstance(pid, str) else None
    pid = getattr(item, "patient", None)
    return pid if isinstance(pid, str) else None


def materialize(item: object, screening_date: dt.date | None = None,
                vocabulary: Vocabulary | None = None, *, validate_fhir: bool = False) -> Loaded | RecordError:
    """Turn a work item into a validated record (in the process that screens it), FHIR codes
    mapped with ``vocabulary`` (default: the shared library's); ``validate_fhir``: also
    validate FHIR resources with fhir.resources. Never raises: a failure of ours on one
    record rejects that record, with the reason, and the run goes on."""
    try:
        if isinstance(item, (Loaded, RecordError)):
            return item
        if isinstance(item, RawLine):
            return record_from_line(item.data, item.file, screening_date, vocabulary, validate_fhir=validate_fhir)
        from pyasp_screen.inputs.bulk import to_record

        from pyasp_screen.inputs.omop import OmopPerson

        if isinstance(item, OmopPerson):
            from pyasp_screen.inputs.omop.mapping import to_record as omop_record

            return omop_record(item, screening_date, vocabulary)
        return to_record(item, screening_date, vocabulary, validate=validate_fhir)
    except Exception as e:  # noqa: BLE001 - reported per record, the run goes on
        return RecordError(str(getattr(item, "file", "?")), patient_of(item), None,
                           f"could not be read ({type(e).__name__}: {' '.join(str(e).split())}); "
                           "please report this")

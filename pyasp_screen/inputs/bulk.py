"""FHIR Bulk Data export (NDJSON) -> one patient's resources at a time (stage 1, bulk input).

Source format: the FHIR Bulk Data Access IG (https://hl7.org/fhir/uv/bulkdata/), "$export"
output: a folder of NDJSON files (http://ndjson.org: one JSON resource per line, UTF-8),
one or several files per resource type (``Patient.ndjson``, ``Observation.000.ndjson``,
``Observation.001.ndjson`` ...). The type of each line is its own ``resourceType``; the file
name is only a hint. An output manifest (``*.json``) and any other non-``.ndjson`` file are
ignored.

What is read and joined
    ``Patient`` lines key the patients (``Patient.id``). ``Observation``, ``Condition``,
    ``MedicationStatement`` and ``MedicationRequest`` lines are joined to their patient by
    ``subject.reference``: ``Patient/ID`` (also ``http://host/fhir/Patient/ID`` and
    ``Patient/ID/_history/V``) or ``urn:uuid:ID`` (a transaction-style reference to the
    Patient whose id is ID). Every other resource type (Encounter, Claim, Medication ...) is
    skipped and counted (logged at INFO on the ``pyasp_screen.inputs.bulk`` logger), not an error.
    A MedicationRequest whose drug is only a ``medicationReference`` to a Medication resource
    therefore has no drug here (Medication lines are not joined to patients).

Memory
    :func:`iter_bulk_patients` reads each file once, line by line, decodes only
    ``resourceType``, ``id`` and ``subject.reference`` of each line (a tiny msgspec Struct),
    and appends the raw line to one of K temporary partition files chosen by
    ``zlib.crc32(patient id) % K``, with K = ceil(total .ndjson bytes / partition_bytes).
    Then each partition is loaded alone and grouped by patient. Memory is bounded by the
    largest partition (about ``partition_bytes`` plus Python overhead per line), not by the
    cohort.

Order of output (deterministic for the same export, so a run can be resumed by skipping
the first N outputs)
    First the errors of the reading pass, in file order (files sorted by name, then line).
    Then partition 0, 1, ... K-1; within a partition, patients (and duplicate-Patient errors)
    in the order of their Patient lines (file name, line), then one error per patient id
    that resources refer to but no Patient line has, in the order of its first resource.
    ``PatientResources.lines`` is the Patient line, then Observation, Condition,
    MedicationStatement, MedicationRequest lines, each type in file/line order.

Errors
    Bad input never raises and never stops the stream: each problem is one
    :class:`~pyasp_screen.inputs.record.RecordError` whose ``file`` is ``<folder>/<file>:<line>``.
"""

from __future__ import annotations

import logging
import re
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import msgspec

from pyasp_screen.inputs.limits import InputRefused, display_path, iter_lines, open_input, scan_json_depth
from pyasp_screen.inputs.record import Loaded, RecordError, parse_record
from pyasp_screen.knowledge.vocabulary import Vocabulary

__all__ = ["ExportPlan", "PatientResources", "export_diagnostics", "is_bulk_export",
           "iter_bulk_patients", "plan_export", "to_record"]

log = logging.getLogger(__name__)

PATIENT = "Patient"
#: Resource types joined to their patient, in the order they follow the Patient line.
JOINED = ("Observation", "Condition", "MedicationStatement", "MedicationRequest",
          "MedicationDispense", "MedicationAdministration", "Procedure", "QuestionnaireResponse")
_RANK = {t: i for i, t in enumerate(JOINED)}
_READ = frozenset((PATIENT, *JOINED))
_PATIENT_REF = re.compile(r"(?:^|/)Patient/([^/]+)(?:/_history/[^/]*)?$")
_MIB = 2**20


@dataclass(frozen=True)
class PatientResources:
    """One patient's raw NDJSON lines: the Patient line first, then its other resources."""

    file: str                 # "<export folder>/Patient.ndjson:LINE" where the Patient is
    patient: str              # Patient.id
    lines: tuple[bytes, ...]  # raw lines, Patient first, then the others in a deterministic order


# -- reading one line cheaply -------------------------------------------------------------------

class _Ref(msgspec.Struct):
    reference: str | None = None


class _Head(msgspec.Struct):
    resourceType: str | None = None
    id: str | None = None
    subject: _Ref | None = None


_decode_head = msgspec.json.Decoder(_Head).decode
_decode_any = msgspec.json.Decoder().decode


class _BadLine(Exception):
    """A line that is not a JSON object."""


def _malformed(raw: bytes, e: Exception) -> str:
    """The reason a line does not decode, naming text that is not UTF-8 (NDJSON is UTF-8)."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as u:
        return f"not UTF-8 text (byte 0x{raw[u.start]:02x} at column {u.start + 1}); NDJSON is UTF-8"
    return f"malformed JSON: {e}"


def _head(raw: bytes) -> tuple[str | None, Any, Any]:
    """(resourceType, id, subject.reference) of one line, each None when absent; raises
    _BadLine(reason) for malformed JSON or a line that is not an object. Fast path: a typed
    msgspec decode that skips every other field."""
    try:
        h = _decode_head(raw)
        return h.resourceType, h.id, (h.subject.reference if h.subject is not None else None)
    except msgspec.ValidationError:
        pass  # a field of an unexpected JSON type (or not an object): look again, loosely
    except msgspec.DecodeError as e:
        raise _BadLine(_malformed(raw, e)) from None
    except RecursionError:
        raise _BadLine(scan_json_depth(raw).reason) from None
    try:
        data = _decode_any(raw)
    except msgspec.DecodeError as e:
        raise _BadLine(f"malformed JSON: {e}") from None
    except RecursionError:
        raise _BadLine(scan_json_depth(raw).reason) from None
    if not isinstance(data, dict):
        raise _BadLine(f"a line must be a JSON object (one FHIR resource), got {_json_type(data)}")
    rt = data.get("resourceType")
    subject = data.get("subject")
    ref = subject.get("reference") if isinstance(subject, dict) else None
    return (rt if isinstance(rt, str) else None), data.get("id"), ref


def _json_type(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def _patient_of(ref: str) -> str | None:
    """The Patient id a reference points to, or None if it is not a Patient reference."""
    if ref.startswith("Patient/"):
        pid = ref[8:]
        if pid and "/" not in pid:
            return pid  # the common case, without the regular expression
    elif ref.startswith("urn:uuid:"):
        return ref[9:] or None
    m = _PATIENT_REF.search(ref)
    return m[1] if m else None


def _ndjson_files(folder: Path) -> list[Path]:
    # Not only regular files: a named pipe or a device named *.ndjson is refused by name
    # when it is read (limits.open_input), never skipped silently.
    return sorted((p for p in folder.iterdir() if p.suffix.lower() == ".ndjson" and not p.is_dir()),
                  key=lambda p: p.name)


# -- what the export holds: manifest, resource files, export diagnostics --------------------------

_MANIFEST_MAX = 16 * _MIB


@dataclass(frozen=True)
class ExportPlan:
    """Which files of an export folder hold resources, and what the export says about itself.

    resource_files: the NDJSON files read (in name order); diagnostics: one line per thing
    the export reports about itself (its manifest, its ``log.ndjson`` events, the issues of its
    OperationOutcome error files, files not read and why), for people: not errors."""

    resource_files: tuple[Path, ...]
    diagnostics: tuple[str, ...]
    manifest: Path | None = None


def _manifest(folder: Path) -> tuple[Path, dict] | None:
    """The export's output manifest (Bulk Data IG: a JSON object with an ``output`` list)."""
    for p in sorted(folder.glob("*.json"), key=lambda p: p.name):
        try:
            if not p.is_file() or p.stat().st_size > _MANIFEST_MAX:
                continue
            data = msgspec.json.decode(p.read_bytes())
        except (OSError, msgspec.DecodeError):
            continue
        if isinstance(data, dict) and isinstance(data.get("output"), list):
            return p, data
    return None


def _url_file(url: object) -> str | None:
    from urllib.parse import unquote, urlparse

    if not isinstance(url, str) or not url:
        return None
    name = unquote(urlparse(url).path.rstrip("/").rsplit("/", 1)[-1])
    return name or None


def _first_object(path: Path) -> dict | None | bool:
    """The first non-blank line of a file as a JSON object; False if it is not JSON."""
    try:
        with open_input(path) as fh:  # regular files only, lines of bounded length
            for _, raw in iter_lines(fh):
                if isinstance(raw, InputRefused):
                    return False
                raw = raw.strip().removeprefix(b"\xef\xbb\xbf")
                if raw:
                    try:
                        data = _decode_any(raw)
                    except (msgspec.DecodeError, RecursionError):
                        return False
                    return data if isinstance(data, dict) else False
    except (OSError, InputRefused):
        return False  # read as a resource file: the reader names what is wrong with it
    return None


def _lines_of(path: Path, limit: int = 200) -> list[dict]:
    out = []
    try:
        with open_input(path) as fh:  # regular files only, lines of bounded length
            for _, raw in iter_lines(fh):
                if isinstance(raw, InputRefused):
                    out.append({"_malformed": raw.reason})
                    continue
                raw = raw.strip()
                if not raw:
                    continue
                try:
                    data = _decode_any(raw)
                except (msgspec.DecodeError, RecursionError):
                    out.append({"_malformed": raw[:80].decode("utf-8", "replace")})
                    continue
                out.append(data if isinstance(data, dict) else {"_value": data})
                if len(out) >= limit:
                    break
    except OSError as e:
        out.append({"_error": str(e.strerror or e)})
    except InputRefused as e:
        out.append({"_error": e.reason})
    return out


def _compact(detail: object, width: int = 160) -> str:
    if isinstance(detail, dict):
        text = ", ".join(f"{k} {_compact(v, 60)}" for k, v in detail.items() if v not in (None, "", [], {}))
    elif isinstance(detail, list):
        text = "; ".join(_compact(v, 60) for v in detail)
    else:
        text = str(detail)
    return text if len(text) <= width else text[:width - 3] + "..."


def _log_lines(path: Path) -> list[str]:
    """An export log (log.ndjson: one event per line, as SMART's Bulk Data server writes it)."""
    out = []
    for e in _lines_of(path):
        if "_malformed" in e or "_error" in e or "_value" in e:
            out.append(f"{path.name}: a line that is not an event: {_compact(e)}")
            continue
        event = e.get("eventId") or e.get("event") or "event"
        when = e.get("timestamp") or e.get("time") or ""
        detail = {k: v for k, v in e.items() if k not in ("eventId", "event", "timestamp", "time", "exportId")}
        if isinstance(detail.get("eventDetail"), dict):
            detail = detail["eventDetail"]
        out.append(f"{path.name}: {event}{' at ' + str(when) if when else ''}"
                   + (f": {_compact(detail)}" if detail else ""))
    return out


def _outcome_lines(path: Path) -> list[str]:
    """The issues of an error file (OperationOutcome resources, one per line)."""
    out = []
    for r in _lines_of(path):
        if r.get("resourceType") != "OperationOutcome":
            out.append(f"{path.name}: not an OperationOutcome: {_compact(r, 100)}")
            continue
        for issue in r.get("issue") or [{}]:
            if not isinstance(issue, dict):
                continue
            details = issue.get("details") if isinstance(issue.get("details"), dict) else {}
            text = issue.get("diagnostics") or details.get("text") or ""
            out.append(f"{path.name}: {issue.get('severity', 'issue')} {issue.get('code', '')}"
                       f"{': ' + _compact(text) if text else ''}".rstrip())
    return out


def plan_export(folder: Path) -> ExportPlan:
    """What to read in an export folder (FHIR Bulk Data Access IG, $export output).

    With an output manifest (a ``*.json`` object with an ``output`` list): the files its
    ``output`` names (by the last segment of each ``url``) are read; its ``error`` files are
    OperationOutcome diagnostics; any other ``.ndjson`` is not read (a ``log.ndjson`` is shown
    as the export's log). Without a manifest: a file named after a FHIR resource type
    (``Observation.000.ndjson``), or whose first line is a resource of such a type, is read;
    ``OperationOutcome`` files are diagnostics; a file of JSON objects without a
    ``resourceType`` (``log.ndjson``) is the export's log; a file whose first line is not JSON
    is read, so that its lines are reported one by one. Never raises.
    """
    from pyasp_screen.inputs.fhir import is_resource_type

    folder = Path(folder)
    try:
        ndjson = _ndjson_files(folder)
    except OSError as e:
        return ExportPlan((), (f"cannot read the export folder: {e.strerror or e}",))
    diagnostics: list[str] = []
    found = _manifest(folder)
    if found is not None:
        mpath, m = found
        by_name = {p.name: p for p in ndjson}
        read: list[Path] = []
        types = Counter()
        for o in m["output"]:
            name = _url_file(o.get("url") if isinstance(o, dict) else None)
            if name is None:
                diagnostics.append(f"{mpath.name}: an output entry without a url: {_compact(o, 100)}")
                continue
            if name in by_name:
                if by_name[name] not in read:
                    read.append(by_name[name])
                    types[str(o.get("type", "?"))] += 1
            else:
                diagnostics.append(f"{mpath.name}: output {name} ({o.get('type', '?')}, count "
                                   f"{o.get('count', '?')}) is not in the folder: not read")
        errors = []
        for o in m.get("error") or []:
            name = _url_file(o.get("url") if isinstance(o, dict) else None)
            if name and name in by_name:
                errors.append(by_name[name])
            elif name:
                diagnostics.append(f"{mpath.name}: error file {name} is not in the folder")
        diagnostics.insert(0, f"{mpath.name}: export manifest, transactionTime {m.get('transactionTime', '?')},"
                           f" {len(m['output'])} output files ({', '.join(f'{t} x{n}' for t, n in types.items()) or 'none here'}),"
                           f" {len(m.get('error') or [])} error files")
        for p in errors:
            diagnostics += _outcome_lines(p) or [f"{p.name}: error file with no issue"]
        for p in ndjson:
            if p in read or p in errors:
                continue
            first = _first_object(p)
            if isinstance(first, dict) and "resourceType" not in first:
                diagnostics += _log_lines(p)
            else:
                diagnostics.append(f"{p.name}: not listed in the manifest's output: not read")
        return ExportPlan(tuple(sorted(read, key=lambda p: p.name)), tuple(diagnostics), mpath)
    read = []
    for p in ndjson:
        prefix = p.name.split(".", 1)[0]
        if prefix == "OperationOutcome":
            diagnostics += _outcome_lines(p) or [f"{p.name}: error file with no issue"]
            continue
        if prefix in JOINED or prefix == PATIENT or is_resource_type(prefix):
            read.append(p)
            continue
        first = _first_object(p)
        if isinstance(first, dict) and isinstance(first.get("resourceType"), str):
            if first["resourceType"] == "OperationOutcome":
                diagnostics += _outcome_lines(p)
            else:
                read.append(p)  # named otherwise, but holds resources
        elif isinstance(first, dict):
            diagnostics += _log_lines(p)
        elif first is None:
            diagnostics.append(f"{p.name}: empty")
        else:
            read.append(p)  # not JSON: read, so that each bad line is reported
    return ExportPlan(tuple(read), tuple(diagnostics))


def export_diagnostics(folder: Path) -> list[str]:
    """What an export says about itself (manifest, log, error files), one line each; not errors
    (see :func:`plan_export`)."""
    return list(plan_export(folder).diagnostics)


def is_bulk_export(path: Path) -> bool:
    """True if ``path`` is a folder holding ``*.ndjson`` files: it is then read as an export,
    and whatever is wrong with it (a bad line, no Patient at all) is reported line by line
    rather than the folder being taken for something else. Never raises."""
    try:
        return path.is_dir() and bool(_ndjson_files(path))
    except OSError:
        return False


# -- partitioning ---------------------------------------------------------------------------------

class _Partitions:
    """K append-only partition files, written through one bounded in-memory buffer (so at
    most one file is open at a time whatever K is)."""

    def __init__(self, tmp: Path, k: int, flush_bytes: int):
        self.paths = [tmp / f"part-{i:05d}" for i in range(k)]
        self.k = k
        self.buffers: list[list[bytes]] = [[] for _ in range(k)]
        self.buffered = 0
        self.flush_bytes = flush_bytes

    def add(self, pid: str, item: bytes) -> None:
        i = zlib.crc32(pid.encode("utf-8", "surrogatepass")) % self.k
        self.buffers[i].append(item)
        self.buffered += len(item)
        if self.buffered >= self.flush_bytes:
            self.flush()

    def flush(self) -> None:
        for path, buf in zip(self.paths, self.buffers):
            if buf:
                with path.open("ab") as f:
                    f.writelines(buf)
                buf.clear()
        self.buffered = 0


def _item(rt: str, fidx: int, lineno: int, pid: str, raw: bytes) -> bytes:
    # One partition record per line: type, file index, line, JSON-quoted patient id (no raw
    # tab or newline can occur in it), the raw NDJSON line.
    return b"%s\t%d\t%d\t%s\t%s\n" % (rt.encode(), fidx, lineno, msgspec.json.encode(pid), raw)


def iter_bulk_patients(folder: Path, *, workdir: Path | None = None,
                       partition_bytes: int = 64 * 2**20,
                       ) -> Iterator[PatientResources | RecordError]:
    """Yield every patient of a FHIR Bulk Data export as :class:`PatientResources`, and
    every problem as a one-line :class:`~pyasp_screen.inputs.record.RecordError`.

    ``folder``: the export (``*.ndjson``, FHIR Bulk Data Access IG). ``workdir``: where the
    temporary partition files go (a fresh ``tempfile`` directory inside it, or in the
    system's temp dir when None); they are removed when the generator finishes or is closed
    early. ``partition_bytes``: target size of one partition, which bounds memory.

    Errors (``file`` is ``<folder>/<name>.ndjson:<line>``): malformed JSON; a line that is
    not an object or has no ``resourceType``; a Patient without an id; a joined resource
    without ``subject.reference`` or whose subject is not a Patient; a patient id referred
    to by resources but absent from the Patient lines (one error per such id, with the count
    of its resources); a duplicate Patient id (the first Patient line wins, the later one is
    reported and not used); an export with no ``.ndjson`` file or no Patient. Unknown
    resource types are skipped, counted, not reported. The order of output is described in
    the module docstring and is the same on every run over the same export.
    """
    folder = Path(folder)
    where = str(folder)
    try:
        if not _ndjson_files(folder):
            yield RecordError(where, None, None, "empty FHIR Bulk Data export: no .ndjson file")
            return
    except OSError as e:
        yield RecordError(where, None, None, f"cannot read the export folder: {e.strerror or e}")
        return
    files = list(plan_export(folder).resource_files)
    if not files:
        yield RecordError(where, None, None, "FHIR Bulk Data export without a resource file"
                          " (see its diagnostics: pyasp_screen.inputs.bulk.export_diagnostics)")
        return
    names = [display_path(f) for f in files]
    total = sum(f.stat().st_size for f in files if f.is_file())
    k = max(1, -(-total // max(1, partition_bytes)))
    flush_bytes = max(_MIB // 16, min(partition_bytes, 16 * _MIB))

    with tempfile.TemporaryDirectory(prefix="pyasp-bulk-", dir=workdir) as tmp:
        parts = _Partitions(Path(tmp), k, flush_bytes)
        ignored: Counter = Counter()
        n_patients = n_resources = 0
        for fidx, path in enumerate(files):
            try:
                fh = open_input(path)
            except InputRefused as e:
                yield RecordError(names[fidx], None, None, e.reason)
                continue
            except OSError as e:
                yield RecordError(names[fidx], None, None, f"cannot read file: {e.strerror or e}")
                continue
            with fh:
                for lineno, raw in iter_lines(fh):
                    if isinstance(raw, InputRefused):
                        yield RecordError(f"{names[fidx]}:{lineno}", None, None, raw.reason)
                        continue
                    raw = raw.rstrip(b"\r\n")
                    if lineno == 1:
                        raw = raw.removeprefix(b"\xef\xbb\xbf")
                    if not raw.strip():
                        continue  # a blank line (a trailing newline) carries nothing
                    try:
                        rt, rid, ref = _head(raw)
                    except _BadLine as e:
                        yield RecordError(f"{names[fidx]}:{lineno}", None, None, str(e))
                        continue
                    if not rt:
                        yield RecordError(f"{names[fidx]}:{lineno}", None, "resourceType", "missing resourceType"
                                          " (a FHIR resource names its type): not screened")
                        continue
                    if rt == PATIENT:
                        if not isinstance(rid, str) or not rid.strip():
                            yield RecordError(f"{names[fidx]}:{lineno}", None, "id", "a Patient without an id cannot be"
                                              " joined to its resources")
                            continue
                        n_patients += 1
                        parts.add(rid, _item(rt, fidx, lineno, rid, raw))
                        continue
                    if rt not in _READ:
                        ignored[rt] += 1
                        continue
                    rid = rid if isinstance(rid, str) else None
                    if not isinstance(ref, str) or not ref:
                        yield RecordError(f"{names[fidx]}:{lineno}", None, "subject.reference",
                                          f"{rt}{'/' + rid if rid else ''} has no patient"
                                          " reference: not screened")
                        continue
                    pid = _patient_of(ref)
                    if pid is None:
                        yield RecordError(f"{names[fidx]}:{lineno}", None, "subject.reference",
                                          f"{ref!r} is not a Patient reference: not screened")
                        continue
                    n_resources += 1
                    parts.add(pid, _item(rt, fidx, lineno, pid, raw))
        parts.flush()
        if ignored:
            log.info("%s: resource types not read: %s", where, ", ".join(
                f"{t} x{n}" for t, n in sorted(ignored.items(), key=lambda kv: (-kv[1], kv[0]))))
        if not n_patients:
            yield RecordError(where, None, None, "empty FHIR Bulk Data export: no Patient resource"
                              f" in {len(files)} .ndjson file{'s' * (len(files) != 1)}"
                              f" ({n_resources} resources not joined)")
            return
        for path in parts.paths:
            yield from _partition(path, names)


def _partition(path: Path, names: list[str]) -> Iterator[PatientResources | RecordError]:
    """Group one partition file by patient (see the module docstring for the order)."""
    if not path.exists():
        return
    patients: dict[str, tuple[int, int, bytes]] = {}     # pid -> (file, line, raw)
    events: list[str | RecordError] = []                 # pids and duplicate errors, in order
    others: dict[str, list[tuple[int, int, int, bytes]]] = {}  # pid -> (rank, file, line, raw)
    with path.open("rb") as fh:
        for rec in fh:
            rt, fidx, lineno, pidj, raw = rec.rstrip(b"\n").split(b"\t", 4)
            pid = msgspec.json.decode(pidj)
            if rt == b"Patient":
                first = patients.get(pid)
                if first is None:
                    patients[pid] = (int(fidx), int(lineno), raw)
                    events.append(pid)
                else:
                    events.append(RecordError(
                        f"{names[int(fidx)]}:{int(lineno)}", pid, "id",
                        f"duplicate Patient id (first at {names[first[0]]}:{first[1]}):"
                        " this Patient line is not used"))
            else:
                others.setdefault(pid, []).append(
                    (_RANK[rt.decode()], int(fidx), int(lineno), raw))
    path.unlink()
    for ev in events:
        if isinstance(ev, RecordError):
            yield ev
            continue
        fidx, lineno, raw = patients[ev]
        mine = others.pop(ev, [])
        mine.sort(key=lambda r: r[0])  # stable: file/line order within each type
        yield PatientResources(f"{names[fidx]}:{lineno}", ev, (raw, *(r[3] for r in mine)))
    for pid, orphans in others.items():
        _, fidx, lineno, _ = min(orphans, key=lambda r: (r[1], r[2]))
        kinds = Counter(JOINED[r[0]] for r in orphans)
        n = len(orphans)
        yield RecordError(
            f"{names[fidx]}:{lineno}", pid, "subject.reference",
            f"Patient/{pid} is not in the export's Patient files: its {n} resource"
            f"{'s' * (n != 1)} ({', '.join(f'{t} x{c}' for t, c in kinds.items())})"
            " are not screened")


# -- one patient -> record ------------------------------------------------------------------------

def to_record(p: PatientResources, screening_date: date | None = None,
              vocabulary: Vocabulary | None = None, *, validate: bool = False) -> Loaded | RecordError:
    """Decode and map one patient's lines with :func:`pyasp_screen.inputs.fhir.lines_to_record`
    (typed decoding of the resources read; ``validate`` also validates them with
    fhir.resources), then validate the record with :func:`pyasp_screen.inputs.record.parse_record`.

    The record's ``source`` is ``FHIR Bulk Data export <p.file>``. A RecordError names
    ``p.file`` and the patient; a field inside a resource is named ``<type>/<id>.<field>``.
    Pure function of its arguments, picklable, safe to run in a worker process. Never raises
    for bad content.
    """
    from pyasp_screen.inputs import fhir

    result = fhir.lines_to_record(p.lines, p.file, p.patient, screening_date, vocabulary, validate=validate)
    if isinstance(result, RecordError):
        return result
    return parse_record(result, p.file)

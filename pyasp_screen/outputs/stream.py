"""Stage 6 at cohort scale: one result row per patient, streamed to a file as it is produced.

A cohort or diff run can write every patient's outcome to a *results file* besides its
summary, in the order of the inputs (the ``seq`` field counts items from 0, rejected records
included), so that nothing is lost and an interrupted run can be resumed (``--resume``): the
rows already in the file are read back, a torn last line is cut off, and the run goes on
from the next item.

Formats, chosen by the file's extension:

- ``.jsonl`` (JSON Lines, https://jsonlines.org/): one JSON object per line, the
  *canonical row* below;
- ``.csv``: one line per patient; the same fields flattened to columns (``verdict_<pop>``,
  one column per criterion), newlines in text replaced so a patient is one physical line;
- ``.parquet``: a folder of Parquet part files (Apache Parquet through pyarrow), a
  dataset any Parquet reader opens as one table; a part is complete once it is renamed
  from its ``.tmp`` name, so resuming drops only an unfinished part.

Canonical rows (docs/scale.md), for ``cohort``::

    {"seq": 0, "patient": "P1", "file": "cohort.jsonl:1", "overall": "eligible",
     "verdicts": {"sle": "eligible", ...}, "criteria": {"SLE-IN-1": "met", ...}}

and for ``diff``::

    {"seq": 0, "patient": "P1", "file": "...", "before": {"overall": ..., "sle": ...},
     "after": {...}, "changed": [{"id": "GEN-IN-1", "before": "absent", "after": "met"}]}

A rejected record has ``"overall": "rejected"`` (cohort) and an ``"error"`` object with
field, reason and the one-line message, and no statuses.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec

from pyasp_screen.inputs.record import RecordError
from pyasp_screen.knowledge.kb import KnowledgeBase
from pyasp_screen.extras import MissingExtra, require

FORMATS = {".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet"}
# Rows per Parquet part file (a part is the unit that survives an interruption).
PART_ROWS = int(os.environ.get("PYASP_SCREEN_PARQUET_PART_ROWS", "20000"))


class ResultsError(Exception):
    """A results file that cannot be written, or resumed (a one-line message naming it)."""


def format_of(path: Path) -> str:
    try:
        fmt = FORMATS[path.suffix.lower()]
    except KeyError:
        raise ResultsError(f"{path}: results files end in .jsonl, .csv or .parquet") from None
    if fmt == "parquet":
        try:
            require("pyarrow", "parquet", "a Parquet results file")
        except MissingExtra as e:
            raise ResultsError(f"{path}: {e}") from None
    return fmt


# ---------------------------------------------------------------------------------------
# Rows


def error_row(seq: int, e: RecordError) -> dict:
    return {"seq": seq, "patient": e.patient, "file": e.file, "overall": "rejected",
            "error": {"field": e.field, "reason": e.reason, "message": str(e)}}


def cohort_row(seq: int, file: str, result, kb: KnowledgeBase) -> dict:
    """The canonical row of one screened patient (``result``: an engine Result)."""
    return {"seq": seq, "patient": result.patient, "file": file, "overall": result.overall,
            "verdicts": {p: result.verdicts.get(p, "undetermined") for p in kb.populations},
            "criteria": {c: result.statuses.get(c, "unknown") for c in kb.criterion_ids()}}


def diff_row(seq: int, file: str, a, b, kb_a: KnowledgeBase, kb_b: KnowledgeBase,
             changed: list[tuple[str, str, str]]) -> dict:
    """The canonical row of one patient screened by two knowledge bases (Results a, b), with
    its changed criteria (cohort.changed_criteria: id, before, after)."""
    return {"seq": seq, "patient": a.patient, "file": file,
            "before": {"overall": a.overall, **{p: a.verdicts.get(p, "undetermined") for p in kb_a.populations}},
            "after": {"overall": b.overall, **{p: b.verdicts.get(p, "undetermined") for p in kb_b.populations}},
            "changed": [{"id": c, "before": x, "after": y} for c, x, y in changed]}


@dataclass(frozen=True)
class Layout:
    """The flat columns of a run's rows (CSV, Parquet) and how to fold them back."""

    kind: str                      # cohort | diff
    populations: tuple[str, ...]   # cohort: the KB's; diff: (before's, after's) joined
    criteria: tuple[str, ...]      # cohort only
    populations_after: tuple[str, ...] = ()

    @staticmethod
    def of(kbs: tuple[KnowledgeBase, ...]) -> "Layout":
        if len(kbs) == 1:
            return Layout("cohort", tuple(kbs[0].populations), tuple(kbs[0].criterion_ids()))
        return Layout("diff", tuple(kbs[0].populations), (), tuple(kbs[1].populations))

    def columns(self) -> list[str]:
        if self.kind == "cohort":
            return (["seq", "patient", "file", "overall"] + [f"verdict_{p}" for p in self.populations]
                    + list(self.criteria) + ["error"])
        return (["seq", "patient", "file", "before_overall"] + [f"before_{p}" for p in self.populations]
                + ["after_overall"] + [f"after_{p}" for p in self.populations_after]
                + ["changed", "error"])

    def flatten(self, row: dict) -> list:
        err = row.get("error")
        head = [row["seq"], row["patient"], row["file"]]
        if self.kind == "cohort":
            if err:
                return head + ["rejected"] + [None] * (len(self.populations) + len(self.criteria)) + [err["message"]]
            return (head + [row["overall"]] + [row["verdicts"][p] for p in self.populations]
                    + [row["criteria"][c] for c in self.criteria] + [None])
        if err:
            n = 2 + len(self.populations) + len(self.populations_after)
            return head + [None] * n + [None, err["message"]]
        changed = "; ".join(f"{c['id']}: {c['before']} -> {c['after']}" for c in row["changed"])
        return (head + [row["before"]["overall"]] + [row["before"][p] for p in self.populations]
                + [row["after"]["overall"]] + [row["after"][p] for p in self.populations_after]
                + [changed, None])

    def fold(self, values: dict) -> dict:
        """A canonical row from a flat one (column -> value; "" or None for empty)."""
        seq = int(values["seq"])
        patient = values["patient"] or None
        if values.get("error"):
            return {"seq": seq, "patient": patient, "file": values["file"], "overall": "rejected",
                    "error": {"field": None, "reason": values["error"], "message": values["error"]}}
        if self.kind == "cohort":
            return {"seq": seq, "patient": patient, "file": values["file"], "overall": values["overall"],
                    "verdicts": {p: values[f"verdict_{p}"] for p in self.populations},
                    "criteria": {c: values[c] for c in self.criteria}}
        changed = []
        for part in filter(None, (values.get("changed") or "").split("; ")):
            cid, _, change = part.partition(": ")
            before, _, after = change.partition(" -> ")
            changed.append({"id": cid, "before": before, "after": after})
        return {"seq": seq, "patient": patient, "file": values["file"],
                "before": {"overall": values["before_overall"],
                           **{p: values[f"before_{p}"] for p in self.populations}},
                "after": {"overall": values["after_overall"],
                          **{p: values[f"after_{p}"] for p in self.populations_after}},
                "changed": changed}


# ---------------------------------------------------------------------------------------
# Encoding (done where the rows are made, so the main process only writes bytes)

_JSON = msgspec.json.Encoder()


def _one_line(v):
    return v.replace("\r", " ").replace("\n", " ") if isinstance(v, str) else v


def encode(rows: list[dict], fmt: str, layout: Layout):
    """Rows as the bytes of a .jsonl or .csv file, or a pyarrow Table for Parquet."""
    if fmt == "jsonl":
        return b"".join(_JSON.encode(r) + b"\n" for r in rows)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        for r in rows:
            w.writerow([_one_line(v) for v in layout.flatten(r)])
        return buf.getvalue().encode("utf-8")
    import pyarrow as pa

    cols = layout.columns()
    flat = [layout.flatten(r) for r in rows]
    arrays = {c: [f[i] for f in flat] for i, c in enumerate(cols)}
    schema = pa.schema([(c, pa.int64() if c == "seq" else pa.string()) for c in cols])
    return pa.table(arrays, schema=schema)


# ---------------------------------------------------------------------------------------
# Writing and resuming


def _lock(path: Path, fmt: str) -> int:
    """Take the results file's lock: an exclusive ``flock`` on the file itself (created
    empty if missing, never truncated here) or on the Parquet folder, held by the open
    descriptor returned until the run closes it, and released by the kernel whatever ends
    the run (a kill included). Raises ResultsError if another run holds it."""
    import fcntl

    try:
        if fmt == "parquet":
            if path.exists() and not path.is_dir():
                raise ResultsError(f"{path}: exists and is not a Parquet folder")
            path.mkdir(parents=False, exist_ok=True)
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_CLOEXEC)
        else:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as e:
        raise ResultsError(f"{path}: cannot write: {e.strerror or e}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise ResultsError(f"{path} is in use by another run (a run writing it holds its lock): wait for "
                           "that run to end, or write to another file") from None
    return fd


def run_record_path(path: Path) -> Path:
    """Where a results file's run record is kept: ``FILE.run.json`` beside a .jsonl/.csv
    file, ``_run.json`` inside a Parquet folder."""
    return path / "_run.json" if path.suffix.lower() == ".parquet" else path.with_name(path.name + ".run.json")


def _differences(old, new, where: str = "") -> list[str]:
    """Where two run records differ, as "knowledge_bases[0].name: 'a' then, 'b' now"."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in dict.fromkeys(list(old) + list(new)):
            out += _differences(old.get(key), new.get(key), f"{where}.{key}" if where else key)
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in _differences(a, b, f"{where}[{i}]")]
    if old == new:
        return []

    def short(v) -> str:
        text = repr(v)
        return text if len(text) <= 60 else text[:57] + "..."

    return [f"{where}: {short(old)} then, {short(new)} now"]


class ResultsFile:
    """A results file being written: open it with :meth:`create` or :meth:`resume`, then
    :meth:`write` each batch's encoded rows in order, and :meth:`close`.

    Every write is flushed, so after a kill the file holds whole batches plus at most one
    torn line (or one unfinished Parquet part), which :meth:`resume` removes. From create or
    resume to close, the run holds the file's lock: a second run on the same file (two
    --resume, two --overwrite at once) is refused before it changes anything.
    """

    def __init__(self, path: Path, fmt: str, layout: Layout, run: dict | None = None):
        self.path, self.fmt, self.layout, self.run = path, fmt, layout, run
        self.notes: list[str] = []
        self.rows_done = 0
        self._fh = None
        self._part_writer = None
        self._part_rows = 0
        self._part_index = 0
        self._lock_fd: int | None = None

    @classmethod
    def create(cls, path: Path, layout: Layout, run: dict | None = None) -> "ResultsFile":
        """A new results file (an existing one is replaced). ``run``: what identifies the
        run (command, knowledge bases, parameters, inputs), kept beside it for --resume."""
        rf = cls(path, format_of(path), layout, run)
        rf._lock_fd = _lock(path, rf.fmt)
        rf._start()
        return rf

    def _start(self) -> None:
        """Empty the (locked) results file and write this run's record. The old run record
        goes first: a run killed in between leaves no rows with no record, which --resume
        starts afresh, never rows beside the record of another run."""
        path = self.path
        try:
            run_record_path(path).unlink(missing_ok=True)
            if self.fmt == "parquet":
                for old in list(path.glob("part-*.parquet")) + list(path.glob(".part-*.tmp")):
                    old.unlink()
            else:
                self._fh = open(path, "wb")
                if self.fmt == "csv":
                    self._write_bytes(",".join(self.layout.columns()).encode() + b"\n")
            if self.run is not None:
                tmp = run_record_path(path).with_suffix(".tmp")
                tmp.write_text(json.dumps(self.run, indent=2) + "\n", encoding="utf-8")
                os.replace(tmp, run_record_path(path))
        except OSError as e:
            self.close()
            raise ResultsError(f"{path}: cannot write: {e.strerror or e}") from None

    def _holds_no_row(self) -> bool:
        if self.fmt == "parquet":
            return not any(self.path.glob("part-*.parquet"))
        with open(self.path, "rb") as fh:
            head = fh.read(1 << 16)
        lines = [line for line in head.split(b"\n") if line.strip()]
        return not lines or (self.fmt == "csv" and len(lines) == 1 and
                             lines[0].rstrip(b"\r") == ",".join(self.layout.columns()).encode())

    @classmethod
    def resume(cls, path: Path, layout: Layout, run: dict | None = None) -> tuple["ResultsFile", Iterator[dict]]:
        """Reopen a results file of an interrupted run: cut a torn last line, and return the
        file positioned at its end plus the rows already written (canonical dicts, in order;
        read them before writing). A missing file starts afresh.

        Raises ResultsError if ``run`` differs from the run record kept when the file was
        created (another knowledge base, other parameters, inputs changed since), or if
        there is none to compare with.
        """
        fmt = format_of(path)
        if not path.exists():
            return cls.create(path, layout, run), iter(())
        rf = cls(path, fmt, layout, run)
        rf._lock_fd = _lock(path, fmt)  # before anything is read or cut
        try:
            if run is not None and not run_record_path(path).exists() and rf._holds_no_row():
                rf._start()  # a run stopped before its first row and its record: afresh
                return rf, iter(())
            return rf, rf._reopen(run)
        except BaseException:
            rf.close()
            raise

    def _reopen(self, run: dict | None) -> Iterator[dict]:
        path, fmt = self.path, self.fmt
        if run is not None:
            try:
                kept = json.loads(run_record_path(path).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                raise ResultsError(f"{path}: no readable run record ({run_record_path(path).name}), so it "
                                   "cannot be told to be this run's; start afresh with --overwrite") from None
            diffs = _differences(kept, run) if isinstance(kept, dict) else ["not a run record"]
            if diffs:
                raise ResultsError(f"{path} was written by another run ({diffs[0]}"
                                   f"{f'; and {len(diffs) - 1} more difference(s)' if len(diffs) > 1 else ''}); "
                                   "resume with the same command and unchanged inputs, or start afresh with --overwrite")
        try:
            if fmt == "parquet":
                return self._resume_parquet()
            return self._resume_text()
        except OSError as e:
            raise ResultsError(f"{path}: cannot resume: {e.strerror or e}") from None

    def _resume_text(self) -> Iterator[dict]:
        with open(self.path, "rb+") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            # Cut back to the last newline: a line without one was torn by the interruption.
            pos = size
            while pos > 0:
                step = min(pos, 1 << 16)
                fh.seek(pos - step)
                chunk = fh.read(step)
                nl = chunk.rfind(b"\n")
                if nl >= 0:
                    pos = pos - step + nl + 1
                    break
                pos -= step
            if pos != size:
                fh.truncate(pos)
        self._fh = open(self.path, "ab")
        if self.fmt == "csv" and pos == 0:
            self._write_bytes(",".join(self.layout.columns()).encode() + b"\n")
        return self._read_text()

    def _read_text(self) -> Iterator[dict]:
        expected = 0
        with open(self.path, "rb") as fh:
            if self.fmt == "csv":
                reader = csv.reader(io.TextIOWrapper(fh, encoding="utf-8", newline=""))
                header = next(reader, None)
                if header != self.layout.columns():
                    raise ResultsError(f"{self.path}: its columns are not this run's (another knowledge base "
                                       "or command?); remove it or write to another file")
                lines = (self.layout.fold(dict(zip(header, values))) for values in reader)
            else:
                lines = (self._decode_line(n, line) for n, line in enumerate(fh, 1))
            for row in lines:
                if row["seq"] != expected:
                    raise ResultsError(f"{self.path}: row {expected + 1} has seq {row['seq']}, expected "
                                       f"{expected}: not a results file of this run")
                expected += 1
                self.rows_done = expected
                yield row

    def _decode_line(self, n: int, line: bytes) -> dict:
        try:
            row = msgspec.json.decode(line)
        except msgspec.DecodeError:
            raise ResultsError(f"{self.path}:{n}: not a JSON row; not a results file of this run") from None
        key = "criteria" if self.layout.kind == "cohort" else "before"
        if not isinstance(row, dict) or "seq" not in row or (key not in row and "error" not in row):
            raise ResultsError(f"{self.path}:{n}: not a {self.layout.kind} row; not a results file of this run")
        if self.layout.kind == "cohort" and "criteria" in row and list(row["criteria"]) != list(self.layout.criteria):
            raise ResultsError(f"{self.path}:{n}: its criteria are not this knowledge base's; "
                               "remove it or write to another file")
        return row

    def _resume_parquet(self) -> Iterator[dict]:
        import pyarrow.parquet as pq

        for tmp in self.path.glob(".part-*.tmp"):
            tmp.unlink()
            self.notes.append(f"an unfinished Parquet part ({tmp.name}) was discarded: its patients "
                              "are screened again")
        parts = sorted(self.path.glob("part-*.parquet"))
        self._part_index = len(parts)
        cols = self.layout.columns()

        def rows():
            expected = 0
            for part in parts:
                table = pq.read_table(part)
                if table.column_names != cols:
                    raise ResultsError(f"{part}: its columns are not this run's; remove the folder "
                                       "or write to another")
                for values in table.to_pylist():
                    row = self.layout.fold(values)
                    if row["seq"] != expected:
                        raise ResultsError(f"{part}: seq {row['seq']}, expected {expected}")
                    expected += 1
                    self.rows_done = expected
                    yield row
        return rows()

    def _write_bytes(self, data: bytes) -> None:
        try:
            self._fh.write(data)
            self._fh.flush()
        except OSError as e:
            raise ResultsError(f"{self.path}: cannot write: {e.strerror or e}") from None

    def write(self, payload, n_rows: int) -> None:
        """Append one batch's encoded rows (from :func:`encode`) and flush."""
        if self.fmt != "parquet":
            self._write_bytes(payload)
        else:
            self._write_parquet(payload)
        self.rows_done += n_rows

    def _write_parquet(self, table) -> None:
        import pyarrow.parquet as pq

        try:
            if self._part_writer is None:
                self._tmp = self.path / f".part-{self._part_index:06d}.tmp"
                self._part_writer = pq.ParquetWriter(self._tmp, table.schema)
            self._part_writer.write_table(table)
            self._part_rows += table.num_rows
            if self._part_rows >= PART_ROWS:
                self._finish_part()
        except OSError as e:
            raise ResultsError(f"{self.path}: cannot write: {e.strerror or e}") from None

    def _finish_part(self) -> None:
        if self._part_writer is None:
            return
        self._part_writer.close()
        os.replace(self._tmp, self.path / f"part-{self._part_index:06d}.parquet")
        self._part_writer, self._part_rows = None, 0
        self._part_index += 1

    def close(self) -> None:
        try:
            if self.fmt == "parquet":
                self._finish_part()
            elif self._fh is not None:
                self._fh.close()
        finally:
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # the lock goes with it
                self._lock_fd = None


def read_rows(path: Path, layout: Layout) -> Iterable[dict]:
    """Every canonical row of a finished results file, in order (for tests and tools)."""
    rf = ResultsFile(path, format_of(path), layout)
    return list(rf._resume_parquet() if rf.fmt == "parquet" else rf._read_text())

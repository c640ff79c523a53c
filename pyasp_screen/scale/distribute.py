"""Stages 2 to 5 at cohort scale: batches of records screened on every core, or on a Dask cluster.

A run is a stream of work items (:mod:`pyasp_screen.inputs.sources`) cut into batches. Each batch
is screened where it lands, by :func:`screen_batch`: records are validated and mapped
(:func:`~pyasp_screen.inputs.sources.materialize`), findings derived, the batch grounded and
solved by clingo (:func:`~pyasp_screen.engine.screening.screen_records`), and the batch returns
its result rows already encoded (:mod:`pyasp_screen.outputs.stream`) with its share of the cohort
counts (:class:`~pyasp_screen.cohorts.cohort.CohortSummary` or :class:`~pyasp_screen.cohorts.cohort.DiffTally`).
The main process only reads inputs, writes bytes and adds counts.

Where batches run (:func:`executor`):

- ``jobs=N``: N worker processes (:class:`concurrent.futures.ProcessPoolExecutor`), the
  :class:`Job` (knowledge bases with their program text) handed to each once, at start,
  each worker replaced after BATCHES_PER_WORKER batches;
- ``jobs=0``, or a run of one batch: in this process (no pickling);
- ``scheduler=ADDRESS`` or ``"local"``: a Dask distributed cluster
  (https://distributed.dask.org/); the Job is scattered to every worker once
  (``Client.scatter(..., broadcast=True)``) and batches are submitted as tasks.

Distribution is theirs; this module only keeps a bounded number of batches in flight
(memory is bounded by batch size times in-flight batches, not by the cohort) and takes
results in submission order, so output order is input order whatever finishes first.
"""

from __future__ import annotations

import datetime as dt
import gc
import os
import sqlite3
import tempfile
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from pyasp_screen.extras import MissingExtra, require
from pyasp_screen.cohorts.cohort import CohortSummary, DiffTally, changed_criteria
from pyasp_screen.engine.engine import adopt_compiled, compiled
from pyasp_screen.engine.screening import Screened, screen_records
from pyasp_screen.inputs.record import RecordError
from pyasp_screen.inputs.sources import materialize, patient_of
from pyasp_screen.knowledge import grounding
from pyasp_screen.knowledge.kb import KnowledgeBase
from pyasp_screen.outputs.stream import Layout, cohort_row, diff_row, encode, error_row


@dataclass(frozen=True)
class Job:
    """What every batch of a run needs: one knowledge base (cohort) or two (diff: before,
    after), the screening date for FHIR input, and the results format to encode rows for
    (None: no results file). Shipped once to each worker; ``token`` names it there."""

    kbs: tuple[KnowledgeBase, ...]
    screening_date: dt.date | None = None
    fmt: str | None = None
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    validate_fhir: bool = False  # FHIR input also validated with fhir.resources

    @property
    def layout(self) -> Layout:
        return Layout.of(self.kbs)


@dataclass
class Batch:
    """Consecutive work items; ``start`` is the seq of the first."""

    start: int
    items: list


@dataclass
class BatchResult:
    """A screened batch: its rows encoded for the results file (bytes, or a pyarrow Table
    for Parquet; None without one), and its counts (a CohortSummary for one knowledge base,
    a DiffTally for two)."""

    start: int
    count: int
    payload: object
    tally: CohortSummary | DiffTally


def screen_batch(job: Job, batch: Batch) -> BatchResult:
    """Screen one batch with the job's knowledge base(s); runs in a worker or in-process.

    The cyclic garbage collector is paused while the batch is screened, and one full
    collection follows once its objects are dropped: a batch allocates hundreds of thousands
    of short-lived objects, and the collector's automatic passes over them and over the
    caches that grow beside them (findings, decoded atoms) cost a quarter of a worker's time
    (docs/scale.md, "Third pass"). A cycle the batch left is freed by that collection."""
    if not gc.isenabled():  # a caller managing the collector itself
        return _screen_batch(job, batch)
    gc.disable()
    try:
        return _screen_batch(job, batch)
    finally:
        gc.collect()
        gc.enable()


def _screen_batch(job: Job, batch: Batch) -> BatchResult:
    # Records are read with each knowledge base's vocabulary (FHIR codes it maps), once per
    # distinct vocabulary; a record that cannot be read is its own error (materialize).
    by_vocabulary: dict[int, list] = {}
    for kb in job.kbs:
        if id(kb.vocabulary) not in by_vocabulary:
            by_vocabulary[id(kb.vocabulary)] = [materialize(it, job.screening_date, kb.vocabulary,
                                                            validate_fhir=job.validate_fhir)
                                                for it in batch.items]
    runs = [list(screen_records(by_vocabulary[id(kb.vocabulary)], kb, batch_size=len(batch.items) or 1,
                                freeze=False))
            for kb in job.kbs]
    rows = []
    if len(job.kbs) == 1:
        kb = job.kbs[0]
        tally = CohortSummary(kb)
        for seq, o in enumerate(runs[0], batch.start):
            if isinstance(o, RecordError):
                tally.reject(o)
                rows.append(error_row(seq, o))
            else:
                tally.add(o.result)
                rows.append(cohort_row(seq, o.file, o.result, kb))
    else:
        kb_a, kb_b = job.kbs
        tally = DiffTally(kb_a, kb_b)
        for seq, (a, b) in enumerate(zip(*runs), batch.start):
            if isinstance(a, RecordError) or isinstance(b, RecordError):
                e = a if isinstance(a, RecordError) else b
                tally.reject(e)
                rows.append(error_row(seq, e))
            else:
                assert isinstance(a, Screened) and isinstance(b, Screened)
                tally.add(a.file, a.result, b.result)
                rows.append(diff_row(seq, a.file, a.result, b.result, kb_a, kb_b,
                                     changed_criteria(a.result, b.result, kb_a, kb_b)))
    payload = encode(rows, job.fmt, job.layout) if job.fmt else None
    return BatchResult(batch.start, len(batch.items), payload, tally)


# ---------------------------------------------------------------------------------------
# Where batches run

_WORKER_JOB: Job | None = None


def _init_worker(job: Job, main_pid: int, workers: int = 1, programs: dict | None = None) -> None:
    global _WORKER_JOB
    _WORKER_JOB = job
    if programs:  # the knowledge bases compiled once, by the process that made the pool
        adopt_compiled(programs)
    # What lives as long as the worker (the job, the compiled programs, the unit registry
    # inherited from the fork server) is moved out of the collector's reach: every full
    # collection (one after each batch: screen_batch) would otherwise traverse it again.
    gc.freeze()
    grounding.set_share(workers)  # the workers share the machine's memory
    worker_of(main_pid)


def worker_of(main_pid: int) -> None:
    """Set up a worker process of ``main_pid`` (cohort's, screen --explain's): Ctrl-C
    reaches the whole process group, and the main process stops the run (end_now) and keeps
    what is written, so the worker ignores it; and it ends if its main process dies."""
    import signal
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with, args=(main_pid,), daemon=True).start()


def end_now(pool) -> None:
    """End a ProcessPoolExecutor's workers without waiting for the tasks in flight (a run
    interrupted or failed: a knowledge base past its grounding limit would make each wait
    out its limit, and a worker the interrupt left blocked would never return)."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        proc.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def _exit_with(main_pid: int) -> None:
    """A worker whose main process was killed (kill -9) ends within a second, instead of
    finishing batches nobody will read."""
    import time

    import psutil

    while True:
        time.sleep(1.0)
        try:
            if psutil.Process(main_pid).status() == psutil.STATUS_ZOMBIE:  # dead, not yet reaped
                os._exit(1)
        except psutil.NoSuchProcess:
            os._exit(1)


def _screen_in_worker(batch: Batch) -> BatchResult:
    assert _WORKER_JOB is not None, "worker started without its job"
    return screen_batch(_WORKER_JOB, batch)


class Runner:
    """Submits batches somewhere and says how many may be in flight."""

    in_flight: int = 1
    notes: list[str] = []  # what the user should know about where the run goes

    def submit(self, batch: Batch) -> Future:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def abort(self) -> None:
        """The run failed or was stopped: end without waiting for batches in flight."""
        self.close()


class InProcess(Runner):
    def __init__(self, job: Job):
        self.job = job

    def submit(self, batch: Batch) -> Future:
        f: Future = Future()
        f.set_result(screen_batch(self.job, batch))
        return f


# clingo keeps every symbol it makes until its process ends (potassco/clingo#203): even with
# patients written as batch positions, new values keep adding symbols (about 2.5 MB per
# 1,000 synthetic patients). So clingo runs in worker processes that are replaced after
# this many batches: memory stays bounded however long the run.
BATCHES_PER_WORKER = 40


def _pool(job: Job, workers: int):
    """A pool of ``workers`` processes that screen batches of ``job``, each replaced after
    BATCHES_PER_WORKER batches. The knowledge bases are compiled here, once, and handed to
    every worker (a replaced worker would otherwise compile them again)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # forkserver: workers do not inherit this process's threads (progress bar, Dask),
    # and start fast, the modules already imported and the unit registry built (preload).
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["pyasp_screen.scale.no_interrupt", "pyasp_screen.scale.distribute",
                                "pyasp_screen.scale.preload"])
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(job, os.getpid(), workers, compiled(job.kbs)),
                               max_tasks_per_child=BATCHES_PER_WORKER)


_DASK_POOL: tuple[str, object] | None = None  # (job token, pool) of this Dask worker process


def screen_batch_on_dask(job: Job, batch: Batch) -> BatchResult:
    """The Dask task: screen the batch in a child process of this Dask worker (a pool as
    for --jobs, replaced after BATCHES_PER_WORKER batches), so the long-lived worker never
    holds clingo's symbols. A daemonic worker cannot have children: it screens the batch
    itself (see DaskCluster.notes)."""
    import multiprocessing

    global _DASK_POOL
    if multiprocessing.current_process().daemon:
        return screen_batch(job, batch)
    if _DASK_POOL is None or _DASK_POOL[0] != job.token:
        if _DASK_POOL is not None:
            _DASK_POOL[1].shutdown()
        from distributed import get_worker

        _DASK_POOL = (job.token, _pool(job, get_worker().state.nthreads))
    return _DASK_POOL[1].submit(_screen_in_worker, batch).result()


def _is_daemon() -> bool:
    import multiprocessing

    return multiprocessing.current_process().daemon


class Processes(Runner):
    def __init__(self, job: Job, jobs: int):
        self.pool = _pool(job, jobs)
        self.in_flight = 2 * jobs

    def submit(self, batch: Batch) -> Future:
        return self.pool.submit(_screen_in_worker, batch)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def abort(self) -> None:
        end_now(self.pool)  # the batches in flight will not be written


class DaskCluster(Runner):
    """Batches as tasks on a Dask distributed cluster: ``address`` of a running scheduler
    (tcp://host:8786), or "local" for a LocalCluster of ``jobs`` single-threaded worker
    processes on this machine."""

    CONNECT_SECONDS = 15

    def __init__(self, job: Job, address: str, jobs: int):
        import logging
        import threading

        try:
            require("dask.distributed", "dask", "--scheduler (a Dask cluster)")
        except MissingExtra as e:
            raise RunError(str(e)) from None
        from dask.distributed import Client, LocalCluster
        # distributed logs a lost connection with tracebacks; the run reports it in one line.
        logging.getLogger("distributed").setLevel(logging.CRITICAL)
        self.cluster = None
        self._scratch = None
        made: dict = {}

        def connect() -> None:
            try:
                if address == "local":
                    import dask

                    # Non-daemonic workers may start the child processes clingo runs in.
                    dask.config.set({"distributed.worker.daemon": False})
                    self._scratch = tempfile.TemporaryDirectory(prefix="pyasp-screen-dask-")
                    made["cluster"] = LocalCluster(
                        n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None,
                        local_directory=self._scratch.name)
                    made["client"] = Client(made["cluster"])
                else:
                    made["client"] = Client(address, timeout=f"{self.CONNECT_SECONDS - 5}s")
            except BaseException as e:  # noqa: BLE001 - any failure to connect is one line
                made["error"] = e

        # Something other than a Dask scheduler on that port can keep Client() waiting for
        # ever; the connection gets a fixed time, in a thread that is left behind if need be.
        t = threading.Thread(target=connect, daemon=True)
        t.start()
        t.join(self.CONNECT_SECONDS if address != "local" else None)
        if t.is_alive():
            raise RunError(f"--scheduler {address}: no Dask scheduler answered within {self.CONNECT_SECONDS} s")
        if "error" in made:
            e = made["error"]
            raise RunError(f"--scheduler {address}: cannot connect: {' '.join(str(e).split()) or type(e).__name__}")
        self.cluster, self.client = made.get("cluster"), made["client"]
        threads = sum(self.client.nthreads().values()) or 1
        self.in_flight = 2 * threads
        self.notes = []
        daemonic = [w for w, d in self.client.run(_is_daemon).items() if d]
        if daemonic:
            self.notes.append(f"{len(daemonic)} Dask worker(s) are daemonic processes and screen in "
                              "their own process, whose memory then grows with every patient (clingo "
                              "never frees its symbols); start them with DASK_DISTRIBUTED__WORKER__DAEMON=False "
                              "(docs/scale.md)")
        # The knowledge bases go to every worker once; tasks refer to them by key.
        self.job = self.client.scatter(job, broadcast=True)

    def submit(self, batch: Batch) -> Future:
        # The batch goes to a worker as data and the task refers to it by key: Dask keeps
        # every submitted task's graph in the client and the scheduler for the whole run,
        # which with the records inside would grow with the cohort (measured: about 3 KB a
        # patient).
        data = self.client.scatter(batch, hash=False)
        return self.client.submit(screen_batch_on_dask, self.job, data, pure=False)

    def close(self) -> None:
        try:
            self.client.close()
            if self.cluster is not None:
                self.cluster.close()
        finally:
            if self._scratch is not None:
                self._scratch.cleanup()


class RunError(Exception):
    """A run that cannot start or cannot go on (a one-line message)."""


def default_jobs() -> int:
    """All the cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# ---------------------------------------------------------------------------------------
# Duplicate patient IDs, in bounded memory


class SeenIds:
    """The patient IDs of a run so far, in an SQLite file (so a million IDs cost disk, not
    memory): :meth:`check` says, for each new ID, where it was first seen, or None."""

    def __init__(self, directory: Path | None = None):
        self._dir = tempfile.TemporaryDirectory(prefix="pyasp-screen-ids-", dir=directory)
        self.db = sqlite3.connect(Path(self._dir.name) / "ids.sqlite")
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE seen (id TEXT PRIMARY KEY, file TEXT) WITHOUT ROWID")

    def add(self, pid: str | None, file: str) -> None:
        """Mark one ID seen (as when resuming: the IDs already in the results file)."""
        if pid is not None:
            self.db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?)", (pid, file))

    def check(self, pairs: list[tuple[str | None, str]]) -> list[str | None]:
        """For each (id, file): the file where this id was first seen, or None if it is new
        (and from now on seen). IDs of None are never duplicates."""
        ids = list({pid for pid, _ in pairs if pid is not None})
        known: dict[str, str] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            known.update(self.db.execute(
                f"SELECT id, file FROM seen WHERE id IN ({','.join('?' * len(chunk))})", chunk))
        out, new = [], []
        for pid, file in pairs:
            if pid is None:
                out.append(None)
            elif pid in known:
                out.append(known[pid])
            else:
                known[pid] = file
                new.append((pid, file))
                out.append(None)
        self.db.executemany("INSERT INTO seen VALUES (?, ?)", new)
        return out

    def close(self) -> None:
        self.db.close()
        self._dir.cleanup()


def _item_file(item) -> str:
    return str(getattr(item, "file", "?"))


def _dedupe(items: list, seen: SeenIds) -> list:
    """The items, with every repeat of an earlier patient ID turned into its RecordError."""
    pids = [patient_of(it) if not isinstance(it, RecordError) else None for it in items]
    firsts = seen.check([(pid, _item_file(it)) for pid, it in zip(pids, items)])
    return [RecordError(_item_file(it), pid, "id", f"duplicate patient id (first seen in {first}); "
                        "not screened twice") if first else it
            for it, pid, first in zip(items, pids, firsts)]


# ---------------------------------------------------------------------------------------
# The run


def run_identity(command: str, kbs: tuple[KnowledgeBase, ...], inputs: list[Path],
                 screening_date: dt.date | None) -> dict:
    """What makes two runs the same run, for --resume to compare: the command, each
    knowledge base (name, version, every parameter value, a digest of its programs), the
    screening date, and each input (absolute path, size and modification time; for a
    folder, its files' count, total size and latest modification)."""
    import hashlib

    def kb_id(kb: KnowledgeBase) -> dict:
        return {"name": kb.name, "version": kb.version,
                "parameters": {p.name: p.display() for p in kb.parameters.values()},
                "programs": hashlib.sha256(kb.program_text().encode()).hexdigest()[:16]}

    def input_id(p: Path) -> dict:
        if not isinstance(p, Path):  # an OMOP database: its own identity (tables' row counts)
            return p.identity()
        out: dict = {"path": str(p.resolve())}
        try:
            if p.is_dir():
                files = [f.stat() for f in p.rglob("*") if f.is_file()]
                out.update(files=len(files), bytes=sum(f.st_size for f in files),
                           modified=max((f.st_mtime_ns for f in files), default=0))
            else:
                st = p.stat()
                out.update(bytes=st.st_size, modified=st.st_mtime_ns)
        except OSError:
            pass  # unreadable: reported as a rejected record by the run itself
        return out

    return {"pyasp_screen_results": 1, "command": command,
            "knowledge_bases": [kb_id(kb) for kb in kbs],
            "screening_date": screening_date.isoformat() if screening_date else None,
            "inputs": [input_id(p) for p in inputs]}


def run(items: Iterable, job: Job, *, jobs: int = 1, scheduler: str | None = None,
        batch_size: int = 500, skip: int = 0, last_skipped: tuple[str | None, str] | None = None,
        seen: SeenIds | None = None, notify: Callable[[str], None] | None = None) -> Iterator[BatchResult]:
    """Screen every item and yield each batch's result in input order.

    ``skip``: items already done by an interrupted run (resumed), not screened again; the
    last of them must have patient ID ``last_skipped`` (when known), or the inputs changed.
    ``seen``: where patient IDs are kept (the skipped items' are added to it, as an
    uninterrupted run would have).
    ``notify``: told of anything the user should know about where the run goes.
    ``jobs``: worker processes; 0 screens in this process (the single-process baseline;
    memory then grows slowly with the cohort, see BATCHES_PER_WORKER).
    With ``jobs`` > 1 but only one batch of input, the batch runs in this process (starting
    workers would cost more than it saves); a ``scheduler`` given is always used.

    Raises RunError for a cluster that cannot be reached, and re-raises a worker's
    EngineError (a knowledge-base failure) after the batches before it were yielded.
    """
    own_seen = seen is None
    seen = seen or SeenIds()
    try:
        it = iter(items)
        if skip:
            # The items already done are read again (not screened) so that the patient IDs
            # they hold are seen exactly as in an uninterrupted run: a later repeat is the
            # same duplicate, with the same message.
            last = None
            done = 0
            while done < skip and (chunk := list(islice(it, min(batch_size, skip - done)))):
                _dedupe(chunk, seen)
                done += len(chunk)
                last = chunk[-1]
            now = (patient_of(last), _item_file(last)) if last is not None else None
            if now is None or (last_skipped is not None and now[1] != last_skipped[1]) or \
                    (last_skipped is not None and None not in (now[0], last_skipped[0]) and now[0] != last_skipped[0]):
                said = f"{last_skipped[0]} of {last_skipped[1]}" if last_skipped else "?"
                found = f"{now[0]} of {now[1]}" if now else "missing"
                raise RunError(f"the inputs are not those of the run being resumed (item {skip} is {found}, "
                               f"the results file says {said}); resume with the same inputs, or start afresh")
        seq = skip
        first = list(islice(it, batch_size))
        if not first:
            return
        rest = list(islice(it, batch_size))
        with _runner(job, jobs if rest else 0, scheduler) as runner:
            for note in runner.notes:
                if notify:
                    notify(note)
            pending: deque[Future] = deque()

            def batches() -> Iterator[list]:
                yield first
                if rest:
                    yield rest
                    while chunk := list(islice(it, batch_size)):
                        yield chunk

            for chunk in batches():
                pending.append(runner.submit(Batch(seq, _dedupe(chunk, seen))))
                seq += len(chunk)
                while len(pending) >= runner.in_flight:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
    finally:
        if own_seen:
            seen.close()


@contextmanager
def _runner(job: Job, jobs: int, scheduler: str | None) -> Iterator[Runner]:
    if scheduler:
        r: Runner = DaskCluster(job, scheduler, max(jobs, 1))
    elif jobs >= 1:
        r = Processes(job, jobs)
    else:
        r = InProcess(job)
    try:
        yield r
    except BaseException:
        r.abort()
        raise
    else:
        r.close()

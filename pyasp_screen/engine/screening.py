"""The pipeline, end to end: record files -> findings -> ground and solve -> results.

:func:`screen_records` is what the CLI and the benchmarks call. It streams: records are read
lazily, screened in batches (one clingo grounding per batch), and every outcome, a
:class:`Screened` or a :class:`~pyasp_screen.inputs.record.RecordError`, is yielded in input order.
A bad record never stops the run.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from pyasp_screen.engine.engine import Engine, Result
from pyasp_screen.engine.reference import ReferenceEngine
from pyasp_screen.findings.derive import Findings, derive
from pyasp_screen.inputs.record import Loaded, RecordError, RecordInvalid
from pyasp_screen.knowledge.kb import KnowledgeBase

DEFAULT_BATCH = 500

# PYASP_SCREEN_ENGINE=reference screens with the reference engine (the programs as written):
# for benchmarks that compare both in one run and check that they agree (bench/bench_scale.py).
ENGINE_VARIABLE = "PYASP_SCREEN_ENGINE"


def default_engine(kb: KnowledgeBase) -> Engine | ReferenceEngine:
    """The engine screening uses: :class:`Engine`, or the reference engine when the
    environment variable PYASP_SCREEN_ENGINE is ``reference``."""
    if os.environ.get(ENGINE_VARIABLE, "") == "reference":
        return ReferenceEngine(kb)
    return Engine(kb)


@dataclass
class Screened:
    """One screened patient: where it came from, its findings and its result."""

    file: str
    findings: Findings
    result: Result


def prepare(item: Loaded | RecordError, kb: KnowledgeBase) -> tuple[Loaded, Findings] | RecordError:
    """Findings for one loaded record, or the RecordError that rejects it. Never raises: a
    failure of ours on one record rejects that record, with the reason, not the batch."""
    if isinstance(item, RecordError):
        return item
    try:
        return item, derive(item.record, kb)
    except RecordInvalid as e:
        return RecordError(item.file, item.record.id, e.field, e.reason)
    except Exception as e:  # noqa: BLE001 - reported per record, the run goes on
        return RecordError(item.file, item.record.id, None, f"could not be screened ({type(e).__name__}: "
                           f"{' '.join(str(e).split())}); please report this")


def screen_records(items: Iterable[Loaded | RecordError], kb: KnowledgeBase,
                   batch_size: int = DEFAULT_BATCH,
                   on_progress: Callable[[int], None] | None = None,
                   freeze: bool = True, engine: Engine | ReferenceEngine | None = None,
                   ) -> Iterator[Screened | RecordError]:
    """Screen every record; yield a Screened or a RecordError per input item, in order.

    A patient ID seen before in the same run is rejected (IDs key the output).
    ``freeze``: move each finished batch out of the cyclic garbage collector's reach; right
    when the caller keeps the results (a list of them), wrong for a long-lived worker that
    drops them.
    ``engine``: the engine to screen with (default: :func:`default_engine`; the benchmarks
    pass a :class:`~pyasp_screen.engine.reference.ReferenceEngine`).
    Raises EngineError only for a knowledge-base failure, which no record can cause.
    """
    engine = engine or default_engine(kb)
    seen: dict[str, str] = {}
    pending: list[Screened | RecordError | tuple[Loaded, Findings]] = []
    n_findings = 0
    # With ``freeze``, the cyclic garbage collector is off while a batch is derived and
    # screened, and on while the caller handles its results: a batch allocates hundreds of
    # thousands of objects that all live until the batch is frozen, and the collector's
    # passes over them cost about a fifth of the time. Without ``freeze`` (a worker that drops
    # each batch) it is left alone: its deferred pass over a whole batch would cost more.
    collecting = gc.isenabled() and freeze

    def flush() -> Iterator[Screened | RecordError]:
        nonlocal n_findings
        ready = [p for p in pending if isinstance(p, tuple)]
        results = iter(engine.screen(f for _, f in ready))
        if collecting:
            gc.enable()
        for p in pending:
            if isinstance(p, tuple):
                loaded, findings = p
                yield Screened(loaded.file, findings, next(results))
            else:
                yield p
        if on_progress:
            on_progress(len(pending))
        pending.clear()
        n_findings = 0
        # Results of earlier batches live until the run ends. Moving them out of the cyclic
        # garbage collector's reach keeps its full collections from re-scanning a growing
        # cohort (without this, a 10,000-patient run spends a third of its time there).
        if freeze:
            gc.freeze()
        if collecting:
            gc.disable()

    if collecting:
        gc.disable()
    try:
        for item in items:
            prepared = prepare(item, kb)
            if isinstance(prepared, tuple):
                pid = prepared[0].record.id
                if pid in seen:
                    prepared = RecordError(prepared[0].file, pid, "id",
                                           f"duplicate patient id (first seen in {seen[pid]}); not screened twice")
                else:
                    seen[pid] = prepared[0].file
                    n_findings += 1
            pending.append(prepared)
            if n_findings >= batch_size:
                yield from flush()
        if pending:
            yield from flush()
    finally:
        if collecting:
            gc.enable()

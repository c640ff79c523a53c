"""Stage 5 at cohort scale: every screened patient's explanation at a glance, on every core.

``screen --explain`` explains each patient on its own (:func:`pyasp_screen.explain.summary.
summarise`: one grounding per patient, then solves under assumptions). Patients are
independent, so :func:`summarise_all` hands them to worker processes in chunks, started from
a fork server as cohort screening's workers are (:mod:`pyasp_screen.scale.distribute`), and
returns the summaries in input order. Each summary is the one :func:`summarise` gives in this
process (tests/test_scale.py compares them).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from pyasp_screen.engine.screening import Screened
from pyasp_screen.explain.summary import summarise
from pyasp_screen.knowledge.kb import KnowledgeBase
from pyasp_screen.scale.distribute import end_now, worker_of

# Fewer patients than this a worker are explained in this process: starting a worker (a
# process, the knowledge base unpickled) costs about as much as explaining a few patients.
MIN_PER_WORKER = 4

_KB: KnowledgeBase | None = None
_OPTIONS: dict = {}


def _init(kb: KnowledgeBase, options: dict, main_pid: int) -> None:
    global _KB, _OPTIONS
    _KB, _OPTIONS = kb, options
    worker_of(main_pid)  # as cohort's workers: Ctrl-C is the main process's to handle


def _one(screened: Screened) -> dict:
    assert _KB is not None, "worker started without its knowledge base"
    return summarise(_KB, screened, **_OPTIONS)


def summarise_all(kb: KnowledgeBase, screened: Sequence[Screened], *, jobs: int = 1,
                  max_results: int = 5, scopes: Sequence[str] | None = ("overall",)) -> list[dict]:
    """The explanation at a glance (:func:`~pyasp_screen.explain.summary.summarise`) of each
    of ``screened``, in their order, computed by ``jobs`` worker processes (in this process
    when ``jobs`` is 1 or there are fewer than MIN_PER_WORKER patients a worker).

    ``max_results`` and ``scopes`` are summarise's. Raises what summarise raises
    (GroundingStopped for a knowledge base past its grounding limits), from a worker as from
    this process; on KeyboardInterrupt (Ctrl-C) the workers are ended before it propagates.
    ``jobs`` is not capped at the machine's cores (the caller warns, as cohort does).
    """
    options = {"max_results": max_results, "scopes": list(scopes) if scopes is not None else None}
    workers = min(jobs, len(screened) // MIN_PER_WORKER)
    if workers <= 1:
        return [summarise(kb, s, **options) for s in screened]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("forkserver")
    # Unlike cohort screening's fork server, this one does not build the UCUM registry
    # (scale/preload.py, about a second): summaries read findings already derived here.
    ctx.set_forkserver_preload(["pyasp_screen.scale.no_interrupt", "pyasp_screen.scale.explain_all"])
    # Chunks of a few patients: one slow patient does not hold up a long tail of fast ones.
    chunk = max(1, min(8, len(screened) // (4 * workers)))
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init,
                               initargs=(kb, options, os.getpid()))
    try:
        out = list(pool.map(_one, screened, chunksize=chunk))
    except BaseException:  # interrupted, or a worker failed: not waiting for chunks in flight
        end_now(pool)
        raise
    pool.shutdown(wait=True)
    return out

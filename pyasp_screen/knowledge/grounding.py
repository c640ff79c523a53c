"""Grounding a knowledge base under a time and a memory limit.

A rule such as ``q(P,X+1) :- q(P,X).`` makes new atoms for ever: clingo grounds it at 50 to
100 MB/s until the machine's memory runs out (the run of issue 13 ended in ``MemoryError:
bad_alloc`` after 90 s). :func:`run_bounded` runs each grounding (and its solve) in the
calling thread, as before, while one watchdog thread per process looks at the clock and at
the process's resident memory every second while groundings run (each look takes the
interpreter lock from the screening thread, which costs milliseconds on a loaded machine).
Past either limit the watchdog stops it:

1. ``Control.interrupt()``, which ends a solve;
2. a grounding cannot be interrupted, so the watchdog lowers the process's address-space
   limit (``RLIMIT_AS``) to what it already uses: clingo's next allocation fails, it
   unwinds with ``std::bad_alloc``, and the limit is put back at once. The caller gets
   :class:`GroundingLimit`, a one-line error naming the knowledge base, and nothing is
   left running;
3. a grounding that still runs 2 s later (a loop that allocates nothing) cannot be stopped
   at all: the watchdog writes the error to standard error and ends the process (exit 2).

Limits, for one grounding of a batch of n patients (the default values are named below):

- time: ``PYASP_SCREEN_GROUND_SECONDS`` (10 s) plus 10 ms per patient;
- memory: ``PYASP_SCREEN_GROUND_MEMORY_MB`` (512 MiB) plus 0.5 MiB per patient of growth
  of the process's resident memory, and never more than 80 % of the memory available when
  the grounding starts, shared among the worker processes (:func:`set_share`).

Measured on CT1190B: a batch of 500 patients grounds in 0.17 s and 35 MB, 20,000 in 12 s
and 1.3 GB (0.6 ms and 70 KB a patient); one patient's explanation grounds in 0.1-0.3 s and
under 40 MB. The limits are 7 to 50 times that, and a runaway rule is stopped within about
10 s. On the normal path the watch costs a few microseconds a grounding (two flag writes
and a read of /proc/self/statm): bench/bench_grounding.py measures it (within 3 %, the
noise of a shared machine). A limit is noticed within a second of being passed.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

SECONDS_ENV = "PYASP_SCREEN_GROUND_SECONDS"
MEMORY_ENV = "PYASP_SCREEN_GROUND_MEMORY_MB"
DEFAULT_SECONDS = 10.0
DEFAULT_MEMORY_MB = 512.0
SECONDS_PER_PATIENT = 0.01
MB_PER_PATIENT = 0.5
AVAILABLE_FRACTION = 0.8

_share = 1  # processes grounding at once on this machine


class GroundingLimit(Exception):
    """A grounding stopped at its time or memory limit (the knowledge base's rules, not a
    patient's data, are at fault): a one-line message naming the knowledge base."""


def set_share(processes: int) -> None:
    """Declare that ``processes`` processes ground at once (worker pools): each may use that
    share of the available memory."""
    global _share
    _share = max(1, processes)


def _env(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value > 0 else default


_available: list[float] = [0.0, 0.0]  # (when read, bytes available): read at most once a second


def limits(patients: int) -> tuple[float, int]:
    """(seconds, bytes of memory growth) allowed to one grounding of ``patients`` patients."""
    seconds = _env(SECONDS_ENV, DEFAULT_SECONDS) + SECONDS_PER_PATIENT * patients
    memory = int((_env(MEMORY_ENV, DEFAULT_MEMORY_MB) + MB_PER_PATIENT * patients) * 2**20)
    now = time.monotonic()
    if now - _available[0] > 1.0:
        try:
            import psutil

            _available[:] = [now, float(psutil.virtual_memory().available)]
        except Exception:  # noqa: BLE001 - no figure of available memory: the limit alone
            _available[:] = [now, float("inf")]
    return seconds, min(memory, int(_available[1] * AVAILABLE_FRACTION / _share))


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _statm() -> tuple[int, int]:
    """(address space, resident memory) of this process in bytes; (0, 0) if unknown."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            size, resident = fh.read().split()[:2]
        return int(size) * _PAGE, int(resident) * _PAGE
    except (OSError, ValueError):
        return 0, 0


def _mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def _hint() -> str:
    return ("is there a rule that makes new values without end, like q(P,X+1) :- q(P,X)? "
            f"(if the knowledge base is only large, {SECONDS_ENV} and {MEMORY_ENV} raise the limits)")


@dataclass
class _Grounding:
    """One grounding under way, as the watchdog sees it."""

    kb: str
    batch: str
    t0: float
    rss0: int
    seconds: float
    memory: int
    interrupt: Callable[[], None] | None
    stopped: str | None = None   # the message, once the watchdog stopped it
    done: bool = False


class _Watchdog:
    """The thread that watches every grounding of this process (started at the first)."""

    POLL = 1.0
    QUIET = 3      # polls without a grounding before it waits to be woken
    GRACE = 2.0

    def __init__(self) -> None:
        self.active: dict[int, _Grounding] = {}
        self.busy = threading.Event()
        self.idle = True
        self.lock = threading.Lock()
        self.squeezed: tuple[int, int] | None = None  # the RLIMIT_AS (soft, hard) to put back
        self.thread = threading.Thread(target=self._loop, name="grounding watchdog", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        # While groundings come one after another (a cohort, an explanation) the watchdog
        # polls; after 3 s without one it waits to be woken. A grounding wakes it only then,
        # so the normal path never waits for this thread (a wake-up costs a switch of the
        # interpreter lock, milliseconds on a loaded machine).
        while True:
            self.idle = True
            if not self.active:
                self.busy.wait()
            self.busy.clear()
            self.idle = False
            quiet = 0
            while quiet < self.QUIET:
                time.sleep(self.POLL)
                active = list(self.active.values())
                quiet = 0 if active else quiet + 1
                for g in active:
                    if g.stopped is None and not g.done:
                        self._check(g)

    def _check(self, g: _Grounding) -> None:
        elapsed = time.monotonic() - g.t0
        grown = _statm()[1] - g.rss0
        if elapsed > g.seconds:
            problem = f"grounding did not finish within {g.seconds:.3g} s{g.batch}"
        elif grown > g.memory:
            problem = f"grounding took more than {_mib(g.memory)} of memory{g.batch}"
        else:
            return
        g.stopped = f"knowledge base {g.kb}: {problem}: {_hint()}"
        if g.interrupt is not None:
            try:
                g.interrupt()  # ends a solve
            except Exception:  # noqa: BLE001 - best effort
                pass
        self._squeeze()  # ends a grounding: its next allocation fails
        deadline = time.monotonic() + self.GRACE
        while not g.done and time.monotonic() < deadline:
            time.sleep(0.01)
        self.release()
        if not g.done:  # allocates nothing and cannot be interrupted: the process ends
            try:
                os.write(2, f"error: {g.stopped}\n".encode("utf-8", "replace"))
            finally:
                os._exit(2)

    def _squeeze(self) -> None:
        try:
            import resource

            with self.lock:
                if self.squeezed is None:
                    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
                    size = _statm()[0]
                    if size:
                        cap = size if hard == resource.RLIM_INFINITY else min(size, hard)
                        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
                        self.squeezed = (soft, hard)
        except (ImportError, OSError, ValueError):
            pass

    def release(self) -> None:
        """Put the address-space limit back (after the squeezed grounding failed)."""
        with self.lock:
            if self.squeezed is not None:
                import resource

                try:
                    resource.setrlimit(resource.RLIMIT_AS, self.squeezed)
                except (OSError, ValueError):
                    pass
                self.squeezed = None


_TOUCHED: set[int] = set()


def _touch_thread_storage() -> None:
    """Make clingo fail once in this thread, harmlessly, before any grounding it runs can
    be squeezed: the thread-local storage of clingo's error message and of the C++
    runtime's exceptions is allocated on first use, and an allocation of thread-local
    storage that fails aborts the process (glibc) instead of raising."""
    key = threading.get_ident()
    if key in _TOUCHED:
        return
    import clingo

    try:
        clingo.parse_term("(", message_limit=0)
    except RuntimeError:
        pass
    _TOUCHED.add(key)


_WATCHDOG: _Watchdog | None = None
_WATCHDOG_LOCK = threading.Lock()


def _watchdog() -> _Watchdog:
    global _WATCHDOG
    if _WATCHDOG is None or not _WATCHDOG.thread.is_alive():
        with _WATCHDOG_LOCK:
            if _WATCHDOG is None or not _WATCHDOG.thread.is_alive():
                _WATCHDOG = _Watchdog()
    return _WATCHDOG


def run_bounded(work: Callable[[], T], *, kb: str, patients: int = 0,
                interrupt: Callable[[], None] | None = None) -> T:
    """``work()`` (one clingo grounding, and solving, of knowledge base ``kb`` with
    ``patients`` patients, in this thread), stopped at the limits of :func:`limits`.

    Returns what ``work`` returns and re-raises what it raises, except that clingo running
    out of memory (MemoryError, std::bad_alloc) is a GroundingLimit too. ``interrupt``:
    what ends a solve (``Control.interrupt``). Raises GroundingLimit."""
    dog = _watchdog()
    _touch_thread_storage()
    seconds, memory = limits(patients)
    batch = f" for a batch of {patients} patient{'s' * (patients != 1)}" if patients else ""
    g = _Grounding(kb, batch, time.monotonic(), _statm()[1], seconds, memory, interrupt)
    key = threading.get_ident()
    dog.active[key] = g
    if dog.idle:
        dog.busy.set()
    try:
        value = work()
    except (MemoryError, RuntimeError) as e:
        if g.stopped is None and (isinstance(e, MemoryError) or "bad_alloc" in str(e)):
            g.stopped = f"knowledge base {kb}: grounding ran out of memory{batch}: {_hint()}"
        if g.stopped is None:
            raise
        value = None
    finally:
        g.done = True
        del dog.active[key]
        if g.stopped is not None:
            dog.release()
    if g.stopped is not None:
        raise GroundingLimit(g.stopped)
    return value

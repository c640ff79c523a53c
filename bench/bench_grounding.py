"""Benchmark the grounding limits' cost: screening with every grounding watched
(pyasp_screen.knowledge.grounding.run_bounded: a helper thread, the clock and resident memory
polled) beside the same screening with clingo called directly, in the same run.

    python bench/bench_grounding.py               # 5,000 patients in batches of 500, 300 one by one
    python bench/bench_grounding.py -n 2000 --single 100

Three figures, each watched vs direct, as median time per call: a batch of 500 (cohort), one
Control per patient (the most groundings per patient: screen of one record, whatif), and one
patient's explanation (explain grounds one program a patient). Single process; the two variants
alternate call by call, so a machine whose load drifts weighs on both alike.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cohort import synthetic_cohort  # noqa: E402

from pyasp_screen.engine import engine as engine_module  # noqa: E402
from pyasp_screen.engine.engine import Engine  # noqa: E402
from pyasp_screen.engine.screening import prepare  # noqa: E402
from pyasp_screen.explain import explainer as explainer_module  # noqa: E402
from pyasp_screen.inputs.record import parse_record  # noqa: E402
from pyasp_screen.knowledge.kb import load_kb  # noqa: E402

WATCHED = engine_module.run_bounded


def direct(work, **_):
    return work()


def use(runner) -> None:
    engine_module.run_bounded = runner
    explainer_module.run_bounded = runner


def interleaved(calls: list, rounds: int) -> dict[str, float]:
    """Median seconds per call of each variant; the variants alternate call by call (their
    order alternating too), so a machine whose load drifts weighs on both alike."""
    times: dict[str, list[float]] = {"watched": [], "direct": []}
    for r in range(rounds):
        for i, call in enumerate(calls):
            for name in (("watched", "direct") if (r + i) % 2 == 0 else ("direct", "watched")):
                use(WATCHED if name == "watched" else direct)
                t0 = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - t0)
    use(WATCHED)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=5000, help="patients screened in batches (default 5000)")
    ap.add_argument("--single", type=int, default=300, help="patients screened one by one (default 300)")
    ap.add_argument("--explain", type=int, default=30, help="patients explained (default 30)")
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    kb = load_kb("ct1190b")
    records = [parse_record(r, "bench") for r in synthetic_cohort(max(args.n, args.single, args.explain))]
    findings = [prepare(r, kb)[1] for r in records]
    engine = Engine(kb)

    batches = [lambda i=i: engine.screen(findings[i:i + args.batch_size]) for i in range(0, args.n, args.batch_size)]
    singles = [lambda f=f: engine.screen([f]) for f in findings[:args.single]]
    explains = [lambda f=f: explainer_module.explain(kb, f, max_results=1, scopes=["overall"])
                for f in findings[:args.explain]]

    print(f"grounding limits' cost, CT1190B, median of {args.repeat} rounds, variants interleaved "
          "(watched = run_bounded, direct = clingo called as before)")
    for label, calls, per in ((f"batches of {args.batch_size}", batches, args.batch_size),
                              ("one Control per patient", singles, 1),
                              ("explain one patient", explains, 1)):
        t = interleaved(calls, args.repeat)
        print(f"  {label:<24} watched {1000 * t['watched']:8.2f} ms   direct {1000 * t['direct']:8.2f} ms   "
              f"overhead {1000 * (t['watched'] - t['direct']):+7.2f} ms ({100 * (t['watched'] / t['direct'] - 1):+5.1f} %)"
              f"   [{len(calls) * args.repeat} calls each, {per} patient(s) a call]")


if __name__ == "__main__":
    main()

"""Benchmark `explain`: time per patient, and the brute-force oracle's time on the same patients.

    python bench/bench_explain.py               # 200 synthetic patients + 100 small records
    python bench/bench_explain.py -n 50 --small 30

Two runs in one process:
1. realistic synthetic patients (bench/cohort.py): median, 95th percentile and maximum time of
   `explain` (overall and both populations, --max 10), all steps included (grounding the
   per-patient program, enumeration, values); then, beside it, explain plus the answer at a
   glance (explain/summary.py: what `pyasp-screen explain` prints), on the same patients;
2. small records (at most 7 known and 3 unknown findings, as in tests/test_explain.py), where
   the brute-force oracle is feasible: the same statistics for `explain` and for the oracle,
   which screens every subset of findings and every value combination.

Times are wall clock and, beside them, this process's CPU time (which other processes on a
shared machine disturb less); the load average is printed at the start and the end.

With ``--baseline-tree DIR`` (another checkout of this project, for example
``git worktree add /tmp/pyasp-base 4cc576f``, the commit before the compiled engine), the
synthetic cohort's explanations are also timed with that tree's code, in a child process of
the same run, and the explanations of both compared; ``--screen-explain`` also times
``pyasp-screen screen kb/ct1190b/cases/ --explain`` with both trees and compares their output.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from cohort import synthetic_cohort  # noqa: E402

from pyasp_screen.explain.explainer import explain  # noqa: E402
from pyasp_screen.findings.derive import derive  # noqa: E402
from pyasp_screen.knowledge.kb import load_kb  # noqa: E402
from pyasp_screen.inputs.record import parse_record  # noqa: E402


def stats(times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
    return f"median {statistics.median(ms):7.1f} ms   p95 {p95:7.1f} ms   max {ms[-1]:7.1f} ms   (n={len(ms)})"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def cohort_run(n: int) -> dict:
    """Explain every synthetic patient: wall and CPU times, verdicts, the explanations."""
    kb = load_kb()
    findings = [derive(parse_record(r, "cohort").record, kb) for r in synthetic_cohort(n, seed=7)]
    explain(kb, findings[0])  # warm-up
    times, cpu, verdicts, kept = [], [], {}, []
    for f in findings:
        t, c = time.perf_counter(), time.process_time()
        _, scopes = explain(kb, f, max_results=10)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        verdicts[scopes[0].verdict] = verdicts.get(scopes[0].verdict, 0) + 1
        kept.append([dataclasses.asdict(s) for s in scopes])
    from pyasp_screen.engine.engine import Engine
    from pyasp_screen.engine.screening import Screened
    from pyasp_screen.explain.summary import summarise

    summary = []
    for f, r in zip(findings, Engine(kb).screen(findings)):
        t = time.perf_counter()
        summarise(kb, Screened("bench", f, r), 10)
        summary.append(time.perf_counter() - t)
    return {"times": times, "cpu": cpu, "verdicts": verdicts, "summary": summary,
            "explanations": json.loads(json.dumps(kept, default=str))}


def in_tree(tree: Path, n: int) -> dict:
    """cohort_run in a child process whose pyasp_screen is the one in ``tree``."""
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-explain-{os.getpid()}.json"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    subprocess.run([sys.executable, __file__, "--worker", str(out), "-n", str(n)], env=env, check=True)
    data = json.loads(out.read_text())
    out.unlink()
    return data


def screen_explain(tree: Path | None) -> tuple[float, float, bytes]:
    """Wall and CPU seconds of `screen kb/ct1190b/cases/ --explain` with ``tree``'s code (this
    checkout's if None), and its output."""
    root = tree or HERE.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "pyasp_screen.cli", "screen", str(root / "kb/ct1190b/cases"),
                          "--explain"], env=env, capture_output=True, cwd=root).stdout
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=200, help="synthetic patients (default 200)")
    ap.add_argument("--small", type=int, default=100, help="small records for the oracle comparison")
    ap.add_argument("--baseline-tree", type=Path, help="another checkout of this project to time beside this one")
    ap.add_argument("--screen-explain", action="store_true",
                    help="also time `screen kb/ct1190b/cases/ --explain` (with the baseline tree too, if given)")
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        args.worker.write_text(json.dumps(cohort_run(args.n)))
        return
    print(f"load average {load()} (1, 5, 15 min)")
    kb = load_kb()

    run = cohort_run(args.n)
    print(f"explain, synthetic cohort ({run['verdicts']}):")
    print("  wall " + stats(run["times"]))
    print("  CPU  " + stats(run["cpu"]))
    if args.baseline_tree:
        base = in_tree(args.baseline_tree, args.n)
        print(f"the same with the code of {args.baseline_tree}:")
        print("  wall " + stats(base["times"]))
        print("  CPU  " + stats(base["cpu"]))
        print(f"  explanations identical: {base['explanations'] == run['explanations']}; "
              f"this tree {sum(base['times']) / sum(run['times']):.2f}x faster (sum of wall times), "
              f"{sum(base['cpu']) / sum(run['cpu']):.2f}x (CPU)")
    print("explain + summary (the answer at a glance, as `pyasp-screen explain` prints it), same patients:")
    print("  " + stats(run["summary"]))
    if args.baseline_tree:
        print(f"  with the code of {args.baseline_tree}: " + stats(base["summary"])
              + f"; this tree {sum(base['summary']) / sum(run['summary']):.2f}x faster (sum)")

    import test_explain as oracle  # the tests' brute-force oracle and small-record builder
    from oracle import SLOTS

    rng = random.Random(11)
    names = sorted(SLOTS)
    t_explain, t_oracle = [], []
    for _ in range(args.small):
        chosen = rng.sample(names, rng.randint(1, 7))
        n_unknown = rng.randint(0, min(3, len(chosen) - 1))
        unknown = chosen[:n_unknown]
        known = {s: rng.randrange(len(SLOTS[s])) for s in chosen[n_unknown:]}
        t = time.perf_counter()
        _, got = oracle.explained(known, unknown)
        t_explain.append(time.perf_counter() - t)
        t = time.perf_counter()
        _, want = oracle.brute_force(known, unknown)
        t_oracle.append(time.perf_counter() - t)
        assert got == want, (known, unknown)
    print("small records (<= 7 known, <= 3 unknown findings), results identical: True")
    print("  explain: " + stats(t_explain))
    print("  oracle:  " + stats(t_oracle))

    if args.screen_explain:
        wall, cpu, out = screen_explain(None)
        print(f"screen kb/ct1190b/cases/ --explain: {wall:.2f} s wall, {cpu:.2f} s CPU")
        if args.baseline_tree:
            b_wall, b_cpu, b_out = screen_explain(args.baseline_tree)
            print(f"  with the code of {args.baseline_tree}: {b_wall:.2f} s wall, {b_cpu:.2f} s CPU; "
                  f"output identical: {out == b_out}; this tree {b_wall / wall:.2f}x faster (wall), "
                  f"{b_cpu / cpu:.2f}x (CPU)")
    print(f"load average at the end {load()}")


if __name__ == "__main__":
    main()

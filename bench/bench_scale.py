"""Benchmark cohort screening at scale: patients/s and peak memory, by cohort size and input format.

    python bench/bench_scale.py                                  # 10,000 and 100,000, both formats
    python bench/bench_scale.py --sizes 1000000 --formats jsonl --configs jobs2
    python bench/bench_scale.py --data /big/disk/bench-data      # keep generated cohorts for re-runs

For each input format (native JSON Lines; FHIR Bulk Data NDJSON export, written from the same
synthetic patients by bench/cohort.py) and each size, the same cohort is screened by:

    single  this pipeline in one process, no workers (distribute.run with jobs=0)
    jobs1   pyasp-screen cohort --jobs 1
    jobs2   pyasp-screen cohort --jobs 2
    dask2   pyasp-screen cohort --scheduler local --jobs 2   (a Dask LocalCluster of 2 workers)
    ref2    pyasp-screen cohort --jobs 2 with the reference engine (the knowledge base as
            written, PYASP_SCREEN_ENGINE=reference): the baseline of the compiled engine
    base2   pyasp-screen cohort --jobs 2 with the code of another checkout, --baseline-tree DIR
            (for example ``git worktree add /tmp/pyasp-base 4cc576f``, before the speed work)

each as a separate process, one after the other in the same run, writing every patient's row
to a results file (--results .jsonl) and the summary as JSON. Timed: everything, from the
command's start to its exit (imports, worker start-up, reading, screening, writing).
Peak memory is the largest sum of the resident set sizes of the command and all its
descendant processes, sampled every 0.2 s (shared pages counted once per process, so this
over-states it). Every configuration's results and summary must be byte-identical to the
first one's; the script says so.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

CONFIGS = {
    "single": None,
    "jobs1": ["--jobs", "1"],
    "jobs2": ["--jobs", "2"],
    "dask2": ["--scheduler", "local", "--jobs", "2"],
    "ref2": ["--jobs", "2"],   # --jobs 2 with the reference engine (PYASP_SCREEN_ENGINE=reference)
    "base2": ["--jobs", "2"],  # --jobs 2 with the code of --baseline-tree
}
REFERENCE = {"ref2"}


def generate(data: Path, fmt: str, n: int) -> Path:
    from cohort import write_bulk_export, write_jsonl

    data.mkdir(parents=True, exist_ok=True)
    target = data / (f"cohort-{n}.jsonl" if fmt == "jsonl" else f"bulk-{n}")
    if target.exists():
        return target
    t0 = time.perf_counter()
    tmp = target.with_name(target.name + ".tmp")
    if fmt == "jsonl":
        write_jsonl(tmp, n)
    else:
        write_bulk_export(tmp, n)
    tmp.rename(target)
    size = (sum(f.stat().st_size for f in target.iterdir()) if target.is_dir() else target.stat().st_size)
    print(f"  generated {target.name}: {size / 2**20:,.0f} MiB in {time.perf_counter() - t0:.0f} s", flush=True)
    return target


def measure(cmd: list[str], env: dict | None = None, cwd: Path | None = None) -> tuple[float, float, int]:
    """Run a command; its wall time, peak resident memory of its process tree (MiB), exit code."""
    t0 = time.perf_counter()
    proc = psutil.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd)
    peak = 0
    while proc.poll() is None:
        total = 0
        try:
            for p in [proc] + proc.children(recursive=True):
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        peak = max(peak, total)
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        sys.stderr.write(proc.stderr.read().decode(errors="replace")[-2000:])
    return wall, peak / 2**20, proc.returncode


def single_process(src: str, results: str, summary: str) -> None:
    """The 'single' configuration: the distributed pipeline's code, in this one process."""
    import json

    from pyasp_screen.outputs import render
    from pyasp_screen.cohorts.cohort import CohortSummary
    from pyasp_screen.scale.distribute import Job, run
    from pyasp_screen.knowledge.kb import load_kb
    from pyasp_screen.inputs.sources import iter_items
    from pyasp_screen.outputs.stream import Layout, ResultsFile

    kb = load_kb()
    tally = CohortSummary(kb)
    out = ResultsFile.create(Path(results), Layout.of((kb,)))
    for batch in run(iter_items([Path(src)]), Job((kb,), None, "jsonl"), jobs=0):
        out.write(batch.payload, batch.count)
        tally.merge(batch.tally)
    out.close()
    with open(summary, "w", encoding="utf-8") as fh:
        json.dump({"pyasp_screen_output": render.OUTPUT_VERSION, "knowledge_base": render.kb_header(kb),
                   **tally.as_dict()}, fh, indent=2, ensure_ascii=False)
        fh.write("\n")


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--formats", nargs="+", choices=["jsonl", "bulk"], default=["jsonl", "bulk"])
    ap.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=[c for c in CONFIGS if c not in ("ref2", "base2")],
                    help="configurations, in this order (ref2 and base2 on request)")
    ap.add_argument("--baseline-tree", type=Path, help="another checkout, for the base2 configuration")
    ap.add_argument("--data", type=Path, help="folder for the generated cohorts (kept); default: a temporary one")
    ap.add_argument("--single", nargs=3, metavar=("SRC", "RESULTS", "SUMMARY"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.single:
        single_process(*args.single)
        return

    tmp = None
    data = args.data
    if data is None:
        tmp = tempfile.TemporaryDirectory(prefix="pyasp-bench-")
        data = Path(tmp.name)
    data = data.resolve()
    exe = shutil.which("pyasp-screen") or sys.exit("pyasp-screen is not on PATH: pip install the project first")
    print(f"machine: {psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)")
    rows = []
    try:
        for fmt in args.formats:
            for n in args.sizes:
                src = generate(data, fmt, n)
                reference = None
                base = None
                for name in args.configs:
                    work = data / f"run-{fmt}-{n}-{name}"
                    work.mkdir(exist_ok=True)
                    results, summary = work / "results.jsonl", work / "summary.json"
                    if name == "base2":
                        if args.baseline_tree is None:
                            sys.exit("base2 needs --baseline-tree DIR")
                        cmd = [sys.executable, "-m", "pyasp_screen.cli", "cohort", str(src), *CONFIGS[name],
                               "--results", str(results), "--format", "json", "-o", str(summary)]
                    elif CONFIGS[name] is None:
                        cmd = [sys.executable, __file__, "--single", str(src), str(results), str(summary)]
                    else:
                        cmd = [exe, "cohort", str(src), *CONFIGS[name], "--results", str(results),
                               "--format", "json", "-o", str(summary)]
                    env, cwd = None, None
                    if name in REFERENCE:
                        env = {**os.environ, "PYASP_SCREEN_ENGINE": "reference"}
                    if name == "base2":  # run there, or `python -m` would import this tree's code
                        cwd = args.baseline_tree.resolve()
                        env = {**os.environ, "PYTHONPATH": str(cwd)}
                    wall, peak, rc = measure(cmd, env, cwd)
                    same = None
                    if rc in (0, 1):
                        d = (digest(results), digest(summary))
                        reference = reference or d
                        same = d == reference
                    rate = n / wall
                    base = base or (name, rate)
                    rows.append((fmt, n, name, wall, rate, peak, rc, same, rate / base[1], base[0]))
                    print(f"  {fmt:5} {n:>9,} {name:6}: {wall:8.1f} s {rate:9,.0f} patients/s "
                          f"peak {peak:7,.0f} MiB  exit {rc}  identical to first: {same}  "
                          f"x{rate / base[1]:.2f} vs {base[0]}", flush=True)
                    shutil.rmtree(work)
    finally:
        if tmp is not None:
            tmp.cleanup()

    print("\nformat      patients  config   seconds  patients/s  peak MiB  identical")
    for fmt, n, name, wall, rate, peak, rc, same, _, _ in rows:
        print(f"{fmt:6} {n:>13,}  {name:6} {wall:9.1f} {rate:11,.0f} {peak:9,.0f}  {same}")
    by = {(f, n, c): r for f, n, c, _, r, *_ in rows}
    for fmt in args.formats:
        for n in args.sizes:
            if (fmt, n, "jobs1") in by and (fmt, n, "jobs2") in by:
                print(f"{fmt} {n:,}: --jobs 2 is {by[(fmt, n, 'jobs2')] / by[(fmt, n, 'jobs1')]:.2f}x --jobs 1 "
                      "(aim: at least 1.7x)")
    for fmt in args.formats:
        for n in args.sizes:
            if (fmt, n, "jobs2") in by and (fmt, n, "ref2") in by:
                print(f"{fmt} {n:,}: --jobs 2 is {by[(fmt, n, 'jobs2')] / by[(fmt, n, 'ref2')]:.2f}x --jobs 2 with the "
                      "reference engine (same run, results identical as above)")
            if (fmt, n, "jobs2") in by and (fmt, n, "base2") in by:
                print(f"{fmt} {n:,}: --jobs 2 is {by[(fmt, n, 'jobs2')] / by[(fmt, n, 'base2')]:.2f}x --jobs 2 with the "
                      f"code of {args.baseline_tree} (same run)")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for fmt, n, name, wall, rate, peak, *_ in rows:
        if name != "single":
            print(f"{fmt} {n:,} {name}: a million patients would take {1e6 / rate / 60:.1f} min at this rate "
                  f"(aim: under 5); peak {peak:,.0f} MiB (aim: under 1024)")


if __name__ == "__main__":
    main()

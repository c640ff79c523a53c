"""Benchmark screening by instructions executed: a figure this noisy machine cannot blur.

    python bench/bench_instructions.py --baseline-tree /tmp/pyasp-base        # 2,000 patients
    python bench/bench_instructions.py -n 500 --batch-size 500 --batch-size 1000
    python bench/bench_instructions.py --explain -n 40 --baseline-tree /tmp/pyasp-base  # explain

Wall-clock and CPU times on a shared 2-core machine drift by 15-100% between runs (see
docs/scale.md), more than most changes to the engine are worth. The number of machine
instructions a process executes does not drift: this script counts them with Valgrind's
callgrind tool (``apt-get install valgrind``), in one process per configuration, all run at
once (the counts do not depend on the load).

For each tree (this checkout, and --baseline-tree DIR, for example ``git worktree add
--detach /tmp/pyasp-base <commit>``) and each --batch-size, a child process loads CT1190B
(or --kb) from that tree, screens one patient (imports, unit registry, the compiled
knowledge base), then screens the -n patients of the synthetic cohort (bench/cohort.py) in
process with ``screen_records``, as a cohort worker does. A second child stops after the
first patient. The difference of the two counts, divided by -n, is the instructions a
patient costs: reading, validating, findings, grounding, solving and results. Every child
also prints a digest of every patient's statuses, verdicts, overall verdict and
contradictions; the digests must be identical across trees and batch sizes (exit 1 if not).
With --explain, the children do what ``pyasp-screen explain`` does for each patient instead
(screen it, explain overall and each population with at most 10 explanations of each kind,
build the answer at a glance: explain/summary.py), and the digest is of every summary.

Not measured here: cache misses and memory traffic (an instruction is not a nanosecond), the
main process of ``cohort --jobs``, and start-up. bench/bench_scale.py measures those as wall
time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def child(tree: str, kb_name: str, cohort: str, n: int, batch_size: int, mode: str = "screen") -> None:
    """Run inside callgrind: screen (or explain) one patient, then ``n``; print the code's
    file and a digest of the results."""
    import hashlib

    import pyasp_screen
    from pyasp_screen.engine.screening import screen_records
    from pyasp_screen.inputs.files import load_file
    from pyasp_screen.inputs.record import RecordError
    from pyasp_screen.knowledge.kb import load_kb

    kb = load_kb(str(Path(tree) / "kb" / kb_name))
    path = Path(cohort)
    first = next(iter(load_file(path)))
    digest = hashlib.sha256()
    if mode == "explain":  # what `pyasp-screen explain` computes: explanations and the summary
        from pyasp_screen.explain.summary import summarise

        def explained(items):
            for o in screen_records(items, kb, batch_size=1, freeze=False):
                yield f"error {o.reason}" if isinstance(o, RecordError) else \
                    json.dumps(summarise(kb, o, 10), default=str, sort_keys=True)

        list(explained([first]))
        for text in explained(x for _, x in zip(range(n), load_file(path))):
            digest.update(text.encode())
        print(json.dumps({"code": pyasp_screen.__file__, "digest": digest.hexdigest()}))
        return
    list(screen_records([first], kb, batch_size=batch_size, freeze=False))
    if n:
        items = (x for _, x in zip(range(n), load_file(path)))
        for o in screen_records(items, kb, batch_size=batch_size, freeze=False):
            if isinstance(o, RecordError):
                digest.update(f"error {o.reason}\n".encode())
            else:
                r = o.result
                digest.update(repr((r.patient, sorted(r.statuses.items()), sorted(r.verdicts.items()),
                                    r.overall, sorted(r.contradictions))).encode())
    print(json.dumps({"code": pyasp_screen.__file__, "digest": digest.hexdigest()}))


def count(tree: Path, kb: str, cohort: Path, n: int, batch_size: int, mode: str) -> tuple[int, dict]:
    """Instructions of one child under callgrind, and what it printed."""
    env = dict(os.environ, PYTHONPATH=str(tree),
               # callgrind runs code about 50 times slower: the grounding watch would stop it
               PYASP_SCREEN_GROUND_SECONDS="1000000")
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
           sys.executable, str(Path(__file__).resolve()), "--child", str(tree), kb, str(cohort),
           str(n), str(batch_size), mode]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    found = COLLECTED.search(out.stderr)
    if out.returncode != 0 or not found:
        tail = out.stderr.strip().splitlines()[-3:]
        raise SystemExit(f"bench_instructions: the child for {tree} failed: {' / '.join(tail)}")
    return int(found.group(1)), json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        tree, kb, cohort, n, batch, mode = sys.argv[2:8]
        child(tree, kb, cohort, int(n), int(batch), mode)
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=2000, help="patients screened (default 2000)")
    ap.add_argument("--batch-size", type=int, action="append",
                    help="patients a grounding (default 500; repeat to compare sizes)")
    ap.add_argument("--baseline-tree", type=Path, help="another checkout to compare with")
    ap.add_argument("--kb", default="ct1190b", help="knowledge base folder under each tree's kb/")
    ap.add_argument("--seed", type=int, default=1190)
    ap.add_argument("--explain", action="store_true",
                    help="count what `pyasp-screen explain` computes (screening one patient, its "
                         "explanations and the answer at a glance, --max 10) instead of screening; "
                         "about 3 s a patient under callgrind, so use -n 40 or so")
    args = ap.parse_args()
    mode = "explain" if args.explain else "screen"
    if not shutil.which("valgrind"):
        sys.exit("bench_instructions: needs valgrind (apt-get install valgrind)")
    from cohort import synthetic_cohort

    here = HERE.parent
    trees = [here] + ([args.baseline_tree.resolve()] if args.baseline_tree else [])
    for t in trees:
        if not (t / "pyasp_screen").is_dir() or not (t / "kb" / args.kb).is_dir():
            sys.exit(f"bench_instructions: {t} has no pyasp_screen/ or kb/{args.kb}/")
    batches = [1] if args.explain else (args.batch_size or [500])
    with tempfile.TemporaryDirectory() as tmp:
        cohort = Path(tmp) / "cohort.jsonl"
        cohort.write_text("".join(json.dumps(r) + "\n" for r in synthetic_cohort(args.n, seed=args.seed)))
        print(f"{mode}: {args.n} synthetic patients (seed {args.seed}), knowledge base {args.kb}; "
              f"{len(trees) * len(batches) * 2} children under callgrind, run at once")
        jobs = [(t, b, k) for t in trees for b in batches for k in (0, args.n)]
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            counted = dict(zip(jobs, pool.map(lambda j: count(j[0], args.kb, cohort, j[2], j[1], mode), jobs)))
    rows, digests = [], set()
    for t in trees:
        for b in batches:
            (warm, info0), (full, info) = counted[t, b, 0], counted[t, b, args.n]
            if not info["code"].startswith(str(t)):
                sys.exit(f"bench_instructions: the child for {t} ran the code of {info['code']}")
            digests.add(info["digest"])
            rows.append((t, b, (full - warm) / args.n, warm))
    base = rows[0][2]
    print(f"\n{'tree':<40} {'batch' if mode == 'screen' else '':>6} {'instructions/patient':>21} "
          f"{'start-up + 1':>14} {'ratio':>7}")
    for t, b, per, warm in rows:
        print(f"{str(t):<40} {b if mode == 'screen' else '':>6} {per:>21,.0f} {warm:>14,} {per / base:>7.3f}")
    same = len(digests) == 1
    print("\nratio: instructions a patient against the first row (lower is cheaper)")
    print(f"results identical across every row: {same}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()

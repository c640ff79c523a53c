"""A longer attack on results files than the test suite runs (not collected by pytest):
runs killed at random points by SIGKILL, SIGTERM or SIGINT and resumed (some killed again
while resuming), and pairs of runs started at once on one results file. Every outcome is
compared with an uninterrupted run's rows.

    python tests/attack_campaign.py --kills 20 --races 10

Prints what held and what did not; exits 1 if anything did not.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from cohort import synthetic_cohort  # noqa: E402

from pyasp_screen.knowledge.kb import load_kb  # noqa: E402
from pyasp_screen.outputs.stream import Layout, read_rows  # noqa: E402

CLI = [sys.executable, "-m", "pyasp_screen.cli"]


def _count(out: Path) -> int:
    try:
        if out.is_dir():
            return 200 * len(list(out.glob("part-*.parquet")))
        return out.read_bytes().count(b"\n")
    except OSError:
        return 0


def _cmd(src: Path, out: Path, jobs: int, *flags: str) -> list[str]:
    return CLI + ["cohort", str(src), "--results", str(out), "--jobs", str(jobs), "--batch-size", "40",
                  "--format", "json", "-o", os.devnull, *flags]


def _start_and_kill(cmd: list[str], out: Path, rng: random.Random, env: dict) -> str:
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    target = rng.randint(0, 2800)
    deadline = time.monotonic() + 300
    while proc.poll() is None and _count(out) < target and time.monotonic() < deadline:
        time.sleep(0.02)
    sig = rng.choice([signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig) if sig == signal.SIGKILL else os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass
    proc.wait()
    return signal.Signals(sig).name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--races", type=int, default=10)
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    env = dict(os.environ, PYASP_SCREEN_PARQUET_PART_ROWS="200")
    layout = Layout.of((load_kb(),))
    failures = []
    with tempfile.TemporaryDirectory(prefix="pyasp-attack-") as tmp:
        tmp = Path(tmp)
        pts = synthetic_cohort(3000, seed=21)
        lines = [json.dumps(p) for p in pts]
        lines[1500:1500] = [json.dumps(pts[7]), '{"id": "DEEP", "x": ' + "[" * 2000 + "]" * 2000 + "}",
                            '{"id": "S\\ud800", "screening_date": "2026-03-01"}', "{not json"]
        lines.append(json.dumps(pts[2000]))
        src = tmp / "cohort.jsonl"
        src.write_text("\n".join(lines) + "\n")
        reference = {}
        for suffix in (".jsonl", ".csv", ".parquet"):
            out = tmp / f"clean{suffix}"
            subprocess.run(_cmd(src, out, 2), env=env, check=False, capture_output=True)
            reference[suffix] = read_rows(out, layout)
            assert len(reference[suffix]) == len(lines), (suffix, len(reference[suffix]))
        kills = 0
        for k in range(args.kills):
            suffix = rng.choice([".jsonl", ".csv", ".parquet"])
            jobs = rng.choice([1, 2])
            out = tmp / f"k{k}{suffix}"
            said = [_start_and_kill(_cmd(src, out, jobs), out, rng, env)]
            kills += 1
            if rng.random() < 0.5:  # killed again while resuming
                said.append(_start_and_kill(_cmd(src, out, rng.choice([1, 2]), "--resume"), out, rng, env))
                kills += 1
            done = subprocess.run(_cmd(src, out, rng.choice([1, 2]), "--resume"), env=env, capture_output=True,
                                  text=True)
            rows = read_rows(out, layout) if done.returncode in (0, 1) else None
            ok = rows == reference[suffix]
            print(f"kill {k + 1}: {suffix} --jobs {jobs}, {' then '.join(said)}, resumed: "
                  f"{'identical rows' if ok else 'DIFFERENT: ' + done.stderr[-300:]}")
            if not ok:
                failures.append(f"kill {k + 1}")
        for r in range(args.races):
            suffix = rng.choice([".jsonl", ".csv", ".parquet"])
            out = tmp / f"r{r}{suffix}"
            flags = [rng.choice(["--resume", "--overwrite"]) for _ in range(2)]
            a = subprocess.Popen(_cmd(src, out, 1, flags[0]), env=env, stderr=subprocess.PIPE, text=True)
            time.sleep(rng.uniform(0.0, 3.0))
            b = subprocess.run(_cmd(src, out, 1, flags[1]), env=env, capture_output=True, text=True)
            _, a_err = a.communicate()
            codes = (a.returncode, b.returncode)
            refused = [e for e in (a_err, b.stderr) if "is in use by another run" in e]
            rows = read_rows(out, layout)
            # one run refused while the other wrote, or (the second started after the first
            # ended) both ran; either way the file holds the rows of one whole run
            ok = rows == reference[suffix] and ((len(refused) == 1 and sorted(codes) == [1, 2])
                                                or (not refused and codes == (1, 1)))
            print(f"race {r + 1}: {suffix} {flags[0]} and {flags[1]}: exit codes {codes}, "
                  f"{len(refused)} refused, rows {'identical' if rows == reference[suffix] else 'DIFFERENT'}")
            if not ok:
                failures.append(f"race {r + 1}")
    print(f"{kills} kills in {args.kills} runs, {args.races} races: "
          f"{'all held' if not failures else 'FAILED: ' + ', '.join(failures)}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

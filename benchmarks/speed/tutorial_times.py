"""Every tutorial's --quick run, now against an older checkout: no slower than before?

    git archive REV numvae tutorials | tar -x -C DIR      # e.g. REV = e67ccb2
    python -m benchmarks.speed.tutorial_times --baseline DIR [--rounds 3] [--only 07 18]

Each tutorial runs as a script (``python tutorials/NN_name.py --quick --out TMP``) in a
fresh process, once with this checkout's ``numvae`` and ``tutorials/`` and once with DIR's,
alternated within each round (which goes first alternates too), so that both see the same
load. A tutorial that DIR does not have is left out. The figure per tutorial is the median
over the rounds of now / before, for the children's CPU time (user + system, which leaves
out the time other processes held the core: the measure least disturbed by a busy machine)
and for the wall time. Each tutorial sets one BLAS thread itself.

Issue 26 asks that every tutorial be no slower than before the pool: a ratio above 1
names the tutorial to look at (a changed tutorial, e.g. one that trains a larger model since,
is compared as it now is, and the table says so only through its ratio).
JSON: benchmarks/speed/results/tutorial_times*.json.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.speed.conv_layers import cpu_name

ROOT = Path(__file__).resolve().parents[2]


def tutorials(folder, only):
    """The numbered tutorial scripts of ``folder/tutorials``, by file name."""
    scripts = sorted(p.name for p in (Path(folder) / "tutorials").glob("[0-9][0-9]_*.py"))
    return [s for s in scripts if not only or s[:2] in only]


def run_once(folder, script):
    """Run one tutorial of ``folder`` in --quick mode: (children's CPU s, wall s), or a
    SystemExit naming the tutorial if it fails (a failed run is not a time)."""
    env = dict(os.environ, PYTHONPATH=str(folder), MPLBACKEND="Agg")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run([sys.executable, str(Path(folder) / "tutorials" / script),
                               "--quick", "--out", out], cwd=out, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise SystemExit(f"tutorial_times: {folder}/tutorials/{script} failed: {last}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def measure(baseline, scripts, rounds):
    """{script: {"now": [(cpu, wall)...], "before": [...]}}, alternated per round."""
    times = {s: {"now": [], "before": []} for s in scripts}
    for r in range(rounds):
        for i, script in enumerate(scripts):
            order = [("now", ROOT), ("before", baseline)]
            if (r + i) % 2:
                order.reverse()
            for label, folder in order:
                times[script][label].append(run_once(folder, script))
        print(f"round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    return times


def summarise(times):
    """Per script: median CPU and wall seconds, and the median and range of now / before."""
    rows = {}
    for script, t in times.items():
        cpu = [n[0] / b[0] for n, b in zip(t["now"], t["before"])]
        wall = [n[1] / b[1] for n, b in zip(t["now"], t["before"])]
        rows[script] = dict(
            cpu_now=statistics.median(c for c, _ in t["now"]),
            cpu_before=statistics.median(c for c, _ in t["before"]),
            cpu_ratio=statistics.median(cpu), cpu_range=[min(cpu), max(cpu)],
            wall_ratio=statistics.median(wall), wall_range=[min(wall), max(wall)])
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True,
                        help="a folder holding an older checkout's numvae/ and tutorials/")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=[],
                        help="tutorial numbers (07 18 ...); default: all")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if not (args.baseline / "numvae" / "__init__.py").is_file():
        raise SystemExit(f"tutorial_times: --baseline {args.baseline}: expected a folder "
                         f"holding numvae/__init__.py, found none")
    if args.rounds < 1:
        raise SystemExit(f"tutorial_times: --rounds must be at least 1, got {args.rounds}")
    scripts = [s for s in tutorials(ROOT, args.only) if s in tutorials(args.baseline, [])]
    if not scripts:
        raise SystemExit(f"tutorial_times: --only {' '.join(args.only)}: expected tutorial "
                         f"numbers (07 18 ...) that both checkouts have, matched none")
    rows = summarise(measure(args.baseline, scripts, args.rounds))
    print(f"CPU: {cpu_name()}; load average {os.getloadavg()[0]:.1f} at the end")
    print("| tutorial | CPU s now | CPU s before | now / before, CPU (range) | wall |")
    print("|---|---:|---:|---|---:|")
    for script, row in rows.items():
        print(f"| {script} | {row['cpu_now']:.1f} | {row['cpu_before']:.1f} | "
              f"{row['cpu_ratio']:.2f} ({row['cpu_range'][0]:.2f}-{row['cpu_range'][1]:.2f})"
              f" | {row['wall_ratio']:.2f} |")
    total_now = sum(r["cpu_now"] for r in rows.values())
    total_before = sum(r["cpu_before"] for r in rows.values())
    print(f"all tutorials: {total_now:.1f} CPU s now, {total_before:.1f} before "
          f"({total_now / total_before:.2f})")
    if args.json:
        args.json.write_text(json.dumps(dict(cpu=cpu_name(), rounds=args.rounds,
                                             baseline=str(args.baseline), rows=rows),
                                        indent=1) + "\n")


if __name__ == "__main__":
    main()

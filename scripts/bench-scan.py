#!/usr/bin/env python3
"""Compares ctindex builds on the pipeline figure (`import --dry-run`).

Made to decide issue 17's "the hand-written scanner earns its place or goes":
build the binaries to compare first, e.g.

    cargo build --release && cp target/release/ctindex /tmp/ctindex-hand
    cargo build --release --features scan-serde && cp target/release/ctindex /tmp/ctindex-serde
    cargo build --release --features scan-sonic && cp target/release/ctindex /tmp/ctindex-sonic
    scripts/bench-scan.py --trail big=/tmp/big --trail tiny=/tmp/tiny \\
        hand=/tmp/ctindex-hand serde=/tmp/ctindex-serde sonic=/tmp/ctindex-sonic

For each trail it runs every binary --repeat times in rotating order (so a
drift of a busy machine favours none), and reports the median and spread of
the wall time and of the CPU time (user + system, less sensitive to other
load). With --callgrind N it also counts the instructions of one run over the
first N files of each trail under valgrind's callgrind (independent of load).
Every run must read the same number of events, or the script fails.
Standard library only.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def run(binary, trail, tmp, wrap=()):
    summary = os.path.join(tmp, "summary.json")
    cmd = list(wrap) + [binary, "import", trail, "--dry-run", "--progress", "off",
                        "--summary-json", summary,
                        "--dead-letter", os.path.join(tmp, "dead.ndjson")]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    stderr = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{stderr}")
    with open(summary) as f:
        events = json.load(f)["events_read"]
    return wall, usage.ru_utime + usage.ru_stime, events, stderr


def subset(trail, n, tmp):
    """A folder of hard links to the first n files of the trail."""
    out = os.path.join(tmp, f"subset-{os.path.basename(trail)}-{n}")
    files = sorted(os.path.join(r, f) for r, _, fs in os.walk(trail) for f in fs if f.endswith(".json.gz"))
    for i, path in enumerate(files[:n]):
        rel = os.path.relpath(path, trail)
        dest = os.path.join(out, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        try:
            os.link(path, dest)
        except OSError:
            shutil.copyfile(path, dest)
    return out


def spread(values):
    med = statistics.median(values)
    return f"{med:7.3f} s (min {min(values):.3f}, max {max(values):.3f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binaries", nargs="+", help="LABEL=PATH of each ctindex build")
    ap.add_argument("--trail", action="append", required=True, help="LABEL=DIR of a trail (gen-trail.py)")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--callgrind", type=int, default=0, metavar="FILES",
                    help="also count instructions over the first FILES files of each trail")
    ap.add_argument("--json", help="write every run here")
    args = ap.parse_args()
    binaries = [b.split("=", 1) for b in args.binaries]
    trails = [t.split("=", 1) for t in args.trail]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for tlabel, trail in trails:
            runs = {label: [] for label, _ in binaries}
            counts = set()
            for r in range(args.repeat):
                order = binaries[r % len(binaries):] + binaries[:r % len(binaries)]
                for label, binary in order:
                    wall, cpu, events, _ = run(binary, trail, tmp)
                    runs[label].append((wall, cpu))
                    counts.add(events)
                    print(f"{tlabel} {label} try {r + 1}: {wall:.3f} s wall, {cpu:.3f} s CPU, {events} events",
                          file=sys.stderr, flush=True)
            if len(counts) != 1:
                sys.exit(f"{tlabel}: the builds read different numbers of events: {counts}")
            events = counts.pop()
            results[tlabel] = {"events": events, "runs": runs}
            if args.callgrind:
                part = subset(trail, args.callgrind, tmp)
                results[tlabel]["callgrind_files"] = args.callgrind
                for label, binary in binaries:
                    _, _, n, stderr = run(binary, part, tmp, wrap=(
                        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"))
                    m = re.search(r"Collected : (\d+)", stderr)
                    results[tlabel].setdefault("instructions", {})[label] = int(m.group(1)) if m else None
                    results[tlabel]["callgrind_events"] = n
                    print(f"{tlabel} {label} callgrind: {m.group(1) if m else '?'} instructions, {n} events",
                          file=sys.stderr, flush=True)
    base = binaries[0][0]
    for tlabel, res in results.items():
        print(f"\n{tlabel}: {res['events']} events, {args.repeat} runs each (median, spread)")
        bwall = statistics.median(w for w, _ in res["runs"][base])
        bcpu = statistics.median(c for _, c in res["runs"][base])
        for label, _ in binaries:
            walls = [w for w, _ in res["runs"][label]]
            cpus = [c for _, c in res["runs"][label]]
            print(f"  {label:8} wall {spread(walls)}  {res['events'] / statistics.median(walls):9,.0f} ev/s"
                  f"  {statistics.median(walls) / bwall - 1:+6.1%} | CPU {spread(cpus)}"
                  f"  {statistics.median(cpus) / bcpu - 1:+6.1%}")
        if "instructions" in res:
            bins = res["instructions"][base]
            print(f"  callgrind, first {res['callgrind_files']} files ({res['callgrind_events']} events):")
            for label, n in res["instructions"].items():
                if n and bins:
                    print(f"  {label:8} {n / 1e9:7.3f} G instructions  {n / bins - 1:+6.1%}"
                          f"  {n / res['callgrind_events']:9,.0f} per event")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()

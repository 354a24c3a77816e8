"""The pipeline figure: `ctindex import DIR --dry-run` (decode, filter, classify, build the bulk
bodies, no network) against the floor of only decompressing the same files, `gzip -dc` on every
core (find | xargs -P$(nproc) gzip -dc > /dev/null), page cache warm; each --repeat times in
alternating order, the best of each counts. Run on each trail shape (the real shape's rows say
so in their names)."""

import os

from .common import NCPU, log, read_json, sh
from .procs import measure, wait_idle


def run(bench, trail, shape):
    folder = trail["dir"]
    files = trail["files"]
    events = trail["events"]
    # Page cache warm for both.
    for root, _, names in os.walk(folder):
        for n in names:
            with open(os.path.join(root, n), "rb") as f:
                while f.read(1 << 20):
                    pass
    per_call = max(1, min(64, files // (NCPU * 8)))
    floor = (f"find {sh(folder)} -name '*.json.gz' -print0 | "
             f"xargs -0 -P{NCPU} -n{per_call} gzip -dc > /dev/null")
    cmd, summary = bench.ctindex("import", [folder], "dry" + shape.strip(" ()").replace(" ", "-"), ["--dry-run"])
    log(f"pipeline floor: {floor}")
    log(f"pipeline: {' '.join(cmd)}")

    def floor_run():
        wait_idle(bench.args.wait_idle)
        m = measure(["sh", "-c", floor])
        return m, events if m["rc"] == 0 else 0, events, None, {"note": f"xargs -P{NCPU} -n{per_call}"}

    def ctindex_run():
        wait_idle(bench.args.wait_idle)
        m = measure(cmd)
        s = read_json(summary)
        return m, s.get("events_read", 0), events, None, {"summary": s}

    bench.best_of("pipeline", "pipeline" + shape, None,
                  [("gzip -dc floor" + shape, floor_run), ("ctindex --dry-run" + shape, ctindex_run)])

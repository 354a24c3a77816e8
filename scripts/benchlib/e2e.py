"""The end-to-end figures, on each server: ctindex import against its peers, each into a fresh
index prefix with --replicas 0, `_count` checked against the events sent, deleted after:

  ctindex    `ctindex import DIR`;
  ceiling    the very bulk bodies ctindex sends (record_bodies: `ctindex import` into the
             recording endpoint), posted by curl with the same concurrency (xargs -P);
  python     scripts/bench-parallel-bulk.py, the official client's helpers.parallel_bulk,
             same concurrency and bytes per request, into the template `ctindex setup` made;
  curl loop  scripts/bench-curl-loop, one curl per event (the classic blog recipe), on a
             sample of --curl-events spread over the trail, extrapolated.

The first three run --repeat times in alternating order after a warm-up (a tenth of the
recorded bodies posted to a scratch prefix, then deleted); the best of each counts."""

import os
import re
import subprocess
import time

from .common import SCRIPTS, Failure, log, parse_size, read_json, read_json_line, sh
from .procs import measure, server_pid, wait_idle
from .recorder import Recorder
from .trail import sample_files


def run(bench, cluster, python):
    pid = server_pid(cluster)
    name = cluster.label
    warm_up(bench, cluster)

    def ctindex_run():
        prefix = bench.prefix(cluster, "ct")
        cmd, summary = bench.ctindex("import", [bench.trail["dir"]], f"import-{cluster.name}",
                                     ["--url", cluster.url, "--index-prefix", prefix, "--replicas", "0"])
        wait_idle(bench.args.wait_idle)
        log(f"{name}: {' '.join(cmd)}")
        m = measure(cmd, pid)
        s = read_json(summary)
        count = cluster.count(f"{prefix}-*")
        bench.drop(cluster, prefix)
        return m, s.get("indexed", 0), bench.events, count, {"summary": s}

    def ceiling_run():
        # the same bodies with curl, same concurrency
        prefix = bench.cleanup.prefix(cluster, bench.bodies["prefix"])
        bench.setup(cluster, prefix)
        ceiling = (f"find {sh(bench.bodies['dir'])} -name '*.ndjson' -print0 | sort -z | "
                 f"xargs -0 -P{bench.concurrency} -I{{}} curl -sS -o {{}}.resp -w '%{{http_code}}\\n' "
                 f"-H 'Content-Type: application/x-ndjson' --data-binary @{{}} "
                 f"{sh(cluster.base + '/_bulk?filter_path=errors')} && "
                 f"curl -sS -o /dev/null -XPOST {sh(cluster.base + '/' + prefix + '-*/_refresh')}")
        codes = os.path.join(bench.tmp, f"codes-{cluster.name}")
        wait_idle(bench.args.wait_idle)
        log(f"{name}: ceiling: {ceiling}")
        with open(codes, "w") as out:
            m = measure(["sh", "-c", ceiling], pid, stdout=out)
        bad = bulk_errors(bench, codes)
        count = cluster.count(f"{prefix}-*")
        sent = bench.bodies["items"] if m["rc"] == 0 and not bad else 0
        bench.drop(cluster, prefix)
        return m, sent, bench.events, count, {
            "note": f"{bench.bodies['bodies']} bodies, xargs -P{bench.concurrency} curl" + (f"; {bad}" if bad else "")}

    def python_run():
        prefix = bench.prefix(cluster, "py")
        bench.setup(cluster, prefix)
        expected = min(bench.events, bench.args.python_events or bench.events)
        client = "opensearch" if cluster.flavor == "OpenSearch" else "elasticsearch"
        cmd = [python, os.path.join(SCRIPTS, "bench-parallel-bulk.py"), bench.trail["dir"], "--url", cluster.url,
               "--client", client, "--index-prefix", prefix, "--threads", str(bench.concurrency),
               "--max-chunk-bytes", str(parse_size(bench.batch_bytes))]
        if bench.args.python_events:
            cmd += ["--max-events", str(expected)]
        out_path = os.path.join(bench.tmp, f"py-{cluster.name}.json")
        wait_idle(bench.args.wait_idle)
        log(f"{name}: python: {' '.join(cmd)}")
        with open(out_path, "w") as out:
            m = measure(cmd, pid, stdout=out)
        res = read_json_line(out_path)
        count = cluster.count(f"{prefix}-*")
        note = f"{client} client, thread_count={bench.concurrency}"
        if res.get("failed"):
            note += f"; refused: {res.get('first_error')}"
        bench.drop(cluster, prefix)
        return m, res.get("events", 0), expected, count, {"note": note, "refused": res.get("failed", 0)}

    kinds = [("ctindex import", ctindex_run), ("ceiling: curl bulk", ceiling_run)]
    if python:
        kinds.append(("python parallel_bulk", python_run))
    bench.best_of("e2e", name, name, kinds)

    # the per-event curl loop, on a sample
    if bench.args.curl_events > 0:
        prefix = bench.prefix(cluster, "curl")
        bench.setup(cluster, prefix)
        sample, expected = sample_files(bench.trail["dir"], bench.args.curl_events)
        cmd = [os.path.join(SCRIPTS, "bench-curl-loop"), cluster.base, f"{prefix}-loop", str(expected)] + sample
        wait_idle(bench.args.wait_idle)
        log(f"{name}: curl loop over {expected} events of {len(sample)} files")
        out_path = os.path.join(bench.tmp, f"curl-{cluster.name}.txt")
        with open(out_path, "w") as out:
            m = measure(cmd, pid, stdout=out)
        with open(out_path) as f:
            got = re.search(r"indexed (\d+) failed (\d+)", f.read())
        indexed, failed = (int(got.group(1)), int(got.group(2))) if got else (0, 0)
        count = cluster.count(f"{prefix}-*")
        bench.record("e2e", "curl loop (sample)", m, indexed, expected, name, count,
                     note=f"{expected} events of {len(sample)} files, one curl each; events/s extrapolated",
                    refused=failed)
        bench.drop(cluster, prefix)


def record_bodies(bench):
    """ctindex's bulk bodies for the trail, recorded from a real `ctindex import`."""
    out = os.path.join(bench.tmp, "bodies")
    os.makedirs(out)
    recorder = Recorder(out)
    try:
        prefix = f"bench-{bench.stamp}-ceil"
        cmd, summary = bench.ctindex("import", [bench.trail["dir"]], "dump",
                                     ["--url", recorder.url, "--index-prefix", prefix, "--replicas", "0"])
        log(f"recording ctindex's bulk bodies: {' '.join(cmd)}")
        m = measure(cmd)
    finally:
        recorder.close()
    s = read_json(summary)
    if m["rc"] != 0 or recorder.items != bench.events:
        raise Failure(f"recording the bulk bodies failed: rc {m['rc']}, {recorder.items} items of {bench.events}")
    if recorder.unexpected:
        log(f"the recording endpoint answered {{}} to requests it does not know: {recorder.unexpected[:5]}")
    log(f"recorded {recorder.bodies} bodies, {recorder.items} documents, {recorder.bytes / 1e6:.0f} MB")
    bench.bodies = {"dir": out, "prefix": prefix, "bodies": recorder.bodies, "bytes": recorder.bytes,
                    "items": recorder.items}
    bench.runs.append({"section": "e2e", "run": "record bodies", "server": None, "events": recorder.items,
                       "expected": bench.events, "seconds": m["wall"], "events_per_s": None,
                      "peak_rss_mb": m.get("maxrss_kb", 0) / 1024, "cores": m["cores"], "server_cores": None,
                      "other_cores": m["other_cores"], "machine_busy": m["machine_busy"], "rc": m["rc"],
                      "check": "OK", "note": "ctindex import into the recording endpoint (not a figure)",
                      "summary": s})


def warm_up(bench, cluster):
    """Posts the first recorded bodies into a scratch prefix, then deletes it, so
    that no measured run pays for the server's JIT warm-up or first index
    creations (whichever run came first on a server used to be the slower)."""
    names = sorted(n for n in os.listdir(bench.bodies["dir"]) if n.endswith(".ndjson"))
    names = names[:max(int(bench.concurrency), len(names) // 10)]
    if not names:
        return
    prefix = bench.cleanup.prefix(cluster, bench.bodies["prefix"])
    bench.setup(cluster, prefix)
    paths = "".join(os.path.join(bench.bodies["dir"], n) + "\0" for n in names)
    cmd = (f"xargs -0 -P{bench.concurrency} -I{{}} curl -sS -o /dev/null "
           f"-H 'Content-Type: application/x-ndjson' --data-binary @{{}} "
           f"{sh(cluster.base + '/_bulk?filter_path=errors')}")
    started = time.monotonic()
    r = subprocess.run(["sh", "-c", cmd], input=paths, text=True, capture_output=True)
    log(f"{cluster.label}: warm-up: {len(names)} bodies in {time.monotonic() - started:.1f} s (not a figure)"
        + (f"; {r.stderr.strip()[-200:]}" if r.returncode else ""))
    cluster.delete_prefix(prefix)


def bulk_errors(bench, codes_path):
    with open(codes_path) as f:
        codes = [c.strip() for c in f if c.strip()]
    bad = sum(1 for c in codes if c != "200")
    errors = 0
    for name in os.listdir(bench.bodies["dir"]):
        if name.endswith(".resp"):
            path = os.path.join(bench.bodies["dir"], name)
            with open(path, "rb") as f:
                if b'"errors":true' in f.read(200):
                    errors += 1
            os.unlink(path)
    problems = []
    if len(codes) != bench.bodies["bodies"]:
        problems.append(f"{len(codes)} answers to {bench.bodies['bodies']} bodies")
    if bad:
        problems.append(f"{bad} answers not 200")
    if errors:
        problems.append(f"{errors} answers with errors")
    return ", ".join(problems)

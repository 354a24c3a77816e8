"""The sync section: the trail uploaded to the S3 server ($S3_ENDPOINT, missing objects only, by
scripts/bench-s3-upload.py), one full `ctindex sync s3://...` into a fresh --state-index, then a
no-op sync: seconds, LIST requests (its --summary-json) and every request the S3 server logged
for the bucket ($S3_REQUEST_LOG)."""

import os
import subprocess
import time

from .common import SCRIPTS, Failure, log, read_json
from .procs import measure, server_pid, wait_idle


def run(bench, cluster, python):
    endpoint = os.environ["S3_ENDPOINT"]
    bucket = f"ctindex-bench-{bench.trail['key']}"
    log(f"uploading the trail to s3://{bucket} at {endpoint} (missing objects only)")
    started = time.monotonic()
    r = subprocess.run([python, os.path.join(SCRIPTS, "bench-s3-upload.py"), bench.trail["dir"], bucket,
                        "--endpoint-url", endpoint])
    if r.returncode != 0:
        raise Failure("bench-s3-upload.py failed")
    log(f"upload checked in {time.monotonic() - started:.0f} s")
    pid = server_pid(cluster)
    prefix = bench.prefix(cluster, "sync")
    state = bench.cleanup.index(cluster, f"bench-{bench.stamp}-state")
    extra = ["--url", cluster.url, "--index-prefix", prefix, "--replicas", "0", "--state-index", state,
             "--endpoint-url", endpoint]
    source = [f"s3://{bucket}"]

    cmd, summary = bench.ctindex("sync", source, "sync-full", extra)
    wait_idle(bench.args.wait_idle)
    log(f"sync, first run: {' '.join(cmd)}")
    m = measure(cmd, pid)
    s = read_json(summary)
    count = cluster.count(f"{prefix}-*")
    bench.record("sync", "ctindex sync (first, from S3)", m, s.get("indexed", 0), bench.events, cluster.label,
                 count, summary=s, s3_list_requests=s.get("s3_list_requests"))

    cmd, summary = bench.ctindex("sync", source, "sync-noop", extra)
    log_path = os.environ.get("S3_REQUEST_LOG")
    offset = os.path.getsize(log_path) if log_path and os.path.exists(log_path) else None
    log(f"sync, nothing new: {' '.join(cmd)}")
    m = measure(cmd, pid)
    s = read_json(summary)
    requests = None
    if offset is not None:
        with open(log_path, "rb") as f:
            f.seek(offset)
            requests = sum(1 for line in f if f" /{bucket}".encode() in line)
    run = bench.record("sync", "ctindex sync (no-op)", m, s.get("events_read", 0), 0, cluster.label,
                       summary=s, s3_list_requests=s.get("s3_list_requests"), s3_requests=requests)
    run["note"] = (f"{s.get('s3_list_requests')} LIST requests"
                   + (f", {requests} S3 requests in the server's log" if requests is not None else ""))
    bench.drop(cluster, prefix)
    if not bench.args.keep:
        cluster.delete_indices([state])

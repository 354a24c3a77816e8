"""The client section: ctindex import and the Python parallel_bulk script against the recording
endpoint answering every request at once (writing nothing): what each client sends when the
server costs nothing. Not a target; it shows what the end-to-end figures leave to the server."""

import os

from .common import SCRIPTS, log, parse_size, read_json, read_json_line
from .procs import measure, wait_idle
from .recorder import Recorder


def run(bench, python):
    """Both clients against an endpoint that answers every request at once (the
    recording endpoint, writing nothing): what each client can send when the
    server costs nothing, sharing the machine with that endpoint only."""
    sink = Recorder(None)
    prefix = f"bench-{bench.stamp}-client"

    def ctindex_run():
        before = sink.items
        cmd, summary = bench.ctindex("import", [bench.trail["dir"]], "client",
                                     ["--url", sink.url, "--index-prefix", prefix, "--replicas", "0"])
        wait_idle(bench.args.wait_idle)
        log(f"client: {' '.join(cmd)}")
        m = measure(cmd)
        s = read_json(summary)
        got = sink.items - before
        return m, s.get("indexed", 0), bench.events, got, {"summary": s}

    def python_run():
        before = sink.items
        cmd = [python, os.path.join(SCRIPTS, "bench-parallel-bulk.py"), bench.trail["dir"], "--url", sink.url,
               "--client", "opensearch", "--index-prefix", prefix, "--threads", str(bench.concurrency),
               "--max-chunk-bytes", str(parse_size(bench.batch_bytes))]
        out_path = os.path.join(bench.tmp, "py-client.json")
        wait_idle(bench.args.wait_idle)
        log(f"client: python: {' '.join(cmd)}")
        with open(out_path, "w") as out:
            m = measure(cmd, stdout=out)
        res = read_json_line(out_path)
        got = sink.items - before
        return m, res.get("events", 0), bench.events, got, {
            "note": f"opensearch client, thread_count={bench.concurrency}", "refused": res.get("failed", 0)}

    try:
        bench.best_of("client", "client", None,
                      [("ctindex import", ctindex_run), ("python parallel_bulk", python_run)])
    finally:
        sink.close()

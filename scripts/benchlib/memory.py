"""The memory section's own run: `ctindex import` of one very large file (--large-file-mb) into
the first server, for its peak RSS (every other ctindex run's peak RSS is in its own row)."""

from .common import log, read_json
from .procs import measure, server_pid, wait_idle


def run(bench, cluster, large):
    pid = server_pid(cluster)
    prefix = bench.prefix(cluster, "large")
    cmd, summary = bench.ctindex("import", [large["dir"]], "large",
                                 ["--url", cluster.url, "--index-prefix", prefix, "--replicas", "0"])
    wait_idle(bench.args.wait_idle)
    log(f"large file ({large['bytes'] / 1e6:.0f} MB gz, {large['events']} events) into {cluster.label}: "
        f"{' '.join(cmd)}")
    m = measure(cmd, pid)
    s = read_json(summary)
    count = cluster.count(f"{prefix}-*")
    bench.record("memory", "ctindex import, one large file", m, s.get("indexed", 0), large["events"],
                 cluster.label, count, note=f"{large['bytes'] / 1e6:.0f} MB gz, "
                f"{large['uncompressed_bytes'] / 1e6:.0f} MB JSON", summary=s)
    bench.drop(cluster, prefix)

"""The s3 section: the real-shape trail (gen-trail.py --shape real: many tiny files) read from a
fast S3 server, with 0 ms and --latency-ms added to every request, the regime of a historical
import from S3 (bounded by objects per second, not events per second).

The server is scripts/stack's s3-fast (s3s-fs, Rust): the trail becomes a bucket by a symlink in
$S3_FAST_ROOT (removed at the end). The latency comes from scripts/delay-proxy (a TCP proxy in
Rust that writes every chunk half the round trip after reading it, and makes a new connection
wait one round trip, like a handshake: this kernel has no `tc netem`); it is built once into the
cache, its CPU is measured over every run and shown, and the added latency is measured with
curl before the runs (requests over one kept connection, the median of 20). The server's threads
run on the last --s3-server-cpus CPUs during the section (by default one of two): s3s-fs hands
every file operation to tokio's blocking pool, and on this VM the wake-ups across vCPUs took half
of its CPU (perf: finish_task_switch and try_to_wake_up), which made the stand-in for S3, which
costs an importer's machine nothing, the bottleneck; threads it starts later inherit the set.

At each latency, one after another:
  ctindex import --dry-run   objects/s and events/s against the bound downloads / latency;
  python reader              scripts/bench-s3-read.py: boto3, a ThreadPoolExecutor as large as
                             ctindex's --downloads, gunzip and json.loads only;
                             these two --repeat times in alternating order, the best counts;
  ctindex sync (first)       into --sync-server with a --state-file, a fresh prefix;
and with latency the no-op sync that follows: seconds and requests. Peak RSS is in every row."""

import os
import re
import statistics
import subprocess

from .common import CACHE, SCRIPTS, Failure, log, read_json, read_json_line, run_quiet
from .procs import listening_pid, measure, proc_cpu_seconds, wait_idle

PROXY_DIR = os.path.join(SCRIPTS, "delay-proxy")


def build_proxy():
    """scripts/delay-proxy built (once; cargo skips it when nothing changed); its binary."""
    target = os.path.join(CACHE, "delay-proxy-target")
    r = run_quiet(["cargo", "build", "--release", "--quiet", "--manifest-path", os.path.join(PROXY_DIR, "Cargo.toml"),
                   "--target-dir", target])
    if r.returncode != 0:
        raise Failure(f"cannot build scripts/delay-proxy: {r.stderr.strip()[-600:]}")
    return os.path.join(target, "release", "delay-proxy")


class Proxy:
    """delay-proxy on a free port of 127.0.0.1 in front of upstream (host:port)."""

    def __init__(self, binary, upstream, delay_ms, log_path):
        self.delay_ms = delay_ms
        self.log_path = log_path
        with open(log_path, "w") as log_file:
            self.proc = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--upstream", upstream,
                                          "--delay-ms", str(delay_ms)], stdout=subprocess.PIPE, stderr=log_file,
                                         text=True)
        line = self.proc.stdout.readline()
        m = re.match(r"listening on (\S+)", line)
        if not m:
            self.stop()
            raise Failure(f"delay-proxy did not start: {line!r}")
        self.endpoint = f"http://{m.group(1)}"

    def cpu(self):
        return proc_cpu_seconds(self.proc.pid)

    def connections(self):
        """Connections accepted so far."""
        try:
            with open(self.log_path) as f:
                return sum(1 for line in f if line.startswith("accepted "))
        except OSError:
            return 0

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def request_ms(endpoint, n=20):
    """Milliseconds per request over one kept connection (median of n, the first one, which
    also pays the connection, left out) and the first one, with curl."""
    fmt = "%{time_total} %{num_connects}\\n"
    r = run_quiet(["curl", "-s", "-w", fmt] + ["-o", "/dev/null", endpoint + "/"] * (n + 1))
    times = [float(line.split()[0]) * 1000 for line in r.stdout.splitlines() if line.strip()]
    if len(times) < 2:
        raise Failure(f"curl could not reach {endpoint}: {r.stderr.strip()}")
    return statistics.median(times[1:]), times[0]


def server_endpoint():
    endpoint = os.environ.get("S3_FAST_ENDPOINT")
    root = os.environ.get("S3_FAST_ROOT")
    if not endpoint or not root:
        raise Failure("S3_FAST_ENDPOINT / S3_FAST_ROOT are not set: `scripts/stack start s3-fast` "
                      "and `eval \"$(scripts/stack env s3-fast)\"`, or --skip s3")
    try:
        request_ms(endpoint, 1)
    except Failure:
        raise Failure(f"s3-fast does not answer at {endpoint}: `scripts/stack start s3-fast`, or --skip s3")
    return endpoint, root


def run(bench, trail, python, cluster):
    endpoint, root = server_endpoint()
    upstream = endpoint.split("://", 1)[1].rstrip("/")
    server = listening_pid(int(upstream.rsplit(":", 1)[1]))
    bucket = f"ctindex-bench-real-{trail['key']}"
    link = os.path.join(root, bucket)
    if os.path.islink(link):
        os.unlink(link)
    os.symlink(trail["dir"], link)
    proxy_binary = build_proxy()
    pinned = pin(server, bench.args.s3_server_cpus)
    downloads = bench.downloads
    files, events = trail["files"], trail["events"]
    log(f"s3: the real-shape trail ({files} files, {events} events) as s3://{bucket} on {endpoint}; "
        f"ctindex --downloads {downloads} (its default), the Python reader with as many threads")
    try:
        for delay in (0, bench.args.latency_ms):
            proxy = Proxy(proxy_binary, upstream, delay, os.path.join(bench.tmp, f"proxy-{delay}.log")) if delay else None
            try:
                at(bench, trail, python, cluster, bucket, proxy.endpoint if proxy else endpoint, proxy, server,
                   downloads, delay)
            finally:
                if proxy:
                    proxy.stop()
    finally:
        os.unlink(link)
        unpin(server, pinned)


def threads(pid):
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def pin(pid, count):
    """Runs every thread of pid on the last `count` CPUs; the CPUs it had before (None: untouched)."""
    allowed = sorted(os.sched_getaffinity(pid))
    if count >= len(allowed):
        log(f"s3: s3-fast runs on all {len(allowed)} CPUs")
        return None
    chosen = set(allowed[-count:])
    for tid in threads(pid):
        try:
            os.sched_setaffinity(tid, chosen)
        except OSError:
            pass
    log(f"s3: s3-fast's threads run on CPU {','.join(map(str, sorted(chosen)))} of "
        f"{','.join(map(str, allowed))} during this section (--s3-server-cpus {count})")
    return set(allowed)


def unpin(pid, allowed):
    if allowed is None:
        return
    for tid in threads(pid):
        try:
            os.sched_setaffinity(tid, allowed)
        except OSError:
            pass


def at(bench, trail, python, cluster, bucket, endpoint, proxy, server, downloads, delay):
    """The runs at one added latency."""
    per_request, first = request_ms(endpoint)
    tag = f"+{delay} ms"
    log(f"s3 {tag}: {per_request:.1f} ms per request over a kept connection (median of 20 with curl), "
        f"{first:.1f} ms for the first (with its connection)")
    bound = downloads / (per_request / 1000) if delay else None
    files, events = trail["files"], trail["events"]
    env = dict(os.environ)
    common = {"added_ms": delay, "request_ms": round(per_request, 2), "first_request_ms": round(first, 2),
              "downloads": downloads, "bound_objects_per_s": bound}

    def objects_note(run, objects, extra=""):
        rate = objects / run["wall"] if run["rc"] == 0 and run["wall"] > 0 else 0
        text = f"{rate:,.0f} objects/s"
        if bound:
            text += f" ({rate / bound:.0%} of downloads/latency = {bound:,.0f})"
        return rate, text + extra

    def proxy_cpu(m, before):
        if not proxy:
            return {}
        cpu, connections = before
        used = (proxy.cpu() or 0) - (cpu or 0)
        return {"proxy_cores": used / m["wall"] if m["wall"] > 0 else None,
                "connections": proxy.connections() - connections}

    def measured(what, cmd, **kw):
        """Runs cmd once (logged), with the proxy's CPU and connections over the run."""
        log(f"s3 {tag}: {what}{' '.join(cmd)}")
        before = (proxy.cpu(), proxy.connections()) if proxy else None
        m = measure(cmd, server, env=env, **kw)
        return m, proxy_cpu(m, before)

    def proxy_text(more):
        if more.get("proxy_cores") is None:
            return ""
        return f", {more['connections']} connections, proxy {more['proxy_cores']:.2f} cores"

    def dry_run():
        cmd, summary = bench.ctindex("import", [f"s3://{bucket}"], f"s3-dry-{delay}",
                                     ["--dry-run", "--endpoint-url", endpoint])
        wait_idle(bench.args.wait_idle)
        m, more = measured("", cmd)
        s = read_json(summary)
        rate, note = objects_note(m, s.get("files", 0))
        return m, s.get("events_read", 0), events, None, dict(
            note=note + proxy_text(more), objects=s.get("files", 0), objects_per_s=rate, summary=s, **common, **more)

    def python_reader():
        cmd = [python, os.path.join(SCRIPTS, "bench-s3-read.py"), bucket, "--endpoint-url", endpoint,
               "--threads", str(downloads)]
        out = os.path.join(bench.tmp, f"s3-python-{delay}.json")
        wait_idle(bench.args.wait_idle)
        with open(out, "w") as f:
            m, more = measured("", cmd, stdout=f)
        p = read_json_line(out)
        rate, note = objects_note(m, p.get("objects", 0))
        return m, p.get("events", 0), events, None, dict(
            note=note + proxy_text(more), objects=p.get("objects", 0), objects_per_s=rate, **common, **more)

    # Each --repeat times in alternating order, the best of each counts (a shared machine).
    bench.best_of("s3", f"S3 {tag}", None,
                  [(f"ctindex import --dry-run, S3 {tag}", dry_run),
                   (f"python reader (boto3, {downloads} threads), S3 {tag}", python_reader)])

    if cluster is None:
        return
    # ctindex sync: the first, then (with latency) the no-op
    prefix = bench.prefix(cluster, f"s3sync{delay}")
    state = os.path.join(bench.tmp, f"s3-sync-{delay}.state")
    extra = ["--url", cluster.url, "--index-prefix", prefix, "--replicas", "0", "--state-file", state,
             "--endpoint-url", endpoint]
    runs = [("first", "sync-first")] + ([("no-op", "sync-noop")] if delay else [])
    for label, name in runs:
        cmd, summary = bench.ctindex("sync", [f"s3://{bucket}"], f"s3-{name}-{delay}", extra)
        if label == "first":
            wait_idle(bench.args.wait_idle)
        m, more = measured(f"sync, {label}: ", cmd)
        s = read_json(summary)
        if label == "first":
            count = cluster.count(f"{prefix}-*")
            rate, note = objects_note(m, s.get("files", 0))
            bench.record("s3", f"ctindex sync (first), S3 {tag}", m, s.get("indexed", 0), events, cluster.label,
                         count, note=note + proxy_text(more), objects=s.get("files", 0), objects_per_s=rate,
                         summary=s, **common, **more)
        else:
            gets = s.get("files", 0) + s.get("files_skipped", 0)
            requests = (s.get("s3_list_requests") or 0) + gets
            bench.record("s3", f"ctindex sync (no-op), S3 {tag}", m, s.get("events_read", 0), 0, cluster.label,
                         note=f"{requests} S3 requests ({s.get('s3_list_requests')} LIST, {gets} GET)"
                              + proxy_text(more), s3_requests=requests, summary=s, **common, **more)
    bench.drop(cluster, prefix)

"""The bench state every section adds to: its settings (concurrency, batch size), the runs
recorded so far (one row each, in the table and the JSON), the Cleanup of what it created on the
servers, and the pieces each section uses: the ctindex command line, best_of (repeated tries
in alternating order) and record (checking a run's counts).

The sections themselves live in their own modules (pipeline, e2e, client, memory, sync), each a
run(bench, ...) function."""

import datetime as dt
import os
import tempfile

from .cluster import Cleanup
from .common import SETTINGS, Failure, log, run_quiet


class Bench:
    def __init__(self, args, trail, defaults):
        self.args = args
        self.trail = trail
        self.events = trail["events"]
        self.concurrency = args.concurrency or defaults["concurrency"]
        self.batch_bytes = args.batch_bytes or defaults["batch-bytes"]
        # --downloads is ctindex's default unless given after --; the Python reader uses as many threads.
        self.downloads = int(defaults["downloads"])
        extra = args.ctindex_args
        for i, a in enumerate(extra):
            if a.startswith("--downloads="):
                self.downloads = int(a.split("=", 1)[1])
            elif a == "--downloads" and i + 1 < len(extra):
                self.downloads = int(extra[i + 1])
        self.runs = []
        self.ok = True
        self.cleanup = Cleanup()
        self.stamp = dt.datetime.now().strftime("%m%d%H%M%S")
        self.tmp = tempfile.mkdtemp(prefix="ctindex-bench-")

    def prefix(self, cluster, tag):
        return self.cleanup.prefix(cluster, f"bench-{self.stamp}-{tag}")

    def ctindex(self, sub, sources, tag, extra):
        summary = os.path.join(self.tmp, f"{tag}.json")
        cmd = [SETTINGS.binary, sub] + sources + [
            "--progress", "off", "--summary-json", summary,
            "--dead-letter", os.path.join(self.tmp, f"{tag}-dead.ndjson"),
        ]
        if self.args.concurrency:
            cmd += ["--concurrency", self.args.concurrency]
        if self.args.batch_bytes:
            cmd += ["--batch-bytes", self.args.batch_bytes]
        return cmd + extra + self.args.ctindex_args, summary

    def record(self, section, name, m, events, expected, server=None, count=None, note="", refused=0, **more):
        """One run. events: what it indexed (or read); refused: documents the cluster refused (the
        comparisons only; ctindex has none here), so events + refused must be expected and _count events."""
        good = m["rc"] == 0 and events + refused == expected and (count is None or count == events)
        check = "OK" if good else "MISMATCH" if m["rc"] == 0 else f"FAILED rc={m['rc']}"
        if m.get("killed_rss_mb"):
            check = f"KILLED at RSS {m['killed_rss_mb']:.0f} MiB"
        if count is not None:
            check += f" count={count}"
        if refused:
            check += f" refused={refused}"
        if not good:
            self.ok = False
            log(f"{name}: {check} (expected {expected} events, got {events})")
        run = {
            "section": section, "run": name, "server": server, "events": events, "expected": expected,
            "seconds": m["wall"], "events_per_s": events / m["wall"] if m["wall"] > 0 and good else None,
            "peak_rss_mb": m.get("maxrss_kb", 0) / 1024, "cores": m["cores"], "server_cores": m["server_cores"],
            "other_cores": m["other_cores"], "machine_busy": m["machine_busy"], "rc": m["rc"], "check": check,
            "note": note,
        }
        run.update(more)
        self.runs.append(run)
        eps = f"{run['events_per_s']:,.0f} events/s" if run["events_per_s"] else "-"
        log(f"{name}: {m['wall']:.2f} s, {eps}, peak RSS {run['peak_rss_mb']:.0f} MiB, {check}")
        return run

    def find(self, section, name, server=None):
        for r in self.runs:
            if r["section"] == section and r["run"] == name and r["server"] == server:
                return r
        return None

    def best_of(self, section, name, server, kinds):
        """Runs each of kinds (label, run) --repeat times, in alternating order
        (A B C, C B A, ...) so that a drift of the machine or the server favours
        none, and records the best try of each, unless one failed: then that
        one. run() returns (measure, events, expected, _count or None, extra
        record fields); every try goes into the JSON."""
        tries = {label: [] for label, _ in kinds}
        for r in range(max(1, self.args.repeat)):
            for label, run in (kinds if r % 2 == 0 else list(reversed(kinds))):
                m, events, expected, count, extra = run()
                ok = m["rc"] == 0 and events + extra.get("refused", 0) == expected and count in (None, events)
                eps = events / m["wall"] if ok and m["wall"] > 0 else 0
                log(f"{name}: {label}: try {r + 1}: {m['wall']:.2f} s, {eps:,.0f} events/s" + ("" if ok else ", FAILED"))
                tries[label].append((eps, ok, m, events, expected, count, extra))
        for label, _ in kinds:
            got = tries[label]
            failed = [t for t in got if not t[1]]
            eps, _, m, events, expected, count, extra = failed[0] if failed else max(got, key=lambda t: t[0])
            extra = dict(extra)
            if len(got) > 1:
                extra["note"] = (extra.get("note", "") + "; " if extra.get("note") else "") + \
                    f"best of {len(got)}: " + ", ".join(f"{t[0]:,.0f}" for t in got)
            extra["tries"] = [{"events_per_s": t[0], "seconds": t[2]["wall"], "ok": t[1]} for t in got]
            self.record(section, label, m, events, expected, server, count, **extra)

    def setup(self, cluster, prefix):
        """`ctindex setup` for a prefix: the template the comparisons index into."""
        r = run_quiet([SETTINGS.binary, "setup", "--url", cluster.url, "--index-prefix", prefix, "--replicas", "0"])
        if r.returncode != 0:
            raise Failure(f"ctindex setup on {cluster.name} failed: {r.stderr.strip()[-500:]}")

    def drop(self, cluster, prefix):
        """Deletes a prefix's indices and template after a run (unless --keep)."""
        if not self.args.keep:
            cluster.delete_prefix(prefix)

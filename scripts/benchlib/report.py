"""What a run prints: a header (machine, tools, trail), the table of runs, and the table of
targets with PASS/MISS computed from the runs (also written to the JSON). README.md and
docs/benchmark.md quote these tables: change their rows and columns with care."""

import datetime as dt
import json
import os

from .common import (TARGET_CEILING, TARGET_OBJECTS, TARGET_PIPELINE, TARGET_PIPELINE_REAL, TARGET_PYTHON,
                     TARGET_READER, TARGET_RSS_MB)


def targets(bench, servers):
    out = []

    def row(figure, measured, reference, ratio, target, passed):
        out.append({"figure": figure, "measured": measured, "reference": reference, "ratio": ratio,
                    "target": target, "result": "-" if passed is None else "PASS" if passed else "MISS"})

    for shape, target in (("", TARGET_PIPELINE), (" (real shape)", TARGET_PIPELINE_REAL)):
        dry = bench.find("pipeline", "ctindex --dry-run" + shape)
        floor = bench.find("pipeline", "gzip -dc floor" + shape)
        if dry and floor:
            ok = dry["events_per_s"] and floor["events_per_s"]
            ratio = dry["seconds"] / floor["seconds"] if ok else None
            row(f"pipeline{shape}: dry-run vs gzip -dc floor", eps(dry), eps(floor),
                f"{ratio:.2f}x slower" if ratio else "-", f"<= {target}x", ratio <= target if ratio else False)
    for c in servers:
        ct = bench.find("e2e", "ctindex import", c.label)
        ceil = bench.find("e2e", "ceiling: curl bulk", c.label)
        py = bench.find("e2e", "python parallel_bulk", c.label)
        loop = bench.find("e2e", "curl loop (sample)", c.label)
        if ct and ceil:
            ratio = ct["events_per_s"] / ceil["events_per_s"] if ct["events_per_s"] and ceil["events_per_s"] else None
            row(f"{c.label}: ctindex vs pre-built bulk", eps(ct), eps(ceil), pct(ratio),
                f">= {TARGET_CEILING:.0%}", ratio >= TARGET_CEILING if ratio else False)
        if ct and py:
            ratio = ct["events_per_s"] / py["events_per_s"] if ct["events_per_s"] and py["events_per_s"] else None
            row(f"{c.label}: ctindex vs python parallel_bulk", eps(ct), eps(py),
                f"{ratio:.2f}x" if ratio else "-", f">= {TARGET_PYTHON}x", ratio >= TARGET_PYTHON if ratio else False)
        if ct and ceil and py and ceil["events_per_s"] and py["events_per_s"]:
            # What any client could reach over Python on this machine: the server shares its cores.
            row(f"{c.label}: bound for any client: ceiling vs python", eps(ceil), eps(py),
                f"{ceil['events_per_s'] / py['events_per_s']:.2f}x", "", None)
        if ct and py and ct["events_per_s"] and py["events_per_s"]:
            mine, theirs = cpu_per_event(ct), cpu_per_event(py)
            row(f"{c.label}: client CPU per event: ctindex vs python", f"{mine:.1f} us", f"{theirs:.1f} us",
                f"{theirs / mine:.1f}x less" if mine else "-", "", None)
        if ct and loop:
            ratio = ct["events_per_s"] / loop["events_per_s"] if ct["events_per_s"] and loop["events_per_s"] else None
            row(f"{c.label}: ctindex vs curl loop", eps(ct), eps(loop), f"{ratio:.0f}x" if ratio else "-", "", None)
    ct = bench.find("client", "ctindex import")
    py = bench.find("client", "python parallel_bulk")
    if ct and py:
        ratio = ct["events_per_s"] / py["events_per_s"] if ct["events_per_s"] and py["events_per_s"] else None
        row("client only (answered at once): ctindex vs python parallel_bulk", eps(ct), eps(py),
            f"{ratio:.2f}x" if ratio else "-", "", None)
    ct_runs = [r for r in bench.runs if (r["run"].startswith("ctindex") or r["run"] == "record bodies")
               and r["section"] != "memory"]
    if ct_runs:
        peak = max(ct_runs, key=lambda r: r["peak_rss_mb"])
        row("memory: peak RSS, every other ctindex run", f"{peak['peak_rss_mb']:.0f} MiB", peak["run"], "",
            f"< {TARGET_RSS_MB} MB", peak["peak_rss_mb"] < TARGET_RSS_MB)
    large = next((r for r in bench.runs if r["section"] == "memory"), None)
    if large:
        row("memory: peak RSS, one large file", f"{large['peak_rss_mb']:.0f} MiB", large["note"], "",
            f"< {TARGET_RSS_MB} MB", large["peak_rss_mb"] < TARGET_RSS_MB)
    for dry in [r for r in bench.runs if r["section"] == "s3" and r["run"].startswith("ctindex import --dry-run")]:
        added = dry["added_ms"]
        py = next((r for r in bench.runs if r["section"] == "s3" and r["run"].startswith("python reader")
                   and r["added_ms"] == added), None)
        mine = dry.get("objects_per_s") or 0
        row(f"S3 +{added:g} ms: import --dry-run objects/s (real shape)", f"{mine:,.0f} obj/s",
            f"bound {dry['bound_objects_per_s']:,.0f} obj/s" if dry.get("bound_objects_per_s") else "",
            f"{mine / dry['bound_objects_per_s']:.0%} of bound" if dry.get("bound_objects_per_s") else "",
            f">= {TARGET_OBJECTS:,}" if added else "", (mine >= TARGET_OBJECTS) if added else None)
        if py:
            theirs = py.get("objects_per_s") or 0
            ratio = mine / theirs if theirs else None
            row(f"S3 +{added:g} ms: ctindex vs python reader", f"{mine:,.0f} obj/s", f"{theirs:,.0f} obj/s",
                f"{ratio:.2f}x" if ratio else "-", f">= {TARGET_READER:g}x" if added else "",
                (bool(ratio) and ratio >= TARGET_READER) if added else None)
    for run in [r for r in bench.runs if r["section"] == "s3" and r["run"].startswith("ctindex sync (no-op)")]:
        row(f"S3 +{run['added_ms']:g} ms: no-op sync over the real-shape trail", f"{run['seconds']:.2f} s",
            run["note"], "", "", None)
    noop = next((r for r in bench.runs if r["run"] == "ctindex sync (no-op)"), None)
    if noop:
        row("sync: no-op over the trail in S3", f"{noop['seconds']:.2f} s", noop["note"], "", "", None)
    return out


def cpu_per_event(run):
    """Microseconds of client CPU (user + system, every process of the run) per event."""
    return run["cores"] * run["seconds"] / run["events"] * 1e6 if run["events"] else 0.0


def short(text, width=90):
    return text if len(text) <= width else text[: width - 1] + "…"


def eps(run):
    return f"{run['events_per_s']:,.0f} ev/s" if run and run.get("events_per_s") else "failed"


def pct(x):
    return f"{x:.0%}" if x else "-"


def table(head, rows, left=(0,)):
    lines = [head] + rows
    widths = [max(len(l[i]) for l in lines) for i in range(len(head))]
    for n, l in enumerate(lines):
        print("  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(l, widths))).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def report(bench, info, trail, servers, large, real=None):
    print()
    print(f"ctindex bench, {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}: {info.get('ctindex')} ({info.get('commit')})")
    print(f"machine: {info.get('cpu')}, {info['cpus']} CPUs, {info.get('ram_gb')} GB RAM, Linux {info['kernel']}; "
          + ", ".join(f"{k} {v}" for k, v in info["servers"].items()))
    print(f"tools: {info['gzip']}, {info['curl']}, Python {info['python']}"
          + "".join(f", {k} {v}" for k, v in info.get("clients", {}).items()))
    print(f"trail: {trail['events']:,} events in {trail['files']:,} files, {trail['bytes'] / 1e6:.0f} MB gz, "
          f"{trail['uncompressed_bytes'] / 1e6:.0f} MB JSON, events per file p50 "
          f"{trail.get('events_per_file', {}).get('p50')} / p99 {trail.get('events_per_file', {}).get('p99')} / "
          f"max {trail.get('events_per_file', {}).get('max')}; --concurrency {bench.concurrency} "
          f"--batch-bytes {bench.batch_bytes}" + (f"; large file {large['bytes'] / 1e6:.0f} MB gz, "
                                                   f"{large['events']:,} events" if large else ""))
    if real:
        print(f"real-shape trail: {real['events']:,} events in {real['files']:,} files, {len(real['regions'])} regions, "
              f"{len(real['days'])} days, {real['bytes'] / 1e6:.0f} MB gz, {real['uncompressed_bytes'] / 1e6:.0f} MB JSON, "
              f"events per file p50 {real['events_per_file']['p50']} / p90 {real['events_per_file']['p90']} / "
              f"max {real['events_per_file']['max']}, {real['uncompressed_bytes'] / real['files'] / 1e3:.1f} KB JSON "
              f"and {real['bytes'] / real['files'] / 1e3:.1f} KB gz per file; ctindex --downloads {bench.downloads}; "
              f"s3-fast on {bench.args.s3_server_cpus} CPU(s)")
    print()
    rows = []
    for r in bench.runs:
        rows.append([
            r["section"], r["run"], r["server"] or "", f"{r['events']:,}", f"{r['seconds']:.2f}",
            f"{r['events_per_s']:,.0f}" if r["events_per_s"] else "-", f"{r['peak_rss_mb']:.0f}",
            f"{r['cores']:.2f}", "-" if r["server_cores"] is None else f"{r['server_cores']:.2f}",
            "-" if r["other_cores"] is None else f"{r['other_cores']:.2f}", r["check"], short(r.get("note", "")),
        ])
    table(["section", "run", "server", "events", "s", "events/s", "RSS MiB", "cpu", "server cpu", "other cpu",
           "check", "note"], rows, left=(0, 1, 2, 10, 11))
    print("(cpu: cores used on average by the run, by the server process and by everything else on the machine)")
    print()
    rows = [[t["figure"], t["measured"], t["reference"], t["ratio"], t["target"], t["result"]]
            for t in targets(bench, servers)]
    table(["target", "ctindex", "reference", "ratio", "target", "result"], rows, left=(0, 2, 5))


def write_json(path, bench, info, trail, servers, large, args, real=None):
    """The whole run as JSON: the machine, the trail, every run (with every try) and the targets."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"machine": info, "trail": trail, "real_trail": real, "large_file": large,
                   "concurrency": bench.concurrency, "batch_bytes": bench.batch_bytes,
                   "runs": bench.runs, "targets": targets(bench, servers), "ok": bench.ok,
                   "args": {k: v for k, v in vars(args).items()}}, f, indent=1)
        f.write("\n")

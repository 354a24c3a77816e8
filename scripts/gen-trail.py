#!/usr/bin/env python3
"""Write a synthetic but realistic CloudTrail trail in the S3 key layout.

    scripts/gen-trail.py OUT_DIR --files N --events-per-file M
                         [--accounts A] [--regions R] [--days D] [--start YYYY-MM-DD]
                         [--seed S] [--level 1..9]

Layout (as CloudTrail delivers to S3):

    OUT_DIR/AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/
        <account>_CloudTrail_<region>_<YYYYMMDD>T<HHMM>Z_<random16>.json.gz

Each file is gzip'd `{"Records":[...]}`. Events are real events sampled from
the repository's fixtures (tests/fixtures/trail, gz Records files, and
tests/fixtures/samples/stratus/*.json, JSON arrays), each with:
  - a fresh, unique `eventID` (uuid4 drawn from the seeded RNG),
  - an `eventTime` in the 5 minutes before its file's timestamp, inside the
    file's day (events are sorted by time within a file, as CloudTrail does),
  - the file's account in `recipientAccountId` (and wherever the template's
    own account id appeared, e.g. userIdentity.accountId and ARNs),
  - the file's region in `awsRegion`.

The output is byte-for-byte deterministic for a given set of arguments
(seeded RNG, gzip mtime 0). A manifest, `OUT_DIR/gen-trail.manifest` (JSON,
deliberately not named *.json so importers do not read it), is written last:
its presence means the trail is complete. The last line printed is a JSON
object with the counts (files, events, bytes, uncompressed_bytes), for scripts.

Everything is driven by the command line; nothing is meant to be imported.
"""

import argparse
import datetime as dt
import glob
import gzip
import json
import os
import random
import sys
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIL_GLOB = os.path.join(REPO, "tests/fixtures/trail/**/*.json.gz")
STRATUS_GLOB = os.path.join(REPO, "tests/fixtures/samples/stratus/*.json")

# Real commercial regions, in a fixed order (--regions R takes the first R).
REGIONS = [
    "us-east-1", "eu-west-1", "us-west-2", "ap-northeast-1", "eu-central-1",
    "us-east-2", "ap-southeast-2", "eu-west-2", "ap-southeast-1", "ca-central-1",
    "sa-east-1", "ap-south-1", "eu-north-1", "us-west-1", "eu-west-3", "ap-northeast-2",
]

ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
MANIFEST = "gen-trail.manifest"

# Placeholders spliced into each template's serialized JSON.
S_ID, S_TIME, S_ACCOUNT, S_REGION = "@@ctgen-id@@", "@@ctgen-time@@", "@@ctgen-acct@@", "@@ctgen-region@@"


def is_event(value):
    """ctindex's definition: an object with a string eventName and one more CloudTrail key."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("eventName"), str)
        and any(k in value for k in ("eventSource", "eventVersion", "eventTime", "eventID"))
    )


def load_fixture_events():
    events = []
    for path in sorted(glob.glob(TRAIL_GLOB, recursive=True)):
        if "CloudTrail-Digest" in path:
            continue
        with gzip.open(path, "rb") as f:
            doc = json.load(f)
        if isinstance(doc, dict) and isinstance(doc.get("Records"), list):
            events.extend(e for e in doc["Records"] if is_event(e))
    for path in sorted(glob.glob(STRATUS_GLOB)):
        with open(path, "rb") as f:
            doc = json.load(f)
        if isinstance(doc, list):
            events.extend(e for e in doc if is_event(e))
    return events


class Template:
    """One fixture event pre-serialized as text pieces around the placeholders.

    `parts` alternates literal text and placeholder keys; rendering is one
    join, so no JSON is serialized per generated event."""

    __slots__ = ("parts",)

    def __init__(self, event):
        event = dict(event)
        account = event.get("recipientAccountId")
        if not (isinstance(account, str) and account.isdigit() and len(account) == 12):
            uid = event.get("userIdentity")
            account = uid.get("accountId") if isinstance(uid, dict) else None
        event["eventID"] = S_ID
        event["eventTime"] = S_TIME
        event["recipientAccountId"] = S_ACCOUNT
        event["awsRegion"] = S_REGION
        text = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
        if isinstance(account, str) and account.isdigit() and len(account) == 12:
            text = text.replace(account, S_ACCOUNT)
        parts = []
        for piece in split_all(text, (S_ID, S_TIME, S_ACCOUNT, S_REGION)):
            parts.append(piece)
        self.parts = parts

    def render(self, values):
        return "".join(values.get(p, p) for p in self.parts)


def split_all(text, markers):
    """Splits text into literal pieces and marker pieces, in order."""
    out = []
    i = 0
    while True:
        best = None
        for m in markers:
            j = text.find(m, i)
            if j >= 0 and (best is None or j < best[0]):
                best = (j, m)
        if best is None:
            out.append(text[i:])
            return out
        j, m = best
        out.append(text[i:j])
        out.append(m)
        i = j + len(m)


def positive(text):
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be at least 1")
    return n


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--files", type=positive, required=True, help="number of log files")
    p.add_argument("--events-per-file", type=positive, required=True, help="events in each file")
    p.add_argument("--accounts", type=positive, default=3, help="distinct accounts (default 3)")
    p.add_argument("--regions", type=positive, default=4, help=f"distinct regions, at most {len(REGIONS)} (default 4)")
    p.add_argument("--days", type=positive, default=7, help="distinct days (default 7)")
    p.add_argument("--start", default="2024-01-29", help="first day, YYYY-MM-DD (default 2024-01-29: 7 days span two months)")
    p.add_argument("--seed", type=int, default=1, help="RNG seed (default 1)")
    p.add_argument("--level", type=int, default=3, choices=range(1, 10), metavar="1..9", help="gzip level (default 3)")
    p.add_argument("--quiet", action="store_true", help="print only the final JSON line")
    args = p.parse_args()
    if args.regions > len(REGIONS):
        p.error(f"--regions: at most {len(REGIONS)}")
    try:
        start = dt.date.fromisoformat(args.start)
    except ValueError:
        p.error(f"--start {args.start}: not YYYY-MM-DD")

    began = time.monotonic()
    fixtures = load_fixture_events()
    if not fixtures:
        sys.exit(f"gen-trail: no fixture events found under {REPO}/tests/fixtures")
    templates = [Template(e) for e in fixtures]

    rng = random.Random(args.seed)
    accounts = []
    while len(accounts) < args.accounts:
        a = "%012d" % rng.randrange(10**11, 10**12)
        if a not in accounts:
            accounts.append(a)
    regions = REGIONS[: args.regions]
    days = [start + dt.timedelta(days=d) for d in range(args.days)]

    # Every file gets a (account, region, day, HHMM) and a random suffix.
    # Minutes are multiples of 5 from 00:05 to 24:00 exclusive, and events lie in
    # the 5 minutes before, so they stay inside the file's day.
    plan = []
    for _ in range(args.files):
        account = rng.choice(accounts)
        region = rng.choice(regions)
        day = rng.choice(days)
        minute = 5 * rng.randrange(1, 288)  # 00:05 .. 23:55
        suffix = "".join(rng.choice(ALNUM) for _ in range(16))
        plan.append((account, region, day, minute, suffix))
    # Write in key order (what an S3 listing returns), which also keeps it deterministic.
    plan.sort(key=lambda f: (f[0], f[1], f[2], f[3], f[4]))

    out_dir = os.path.abspath(args.out_dir)
    manifest_path = os.path.join(out_dir, MANIFEST)
    if os.path.exists(manifest_path):
        os.remove(manifest_path)

    n_templates = len(templates)
    getrandbits = rng.getrandbits
    randrange = rng.randrange
    total_events = 0
    total_bytes = 0
    raw_bytes = 0
    made_dirs = set()
    for account, region, day, minute, suffix in plan:
        stamp = day.strftime("%Y%m%d") + "T%02d%02dZ" % divmod(minute, 60)
        folder = os.path.join(out_dir, "AWSLogs", account, "CloudTrail", region, day.strftime("%Y/%m/%d"))
        if folder not in made_dirs:
            os.makedirs(folder, exist_ok=True)
            made_dirs.add(folder)
        name = f"{account}_CloudTrail_{region}_{stamp}_{suffix}.json.gz"

        day_prefix = day.isoformat() + "T"
        seconds = sorted(randrange((minute - 5) * 60, minute * 60) for _ in range(args.events_per_file))
        records = []
        for sec in seconds:
            h, rest = divmod(sec, 3600)
            m, s = divmod(rest, 60)
            values = {
                S_ID: str(uuid.UUID(int=getrandbits(128), version=4)),
                S_TIME: "%s%02d:%02d:%02dZ" % (day_prefix, h, m, s),
                S_ACCOUNT: account,
                S_REGION: region,
            }
            records.append(templates[randrange(n_templates)].render(values))
        text = '{"Records":[' + ",".join(records) + "]}"
        data = text.encode("utf-8")
        gz = gzip.compress(data, compresslevel=args.level, mtime=0)
        with open(os.path.join(folder, name), "wb") as f:
            f.write(gz)
        total_events += len(records)
        total_bytes += len(gz)
        raw_bytes += len(data)

    seconds = time.monotonic() - began
    summary = {
        "dir": out_dir,
        "files": len(plan),
        "events": total_events,
        "bytes": total_bytes,
        "uncompressed_bytes": raw_bytes,
        "accounts": accounts,
        "regions": regions,
        "days": [d.isoformat() for d in days],
        "seed": args.seed,
        "level": args.level,
        "templates": n_templates,
    }
    with open(manifest_path + ".tmp", "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    os.replace(manifest_path + ".tmp", manifest_path)
    if not args.quiet:
        print(
            f"gen-trail: wrote {len(plan)} files, {total_events} events, {total_bytes} bytes gz "
            f"({raw_bytes} uncompressed) to {out_dir} in {seconds:.1f} s"
        )
    print(json.dumps({k: summary[k] for k in ("files", "events", "bytes", "uncompressed_bytes")}))


if __name__ == "__main__":
    main()

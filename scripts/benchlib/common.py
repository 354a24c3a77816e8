"""What every part of the benchmark shares: paths, targets, the settings main() decides once,
logging, the Failure that stops a run, and small helpers for files, shells and sizes.

Nothing here measures or talks to a server."""

import hashlib
import json
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = os.path.join(REPO, "scripts")
CACHE = os.path.join(os.environ.get("CTINDEX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "ctindex"), "bench")
NCPU = os.cpu_count() or 1
SECTIONS = ["pipeline", "e2e", "client", "memory", "sync", "s3"]
SERVER_ENV = {"elasticsearch": "ES_URL", "opensearch": "OPENSEARCH_URL", "elasticsearch9": "ES9_URL"}

TARGET_PIPELINE = 1.5   # dry-run seconds / floor seconds, at most
TARGET_PIPELINE_REAL = 1.3  # the same on the real-shape trail
TARGET_OBJECTS = 2000   # objects/s from S3 with latency, at least
TARGET_READER = 3.0     # ctindex objects/s / Python reader objects/s, with latency, at least
TARGET_CEILING = 0.90   # ctindex events/s / ceiling events/s, at least
TARGET_PYTHON = 2.0     # ctindex events/s / python events/s, at least
TARGET_RSS_MB = 300     # MiB


class Settings:
    """Set once by main() before any run, read by the runs: which ctindex binary, GNU time
    (None: peak RSS and CPU from wait4), and the RSS at which a run is killed."""

    binary = os.path.join(REPO, "target", "release", "ctindex")
    time = None
    rss_limit_mb = 4096


SETTINGS = Settings()


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


class Failure(Exception):
    """A clear, expected reason to stop (a server missing, a tool failing)."""


def run_quiet(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def sh(text):
    """text quoted for sh."""
    return "'" + text.replace("'", "'\\''") + "'"


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def read_json_line(path):
    """The last non-empty line of a file, as JSON ({} when there is none)."""
    try:
        with open(path) as f:
            lines = [l for l in f.read().splitlines() if l.strip()]
        return json.loads(lines[-1]) if lines else {}
    except (OSError, ValueError):
        return {}


def parse_size(text):
    m = re.fullmatch(r"\s*([\d.]+)\s*([a-zA-Z]*)\s*", text)
    factor = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "kib": 1024, "m": 1e6, "mb": 1e6, "mib": 2**20,
              "g": 1e9, "gb": 1e9, "gib": 2**30}.get(m.group(2).lower() if m else None)
    if not m or factor is None:
        raise Failure(f"cannot read the size {text!r}")
    return int(float(m.group(1)) * factor)


def sha_file(path, n=12):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:n]

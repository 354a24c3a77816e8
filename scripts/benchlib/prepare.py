"""Everything a run needs before the first measurement: the server URLs (from the environment,
else `scripts/stack env`), the S3 server answering, the release binary and its defaults, the
virtualenv with the official Python clients, and a description of the machine and tools."""

import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

from .common import CACHE, NCPU, REPO, SCRIPTS, SERVER_ENV, SETTINGS, Failure, log, run_quiet


def stack_env(names):
    """Fills missing server variables from `scripts/stack env`."""
    wanted = [SERVER_ENV[n] for n in names] + ["S3_ENDPOINT", "S3_FAST_ENDPOINT", "S3_FAST_ROOT"]
    if all(os.environ.get(v) for v in wanted):
        return
    r = run_quiet([os.path.join(SCRIPTS, "stack"), "env"] + names + ["s3", "s3-fast"], cwd=REPO)
    for line in r.stdout.splitlines():
        m = re.match(r"export (\w+)=(.*)$", line.strip())
        if m and not os.environ.get(m.group(1)):
            os.environ[m.group(1)] = m.group(2).strip("'\"")


def check_s3():
    url = os.environ.get("S3_ENDPOINT")
    if not url:
        raise Failure("S3_ENDPOINT is not set: start the S3 server with `scripts/stack start s3`, or --skip sync")
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/moto-api/config", timeout=10) as resp:
            resp.read()
    except urllib.error.HTTPError:
        pass  # answers: not moto, but an S3 server
    except OSError as e:
        raise Failure(f"the S3 server at {url} does not answer ({getattr(e, 'reason', e)}): "
                      "start it with `scripts/stack start s3`, or --skip sync")


def build():
    log("cargo build --release")
    r = subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO)
    if r.returncode != 0:
        raise Failure("cargo build --release failed")


def ctindex_defaults():
    """ctindex's own defaults for --concurrency, --batch-bytes and --downloads (from its --help)."""
    text = run_quiet([SETTINGS.binary, "import", "--help"]).stdout
    out = {}
    for flag in ("concurrency", "batch-bytes", "downloads"):
        m = re.search(r"--" + flag + r"\b[^\[]*?\[default: ([^\]]+)\]", text, re.S)
        if not m:
            raise Failure(f"cannot read the default of --{flag} from `ctindex import --help`")
        out[flag] = m.group(1).strip()
    return out



def venv(es_major):
    """A cached virtualenv with the official clients (and boto3); its python."""
    spec = [f"elasticsearch>={es_major},<{es_major + 1}", "opensearch-py>=2,<4", "boto3>=1.28,<2"]
    folder = os.path.join(CACHE, f"venv-{hashlib.sha256(' '.join(spec).encode()).hexdigest()[:8]}")
    python = os.path.join(folder, "bin", "python")
    stamp = os.path.join(folder, ".bench-spec")
    if not (os.path.exists(stamp) and open(stamp).read() == " ".join(spec)):
        shutil.rmtree(folder, ignore_errors=True)
        log(f"creating the virtualenv {folder}: pip install {' '.join(spec)}")
        r = run_quiet([sys.executable, "-m", "venv", folder])
        if r.returncode == 0:
            r = run_quiet([python, "-m", "pip", "install", "-q", "--disable-pip-version-check"] + spec)
        if r.returncode != 0:
            shutil.rmtree(folder, ignore_errors=True)
            raise Failure(f"cannot create the virtualenv {folder}: {(r.stderr or r.stdout).strip()[-800:]}")
        with open(stamp, "w") as f:
            f.write(" ".join(spec))
    r = run_quiet([python, "-c", "from importlib.metadata import version as v; "
                   "print(v('elasticsearch'), v('opensearch-py'), v('boto3'))"])
    versions = r.stdout.split()
    return python, dict(zip(["elasticsearch-py", "opensearch-py", "boto3"], versions))


def machine_info(clusters, extra):
    info = {"cpus": NCPU, "kernel": platform.release(), "python": platform.python_version()}
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.+)", f.read())
            info["cpu"] = m.group(1).strip() if m else "?"
        with open("/proc/meminfo") as f:
            m = re.search(r"MemTotal:\s*(\d+) kB", f.read())
            info["ram_gb"] = round(int(m.group(1)) / 2**20, 1) if m else None
    except OSError:
        pass
    info["ctindex"] = run_quiet([SETTINGS.binary, "--version"]).stdout.strip()
    r = run_quiet(["git", "-C", REPO, "rev-parse", "--short", "HEAD"])
    dirty = run_quiet(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"]).stdout.strip()
    info["commit"] = r.stdout.strip() + ("+dirty" if dirty else "")
    info["gzip"] = run_quiet(["gzip", "--version"]).stdout.splitlines()[0]
    info["curl"] = run_quiet(["curl", "--version"]).stdout.split("\n")[0].split(" (")[0]
    info["servers"] = {c.name: c.label for c in clusters}
    info.update(extra)
    return info

"""Family "s3fast": the s3-fast service, an S3 server that is not itself the
bottleneck: s3s-fs (Rust, tokio and hyper; objects are plain files under a
root folder, one folder per bucket) from crates.io, built once with
`cargo install` into $CTINDEX_CACHE/s3s-fs-<version>/ and kept there.

moto (the `s3` service) serves a few hundred objects per second here, so an
importer that fetches thousands of small objects per second measures moto.
s3s-fs answers GetObject from the file system and costs a few tens of
microseconds per request; the benchmark (scripts/benchlib/s3.py) also runs
the same binary inside a network namespace, behind `tc netem` delays.

It accepts only the credentials of the `s3` service (SigV4, any region) and
path-style requests. What it does not do, as of 0.14.1: listings carry no
ETag (ctindex then records an empty version); a listing walks the bucket's
folders on every page (fine for trails of up to some 100,000 objects).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from .base import Service
from .common import BIND_HOST, SETTINGS, clean_env, console_banner, die, export, info, request, spawn
from .moto import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY

CRATE = "s3s-fs"


def binary(version: str) -> Path:
    """Where `cargo install` puts the s3s-fs binary of a version."""
    return SETTINGS.cache / f"s3s-fs-{version}" / "bin" / "s3s-fs"


def install_s3s_fs(svc_name: str, version: str) -> Path:
    """The s3s-fs binary of version (built once with cargo install)."""
    path = binary(version)
    if path.exists():
        return path
    cargo = shutil.which("cargo")
    if cargo is None:
        die(f"{svc_name}: cargo is needed to build {CRATE} {version} (https://rustup.rs)")
    root = path.parent.parent
    info(f"{svc_name}: building {CRATE} {version} from crates.io into {root} (once; a few minutes)")
    r = subprocess.run([cargo, "install", "--quiet", "--locked", "--root", str(root), CRATE, "--version", version,
                        "--features", "binary"], capture_output=True, text=True)
    if r.returncode != 0 or not path.exists():
        for line in (r.stdout + r.stderr).splitlines()[-15:]:
            print(line[:300], file=sys.stderr)
        die(f"{svc_name}: cargo install {CRATE} --version {version} failed (S3_FAST_VERSION picks another; "
            "0.15 and later need Rust 1.96)")
    return path


class S3Fast(Service):
    """s3s-fs on one port, objects under services/<name>/data/<bucket>/<key>."""

    @property
    def root(self) -> Path:
        return self.state / "data"

    def install(self) -> None:
        install_s3s_fs(self.name, self.version)

    def configure(self) -> None:
        for d in ("data", "logs", "tmp"):
            (self.state / d).mkdir(parents=True, exist_ok=True)

    def launch(self) -> subprocess.Popen:
        info(f"{self.name}: starting {CRATE} {self.version} on {self.url}, objects in {self.root}")
        console_banner(self.console, f"{CRATE} {self.version}")
        env_ = clean_env(self.state, TMPDIR=f"{self.state}/tmp", RUST_LOG="warn")
        proc = spawn([str(binary(self.version)), "--host", BIND_HOST, "--port", self.port,
                      "--access-key", ACCESS_KEY_ID, "--secret-key", SECRET_ACCESS_KEY, str(self.root)],
                     self.state, env_, self.console)
        # The launcher is the server, and it writes no pid file of its own.
        self.pidfile.write_text(f"{proc.pid}\n")
        return proc

    def healthy(self, starting: bool = False) -> bool:
        # An unsigned ListBuckets: s3s answers 403 with an S3 error document.
        status, text = request("GET", f"{self.url}/")
        return status in (200, 403) and "<Error>" in text or "ListAllMyBucketsResult" in text

    def live_version(self) -> str | None:
        return self.version if binary(self.version).exists() else None

    def main_log(self) -> Path:
        return self.console

    def env_lines(self) -> list[str]:
        return [export(self.url_var, self.url),
                export("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
                export("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
                export("AWS_REGION", REGION),
                export("S3_FAST_ROOT", str(self.root), quote=True),
                export("S3_FAST_BIN", str(binary(self.version)), quote=True)]

"""Family "moto": the s3 service, moto[server] from PyPI in a virtualenv of
its own ($CTINDEX_CACHE/venv-moto, shared with the sigv4 proxy for its
botocore). It runs as the invoking user, keeps everything in memory and
accepts any credentials; werkzeug's request log (one line per HTTP request)
goes to services/<name>/logs/requests.log.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from .base import Service
from .common import (BIND_HOST, SETTINGS, clean_env, console_banner, die, export, http_ok, info,
                     python_version, spawn)

ACCESS_KEY_ID = "ctindex-test"
SECRET_ACCESS_KEY = "ctindex-test-secret"
REGION = "us-east-1"
SERVER_SCRIPT = Path(__file__).with_name("moto_server.py")


def venv_python() -> Path:
    return SETTINGS.moto_venv / "bin/python"


def install_moto(svc_name: str, version: str) -> None:
    """The moto virtualenv with moto[server]==version (made or upgraded)."""
    venv, py = SETTINGS.moto_venv, venv_python()
    stamp = venv / ".stack-moto-version"
    try:
        current = stamp.read_text().strip()
    except OSError:
        current = None
    if py.exists() and current == version:
        return
    if not py.exists():
        base = shutil.which(SETTINGS.python)
        if base is None:
            die(f"{svc_name}: {SETTINGS.python} is needed to create the moto virtualenv (or set CTINDEX_PYTHON)")
        info(f"{svc_name}: creating virtualenv {venv} ({python_version(Path(base))})")
        shutil.rmtree(venv, ignore_errors=True)
        r = subprocess.run([base, "-m", "venv", str(venv)], capture_output=True, text=True)
        if r.returncode != 0:
            print("\n".join((r.stdout + r.stderr).splitlines()[-5:]), file=sys.stderr)
            shutil.rmtree(venv, ignore_errors=True)
            die(f"{svc_name}: '{base} -m venv' failed (Debian/Ubuntu: apt-get install python3-venv)")
    stamp.unlink(missing_ok=True)
    info(f"{svc_name}: installing moto[server]=={version} from PyPI into {venv}")
    r = subprocess.run([str(py), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q",
                        f"moto[server]=={version}"], capture_output=True, text=True)
    if r.returncode != 0:
        for line in (r.stdout + r.stderr).splitlines()[-15:]:
            print(line[:300], file=sys.stderr)
        die(f"{svc_name}: pip could not install moto[server]=={version} "
            f"(does it exist on PyPI? 'rm -rf {venv}' starts over)")
    stamp.write_text(f"{version}\n")


class Moto(Service):
    """moto_server on one port (S3, SQS, ...), in memory."""

    def install(self) -> None:
        install_moto(self.name, self.version)

    def configure(self) -> None:
        for d in ("config", "logs", "tmp"):
            (self.state / d).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SERVER_SCRIPT, self.state / "config/moto_server.py")

    def launch(self) -> subprocess.Popen:
        info(f"{self.name}: starting moto {self.version} on {self.url} (requests logged to {self.main_log()})")
        self.pidfile.unlink(missing_ok=True)
        (self.state / "moto.version").unlink(missing_ok=True)
        console_banner(self.console, f"moto {self.version}, {python_version(venv_python())}")
        # The launcher is the server; it writes its own pid file.
        env_ = clean_env(self.state, TMPDIR=f"{self.state}/tmp", PYTHONUNBUFFERED="1",
                         PYTHONDONTWRITEBYTECODE="1")
        return spawn([str(venv_python()), f"{self.state}/config/moto_server.py", str(self.main_log()),
                      str(self.pidfile), f"{self.state}/moto.version", "-H", BIND_HOST, "-p", self.port],
                     self.state, env_, self.console)

    def healthy(self, starting: bool = False) -> bool:
        # Not `GET /` (that is S3 ListBuckets); moto's own API answers JSON.
        return (http_ok("GET", f"{self.url}/moto-api/config") or "").startswith("{")

    def live_version(self) -> str | None:
        try:
            return (self.state / "moto.version").read_text().strip() or None
        except OSError:
            return None

    def main_log(self) -> Path:
        return self.state / "logs/requests.log"

    def env_lines(self) -> list[str]:
        return [export(self.url_var, self.url),
                export("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
                export("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
                export("AWS_REGION", REGION),
                export("S3_REQUEST_LOG", str(self.main_log()), quote=True)]

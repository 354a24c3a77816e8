"""Family "sigv4": the opensearch-sigv4 service, scripts/sigv4-proxy.py (a
stand-in for Amazon OpenSearch Service's request signing) in front of the
plain `opensearch` service, run with the python of the moto virtualenv
(botocore comes with moto). See the docstring of scripts/sigv4-proxy.py for
the rules it checks.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from .base import Service
from .common import (BIND_HOST, SCRIPTS_DIR, SETTINGS, clean_env, console_banner, die, export,
                     http_ok, info, python_version, spawn)
from .moto import install_moto, venv_python

PROXY_SCRIPT = SCRIPTS_DIR / "sigv4-proxy.py"
ACCESS_KEY_ID = "AKIDCTINDEXSIGV4TEST"
# 40 characters like a real secret, with the '/' and '+' real ones contain.
SECRET_ACCESS_KEY = "ctindex/SigV4+TestSecret/0123456789abcde"
REGION = "us-east-1"
SERVICE = "es"


def has_botocore() -> bool:
    py = venv_python()
    return py.exists() and subprocess.run([str(py), "-c", "import botocore.auth"],
                                          stderr=subprocess.DEVNULL).returncode == 0


class SigV4Proxy(Service):
    """upstream: the URL accepted requests are forwarded to."""

    def __init__(self, name: str, *, upstream: str, moto_version: str, **kw) -> None:
        super().__init__(name, **kw)
        self.upstream = upstream
        self.moto_version = moto_version

    def install(self) -> None:
        if not PROXY_SCRIPT.is_file():
            die(f"{self.name}: {PROXY_SCRIPT} is missing")
        if has_botocore():
            return
        install_moto(self.name, self.moto_version)
        if not has_botocore():
            die(f"{self.name}: no botocore in {SETTINGS.moto_venv} after installing moto "
                f"('rm -rf {SETTINGS.moto_venv}' starts over)")

    def configure(self) -> None:
        for d in ("config", "logs", "tmp"):
            (self.state / d).mkdir(parents=True, exist_ok=True)

    def launch(self) -> subprocess.Popen:
        info(f"{self.name}: starting the SigV4 proxy on {self.url} -> {self.upstream} (region {REGION}, "
             f"service {SERVICE}; requests logged to {self.main_log()})")
        if http_ok("GET", f"{self.upstream}/") is None:
            info(f"{self.name}: upstream {self.upstream} does not answer yet; accepted requests get 502 "
                 "until 'scripts/stack start opensearch'")
        self.pidfile.unlink(missing_ok=True)
        console_banner(self.console, f"{PROXY_SCRIPT}, {python_version(venv_python())}")
        # The launcher is the server; it writes its pid file once listening.
        # The secret goes in the environment, not on the command line.
        env_ = clean_env(self.state, TMPDIR=f"{self.state}/tmp", PYTHONUNBUFFERED="1",
                         PYTHONDONTWRITEBYTECODE="1", SIGV4_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY)
        return spawn([str(venv_python()), str(PROXY_SCRIPT), "--bind", BIND_HOST, "--port", self.port,
                      "--upstream", self.upstream, "--region", REGION, "--service", SERVICE,
                      "--access-key-id", ACCESS_KEY_ID, "--pid-file", str(self.pidfile),
                      "--log", str(self.main_log())], self.state, env_, self.console)

    def _stats(self) -> str | None:
        return http_ok("GET", f"{self.url}/_sigv4proxy/stats")

    def healthy(self, starting: bool = False) -> bool:
        return (self._stats() or "").startswith("{")

    def live_version(self) -> str | None:
        m = re.search(r'"botocore": *"([^"]*)"', self._stats() or "")
        return f"botocore-{m.group(1)}" if m and m.group(1) else None

    def main_log(self) -> Path:
        return self.state / "logs/requests.log"

    def env_lines(self) -> list[str]:
        return [export(self.url_var, self.url),
                export("SIGV4_ACCESS_KEY_ID", ACCESS_KEY_ID),
                export("SIGV4_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY, quote=True),
                export("SIGV4_REGION", REGION),
                export("SIGV4_SERVICE", SERVICE),
                export("SIGV4_STATS_URL", f"{self.url}/_sigv4proxy/stats"),
                export("SIGV4_REQUEST_LOG", str(self.main_log()), quote=True)]

"""The shape of a service: what scripts/stack's commands call on each one.

A service is an object of a family class (search.SearchService, moto.Moto,
...) made by services.py with its name, version and ports. The commands in
cli.py only use what is defined here.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from .common import BIND_HOST, SETTINGS, export, pid_of


class Service:
    """One server managed by scripts/stack.

    name         canonical name (services/<name>/, <name>.pid)
    version      version to run (shown by `status` while stopped)
    port         HTTP port, bound to 127.0.0.1; port_var is the knob moving it
    url_var      variable `env` prints the URL in
    transport_port  a second port checked before starting (or None)
    stack_user   run as $CTINDEX_STACK_USER when root (JVMs refuse root)
    summary      one line for `scripts/stack --help`
    """

    summary = ""

    def __init__(self, name: str, *, version: str, port: str, url_var: str,
                 port_var: str | None = None, transport_port: str | None = None,
                 stack_user: bool = True, heap: str | None = None, summary: str = "") -> None:
        self.name = name
        self.version = version
        self.port = port
        self.url_var = url_var
        self.port_var = port_var or url_var.removesuffix("_URL") + "_PORT"
        self.transport_port = transport_port
        self.stack_user = stack_user
        self.heap = heap or SETTINGS.heap
        if summary:
            self.summary = summary

    # ---- where things are
    @property
    def state(self) -> Path:
        return SETTINGS.services / self.name

    @property
    def pidfile(self) -> Path:
        return self.state / f"{self.name}.pid"

    @property
    def console(self) -> Path:
        return self.state / "logs/stack-console.log"

    @property
    def url(self) -> str:
        return f"http://{BIND_HOST}:{self.port}"

    def pid(self) -> int | None:
        """The pid of the running server, or None."""
        return pid_of(self.pidfile, self.state)

    # ---- what each family implements
    def install(self) -> None:
        """Download / unpack / build what the service runs (once)."""

    def configure(self) -> None:
        """Write the service's configuration (on every start)."""

    def launch(self) -> subprocess.Popen:
        """Start the server in the background; return the launcher."""
        raise NotImplementedError

    def healthy(self, starting: bool = False) -> bool:
        """Does it answer as it should? starting: called by `start`, which
        may finish a set-up once the server answers (secure services)."""
        raise NotImplementedError

    def live_version(self) -> str | None:
        """The version the running server reports."""
        return None

    def main_log(self) -> Path | None:
        """The log worth showing when the start fails (besides the console)."""
        return None

    def env_lines(self) -> list[str]:
        """`export NAME=value` lines for `scripts/stack env`."""
        return [export(self.url_var, self.url)]

"""The commands of scripts/stack: argument parsing and start / stop /
restart / status / env / wipe / kill over the services of services.py."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time

from . import common
from .base import Service
from .common import SETTINGS, StackError, die, info, port_in_use, rss_mb, take_lock, warn
from .services import ALIASES, DEFAULT_SERVICES, all_services, canonical

DESCRIPTION = """\
A local, Docker-free Elasticsearch / OpenSearch (+ S3) stack for ctindex
development and the integration tests. Without SERVICE arguments the set in
$CTINDEX_STACK_SERVICES (comma/space separated) is used, else
"elasticsearch opensearch". `scripts/stack COMMAND --help` describes each
command; docs/stack.md describes the services and the code."""

EPILOG_TEMPLATE = """\
services (aliases) and their default URLs:
{services}

Distributions come only from Maven Central (the "integ-test-zip" artifacts,
fetched with `mvn dependency:copy`, also kept in ~/.m2): minimal builds (no
painless, no ingest, no _reindex on ES 8; ES 8 has no `GET /`). s3 and the
sigv4 proxy use moto[server] from PyPI, pip-installed once into a virtualenv;
s3-fast is s3s-fs from crates.io, built once with `cargo install`.

Everything lives under $CTINDEX_CACHE (default ~/.cache/ctindex):
  downloads/<artifact>-<version>.zip         dist/<artifact>-<version>/ (read-only)
  services/<service>/{{config,data,logs,tmp}}  services/<service>/<service>.pid
  venv-moto/                                 (s3, opensearch-sigv4)
  s3s-fs-<version>/bin/s3s-fs                (s3-fast)

As root the servers run as $CTINDEX_STACK_USER (default "ctindex", created on
demand): Elasticsearch and OpenSearch refuse root. A cache parent it cannot
traverse gets an ACL u:ctindex:x (chmod o+x without setfacl);
CTINDEX_STACK_FIX_PERMS=0 makes that an error instead.

Knobs: ports ES_PORT ES_TRANSPORT_PORT OPENSEARCH_PORT OPENSEARCH_TRANSPORT_PORT
ES9_PORT ES9_TRANSPORT_PORT ES_FAULTS_PORT ES_FAULTS_TRANSPORT_PORT S3_PORT S3_FAST_PORT
ES_SECURE_PORT ES_SECURE_TRANSPORT_PORT OPENSEARCH_SECURE_PORT
OPENSEARCH_SECURE_TRANSPORT_PORT OPENSEARCH_SIGV4_PORT ES7_PORT ES7_TRANSPORT_PORT
OPENSEARCH1_PORT OPENSEARCH1_TRANSPORT_PORT OPENSEARCH3_PORT OPENSEARCH3_TRANSPORT_PORT;
CTINDEX_STACK_PORT_OFFSET (0) adds to every default port (not to ports set
explicitly), for a second stack beside the first;
versions ES_VERSION ES9_VERSION ES7_VERSION OPENSEARCH_VERSION OPENSEARCH1_VERSION
OPENSEARCH3_VERSION OPENSEARCH_SECURE_VERSION MOTO_VERSION S3_FAST_VERSION;
JDKs ES_JAVA_HOME OPENSEARCH_JAVA_HOME ES9_JAVA_HOME ES7_JAVA_HOME
OPENSEARCH1_JAVA_HOME OPENSEARCH3_JAVA_HOME OPENSEARCH_SECURE_JAVA_HOME (else
JAVA_HOME if suitable, else the best JDK under $CTINDEX_JVM_DIRS, /usr/lib/jvm);
heaps CTINDEX_STACK_HEAP (1g) ES_FAULTS_HEAP ES_SECURE_HEAP ES7_HEAP
OPENSEARCH1_HEAP OPENSEARCH3_HEAP OPENSEARCH_SECURE_HEAP (512m);
CTINDEX_STACK_TIMEOUT (180 s) CTINDEX_STACK_STOP_TIMEOUT (60 s) CTINDEX_PYTHON
(python3, makes the virtualenv) ES_SECURE_ROLE_FILE OPENSEARCH_SECURE_ROLES_FILE."""

COMMANDS = {
    "start": ("download (once), configure, start in the background and wait until healthy",
              "Starts each service that is not running (downloading and unpacking it the first time), "
              "then waits until all answer as healthy ($CTINDEX_STACK_TIMEOUT, 180 s). Exit 1 when one "
              "fails to come up; its logs are shown."),
    "stop": ("SIGTERM, wait, then SIGKILL",
             "Sends SIGTERM and waits up to $CTINDEX_STACK_STOP_TIMEOUT (60 s), then SIGKILL. Data is kept."),
    "restart": ("stop + start", "stop, then start."),
    "status": ("state, URL, version, pid and memory of each service",
               "One line per service: name, state, URL, version, pid and RSS. Without SERVICE every known "
               "service is listed. Exit 0 when all selected services run, 3 otherwise."),
    "env": ("`export FOO_URL=...` lines, for eval \"$(scripts/stack env)\"",
            "Prints `export NAME=value` lines (URLs, credentials, files) for the services; without SERVICE "
            "also for every other running service. Only reads files and pid files: fast, and works while "
            "a server is down."),
    "wipe": ("stop and delete a service's state (data, logs, config); downloads are kept",
             "stop, then removes services/<service>/ (data, logs, configuration, certificates, secrets)."),
    "kill": ("SIGKILL at once, like a crash (data kept; `start` brings it back)",
             "SIGKILL and wait until the process is gone; the pid file is left, as after a crash. For the "
             "fault tests: `scripts/stack kill elasticsearch-faults`. SERVICE is required."),
}


# ------------------------------------------------------------ selection --
class Stack:
    """The known services and the ones the command works on."""

    def __init__(self, names: list[str]) -> None:
        self.all = all_services()
        self.by_name = {s.name: s for s in self.all}
        self.explicit = bool(names)
        if not names:
            raw = os.environ.get("CTINDEX_STACK_SERVICES", "")
            names = raw.replace(",", " ").split() if raw else list(DEFAULT_SERVICES)
        known = [s.name for s in self.all]
        self.selected: list[Service] = []
        for n in names:
            svc = self.by_name[canonical(n, known)]
            if svc not in self.selected:
                self.selected.append(svc)


T0 = time.monotonic()


def seconds() -> int:
    """Whole seconds since this run began (bash's $SECONDS)."""
    return int(time.monotonic() - T0)


def gone(pid: int) -> bool:
    """The process is gone (or a zombie of ours)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


# ---------------------------------------------------------------- start --
class Starter:
    def __init__(self) -> None:
        self.launcher: dict[str, object] = {}
        self.launcher_done: dict[str, int] = {}
        self.started_at: dict[str, int] = {}

    def start_one(self, svc: Service) -> None:
        pid = svc.pid()
        if pid is not None:
            info(f"{svc.name}: already running (pid {pid}) on {svc.url}")
            self.started_at[svc.name] = seconds()
            return
        svc.pidfile.unlink(missing_ok=True)
        if port_in_use(svc.port):
            die(f"{svc.name}: port {svc.port} is already in use by another process (set {svc.port_var} to move it)")
        if svc.transport_port and port_in_use(svc.transport_port):
            die(f"{svc.name}: transport port {svc.transport_port} is already in use by another process")
        svc.install()
        (svc.state / "logs").mkdir(parents=True, exist_ok=True)
        svc.configure()
        self.started_at[svc.name] = seconds()
        self.launcher[svc.name] = svc.launch()

    def failed(self, svc: Service) -> str | None:
        """Why a starting service is known to have failed, or None while it
        may still come up."""
        lp = self.launcher.get(svc.name)
        if lp is not None and svc.name not in self.launcher_done and lp.poll() is not None:
            self.launcher_done[svc.name] = seconds()
            if lp.returncode != 0:
                return f"the launcher exited with status {lp.returncode}"
        if lp is None or svc.name in self.launcher_done:
            if svc.pid() is not None:
                return None
            if svc.pidfile.exists():
                return "the server process exited"
            if seconds() - self.launcher_done.get(svc.name, 0) > 120:
                return "the server is not running (no pid file)"
        return None

    def wait_healthy(self, services: list[Service]) -> bool:
        deadline = seconds() + SETTINGS.start_timeout
        pending, ok = list(services), True
        while pending:
            later = []
            for svc in pending:
                if svc.healthy(starting=True):
                    v = svc.live_version()
                    pid = svc.pid()
                    rss = f", RSS {rss_mb(pid)} MB" if pid is not None else ""
                    ready = seconds() - self.started_at.get(svc.name, seconds())
                    info(f"{svc.name}: up at {svc.url} (version {v or '?'}, pid {pid if pid is not None else '?'}"
                         f"{rss}, ready after {ready}s)")
                    continue
                reason = self.failed(svc)
                if reason:
                    info(f"{svc.name}: failed to start: {reason}")
                    print_log_tail(svc)
                    ok = False
                    continue
                if seconds() >= deadline:
                    info(f"{svc.name}: not healthy after {SETTINGS.start_timeout}s (still starting? it is left "
                         f"running; 'scripts/stack stop {svc.name}' stops it)")
                    print_log_tail(svc)
                    ok = False
                    continue
                later.append(svc)
            pending = later
            if pending:
                time.sleep(1)
        return ok


def print_log_tail(svc: Service) -> None:
    for f in (svc.console, svc.main_log()):
        if f is None or not f.exists() or f.stat().st_size == 0:
            continue
        print(f"\n----- last 40 lines of {f} -----", file=sys.stderr)
        lines = f.read_bytes().decode("utf-8", "replace").splitlines()
        print("\n".join(lines[-40:]), file=sys.stderr)
    print("-----", file=sys.stderr)


def cmd_start(stack: Stack) -> int:
    take_lock()
    if any(s.stack_user for s in stack.selected):
        common.ensure_stack_user()
        common.ensure_cache_reachable()
    starter = Starter()
    for svc in stack.selected:
        starter.start_one(svc)
    if not starter.wait_healthy(stack.selected):
        die(f"not all services came up ({' '.join(s.name for s in stack.selected)})")
    info('all up; use: eval "$(scripts/stack env)"')
    return 0


# ----------------------------------------------------------------- stop --
def wait_gone(pid: int, tries: int, step: float) -> bool:
    for _ in range(tries):
        if gone(pid):
            return True
        time.sleep(step)
    return gone(pid)


def stop_one(svc: Service) -> None:
    pid = svc.pid()
    if pid is None:
        svc.pidfile.unlink(missing_ok=True)
        info(f"{svc.name}: not running")
        return
    info(f"{svc.name}: stopping (pid {pid})")
    signal_pid(pid, signal.SIGTERM)
    if not wait_gone(pid, SETTINGS.stop_timeout * 5, 0.2):
        warn(f"{svc.name}: still running after {SETTINGS.stop_timeout}s, sending SIGKILL")
        signal_pid(pid, signal.SIGKILL)
        wait_gone(pid, 50, 0.2)
    svc.pidfile.unlink(missing_ok=True)
    info(f"{svc.name}: stopped")


def signal_pid(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def cmd_stop(stack: Stack) -> int:
    take_lock()
    for svc in stack.selected:
        stop_one(svc)
    return 0


def cmd_restart(stack: Stack) -> int:
    cmd_stop(stack)
    return cmd_start(stack)


def cmd_kill(stack: Stack) -> int:
    """SIGKILL, no shutdown: a crash, for the fault tests."""
    if not stack.explicit:
        die("kill needs the service(s) to kill, e.g. 'scripts/stack kill elasticsearch-faults'")
    take_lock()
    for svc in stack.selected:
        pid = svc.pid()
        if pid is None:
            info(f"{svc.name}: not running")
            continue
        info(f"{svc.name}: killing (SIGKILL, pid {pid})")
        signal_pid(pid, signal.SIGKILL)
        if not wait_gone(pid, 100, 0.1):
            die(f"{svc.name}: pid {pid} still there 10 s after SIGKILL")
        info(f"{svc.name}: killed (its pid file is left, as after a crash)")
    return 0


def cmd_wipe(stack: Stack) -> int:
    take_lock()
    for svc in stack.selected:
        stop_one(svc)
        if svc.state.is_dir():
            shutil.rmtree(svc.state)
            info(f"{svc.name}: wiped {svc.state}")
    return 0


# --------------------------------------------------------- status / env --
def cmd_status(stack: Stack) -> int:
    rc = 0
    for svc in stack.selected if stack.explicit else stack.all:
        pid = svc.pid()
        if pid is not None:
            v = svc.live_version()
            state = "running" if svc.healthy() else "running (not healthy yet)"
            extra = f"pid {pid}, RSS {rss_mb(pid)} MB"
            version = v or "?"
        else:
            state, version, extra = "stopped", svc.version, "(configured)"
            if svc in stack.selected:
                rc = 3
        print(f"{svc.name:<20} {state:<26} {svc.url:<24} version {version:<9} {extra}", flush=True)
    return rc


def cmd_env(stack: Stack) -> int:
    names = list(stack.selected)
    # Without arguments also every other running service (e.g. elasticsearch9).
    if not stack.explicit:
        names += [s for s in stack.all if s not in names and s.pid() is not None]
    for svc in names:
        for line in svc.env_lines():
            print(line)
    return 0


RUN = {"start": cmd_start, "stop": cmd_stop, "restart": cmd_restart, "status": cmd_status,
       "env": cmd_env, "wipe": cmd_wipe, "kill": cmd_kill}


# ---------------------------------------------------------------- parse --
def parser() -> argparse.ArgumentParser:
    services = all_services()
    aliases: dict[str, list[str]] = {}
    for a, n in ALIASES.items():
        aliases.setdefault(n, []).append(a)
    lines = [f"  {s.name:<21} {s.url:<24} {s.url_var:<22} {s.summary}"
             + (f" [aliases: {', '.join(aliases[s.name])}]" if s.name in aliases else "") for s in services]
    p = argparse.ArgumentParser(prog="scripts/stack", description=DESCRIPTION,
                                epilog=EPILOG_TEMPLATE.format(services="\n".join(lines)),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, (short, long) in COMMANDS.items():
        c = sub.add_parser(name, help=short, description=long)
        c.add_argument("services", nargs="*", metavar="SERVICE",
                       help="service names or aliases (default: $CTINDEX_STACK_SERVICES or elasticsearch opensearch)")
    sub.add_parser("help", help="this help")
    return p


def main(argv: list[str] | None = None) -> int:
    os.umask(0o022)
    try:
        p = parser()
        args = p.parse_args(argv)
        if args.command in (None, "help"):
            p.print_help(sys.stdout if args.command == "help" else sys.stderr)
            return 0 if args.command == "help" else 2
        return RUN[args.command](Stack(args.services))
    except StackError as e:
        print(f"stack: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130

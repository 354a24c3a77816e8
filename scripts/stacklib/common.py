"""What every service shares: settings from the environment, messages,
the cache lock, processes and pid files, running as the stack user, HTTP
probes and shell quoting for `env`.

Nothing here knows a particular service; scripts/stacklib/services.py lists
them and the family modules (search, secure_es, secure_os, moto, sigv4)
implement them.
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import sys
import time
import http.client
from pathlib import Path
from urllib.parse import urlsplit

BIND_HOST = "127.0.0.1"
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SCRIPTS_DIR = Path(__file__).resolve().parent.parent  # scripts/
REPO_DIR = SCRIPTS_DIR.parent


# ------------------------------------------------------------- messages --
class StackError(Exception):
    """A failure to report as `stack: error: ...` and exit 1."""


def info(msg: str) -> None:
    print(f"stack: {msg}", file=sys.stderr, flush=True)


def warn(msg: str) -> None:
    print(f"stack: warning: {msg}", file=sys.stderr, flush=True)


def die(msg: str):
    raise StackError(msg)


# ------------------------------------------------------------- settings --
def env(name: str, default: str = "") -> str:
    """$name, or default when unset or empty (bash's ${name:-default})."""
    return os.environ.get(name) or default


def port_offset() -> int:
    raw = env("CTINDEX_STACK_PORT_OFFSET", "0")
    try:
        return int(raw)
    except ValueError:
        die(f"CTINDEX_STACK_PORT_OFFSET={raw} is not a whole number")


def port(knob: str, default: int) -> str:
    """The port in $knob, else the default moved by $CTINDEX_STACK_PORT_OFFSET.

    An explicit knob is taken as it is (the offset only moves defaults)."""
    return env(knob, str(default + port_offset()))


class Settings:
    """The general knobs (per-service knobs live with their service)."""

    def __init__(self) -> None:
        cache = env("CTINDEX_CACHE", os.path.join(os.path.expanduser("~"), ".cache/ctindex"))
        # Servers get absolute paths. Not resolved: the same spelling as the
        # bash version, so that pid-file checks match running servers.
        if not cache.startswith("/"):
            cache = os.path.join(os.getcwd(), cache)
        self.cache = Path(cache)
        self.stack_user = env("CTINDEX_STACK_USER", "ctindex")
        self.heap = env("CTINDEX_STACK_HEAP", "1g")
        self.start_timeout = int(env("CTINDEX_STACK_TIMEOUT", "180"))
        self.stop_timeout = int(env("CTINDEX_STACK_STOP_TIMEOUT", "60"))
        self.jvm_dirs = env("CTINDEX_JVM_DIRS", "/usr/lib/jvm").split()
        self.python = env("CTINDEX_PYTHON", "python3")
        self.fix_perms = env("CTINDEX_STACK_FIX_PERMS", "1") != "0"
        self.downloads = self.cache / "downloads"
        self.dist = self.cache / "dist"
        self.services = self.cache / "services"
        self.moto_venv = self.cache / "venv-moto"


SETTINGS = Settings()


def is_root() -> bool:
    return os.geteuid() == 0


# ----------------------------------------------------------------- lock --
_LOCK = None


def take_lock() -> None:
    """Serialise start/stop/wipe/kill between concurrent invocations (the same
    flock(2) on $CTINDEX_CACHE/.stack.lock as the earlier bash version, so
    the two exclude each other)."""
    global _LOCK
    if _LOCK is not None:
        return
    SETTINGS.cache.mkdir(parents=True, exist_ok=True)
    f = open(SETTINGS.cache / ".stack.lock", "w")  # close-on-exec: servers do not inherit it
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        info("another 'scripts/stack' is running; waiting for it")
        fcntl.flock(f, fcntl.LOCK_EX)
    _LOCK = f


# ------------------------------------------------------------ processes --
def port_in_use(p: str) -> bool:
    try:
        with socket.create_connection((BIND_HOST, int(p)), timeout=3):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    return os.path.isdir(f"/proc/{pid}")


def pid_of(pidfile: Path, state: Path) -> int | None:
    """The pid in pidfile when that process is running and mentions state/ on
    its command line (guards against stale pid files and pid reuse;
    "services/elasticsearch/" must not match services/elasticsearch-faults)."""
    try:
        digits = "".join(c for c in pidfile.read_text() if c.isdigit())
        if not digits:
            return None
        cmdline = Path(f"/proc/{digits}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return None
    if (str(state) + "/").encode() not in cmdline:
        return None
    return int(digits)


def rss_mb(pid: int) -> str:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return str(int(int(line.split()[1]) / 1024))
    except OSError:
        pass
    return ""


def clean_env(state: Path, **extra: str) -> dict[str, str]:
    """The whole environment of a server or tool (like `env -i`)."""
    e = {"PATH": SAFE_PATH, "HOME": str(state), "LANG": "C.UTF-8"}
    e.update(extra)
    return e


def console_banner(console: Path, what: str) -> None:
    with open(console, "a") as f:
        f.write(f"\n==== {time.strftime('%F %T')} scripts/stack start: {what}\n")


def spawn(argv: list[str], cwd: Path, env_: dict[str, str], console: Path) -> subprocess.Popen:
    """Starts a launcher in a session of its own (no SIGINT/SIGHUP from the
    terminal), output appended to console, stdin from /dev/null."""
    with open(console, "a") as out:
        return subprocess.Popen(argv, cwd=cwd, env=env_, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def python_version(python: Path) -> str:
    r = subprocess.run([str(python), "--version"], capture_output=True, text=True)
    return (r.stdout + r.stderr).strip()


# ------------------------------------------------ running as stack user --
def ensure_stack_user() -> None:
    if not is_root():
        return
    user = SETTINGS.stack_user
    try:
        pwd.getpwnam(user)
        return
    except KeyError:
        pass
    info(f"creating system user '{user}' to run the servers (they refuse to run as root)")
    r = subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", user])
    if r.returncode != 0:
        die(f"could not create user '{user}' (set CTINDEX_STACK_USER to an existing unprivileged user)")


def run_as() -> list[str]:
    """Command prefix that runs a program as the stack user (empty unless root)."""
    if not is_root():
        return []
    if shutil.which("setpriv") is None:
        die(f"setpriv (util-linux) is needed to run the servers as '{SETTINGS.stack_user}'")
    u = SETTINGS.stack_user
    return ["setpriv", f"--reuid={u}", f"--regid={u}", "--init-groups", "--"]


def _user_can_traverse(d: Path) -> bool:
    r = subprocess.run(run_as() + ["test", "-x", str(d)], stderr=subprocess.DEVNULL)
    return r.returncode == 0


def ensure_cache_reachable() -> None:
    """The stack user must be able to traverse every directory above the
    cache. A root-owned $HOME is usually 0700: grant search (x, not read) on
    each blocking ancestor, with an ACL for that user when setfacl exists,
    else with o+x. CTINDEX_STACK_FIX_PERMS=0 makes that an error instead."""
    if not is_root():
        return
    cache, user = SETTINGS.cache, SETTINGS.stack_user
    if _user_can_traverse(cache):
        return
    dirs = []
    d = str(cache)
    while d not in ("/", ""):
        dirs.insert(0, d)
        d = os.path.dirname(d)
    for d in dirs:
        if _user_can_traverse(Path(d)):
            continue
        if not SETTINGS.fix_perms:
            die(f"user '{user}' cannot traverse {d}; grant it (setfacl -m u:{user}:x {d}) "
                "or set CTINDEX_CACHE to a reachable directory")
        if shutil.which("setfacl") and subprocess.run(
                ["setfacl", "-m", f"u:{user}:x", d], stderr=subprocess.DEVNULL).returncode == 0:
            info(f"granted user '{user}' traverse-only access (ACL u:{user}:x) to {d}")
        else:
            os.chmod(d, os.stat(d).st_mode | 0o001)
            info(f"made {d} traversable by others (chmod o+x) so user '{user}' can reach {cache}")
    if not _user_can_traverse(cache):
        die(f"user '{user}' still cannot reach {cache}")


def chown_to_stack_user(*paths: Path, recursive: bool = False) -> None:
    if not is_root():
        return
    pw = pwd.getpwnam(SETTINGS.stack_user)
    for p in paths:
        os.chown(p, pw.pw_uid, pw.pw_gid)
        if recursive:
            for root, dirs, files in os.walk(p):
                for n in dirs + files:
                    os.chown(os.path.join(root, n), pw.pw_uid, pw.pw_gid, follow_symlinks=False)


# ----------------------------------------------------------------- HTTP --
def request(method: str, url: str, *, body: str | None = None, headers: dict[str, str] | None = None,
         cafile: Path | None = None, timeout: float = 3) -> tuple[int, str]:
    """One request; (status, body text), or (0, reason) when there was no
    answer. https://localhost is pinned to 127.0.0.1 (where the servers
    listen; localhost may also resolve to ::1) while the certificate is still
    checked against the name "localhost"."""
    u = urlsplit(url)
    host = BIND_HOST if u.hostname == "localhost" else u.hostname
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    try:
        sock = socket.create_connection((host, u.port), timeout=timeout)
        if u.scheme == "https":
            ctx = ssl.create_default_context(cafile=str(cafile) if cafile else None)
            sock = ctx.wrap_socket(sock, server_hostname=u.hostname)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
        conn.sock = sock
        h = dict(headers or {})
        if body is not None:
            h.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body.encode() if body is not None else None, headers=h)
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", "replace")
        conn.close()
        return resp.status, text
    except (OSError, http.client.HTTPException, ssl.SSLError) as e:
        return 0, str(e)


def http_ok(method: str, url: str, **kw) -> str | None:
    """The body of a 2xx answer, else None (like `curl -f`)."""
    status, text = request(method, url, **kw)
    return text if 200 <= status < 300 else None


def health_green_or_yellow(text: str | None) -> bool:
    try:
        return json.loads(text or "").get("status") in ("green", "yellow")
    except (ValueError, AttributeError):
        return False


# -------------------------------------------------------------- quoting --
# The characters bash's `printf %q` escapes with a backslash (bash 5.2,
# lib/sh/shquote.c), so that `env` prints what the bash version printed.
_BASH_SPECIAL = set("\t\n !\"$&'()*,;<>?[\\]^`{|}")


def bash_quote(s: str) -> str:
    """`printf %q` of s, for the printable strings `env` prints."""
    if s == "":
        return "''"
    if any(ord(c) < 32 or ord(c) == 127 for c in s if c not in "\t\n") or "\t" in s or "\n" in s:
        # bash uses $'...' then; our values never need it.
        out = "".join({"\t": "\\t", "\n": "\\n", "'": "\\'", "\\": "\\\\"}.get(c, c)
                      if ord(c) >= 32 or c in "\t\n" else f"\\{ord(c):03o}" for c in s)
        return f"$'{out}'"
    r = []
    for i, c in enumerate(s):
        if c in _BASH_SPECIAL or (c == "#" and i == 0) or (c == "~" and (i == 0 or s[i - 1] in ":=")):
            r.append("\\")
        r.append(c)
    return "".join(r)


def export(name: str, value: str, quote: bool = False) -> str:
    return f"export {name}={bash_quote(value) if quote else value}"

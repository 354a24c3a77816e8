"""Running and measuring processes, from /proc and GNU time: wall seconds, peak RSS, CPU of the
run, of the server (the process listening on its port) and of everything else on the machine;
a guard that kills a run growing over --rss-limit-mb; waiting for the machine to be quiet.
Each run is a process group of its own, so an interruption stops all of it (stop_current)."""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from .common import NCPU, SETTINGS, log

CLK_TCK = os.sysconf("SC_CLK_TCK")

# The run being measured (a Popen), for stop_current.
CURRENT = {"proc": None}


def listening_pid(port):
    """The pid of the local process listening on a TCP port, from /proc (or None)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(f"socket:[{fields[9]}]")
        except OSError:
            pass
    if not inodes:
        return None
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                        return int(pid)
                except OSError:
                    continue
        except OSError:
            continue
    return None


def server_pid(cluster):
    """The pid of a server on this machine (its CPU is measured), None for a remote one."""
    return listening_pid(cluster.port) if cluster.host in ("127.0.0.1", "localhost", "::1") else None


def proc_cpu_seconds(pid):
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def machine_cpu():
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return total - idle, total


def time_binary():
    """GNU /usr/bin/time with -v, installed with apt-get when missing and possible."""
    path = "/usr/bin/time"
    if not os.path.exists(path) and os.geteuid() == 0 and shutil.which("apt-get"):
        log("/usr/bin/time missing: apt-get install -y time")
        subprocess.run(["apt-get", "install", "-y", "-qq", "time"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    if os.path.exists(path):
        probe = subprocess.run([path, "-v", "true"], capture_output=True, text=True)
        if probe.returncode == 0 and "Maximum resident set size" in probe.stderr:
            return path
    return None


def parse_time_v(text):
    out = {}
    for line in text.splitlines():
        key, _, value = line.strip().rpartition(": ")
        if key == "Maximum resident set size (kbytes)":
            out["maxrss_kb"] = int(value)
        elif key == "User time (seconds)":
            out["user"] = float(value)
        elif key == "System time (seconds)":
            out["sys"] = float(value)
    return out


def descendants(pid):
    out = []
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(k) for k in f.read().split()]
    except (OSError, ValueError):
        return out
    for k in kids:
        out.append(k)
        out.extend(descendants(k))
    return out


def vmrss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            m = re.search(r"VmRSS:\s*(\d+) kB", f.read())
        return int(m.group(1)) if m else 0
    except OSError:
        return 0


def rss_guard(proc, state):
    """Kills the run when one of its processes grows over --rss-limit-mb (a shared machine must survive it)."""
    limit_kb = SETTINGS.rss_limit_mb * 1024
    while proc.poll() is None:
        for pid in [proc.pid] + descendants(proc.pid):
            rss = vmrss_kb(pid)
            if rss > limit_kb:
                state["killed_rss_mb"] = rss / 1024
                log(f"killing pid {pid}: RSS {rss / 1024:.0f} MiB is over --rss-limit-mb {SETTINGS.rss_limit_mb}")
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
                return
        time.sleep(0.2)


def measure(cmd, server_pid=None, stdout=None, env=None):
    """Runs cmd; returns rc, wall seconds, peak RSS, CPU of the command, of the server and of the rest."""
    busy0, total0 = machine_cpu()
    server0 = proc_cpu_seconds(server_pid)
    result = {}
    started = time.monotonic()
    if SETTINGS.time:
        fd, time_file = tempfile.mkstemp(suffix=".time")
        os.close(fd)
        proc = subprocess.Popen([SETTINGS.time, "-v", "-o", time_file] + cmd, stdout=stdout, env=env, start_new_session=True)
        CURRENT["proc"] = proc
        threading.Thread(target=rss_guard, args=(proc, result), daemon=True).start()
        try:
            rc = proc.wait()
        finally:
            CURRENT["proc"] = None
        wall = time.monotonic() - started
        with open(time_file) as f:
            result.update(parse_time_v(f.read()))
        os.unlink(time_file)
    else:
        proc = subprocess.Popen(cmd, stdout=stdout, env=env, start_new_session=True)
        CURRENT["proc"] = proc
        threading.Thread(target=rss_guard, args=(proc, result), daemon=True).start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            CURRENT["proc"] = None
        wall = time.monotonic() - started
        rc = os.waitstatus_to_exitcode(status)
        result.update(maxrss_kb=usage.ru_maxrss, user=usage.ru_utime, sys=usage.ru_stime)
    busy1, total1 = machine_cpu()
    server1 = proc_cpu_seconds(server_pid)
    result["rc"] = rc
    result["wall"] = wall
    result["cores"] = (result.get("user", 0.0) + result.get("sys", 0.0)) / wall if wall > 0 else 0.0
    result["server_cores"] = (server1 - server0) / wall if None not in (server0, server1) and wall > 0 else None
    busy = (busy1 - busy0) / (total1 - total0) if total1 > total0 else None
    result["machine_busy"] = busy
    result["other_cores"] = (max(0.0, busy * NCPU - result["cores"] - (result["server_cores"] or 0.0))
                             if busy is not None else None)
    return result



def stop_current():
    """Stops the run being measured, all of its process group (curl under xargs under sh), before
    the clean-up: else it goes on writing into the indices being deleted."""
    proc = CURRENT["proc"]
    if proc:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except OSError:
                break
            try:
                proc.wait(10)
                break
            except subprocess.TimeoutExpired:
                continue


def busy_over(seconds):
    busy0, total0 = machine_cpu()
    time.sleep(seconds)
    busy1, total1 = machine_cpu()
    return (busy1 - busy0) / max(1, total1 - total0)


def wait_idle(max_wait):
    if max_wait <= 0:
        return None
    deadline = time.monotonic() + max_wait
    busy = busy_over(2)
    while busy > 0.15 and time.monotonic() < deadline:
        busy = busy_over(2)
    log(f"machine {busy * 100:.0f}% busy before the run")
    return busy

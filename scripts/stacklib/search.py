"""Family "search": Elasticsearch and OpenSearch nodes from Maven Central's
integ-test zips, open (no authentication, no TLS), one node each.

Download with `mvn dependency:copy` into downloads/ (and ~/.m2), unpack once
into dist/<product>-<version>/ (shared, read-only), per-service config,
data, logs and tmp under services/<name>/, launched with the distribution's
own launcher (`bin/<product> -d -p <pid file>`) as the stack user.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .base import Service
from .common import (BIND_HOST, SETTINGS, chown_to_stack_user, clean_env, console_banner, die,
                     health_green_or_yellow, http_ok, info, run_as, spawn)
from .java import pick_jdk


def mvn_fetch(svc_name: str, coords: str, zip_path: Path, failure: str, hint: str = "") -> None:
    """`mvn dependency:copy` of coords into downloads/ unless zip_path is there."""
    if zip_path.exists() and zip_path.stat().st_size > 0:
        return
    if shutil.which("mvn") is None:
        die(f"maven (mvn) is needed to download {coords}")
    info(f"{svc_name}: downloading {coords} from Maven Central")
    SETTINGS.downloads.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mvn", "-q", "-B", "-Dstyle.color=never", "dependency:copy",
                        f"-Dartifact={coords}", f"-DoutputDirectory={SETTINGS.downloads}"],
                       cwd=SETTINGS.downloads, capture_output=True, text=True)
    if r.returncode != 0:
        errors = [line for line in (r.stdout + r.stderr).splitlines() if re.search(r"ERROR|Could not", line)]
        for line in errors[:5]:
            print(line, file=sys.stderr)
        zip_path.unlink(missing_ok=True)
        if hint:
            info(f"{svc_name}: {hint}")
        die(failure)
    if not (zip_path.exists() and zip_path.stat().st_size > 0):
        die(f"{svc_name}: maven reported success but {zip_path} is missing")


def chmod_a_rX(top: Path) -> None:
    """chmod -R a+rX: readable by all, directories and executables searchable."""
    for root, dirs, files in os.walk(top):
        for n in [root] + [os.path.join(root, f) for f in files] + [os.path.join(root, d) for d in dirs]:
            if os.path.islink(n):
                continue
            mode = os.stat(n).st_mode
            add = 0o444
            if os.path.isdir(n) or mode & 0o111:
                add |= 0o111
            os.chmod(n, mode | add)


def copy_into(src: Path, dst: Path) -> None:
    """`cp -R src/. dst/`: new files and directories get the source's mode
    less the umask, files already in dst keep theirs (no ownership, no times)."""
    umask = os.umask(0)
    os.umask(umask)
    for root, dirs, files in os.walk(src):
        target = dst / os.path.relpath(root, src)
        for d in dirs:
            if not (target / d).is_dir():
                (target / d).mkdir()
                os.chmod(target / d, os.stat(os.path.join(root, d)).st_mode & 0o7777 & ~umask)
        for f in files:
            new = not (target / f).exists()
            shutil.copyfile(os.path.join(root, f), target / f)
            if new:
                os.chmod(target / f, os.stat(os.path.join(root, f)).st_mode & 0o7777 & ~umask)


class SearchService(Service):
    """An Elasticsearch or OpenSearch node.

    maven        groupId:artifactId of the distribution zip
    product      bin/<product>, <product>.yml ("elasticsearch"/"opensearch")
    env_prefix   prefix of the launcher's variables (ES_JAVA_HOME, ...)
    jdk_min, jdk_max, jdk_prefer ("low"/"high"), java_home (override)
    hint         advice printed when the download fails
    """

    def __init__(self, name: str, *, maven: str, product: str, env_prefix: str,
                 jdk_min: int, jdk_max: int, jdk_prefer: str = "high", java_home: str = "",
                 hint: str = "", **kw) -> None:
        super().__init__(name, **kw)
        self.maven = maven
        self.product = product
        self.env_prefix = env_prefix
        self.jdk_min, self.jdk_max, self.jdk_prefer = jdk_min, jdk_max, jdk_prefer
        self.java_home = java_home
        self.hint = hint

    # ---- distribution
    def plain_home(self) -> Path:
        """dist/<product>-<version>: the unpacked zip, shared by services."""
        return SETTINGS.dist / f"{self.product}-{self.version}"

    def run_home(self) -> Path:
        """The distribution this service runs (a copy with plugins for the
        secure services)."""
        return self.plain_home()

    def install(self) -> None:
        home = self.plain_home()
        if os.access(home / "bin" / self.product, os.X_OK):
            return
        zip_path = SETTINGS.downloads / f"{self.product}-{self.version}.zip"
        coords = f"{self.maven}:{self.version}:zip"
        SETTINGS.dist.mkdir(parents=True, exist_ok=True)
        mvn_fetch(self.name, coords, zip_path,
                  f"{self.name}: could not download {coords} (does version {self.version} exist on Maven Central?)",
                  self.hint)
        info(f"{self.name}: unpacking {zip_path.name}")
        if shutil.which("unzip") is None:
            die(f"unzip is needed to unpack {zip_path}")
        tmp = Path(tempfile.mkdtemp(prefix=".unpack.", dir=SETTINGS.dist))
        try:
            # unzip, not zipfile: it keeps the executable bits of bin/*.
            if subprocess.run(["unzip", "-q", str(zip_path), "-d", str(tmp)]).returncode != 0:
                die(f"{self.name}: could not unpack {zip_path} (corrupt download? delete it and retry)")
            entries = list(tmp.iterdir())
            if len(entries) != 1 or not os.access(entries[0] / "bin" / self.product, os.X_OK):
                die(f"{self.name}: unexpected layout in {zip_path}")
            chmod_a_rX(entries[0])
            entries[0].rename(home)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def config_home(self) -> Path:
        """The distribution whose config/ the service's config starts from."""
        return self.run_home()

    # ---- configuration
    def configure(self) -> None:
        home, conf = self.config_home(), self.state / "config"
        for d in (conf, self.state / "data", self.state / "logs", self.state / "tmp"):
            d.mkdir(parents=True, exist_ok=True)
        # Start from the distribution's config (jvm.options, log4j2...),
        # refreshed when the distribution changes; keeps files the server
        # made there (the keystore).
        stamp_file = conf / ".stack-dist"
        try:
            stamp = stamp_file.read_text().rstrip("\n")
        except OSError:
            stamp = ""
        if stamp != str(home):
            copy_into(home / "config", conf)
            stamp_file.write_text(f"{home}\n")
        self._absolute_jvm_paths(conf / "jvm.options")
        lines = [
            "# Generated by scripts/stack on every start; change the script, not this file.",
            f"cluster.name: ctindex-{self.name}",
            f"node.name: {self.name}",
            f"network.host: {BIND_HOST}",
            f"http.port: {self.port}",
            f"transport.port: {self.transport_port}",
            "discovery.type: single-node",
            f"path.data: {self.state}/data",
            f"path.logs: {self.state}/logs",
            "# Never go read-only because the disk is fuller than 85/90/95%.",
            "cluster.routing.allocation.disk.threshold_enabled: false",
            "# Allow DELETE /ctindex-* in tests.",
            "action.destructive_requires_name: false",
            "# A test run makes many small monthly indices; do not stop at 1000 shards.",
            "cluster.max_shards_per_node: 20000",
        ]
        # The ES integ-test zips ship x-pack-security; left on, it sets up
        # TLS and passwords. Only name settings whose module exists: unknown
        # settings abort the start.
        if (home / "modules/x-pack-security").is_dir():
            lines.append("xpack.security.enabled: false")
        if (home / "plugins/opensearch-security").is_dir() or (home / "modules/opensearch-security").is_dir():
            lines.append("plugins.security.disabled: true")
        if self.product == "elasticsearch" and (home / "modules/ingest-geoip").is_dir():
            lines.append("# No internet here; do not try to fetch GeoIP databases.")
            lines.append("ingest.geoip.downloader.enabled: false")
        (conf / f"{self.product}.yml").write_text("\n".join(lines) + "\n")
        self.own_state()

    def _absolute_jvm_paths(self, jvm_options: Path) -> None:
        """The launchers cd to the (read-only) distribution, so relative logs/
        and data/ paths in jvm.options (GC log, heap dumps, hs_err) must be
        absolute."""
        s = str(self.state)
        rules = [(r"file=logs/", f"file={s}/logs/"), (r"-Xloggc:logs/", f"-Xloggc:{s}/logs/"),
                 (r"-XX:HeapDumpPath=data$", f"-XX:HeapDumpPath={s}/data"),
                 (r"-XX:ErrorFile=logs/", f"-XX:ErrorFile={s}/logs/")]
        out = []
        for line in jvm_options.read_text().split("\n"):
            for pattern, repl in rules:
                line = re.sub(pattern, lambda _m, r=repl: r, line, count=1)
            out.append(line)
        jvm_options.write_text("\n".join(out))

    def own_state(self) -> None:
        """Hand the state dir to the stack user (data/ not recursively: it can
        be big, and the server wrote everything in it)."""
        chown_to_stack_user(self.state, self.state / "data")
        chown_to_stack_user(self.state / "config", self.state / "logs", self.state / "tmp", recursive=True)

    # ---- running
    def launch(self) -> subprocess.Popen:
        home = self.run_home()
        jdk, major = pick_jdk(self)
        prefix = run_as()
        info(f"{self.name}: starting {self.product} {self.version} on {self.url} "
             f"(JDK {major}: {jdk}, heap {self.heap})")
        self.pidfile.unlink(missing_ok=True)
        console_banner(self.console, f"{self.product} {self.version}, JDK {jdk}")
        p = self.env_prefix
        env_ = clean_env(self.state, **{
            f"{p}_JAVA_HOME": str(jdk),
            f"{p}_PATH_CONF": f"{self.state}/config",
            f"{p}_TMPDIR": f"{self.state}/tmp",
            f"{p}_JAVA_OPTS": f"-Xms{self.heap} -Xmx{self.heap}",
        })
        # -d: the launcher daemonises the server and exits; -p: the server
        # writes its pid.
        return spawn(prefix + [str(home / "bin" / self.product), "-d", "-p", str(self.pidfile)],
                     self.state, env_, self.console)

    def healthy(self, starting: bool = False) -> bool:
        return health_green_or_yellow(http_ok("GET", f"{self.url}/_cluster/health"))

    def live_version(self) -> str | None:
        # Not `GET /`: the ES 8 integ-test zip lacks rest-root (405 there).
        return first_node_version(http_ok("GET", f"{self.url}/_nodes/_local?filter_path=nodes.*.version"))

    def main_log(self) -> Path | None:
        return self.state / f"logs/ctindex-{self.name}.log"


def first_node_version(text: str | None) -> str | None:
    try:
        nodes = json.loads(text or "")["nodes"]
        return next(iter(nodes.values()))["version"]
    except (ValueError, KeyError, TypeError, StopIteration, AttributeError):
        return None

"""Finding a JDK for a service: the per-service override, then $JAVA_HOME
when its major version is in range, then the best JDK under
$CTINDEX_JVM_DIRS (default /usr/lib/jvm)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from .common import SETTINGS, die, warn


def jdk_major(home: Path) -> int | None:
    """The major version of the JDK at home, from its release file or
    `java -version` ("1.8.0" counts as 8)."""
    v = ""
    try:
        m = re.search(r'^JAVA_VERSION="([^"]*)"', (home / "release").read_text(), re.M)
        v = m.group(1) if m else ""
    except OSError:
        pass
    if not v:
        try:
            r = subprocess.run([str(home / "bin/java"), "-version"], capture_output=True, text=True)
            first = (r.stderr + r.stdout).splitlines()[:1]
            m = re.search(r'version "([^"]*)"', first[0]) if first else None
            v = m.group(1) if m else ""
        except OSError:
            v = ""
    if v.startswith("1."):
        v = v[2:]
    v = re.split(r"[.+-]", v, maxsplit=1)[0]
    return int(v) if v.isdigit() else None


def list_jdks() -> list[tuple[int, Path]]:
    """(major, path) of every JDK under the JVM dirs, symlinks resolved, each once."""
    seen, found = set(), []
    for d in SETTINGS.jvm_dirs:
        try:
            entries = sorted(os.listdir(d))
        except OSError:
            continue
        for name in entries:
            cand = Path(d) / name
            if not cand.is_dir() or not os.access(cand / "bin/java", os.X_OK):
                continue
            real = cand.resolve()
            if real in seen:
                continue
            seen.add(real)
            major = jdk_major(real)
            if major is not None:
                found.append((major, real))
    return found


def pick_jdk(svc) -> tuple[Path, str]:
    """(JDK home, major as text) for a service with jdk_min/jdk_max/
    jdk_prefer ("low"/"high"), java_home (override) and env_prefix."""
    if svc.java_home:
        home = Path(svc.java_home)
        if not os.access(home / "bin/java", os.X_OK):
            die(f"{svc.name}: {svc.env_prefix}_JAVA_HOME={svc.java_home} has no bin/java")
        major = jdk_major(home)
        if major is None or not svc.jdk_min <= major <= svc.jdk_max:
            warn(f"{svc.name}: using JDK {major if major is not None else '?'} from override "
                 f"although {svc.jdk_min}..{svc.jdk_max} is expected")
        return home, str(major) if major is not None else "?"
    jh = os.environ.get("JAVA_HOME", "")
    if jh and os.access(Path(jh) / "bin/java", os.X_OK):
        major = jdk_major(Path(jh))
        if major is not None and svc.jdk_min <= major <= svc.jdk_max:
            return Path(jh), str(major)
    jdks = list_jdks()
    # Stable sort on the major only, like `sort -n` / `sort -rn` on "major path".
    ordered = sorted(jdks, key=lambda j: (j[0], str(j[1])), reverse=svc.jdk_prefer == "high")
    for major, path in ordered:
        if svc.jdk_min <= major <= svc.jdk_max:
            return path, str(major)
    cand = " ".join(str(m) for m, _ in sorted(jdks))
    die(f"{svc.name} {svc.version} needs a JDK {svc.jdk_min}..{svc.jdk_max}; found under "
        f"{' '.join(SETTINGS.jvm_dirs)}: {cand + ' ' if cand else 'none'}"
        f"(set {svc.env_prefix}_JAVA_HOME to point at one)")

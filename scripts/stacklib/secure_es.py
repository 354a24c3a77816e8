"""Family "secure_es": the elasticsearch-secure service, the same
Elasticsearch 8.x integ-test zip as `elasticsearch` with x-pack security on
(HTTPS on https://localhost:<port>, TLS transport, file/PKI/native realms,
API keys, a service account token, a 30-day trial license).

It runs from dist/elasticsearch-secure/elasticsearch-<version>/: a
hard-linked copy of the shared distribution plus a small plugin
(SecurityAnalysisPlugin.java beside this file, compiled once with the JDK's
javac) supplying the analyzers the .security index needs and the
integ-test zip lacks (pattern_capture, uax_url_email, lowercase, unique);
without it no API key, native role or role mapping could be stored.

Made once under services/elasticsearch-secure/ (regenerated only when
missing; `wipe` removes all):
  config/certs/ca.crt            the stack CA                    -> ES_SECURE_CA
  config/certs/node.{crt,key}    HTTP + transport, SAN DNS:localhost ONLY (so
                                 https://127.0.0.1 fails hostname checks)
  secrets/ca.key                 CA private key
  secrets/client.{crt,key,pem}   PKI client cert CN=ctindex-pki-client; .pem is
                                 cert + PKCS#8 key                -> ES_SECURE_CLIENT_CERT
  secrets/admin-password         file-realm user ctindex_admin (superuser)
  secrets/writer-password        file-realm user ctindex_writer (role ctindex_writer)
  secrets/service-token          token elastic/fleet-server/ctindex
  secrets/api-key                API key "ctindex-stack"
(secrets/ is 0700, its files 0600.)

After every start, once the cluster answers (then remembered in
.stack-post-start until the next configure): a trial license if on basic,
PUT role ctindex_writer from roles/elasticsearch.json, role mapping
ctindex_pki (dn CN=ctindex-pki-client -> ctindex_writer), the API key
(updated in place while it authenticates, else created).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .common import (REPO_DIR, SETTINGS, die, env, export, info, request, run_as, warn,
                     health_green_or_yellow, clean_env)
from .java import list_jdks, pick_jdk
from .search import SearchService, first_node_version

ADMIN_USER = "ctindex_admin"
WRITER_USER = "ctindex_writer"
WRITER_ROLE = "ctindex_writer"
PKI_DN = "CN=ctindex-pki-client"
SERVICE_ACCOUNT = "elastic/fleet-server"
TOKEN_NAME = "ctindex"
SHIM = "ctindex-security-analysis"
SHIM_SOURCE = Path(__file__).with_name("SecurityAnalysisPlugin.java")

OPENSSL_CNF = """\
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused
[ ca_ext ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ node_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ client_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

SECURITY_YML = """\
# ---- elasticsearch-secure (scripts/stacklib/secure_es.py)
xpack.security.enabled: true
# A 30-day trial from the first start: the PKI realm needs gold or better.
xpack.license.self_generated.type: trial
xpack.security.http.ssl.enabled: true
xpack.security.http.ssl.key: certs/node.key
xpack.security.http.ssl.certificate: certs/node.crt
xpack.security.http.ssl.certificate_authorities: [ "certs/ca.crt" ]
# Ask for a client certificate (PKI realm) but do not require one.
xpack.security.http.ssl.client_authentication: optional
xpack.security.transport.ssl.enabled: true
xpack.security.transport.ssl.key: certs/node.key
xpack.security.transport.ssl.certificate: certs/node.crt
xpack.security.transport.ssl.certificate_authorities: [ "certs/ca.crt" ]
xpack.security.transport.ssl.verification_mode: certificate
xpack.security.authc.realms.file.file1.order: 0
xpack.security.authc.realms.pki.pki1.order: 1
xpack.security.authc.realms.pki.pki1.certificate_authorities: [ "certs/ca.crt" ]
xpack.security.authc.realms.native.native1.order: 2
xpack.security.authc.token.enabled: true
xpack.security.authc.api_key.enabled: true
"""


def openssl(*args: str, quiet_stderr: bool = False) -> bool:
    return subprocess.run(["openssl", *args],
                          stderr=subprocess.DEVNULL if quiet_stderr else None).returncode == 0


def new_key(path: Path) -> bool:
    """A new RSA 2048 private key, PKCS#8 PEM, mode 0600."""
    old = os.umask(0o077)
    try:
        return openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(path),
                       quiet_stderr=True)
    finally:
        os.umask(old)


def rand_hex(n: int) -> str:
    return os.urandom(n).hex()


class SecureElasticsearch(SearchService):
    """elasticsearch-secure: see the module docstring. role_file: the
    ctindex_writer role (ES_SECURE_ROLE_FILE)."""

    def __init__(self, name: str, *, role_file: str, **kw) -> None:
        super().__init__(name, **kw)
        self.role_file = Path(role_file)
        self._last_warning = ""

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    certs = property(lambda self: self.state / "config/certs")
    secrets = property(lambda self: self.state / "secrets")
    marker = property(lambda self: self.state / ".stack-post-start")

    def run_home(self) -> Path:
        return SETTINGS.dist / "elasticsearch-secure" / f"{self.product}-{self.version}"

    def secret(self, name: str) -> str | None:
        """First line of a secrets/ file, or None."""
        try:
            text = (self.secrets / name).read_text()
        except OSError:
            return None
        return text.split("\n", 1)[0] if text else None

    def put_secret(self, name: str, value: str) -> None:
        """Writes a secrets/ file atomically, mode 0600."""
        f = self.secrets / name
        tmp = f.with_name(f"{name}.tmp.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(value + "\n")
        os.replace(tmp, f)

    def warn_once(self, msg: str) -> None:
        """Warns once per distinct message (the health check runs every second)."""
        if msg != self._last_warning:
            self._last_warning = msg
            warn(f"{self.name}: {msg}")

    # ---- the analysis plugin and the distribution copy
    def install(self) -> None:
        super().install()
        base, home = self.plain_home(), self.run_home()
        java = SHIM_SOURCE.read_bytes()
        cksum = subprocess.run(["cksum"], input=java, capture_output=True).stdout.decode().split()[0]
        stamp = f"{self.version} {cksum}"
        try:
            current = (home / ".stack-shim").read_text().strip()
        except OSError:
            current = None
        if os.access(home / "bin" / self.product, os.X_OK) and current == stamp:
            return
        jdk, major = pick_jdk(self)
        javac = self._javac(jdk, major)
        if javac is None:
            die(f"{self.name}: needs javac (a JDK >= {major}, not a JRE) to build its analysis plugin; "
                "set ES_JAVA_HOME to a JDK")
        jar = javac.parent / "jar"
        info(f"{self.name}: building {home} (hard-linked copy of {base.name} + plugin {SHIM})")
        home.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".build.", dir=home.parent))
        try:
            if subprocess.run(["cp", "-al", str(base), str(tmp / "dist")], stderr=subprocess.DEVNULL).returncode != 0:
                shutil.rmtree(tmp / "dist", ignore_errors=True)
                subprocess.run(["cp", "-a", str(base), str(tmp / "dist")], check=True)
            src = tmp / "src/org/ctindex/stack"
            src.mkdir(parents=True)
            (tmp / "classes").mkdir()
            (src / "SecurityAnalysisPlugin.java").write_bytes(java)
            r = subprocess.run([str(javac), "--release", "17", "-nowarn", "-cp", f"{base}/lib/*", "-d",
                                str(tmp / "classes"), str(src / "SecurityAnalysisPlugin.java")],
                               capture_output=True, text=True)
            if r.returncode != 0:
                print("\n".join((r.stdout + r.stderr).splitlines()[-20:]), file=sys.stderr)
                die(f"{self.name}: could not compile the analysis plugin")
            plugin = tmp / "dist/plugins" / SHIM
            plugin.mkdir(parents=True)
            if subprocess.run([str(jar), "cf", str(plugin / f"{SHIM}-{self.version}.jar"), "-C",
                               str(tmp / "classes"), "."]).returncode != 0:
                die(f"{self.name}: could not package the analysis plugin")
            (plugin / "plugin-descriptor.properties").write_text(
                "description=scripts/stack: pattern_capture, uax_url_email, lowercase and unique for the "
                ".security index (the integ-test-zip lacks analysis-common)\n"
                f"version={self.version}\nname={SHIM}\nclassname=org.ctindex.stack.SecurityAnalysisPlugin\n"
                f"java.version=17\nelasticsearch.version={self.version}\n")
            for p in [plugin, *plugin.iterdir()]:
                os.chmod(p, os.stat(p).st_mode | (0o555 if p.is_dir() else 0o444))
            (tmp / "dist/.stack-shim").write_text(stamp + "\n")
            shutil.rmtree(home, ignore_errors=True)
            (tmp / "dist").rename(home)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _javac(self, jdk: Path, major: str) -> Path | None:
        """A javac for the JDK's release: its own, else any JDK >= its major."""
        if os.access(jdk / "bin/javac", os.X_OK):
            return jdk / "bin/javac"
        want = int(major) if major.isdigit() else 0
        for m, path in sorted(list_jdks()):
            if m >= want and os.access(path / "bin/javac", os.X_OK):
                return path / "bin/javac"
        return None

    # ---- certificates
    def make_certs(self) -> None:
        """CA, node and PKI client certificates (RSA 2048, PEM, PKCS#8 keys),
        each made only when missing; a new CA re-issues both."""
        certs, secrets = self.certs, self.secrets
        certs.mkdir(parents=True, exist_ok=True)
        if shutil.which("openssl") is None:
            die(f"{self.name}: openssl is needed to make the TLS certificates")
        have = lambda p: p.exists() and p.stat().st_size > 0  # noqa: E731
        if all(have(p) for p in (certs / "ca.crt", secrets / "ca.key", certs / "node.crt", certs / "node.key",
                                 secrets / "client.crt", secrets / "client.key", secrets / "client.pem")):
            return
        tmp = Path(tempfile.mkdtemp())
        try:
            cnf = tmp / "openssl.cnf"
            cnf.write_text(OPENSSL_CNF)
            new_ca = False
            if not have(certs / "ca.crt") or not have(secrets / "ca.key"):
                info(f"{self.name}: creating the stack CA in {certs}")
                if not new_key(tmp / "ca.key") or not openssl(
                        "req", "-x509", "-new", "-config", str(cnf), "-key", str(tmp / "ca.key"),
                        "-subj", f"/O=ctindex scripts-stack/CN=ctindex {self.name} CA", "-days", "3650",
                        "-sha256", "-extensions", "ca_ext", "-out", str(tmp / "ca.crt")):
                    die(f"{self.name}: could not create the CA")
                shutil.move(tmp / "ca.key", secrets / "ca.key")
                shutil.move(tmp / "ca.crt", certs / "ca.crt")
                new_ca = True
            if new_ca or not have(certs / "node.crt") or not have(certs / "node.key"):
                info(f"{self.name}: creating the node certificate (SAN DNS:localhost only)")
                if not self._leaf(tmp, "node", "/CN=localhost", "node_ext"):
                    die(f"{self.name}: could not create the node certificate")
                shutil.move(tmp / "node.key", certs / "node.key")
                shutil.move(tmp / "node.crt", certs / "node.crt")
            if new_ca or not all(have(secrets / f) for f in ("client.crt", "client.key", "client.pem")):
                info(f"{self.name}: creating the PKI client certificate ({PKI_DN})")
                if not self._leaf(tmp, "client", f"/{PKI_DN}", "client_ext"):
                    die(f"{self.name}: could not create the client certificate")
                fd = os.open(tmp / "client.pem", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write((tmp / "client.crt").read_bytes() + (tmp / "client.key").read_bytes())
                for f in ("client.key", "client.crt", "client.pem"):
                    shutil.move(tmp / f, secrets / f)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        for p in (certs / "ca.crt", certs / "node.crt", secrets / "client.crt"):
            os.chmod(p, 0o644)
        for p in (certs / "node.key", secrets / "ca.key", secrets / "client.key", secrets / "client.pem"):
            os.chmod(p, 0o600)

    def _leaf(self, d: Path, name: str, subject: str, extensions: str) -> bool:
        """d/name.{key,crt} signed by the stack CA, extensions from a section of d/openssl.cnf."""
        return (new_key(d / f"{name}.key")
                and openssl("req", "-new", "-config", str(d / "openssl.cnf"), "-key", str(d / f"{name}.key"),
                            "-subj", subject, "-out", str(d / f"{name}.csr"))
                and openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(self.certs / "ca.crt"),
                            "-CAkey", str(self.secrets / "ca.key"), "-set_serial", f"0x{rand_hex(15)}",
                            "-days", "3650", "-sha256", "-extfile", str(d / "openssl.cnf"),
                            "-extensions", extensions, "-out", str(d / f"{name}.crt"), quiet_stderr=True))

    # ---- users and tokens (the distribution's CLI tools, as the stack user)
    def cli(self, jdk: Path, tool: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        e = clean_env(self.state, ES_JAVA_HOME=str(jdk), ES_PATH_CONF=f"{self.state}/config",
                      CLI_JAVA_OPTS="-XX:TieredStopAtLevel=1")
        return subprocess.run(run_as() + [str(self.run_home() / "bin" / tool), *args], cwd=self.state, env=e,
                              input=stdin if stdin is not None else "", capture_output=True, text=True)

    def ensure_user(self, jdk: Path, user: str, role: str, pwfile: str) -> None:
        """File-realm user with role and the password in secrets/pwfile;
        (re)made when missing, when its role is missing or the password is new."""
        conf = self.state / "config"
        new = False
        if self.secret(pwfile) is None:
            self.put_secret(pwfile, rand_hex(16))
            new = True
        users = _read(conf / "users")
        has_user = re.search(rf"^{re.escape(user)}:", users, re.M) is not None
        has_role = re.search(rf"^{re.escape(role)}:(.*,)?{re.escape(user)}(,|$)", _read(conf / "users_roles"),
                             re.M) is not None
        if not new and has_user and has_role:
            return
        info(f"{self.name}: creating file-realm user {user} (role {role})")
        if has_user:
            self.cli(jdk, "elasticsearch-users", "userdel", user)
        pw = self.secret(pwfile)
        # The password goes in on stdin (asked twice), not on the command line.
        r = self.cli(jdk, "elasticsearch-users", "useradd", user, "-r", role, stdin=f"{pw}\n{pw}\n")
        if r.returncode != 0:
            print("\n".join((r.stdout + r.stderr).splitlines()[-5:]), file=sys.stderr)
            die(f"{self.name}: elasticsearch-users useradd {user} failed")
        if not re.search(rf"^{re.escape(user)}:", _read(conf / "users"), re.M):
            die(f"{self.name}: user {user} is not in {conf}/users after useradd")

    def ensure_service_token(self, jdk: Path) -> None:
        """File-based token elastic/fleet-server/ctindex; its value is only
        shown at creation, so it is kept in secrets/service-token."""
        tokens = _read(self.state / "config/service_tokens")
        tid = f"{SERVICE_ACCOUNT}/{TOKEN_NAME}"
        listed = re.search(rf"^{re.escape(tid)}:", tokens, re.M) is not None
        if self.secret("service-token") is not None and listed:
            return
        info(f"{self.name}: creating service account token {tid}")
        if listed:
            self.cli(jdk, "elasticsearch-service-tokens", "delete", SERVICE_ACCOUNT, TOKEN_NAME)
        r = self.cli(jdk, "elasticsearch-service-tokens", "create", SERVICE_ACCOUNT, TOKEN_NAME)
        out = r.stdout + r.stderr
        if r.returncode != 0:
            print("\n".join(out.splitlines()[-5:]), file=sys.stderr)
            die(f"{self.name}: elasticsearch-service-tokens create failed")
        # "SERVICE_TOKEN elastic/fleet-server/ctindex = AAEAAWVs..."
        m = re.search(r"^SERVICE_TOKEN .* = *(\S+) *$", out, re.M)
        if not m:
            die(f"{self.name}: no token in the output of elasticsearch-service-tokens create")
        self.put_secret("service-token", m.group(1))

    # ---- configure / launch
    def configure(self) -> None:
        if not os.access(self.role_file, os.R_OK):
            die(f"{self.name}: role file {self.role_file} is missing (ES_SECURE_ROLE_FILE)")
        self.marker.unlink(missing_ok=True)
        super().configure()
        yml = self.state / "config" / f"{self.product}.yml"
        if not (self.run_home() / "modules/x-pack-security").is_dir():
            die(f"{self.name}: {self.run_home()} has no x-pack-security module")
        # The open configuration turned security off; replace that line.
        kept = [line for line in yml.read_text().splitlines(keepends=True)
                if not line.startswith("xpack.security.enabled:")]
        yml.write_text("".join(kept) + SECURITY_YML)
        self.secrets.mkdir(parents=True, exist_ok=True)
        os.chmod(self.secrets, 0o700)
        self.make_certs()
        self.own_state()
        jdk, _ = pick_jdk(self)
        self.ensure_user(jdk, ADMIN_USER, "superuser", "admin-password")
        self.ensure_user(jdk, WRITER_USER, WRITER_ROLE, "writer-password")
        self.ensure_service_token(jdk)
        self.own_state()

    # ---- HTTP, as admin or with a given Authorization header
    def call(self, auth: str, method: str, path: str, body: str | None = None,
             timeout: float = 15) -> tuple[int, str]:
        """auth: "admin", "none" or a whole "Authorization: ..." header."""
        headers = {}
        if auth == "admin":
            pw = self.secret("admin-password")
            if pw is None:
                return 0, "no admin password"
            headers["Authorization"] = "Basic " + base64.b64encode(f"{ADMIN_USER}:{pw}".encode()).decode()
        elif auth != "none":
            k, _, v = auth.partition(":")
            headers[k.strip()] = v.strip()
        return request(method, self.url + path, body=body, headers=headers, cafile=self.certs / "ca.crt",
                       timeout=timeout)

    def must(self, what: str, method: str, path: str, body: str | None = None) -> str | None:
        """An admin request that must answer 2xx; the body, or None after a warning."""
        status, text = self.call("admin", method, path, body)
        if not 200 <= status < 300:
            self.warn_once(f"{what} failed (HTTP {status:03d}): {' '.join(text.split())[:300]}")
            return None
        return text

    def post_start(self) -> bool:
        """Trial license, writer role, PKI role mapping, API key."""
        lic = self.must("GET /_license", "GET", "/_license")
        if lic is None:
            return False
        if not re.search(r'"type" *: *"(trial|gold|platinum|enterprise)"', lic) or \
                re.search(r'"status" *: *"expired"', lic):
            _, text = self.call("admin", "POST", "/_license/start_trial?acknowledge=true")
            if re.search(r'"trial_was_started" *: *true', text):
                info(f"{self.name}: started a 30-day trial license (the PKI realm needs it)")
            else:
                self.warn_once("no trial/platinum license and no new trial possible: the PKI realm will not work "
                               f"('scripts/stack wipe {self.name}' starts a new cluster)")
        try:
            role = self.role_file.read_text()
        except OSError:
            return False
        if self.must(f"PUT role {WRITER_ROLE} from {self.role_file}", "PUT", f"/_security/role/{WRITER_ROLE}",
                     role) is None:
            return False
        mapping = {"enabled": True, "roles": [WRITER_ROLE], "rules": {"field": {"dn": PKI_DN}},
                   "metadata": {"managed_by": "scripts/stack"}}
        if self.must("PUT role mapping ctindex_pki", "PUT", "/_security/role_mapping/ctindex_pki",
                     json.dumps(mapping)) is None:
            return False
        # An API key with exactly the writer's privileges.
        descriptors = f'{{"{WRITER_ROLE}": {role}}}'
        key = self.secret("api-key")
        if key is not None:
            status, _ = self.call(f"Authorization: ApiKey {key}", "GET", "/_security/_authenticate")
            if status == 200:
                # The key is "base64(id:secret)": update its privileges in place.
                try:
                    kid = base64.b64decode(key).decode().split(":", 1)[0]
                except ValueError:
                    kid = ""
                return self.must(f"update API key {kid}", "PUT", f"/_security/api_key/{kid}",
                                 f'{{"role_descriptors": {descriptors}}}') is not None
            info(f"{self.name}: the stored API key no longer authenticates (HTTP {status:03d}); creating a new one")
        text = self.must("create API key", "POST", "/_security/api_key",
                         f'{{"name": "ctindex-stack", "role_descriptors": {descriptors}, '
                         f'"metadata": {{"managed_by": "scripts/stack"}}}}')
        if text is None:
            return False
        m = re.search(r'"encoded" *: *"([^"]*)"', text)
        if not m or not m.group(1):
            self.warn_once('create API key: no "encoded" value in the answer')
            return False
        self.put_secret("api-key", m.group(1))
        info(f"{self.name}: created API key ctindex-stack ({self.secrets}/api-key)")
        return True

    def healthy(self, starting: bool = False) -> bool:
        """Green/yellow through TLS as admin; the first success after a
        configure also runs post_start: healthy only once that is done."""
        status, text = self.call("admin", "GET", "/_cluster/health", timeout=3)
        if status == 401:
            self.warn_once(f"the admin user is refused (401): does {self.secrets}/admin-password match "
                           f"config/users? ('scripts/stack wipe {self.name}' starts over)")
            return False
        if status != 200 or not health_green_or_yellow(text):
            return False
        if self.marker.exists():
            return True
        if not self.post_start():
            return False
        self.marker.touch()
        return True

    def live_version(self) -> str | None:
        status, text = self.call("admin", "GET", "/_nodes/_local?filter_path=nodes.*.version", timeout=3)
        return first_node_version(text) if status == 200 else None

    def main_log(self) -> Path:
        return self.state / f"logs/ctindex-{self.name}.log"

    def env_lines(self) -> list[str]:
        """Only reads files: fast, and works while the server is down."""
        lines, missing = [export(self.url_var, self.url, quote=True)], []

        def file_var(var: str, path: Path) -> None:
            if path.exists() and path.stat().st_size > 0:
                lines.append(export(var, str(path), quote=True))
            else:
                missing.append(var)

        def secret_var(var: str, name: str) -> None:
            v = self.secret(name)
            if v is not None:
                lines.append(export(var, v, quote=True))
            else:
                missing.append(var)

        file_var("ES_SECURE_CA", self.certs / "ca.crt")
        lines.append(export("ES_SECURE_USER", WRITER_USER, quote=True))
        secret_var("ES_SECURE_PASSWORD", "writer-password")
        secret_var("ES_SECURE_API_KEY", "api-key")
        secret_var("ES_SECURE_SERVICE_TOKEN", "service-token")
        file_var("ES_SECURE_CLIENT_CERT", self.secrets / "client.pem")
        lines.append(export("ES_SECURE_ADMIN_USER", ADMIN_USER, quote=True))
        secret_var("ES_SECURE_ADMIN_PASSWORD", "admin-password")
        if missing:
            warn(f"{self.name}: not set up yet (run 'scripts/stack start {self.name}'), left out: {' '.join(missing)}")
        return lines


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def default_role_file() -> str:
    return env("ES_SECURE_ROLE_FILE", str(REPO_DIR / "roles/elasticsearch.json"))

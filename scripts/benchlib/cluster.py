"""The servers the benchmark indexes into: a small HTTP client for Elasticsearch and OpenSearch
(identify, count, delete by prefix) and the Cleanup that deletes whatever a run created, also
after a failure or Ctrl-C. Only the standard library (urllib)."""

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request

from .common import Failure, log


class Cluster:
    def __init__(self, name, url):
        self.name = name
        parts = urllib.parse.urlsplit(url)
        self.auth = None
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            parts = parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else ""))
        self.url = url
        self.base = urllib.parse.urlunsplit(parts).rstrip("/")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.flavor = self.version = None

    def request(self, method, path, body=None, timeout=120):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.auth:
            req.add_header("Authorization", self.auth)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                text = resp.read()
                return resp.status, (json.loads(text) if text else None)
        except urllib.error.HTTPError as e:
            text = e.read()
            try:
                return e.code, json.loads(text)
            except ValueError:
                return e.code, text.decode(errors="replace")

    def get(self, path):
        return self.request("GET", path)

    def identify(self):
        """Sets flavor and version; raises Failure when the server does not answer."""
        try:
            status, root = self.request("GET", "/", timeout=10)
            if status == 200 and isinstance(root, dict) and "version" in root:
                v = root["version"]
                self.flavor = "OpenSearch" if v.get("distribution") == "opensearch" else "Elasticsearch"
                self.version = v.get("number", "?")
                return
            # The integ-test distributions of Elasticsearch do not serve GET /.
            status, nodes = self.request("GET", "/_nodes/_local?filter_path=nodes.*.version", timeout=10)
            if status == 200 and isinstance(nodes, dict):
                versions = [n.get("version", "?") for n in nodes.get("nodes", {}).values()]
                self.flavor, self.version = "Elasticsearch", (versions[0] if versions else "?")
                return
            why = f"answered {status}"
        except (OSError, ValueError) as e:
            why = str(getattr(e, "reason", e))
        raise Failure(f"{self.name} at {self.base} does not answer like Elasticsearch or OpenSearch ({why}): "
                      f"start it with `scripts/stack start {self.name}`, or leave it out with --servers")

    @property
    def label(self):
        return f"{self.flavor} {self.version}"

    def count(self, pattern):
        self.request("POST", f"/{pattern}/_refresh")
        status, body = self.get(f"/{pattern}/_count")
        return body.get("count") if status == 200 and isinstance(body, dict) else None

    def delete_prefix(self, prefix):
        status, indices = self.get(f"/_cat/indices/{prefix}-*?format=json&h=index&expand_wildcards=all")
        names = [i["index"] for i in indices] if status == 200 and isinstance(indices, list) else []
        self.delete_indices(names)
        status, body = self.request("DELETE", f"/_index_template/ctindex-{prefix}")
        if status not in (200, 404):
            log(f"{self.name}: cannot delete template ctindex-{prefix}: {status} {body}")
        return len(names)

    def delete_indices(self, names):
        # Names, not a wildcard: Elasticsearch refuses wildcard deletes by default.
        for start in range(0, len(names), 50):
            chunk = ",".join(names[start : start + 50])
            status, body = self.request("DELETE", f"/{chunk}")
            if status not in (200, 404):
                log(f"{self.name}: cannot delete {chunk}: {status} {body}")


class Cleanup:
    """Everything the run created on the servers, deleted in the end whatever happens."""

    def __init__(self):
        self.prefixes = []
        self.indices = []

    def prefix(self, cluster, prefix):
        self.prefixes.append((cluster, prefix))
        return prefix

    def index(self, cluster, name):
        self.indices.append((cluster, name))
        return name

    def run(self, settle=0):
        """Deletes everything. With settle > 0 (after an interruption) it deletes again until
        nothing has come back for `settle` seconds (at most a minute): bulk requests a server
        has received finish after their client is gone, and create the indices again."""
        deadline = time.monotonic() + 60
        quiet_since = None
        while True:
            deleted = 0
            for cluster, prefix in reversed(self.prefixes):
                try:
                    n = cluster.delete_prefix(prefix)
                    deleted += n
                    if n:
                        log(f"{cluster.name}: deleted {n} indices {prefix}-* and template ctindex-{prefix}")
                except OSError as e:
                    log(f"{cluster.name}: cannot clean up {prefix}-*: {e}")
            now = time.monotonic()
            if settle <= 0 or now > deadline:
                break
            quiet_since = None if deleted else (quiet_since or now)
            if quiet_since is not None and now - quiet_since >= settle:
                break
            time.sleep(1)
        for cluster, name in reversed(self.indices):
            try:
                cluster.delete_indices([name])
            except OSError as e:
                log(f"{cluster.name}: cannot delete {name}: {e}")
        self.prefixes.clear()
        self.indices.clear()


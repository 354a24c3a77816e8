#!/usr/bin/env python3
"""Prove the ctindex index templates against a live Elasticsearch/OpenSearch.

Usage:  scripts/mapping-check.py URL FLAVOR [--corpus DIR] [--keep] [--raw]
        FLAVOR = elasticsearch | opensearch

What it does (python3 stdlib only):
  1. installs mappings/template-<FLAVOR>.json as index template `mapcheck-ctindex`
     with index_patterns ["mapcheck-*"] (priority 900, alias "mapcheck");
  2. walks the CloudTrail corpus, extracts every event (Records files, JSON arrays,
     NDJSON, single objects, EventBridge `detail`, LookupEvents `CloudTrailEvent`
     strings, CloudWatch Logs `logEvents[].message` strings), has the ctindex
     binary make its documents (`ctindex import --dry-run --print-documents`:
     exactly what an import sends, see `Binary`) and bulk-indexes them into one
     index; every item error is reported, grouped by reason;
  3. probes: 300 KB strings, 25/50-level nesting, non-object payloads, odd booleans,
     odd dates and IPs, odd keys, unknown top-level fields -- each sent both RAW
     (what the cluster does on its own with the filtered event: `ctindex export
     --format ndjson`) and NORMALISED (what ctindex sends);
     measures the exact depth and leaf-size limits of the free-form field type;
  4. _field_caps and aggregation sanity checks;
  5. deletes every index it created and the test template (unless --keep).

Exit code: 0 when the corpus and every normalised probe indexed with zero errors,
1 otherwise, 2 on usage errors.

Flags: --corpus=DIR   other corpus directory
       --keep         leave the mapcheck-* indices and the template for inspection
       --raw          index the corpus without the shape/size normalisation (to
                      show what the templates alone survive)
       --corpus-only  skip probes, limit searches and value checks

A document the cluster still rejects after normalisation is re-sent once
"quarantined", as ctindex's sink would (the binary prints that second try
beside each document); such retries are counted and shown, and a document that
fails the retry is an error. The contract is documented in mappings/README.md;
this script restates none of its rules: the binary applies them.

The binary: $CTINDEX_BIN, else target/debug/ctindex as `cargo build` leaves it.
"""

import base64
import copy
import shutil
import subprocess
import tempfile
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

sys.setrecursionlimit(20000)
from collections import Counter, defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_CORPUS = "/work/shared/cloudtrail-corpus"
TEMPLATE_NAME = "mapcheck-ctindex"
RUN = "%s-%d" % (time.strftime("%H%M%S"), os.getpid())

# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------
class Http:
    def __init__(self, url):
        u = urllib.parse.urlsplit(url)
        self.base = urllib.parse.urlunsplit((u.scheme, u.hostname + (":%d" % u.port if u.port else ""), u.path.rstrip("/"), "", ""))
        self.auth = None
        if u.username:
            tok = "%s:%s" % (urllib.parse.unquote(u.username), urllib.parse.unquote(u.password or ""))
            self.auth = "Basic " + base64.b64encode(tok.encode()).decode()

    def req(self, method, path, body=None, ndjson=False, timeout=120):
        data = None
        headers = {}
        if body is not None:
            if isinstance(body, (bytes, str)):
                data = body.encode() if isinstance(body, str) else body
            else:
                data = json.dumps(body).encode()
            headers["Content-Type"] = "application/x-ndjson" if ndjson else "application/json"
        if self.auth:
            headers["Authorization"] = self.auth
        r = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(r, timeout=timeout) as resp:
                raw = resp.read()
                return resp.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, {"raw": raw.decode("utf-8", "replace")}


# --------------------------------------------------------------------------
# Corpus extraction
# --------------------------------------------------------------------------
EXTS = (".json", ".ndjson", ".jsonl")
EXTRA_EXTS = (".log", ".raw")  # elastic/beats test inputs (NDJSON) and ocsf samples
EMBEDDED_JSON_KEYS = ("CloudTrailEvent", "message")
ORACLE_KEYS = ("expected",)  # sekoia tests: parsed peer output repeating the input


def is_event(o):
    return isinstance(o, dict) and isinstance(o.get("eventName"), str) and ("eventSource" in o or "eventVersion" in o)


def find_events(v, out):
    if isinstance(v, dict):
        if is_event(v):
            out.append(v)
            return
        for k, x in v.items():
            if k in ORACLE_KEYS:
                continue
            if isinstance(x, str) and k in EMBEDDED_JSON_KEYS and x.lstrip().startswith("{"):
                try:
                    find_events(json.loads(x), out)
                except ValueError:
                    pass
            else:
                find_events(x, out)
    elif isinstance(v, list):
        for x in v:
            find_events(x, out)


def skip_file(name):
    # peer-oracle OUTPUTS, not inputs
    return name.endswith("-expected.json") or name.startswith("OCSF_") or "~" in name


def extract_corpus(root):
    events, stats = [], Counter()
    bad_files = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            low = name.lower()
            if not low.endswith(EXTS + EXTRA_EXTS) or skip_file(name):
                continue
            path = os.path.join(d, name)
            rel = os.path.relpath(path, root)
            try:
                text = open(path, encoding="utf-8").read()
            except (OSError, UnicodeDecodeError) as e:
                bad_files.append((rel, str(e)))
                continue
            docs = []
            try:
                docs = [json.loads(text)]
            except ValueError:
                bad_lines = 0
                for line in text.splitlines():
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        docs.append(json.loads(line))
                    except ValueError:
                        bad_lines += 1
                if bad_lines and not docs:
                    bad_files.append((rel, "not JSON / NDJSON"))
                    continue
            found = []
            for doc in docs:
                find_events(doc, found)
            ext = os.path.splitext(low)[1]
            stats["files" + ("" if ext in EXTS else "_extra_ext")] += 1
            stats["events" + ("" if ext in EXTS else "_extra_ext")] += len(found)
            for ev in found:
                events.append((rel, ev))
    return events, stats, bad_files


# --------------------------------------------------------------------------
# The template's own fields, and the ctindex binary that makes the documents
# --------------------------------------------------------------------------
def template_shapes(tmpl):
    """The template's explicit top-level properties (to tell dynamic fields apart)."""
    return tmpl["template"]["mappings"]["properties"]


class Binary:
    """The ctindex binary: every rule of what happens to an event (filter,
    classification, normalisation, quarantine) is its, not this script's."""

    def __init__(self):
        self.path = os.environ.get("CTINDEX_BIN")
        if not self.path:
            # Up to date with the checkout (a no-op when it is).
            subprocess.run(["cargo", "build", "--quiet"], cwd=REPO, check=True)
            self.path = os.path.join(REPO, "target", "debug", "ctindex")

    def _write(self, folder, events):
        """events: list of (label, event). One NDJSON file per label, named by
        number (so no path rule of ctindex skips it); returns {file: label}."""
        files, labels = {}, {}
        for label, ev in events:
            if label not in files:
                name = os.path.join(folder, "%05d.ndjson" % len(files))
                files[label] = open(name, "w", encoding="utf-8")
                labels[name] = label
            files[label].write(json.dumps(ev, ensure_ascii=False) + "\n")
        for f in files.values():
            f.close()
        return labels

    def _run(self, args):
        r = subprocess.run([self.path] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if r.returncode not in (0, 3):
            sys.exit("%s %s failed (exit %d): %s" % (self.path, " ".join(args[:2]), r.returncode,
                                                       r.stderr.decode("utf-8", "replace")[-2000:]))
        return r.stdout.decode("utf-8")

    def documents(self, events, raw=False):
        """The documents ctindex makes of `events` (a list of (label, event)):
        a list of dicts with label, _id, doc and quarantined (the second try
        after a parse refusal, or None). raw: the filtered event with its
        ctindex fields but without the fitting to the template (`export`),
        and no _id (the cluster makes one)."""
        folder = tempfile.mkdtemp(prefix="mapcheck-")
        try:
            labels = self._write(folder, events)
            out = []
            if raw:
                text = self._run(["export", "--format", "ndjson", "--out", "-", "-q", folder])
                for line in text.splitlines():
                    if line.startswith("{"):
                        doc = json.loads(line)
                        out.append({"label": labels.get(doc["ctindex"]["source"], "?"), "_id": None,
                                    "doc": doc, "quarantined": None})
            else:
                text = self._run(["import", "--dry-run", "--print-documents", "--no-setup", "-q", folder])
                for line in text.splitlines():
                    if line.startswith('{"action":'):
                        d = json.loads(line)
                        doc = d["document"]
                        out.append({"label": labels.get(doc["ctindex"]["source"], "?"),
                                    "_id": d["action"]["index"]["_id"], "doc": doc,
                                    "quarantined": d["quarantined"]})
            return out
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def each(self, events, raw=False):
        """The document of each event, in order: events are (key, event), and
        each is given the eventID `mapcheck-<key>` to be found again (raw
        documents keep no _id: matched by eventID too)."""
        tagged = [("mapcheck", dict(ev, eventID="mapcheck-%s" % key)) for key, ev in events]
        docs = {d["doc"].get("eventID"): d for d in self.documents(tagged, raw=raw)}
        return [docs.get("mapcheck-%s" % key) for key, _ in events]


def moved_by(quarantined):
    """What the second try moved to ctindex.overflow."""
    return sorted(((quarantined or {}).get("ctindex") or {}).get("overflow", {}))


# --------------------------------------------------------------------------
# Cluster helpers
# --------------------------------------------------------------------------
class Checker:
    def __init__(self, url, flavor, keep):
        self.h = Http(url)
        self.flavor = flavor
        self.keep = keep
        self.indices = set()
        self.failures = []
        path = os.path.join(REPO, "mappings", "template-%s.json" % flavor)
        self.tmpl = json.load(open(path))
        self.shapes = template_shapes(self.tmpl)
        self.binary = Binary()
        self.ff_type = "flattened" if flavor == "elasticsearch" else "flat_object"

    def wait(self, timeout=60):
        t0 = time.time()
        while True:
            try:
                st, body = self.h.req("GET", "/_nodes/_local?filter_path=nodes.*.version,nodes.*.name")
                if st == 200 and body.get("nodes"):
                    version = list(body["nodes"].values())[0]["version"]
                    st, root = self.h.req("GET", "/")  # 405 on the ES integ-test zip
                    dist = (root or {}).get("version", {}).get("distribution", "elasticsearch") if st == 200 else "elasticsearch"
                    return {"version": {"number": version, "distribution": dist}}
            except OSError:
                pass
            if time.time() - t0 > timeout:
                sys.exit("no answer from %s within %ds; start the stack with scripts/stack start" % (self.h.base, timeout))
            time.sleep(3)

    def index(self, suffix):
        name = "mapcheck-%s-%s-%s" % (self.flavor[:2], RUN, suffix)
        self.indices.add(name)
        return name

    def install_template(self):
        t = copy.deepcopy(self.tmpl)
        t["index_patterns"] = ["mapcheck-*"]
        t["priority"] = 900
        t["template"]["aliases"] = {"mapcheck": {}}
        st, body = self.h.req("PUT", "/_index_template/" + TEMPLATE_NAME, t)
        if st != 200:
            sys.exit("installing template failed: %s %s" % (st, json.dumps(body)[:2000]))
        st, sim = self.h.req("POST", "/_index_template/_simulate_index/mapcheck-%s-probe" % self.flavor[:2])
        return st

    def bulk(self, index, docs, chunk=500):
        """docs: list of (_id or None, doc, label). Returns (ok, errors) where
        errors is a list of (label, _id, error dict)."""
        ok, errors, results = 0, [], Counter()
        for i in range(0, len(docs), chunk):
            part = docs[i:i + chunk]
            lines = []
            for _id, doc, _ in part:
                meta = {"_index": index}
                if _id is not None:
                    meta["_id"] = _id
                lines.append(json.dumps({"index": meta}))
                lines.append(json.dumps(doc, ensure_ascii=False))
            st, body = self.h.req("POST", "/_bulk", "\n".join(lines) + "\n", ndjson=True, timeout=300)
            if st != 200:
                for _id, doc, label in part:
                    errors.append((label, _id, {"type": "http_%d" % st, "reason": json.dumps(body)[:500]}))
                continue
            for (_id, doc, label), item in zip(part, body["items"]):
                r = item.get("index", {})
                if "error" in r:
                    errors.append((label, _id, r["error"]))
                else:
                    ok += 1
                    results[r.get("result")] += 1
        self.h.req("POST", "/%s/_refresh" % index)
        return ok, errors, results

    def bulk_with_quarantine(self, index, docs, second):
        """bulk(); then re-send each rejected document once, as ctindex's
        second try (`second`: {(label, _id): quarantined document or None});
        a document with no second try stays an error."""
        ok, errors, results = self.bulk(index, docs)
        if not errors:
            return ok, errors, results, []
        retry, kept = [], []
        for label, _id, e in errors:
            doc = second.get((label, _id))
            if doc is None:
                kept.append((label, _id, e))
            else:
                retry.append((_id, doc, label))
        ok2, errors2, results2 = self.bulk(index, retry)
        results.update(results2)
        return ok + ok2, kept + errors2, results, errors

    def one(self, index, doc, _id=None):
        ok, errors, _ = self.bulk(index, [(_id, doc, "probe")])
        if errors:
            return False, short_error(errors[0][2])
        return True, None

    def one_norm(self, index, made):
        """NORM path: a document ctindex made, with its second try. Returns
        (ok, error, quarantined_paths)."""
        ok, errors = self.one(index, made["doc"])
        if ok:
            return True, None, []
        if made["quarantined"] is None:
            return False, errors, []
        ok, err2 = self.one(index, made["quarantined"])
        return ok, (err2 if not ok else errors), moved_by(made["quarantined"])

    def cleanup(self):
        if self.keep:
            print("\n--keep: left indices %s and template %s" % (sorted(self.indices), TEMPLATE_NAME))
            return
        for name in sorted(self.indices):
            self.h.req("DELETE", "/" + name + "?ignore_unavailable=true")
        self.h.req("DELETE", "/_index_template/" + TEMPLATE_NAME)


def short_error(e):
    s = _short_error(e)
    return " ".join(s.split())


def _short_error(e):
    s = "%s: %s" % (e.get("type"), e.get("reason"))
    cause = e.get("caused_by")
    if cause:
        s += " <- %s: %s" % (cause.get("type"), cause.get("reason"))
        if cause.get("caused_by"):
            c2 = cause["caused_by"]
            s += " <- %s: %s" % (c2.get("type"), c2.get("reason"))
    return s


def group_key(e):
    # replace doc-specific values so identical problems group together
    s = short_error(e)
    s = re.sub(r"\[[^\]]{0,200}\]", "[…]", s)
    s = re.sub(r"'[^']{0,200}'", "'…'", s)
    return s[:400]


def tail(err, n=230):
    # the innermost cause is the informative part
    return err if len(err) <= n else "…" + err[-n:]


def nest(depth, leaf="v", key="k"):
    v = leaf
    for i in range(depth, 0, -1):
        v = {"%s%d" % (key, i): v}
    return v


def base_event(**kw):
    ev = {
        "eventVersion": "1.09",
        "eventTime": "2024-05-01T12:00:00Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "PutBucketPolicy",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "192.0.2.10",
        "userAgent": "aws-cli/2.15.0",
        "eventType": "AwsApiCall",
        "eventID": None,
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/probe", "accountId": "123456789012"},
    }
    ev.update(kw)
    ev = {k: v for k, v in ev.items() if v is not None}
    return ev


# --------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------
def step_corpus(c, corpus, raw):
    print("\n== 1. corpus: %s" % corpus)
    events, stats, bad = extract_corpus(corpus)
    print("files read: %d (+%d .log/.raw extras); events extracted: %d (+%d from extras) = %d"
          % (stats["files"], stats["files_extra_ext"], stats["events"], stats["events_extra_ext"], len(events)))
    for rel, why in bad:
        print("  unparseable file (skipped, as ctindex will): %s (%s)" % (rel, why))
    per_src = Counter(rel.split(os.sep)[0] for rel, _ in events)
    print("  per source: " + ", ".join("%s=%d" % kv for kv in sorted(per_src.items())))
    made = c.binary.documents(events, raw=raw)
    print("  documents ctindex made of them: %d (%s)" % (len(made), "export: filtered, not fitted to the template" if raw else "import --dry-run --print-documents"))
    if len(made) != len(events):
        c.failures.append("corpus: ctindex made %d documents of %d events" % (len(made), len(events)))
    docs, second, norm_count = [], {}, Counter()
    for d in made:
        for n in d["doc"]["ctindex"].get("truncated", []):
            norm_count[re.sub(r"\[\d+\]", "[]", n)] += 1
        docs.append((d["_id"], d["doc"], d["label"]))
        second[(d["label"], d["_id"])] = d["quarantined"]
    if norm_count:
        print("  normalisations applied (path: events): " + ", ".join("%s: %d" % kv for kv in norm_count.most_common()))
    idx = c.index("corpus")
    t0 = time.time()
    ok, errors, results, first_try = c.bulk_with_quarantine(idx, docs, second)
    st, cnt = c.h.req("GET", "/%s/_count" % idx)
    print("bulk items: %d, succeeded: %d (%s), ERRORS: %d, distinct docs in index: %s  [%.1fs]"
          % (len(docs), ok, dict(results), len(errors), cnt.get("count"), time.time() - t0))
    print("quarantine retries needed: %d%s" % (len(first_try), "".join("\n  first-try rejection: %s %s" % (l, short_error(e)[:200]) for l, _, e in first_try[:20])))
    if errors:
        groups = defaultdict(list)
        for label, _id, e in errors:
            groups[group_key(e)].append((label, _id))
        for k, items in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            print("  %5d × %s" % (len(items), k))
            for label, _id in items[:3]:
                print("          e.g. %s id=%s" % (label, _id))
        c.failures.append("corpus: %d errors" % len(errors))
    st, m = c.h.req("GET", "/%s/_mapping" % idx)
    props = list(m.values())[0]["mappings"]["properties"]
    st, fc = c.h.req("GET", "/%s/_field_caps?fields=*" % idx)
    nfields = len([f for f in fc["fields"] if not f.startswith("_")])
    top = sorted(k for k in props if k not in c.shapes)
    print("mapped fields (field_caps, excl. metadata): %d; dynamic top-level fields: %s"
          % (nfields, ", ".join("%s:%s" % (k, props[k].get("type", "object")) for k in top)))
    st, ig = c.h.req("POST", "/%s/_search" % idx, {"size": 0, "aggs": {"ign": {"terms": {"field": "_ignored", "size": 50}}}})
    if st == 200:
        print("_ignored (malformed/over-long values kept in _source only): " + ", ".join(
            "%s=%d" % (b["key"], b["doc_count"]) for b in ig["aggregations"]["ign"]["buckets"]))
    else:  # OpenSearch cannot aggregate on _ignored: count from the hits
        st, r = c.h.req("POST", "/%s/_search" % idx, {"size": 10000, "_source": False, "query": {"exists": {"field": "_ignored"}}})
        cnt = Counter(f for h in r.get("hits", {}).get("hits", []) for f in h.get("_ignored", []))
        print("_ignored (malformed/over-long values kept in _source only): " + ", ".join("%s=%d" % kv for kv in cnt.most_common()))
    return idx


def step_probes(c):
    print("\n== 2. probes (RAW = cluster on its own; NORM = after ctindex normalisation)")
    idx = c.index("probes")
    cases = []
    big = "A" * (300 * 1024)
    big_mb = "é€😀" * (300 * 1024 // 9)
    cases += [
        ("300KB ascii string in requestParameters", base_event(requestParameters={"policy": big})),
        ("300KB multibyte string in requestParameters", base_event(requestParameters={"policy": big_mb})),
        ("300KB string in responseElements array", base_event(responseElements={"items": [{"x": big}]})),
        ("300KB errorMessage (text)", base_event(errorMessage=big)),
        ("300KB userAgent (keyword+text)", base_event(userAgent=big)),
        ("300KB unknown top-level string", base_event(newTopLevel=big)),
        ("300KB userIdentity.arn", base_event(userIdentity={"type": "IAMUser", "arn": big})),
        ("requestParameters nested 25 levels", base_event(requestParameters=nest(25))),
        ("requestParameters nested 50 levels", base_event(requestParameters=nest(50))),
        ("unknown top-level object nested 25", base_event(newObject=nest(25))),
        ("userIdentity nested 25 (new key)", base_event(userIdentity={"type": "X", "newThing": nest(25)})),
        ("requestParameters = JSON string", base_event(requestParameters='{"bucketName":"b"}')),
        ("requestParameters = array of strings", base_event(requestParameters=["a", "b"])),
        ("requestParameters = number", base_event(requestParameters=5)),
        ("requestParameters = array of objects", base_event(requestParameters=[{"a": 1}, {"b": "x"}])),
        ("resources[] with a string element", base_event(resources=[{"ARN": "arn:aws:s3:::b", "type": "AWS::S3::Bucket"}, "arn:aws:s3:::c"])),
        ("resources = string", base_event(resources="arn:aws:s3:::c")),
        ("userIdentity = string", base_event(userIdentity="arn:aws:iam::1:root")),
        ("eventName = object", base_event(eventName={"x": 1})),
        ("userAgent = array of objects", base_event(userAgent=[{"x": 1}])),
        ("readOnly = 'yes'", base_event(readOnly="yes")),
        ("readOnly = 'TRUE'", base_event(readOnly="TRUE")),
        ("readOnly = 'true'", base_event(readOnly="true")),
        ("readOnly = ''", base_event(readOnly="")),
        ("readOnly = 1", base_event(readOnly=1)),
        ("managementEvent = {}", base_event(managementEvent={})),
        ("sessionCredentialFromConsole = true (bool)", base_event(sessionCredentialFromConsole=True)),
        ("free-form odd keys ('', ' ', '.', 'a..b', '_value', '_raw', 'k=v' ...)",
         base_event(requestParameters={"": "e", " ": "w", ".": "d", "a..b": "x", "_value": "v", "x._valueAndPath": "p", "k=v": "kv", "a.": 1, ".b": 2, "_raw": 3})),
        ("free-form 2,000 distinct keys", base_event(requestParameters={"key%d" % i: i for i in range(2000)})),
        ("free-form type conflict: tags map", base_event(requestParameters={"tags": {"Name": "x", "env": True}})),
        ("free-form type conflict: tags array", base_event(requestParameters={"tags": [{"key": "Name", "value": "x"}]})),
        ("free-form null leaves / empty arrays", base_event(requestParameters={"a": None, "b": [], "c": {}, "d": [None, 1]})),
        ("unknown top-level: string", base_event(futureField="x")),
        ("unknown top-level: number then string", base_event(futureNum=5)),
        ("unknown top-level: number then string (2)", base_event(futureNum="five")),
        ("unknown top-level: object", base_event(futureObj={"a": {"b": 1}, "c": [1, "x"]})),
        ("unknown top-level: dotted key 'x.y'", base_event(**{"future.dotted": "v"})),
        ("unknown top-level: object with dotted keys", base_event(futureObj2={"a.b.c": 1, "a": {"b": "x"}})),
        ("userIdentity: new string/number/bool", base_event(userIdentity={"type": "IAMUser", "newS": "s", "newN": 5, "newB": True})),
        ("userIdentity: webIdFederationData dotted keys", base_event(userIdentity={"type": "WebIdentityUser", "sessionContext": {"webIdFederationData": {"federatedProvider": "cognito-identity.amazonaws.com", "attributes": {"cognito-identity.amazonaws.com:amr": "[\"authenticated\"]", "cognito-identity.amazonaws.com:aud": "x"}}}})),
        ("tlsDetails: new key (string)", base_event(tlsDetails={"tlsVersion": "TLSv1.3", "newKey": "x"})),
        ("top-level key '_id' (metadata name)", base_event(_id="x")),
        ("top-level key '_source'", base_event(_source={"a": 1})),
        ("top-level key '_ignored'", base_event(_ignored="x")),
        ("top-level key '_custom'", base_event(_custom="x")),
        ("top-level key ''", base_event(**{"": "x"})),
        ("top-level key 'a.'", base_event(**{"a.": "x"})),
        ("top-level key ' '", base_event(**{" ": "x"})),
        ("top-level key 'eventName.x' (dotted into typed)", base_event(**{"eventName.x": "x"})),
        ("top-level key 'requestParameters.bucketName'", base_event(**{"requestParameters.bucketName": "x"})),
        ("userIdentity key 'a.b'", base_event(userIdentity={"type": "x", "a.b": "x"})),
        ("userIdentity key ''", base_event(userIdentity={"type": "x", "": "x"})),
    ]
    # second-document conflicts: unknown field first seen as string, now object
    cases += [
        ("unknown top-level: string first ...", base_event(laterConflict="x")),
        ("... then object (same field)", base_event(laterConflict={"a": 1})),
        ("unknown top-level: object first ...", base_event(laterConflict2={"a": 1})),
        ("... then string (same field)", base_event(laterConflict2="x")),
        # last: on Elasticsearch ignore_dynamic_beyond_limit fills the RAW index's
        # field budget, after which no new field is mapped there at all
        ("2,000 unknown top-level fields", base_event(**{"f%d" % i: "v" for i in range(2000)})),
    ]
    width = max(len(n) for n, _ in cases)
    print("  %-*s  %-4s  %s" % (width, "case", "NORM", "RAW result"))
    print("  %-*s  %-4s  %s" % (width, "", "", "(RAW: one index for all raw docs; NORM: another; order matters for the conflict pairs)"))
    # Probes ctindex does not take as events (dead-lettered, so never sent).
    not_events = {"eventName = object"}
    keyed = [(i, ev) for i, (_, ev) in enumerate(cases)]
    raws = c.binary.each(keyed, raw=True)
    norms = c.binary.each(keyed)
    for (name, ev), rmade, nmade in zip(cases, raws, norms):
        if name in not_events and rmade is None and nmade is None:
            print("  %-*s  --    not an event to ctindex: dead-lettered, never sent" % (width, name))
            continue
        if rmade is None or nmade is None:
            c.failures.append("probe %s: ctindex made no document of it" % name)
            print("  %-*s  FAIL  ctindex made no document of it" % (width, name))
            continue
        # RAW first in its own index, so the NORM run sees a clean mapping per case
        ridx = c.index("raw")
        rok, rerr = c.one(ridx, rmade["doc"])
        ndoc = nmade["doc"]
        nok, nerr, moved = c.one_norm(idx, nmade)
        if not nok:
            c.failures.append("probe %s: %s" % (name, nerr))
        trunc = ndoc["ctindex"].get("truncated", [])
        status = "FAIL" if not nok else ("ok*" if moved else "ok")
        print("  %-*s  %-4s  %s%s%s" % (width, name, status, "ok" if rok else "REJECTED " + rerr[:260],
                                         ("   [norm: %s]" % ",".join(trunc)[:120]) if trunc else "",
                                         ("   [* 1st try rejected (%s); retry with %s moved to ctindex.overflow: ok]" % (nerr[:120], ",".join(moved))) if moved else ""))
        if not nok:
            print("  %*s  NORM error: %s" % (width, "", nerr[:400]))
    return idx


def step_limits(c):
    print("\n== 3. exact limits of the free-form type (%s) with this template" % c.ff_type)
    idx = c.index("limits")

    def accepts(doc):
        return c.one(idx, doc)

    def bsearch(lo, hi, make):
        # largest n in [lo, hi] with make(n) accepted; assumes monotone
        ok_lo, _ = accepts(make(lo))
        if not ok_lo:
            return lo - 1, accepts(make(lo))[1]
        last_err = None
        while lo < hi:
            mid = (lo + hi + 1) // 2
            ok, err = accepts(make(mid))
            if ok:
                lo = mid
            else:
                hi = mid - 1
                last_err = err
        return lo, last_err

    # Upper bound 200 on purpose: OpenSearch 2.19's flat_object parser recurses
    # once per level and a document nested ~1,500 levels deep kills the node
    # (fatal StackOverflowError in FlatObjectFieldMapper.parseToken).
    d, err = bsearch(1, 200, lambda n: base_event(requestParameters=nest(n)))
    print("  requestParameters: max nested OBJECT levels accepted (its own object = 1) = %d (deepest object at event level %d)%s"
          % (d, d, ("; beyond: " + tail(err)) if err else ""))
    d2, err = bsearch(1, 200, lambda n: base_event(requestParameters={"a": json.loads("[" * n + '"v"' + "]" * n)}))
    print("  requestParameters: max nested ARRAY levels under one key = %d%s" % (d2, ("; beyond: " + tail(err)) if err else ""))
    d3, err = bsearch(1, 200, lambda n: base_event(futureObj=nest(n)))
    print("  unknown top-level object (dynamic %s): max object levels = %d%s" % (c.ff_type, d3, ("; beyond: " + tail(err)) if err else ""))
    d4, err = bsearch(1, 200, lambda n: base_event(userIdentity={"type": "x", "sessionContext": {"webIdFederationData": nest(n)}}))
    print("  userIdentity.sessionContext.webIdFederationData: max object levels = %d (deepest at event level %d)%s" % (d4, d4 + 2, ("; beyond: " + tail(err)) if err else ""))
    # leaf size in bytes (ASCII) and with a long key path
    s, err = bsearch(1000, 400000, lambda n: base_event(requestParameters={"k": "A" * n}))
    print("  requestParameters leaf: max ASCII bytes accepted = %d%s" % (s, ("; beyond: " + tail(err)) if err else ""))
    s2, err = bsearch(1000, 400000, lambda n: base_event(requestParameters={"k" * 1000: "A" * n}))
    print("  requestParameters leaf under a 1000-byte key: max bytes = %d%s" % (s2, ("; beyond: " + tail(err)) if err else ""))
    s3, err = bsearch(1000, 400000, lambda n: base_event(requestParameters={"k" * n: "v"}))
    print("  requestParameters key: max key bytes = %d%s" % (s3, ("; beyond: " + tail(err)) if err else ""))
    s4, err = bsearch(1000, 400000, lambda n: base_event(requestParameters={"k": "é" * (n // 2)}))
    print("  requestParameters leaf of 2-byte chars: max chars = %d (= %d bytes)" % (s4 // 2 * 1 if False else s4 // 2, (s4 // 2) * 2))
    s5, err = bsearch(1000, 400000, lambda n: base_event(newTop="A" * n))
    print("  unknown top-level string (keyword ignore_above 1024): max bytes = %d%s" % (s5, ("; beyond: " + tail(err)) if err else ""))
    n6, err = bsearch(1, 200, lambda n: base_event(userIdentity={"type": "x", "a": nest(n)}))
    print("  userIdentity.<new object> (dynamic %s): max object levels = %d" % (c.ff_type, n6))
    print("  (upper bounds of the searches: 200 levels, 400000 bytes)")
    return {"depth_inside_freeform": d, "leaf_bytes": s, "leaf_bytes_1000_key": s2, "key_bytes": s3}


def step_checks(c, corpus_idx):
    print("\n== 4. _field_caps and aggregations on the corpus index")
    fields = ["eventTime", "eventName", "eventSource", "userIdentity.arn", "userIdentity.type", "ctindex.channel",
              "sourceIPAddress", "sourceIPAddress.ip", "userAgent", "userAgent.text", "errorMessage", "errorMessage.keyword",
              "readOnly", "requestParameters", "requestParameters.bucketName", "resources.ARN"]
    st, fc = c.h.req("GET", "/%s/_field_caps?fields=%s" % (corpus_idx, ",".join(fields)))
    for f in fields:
        caps = fc.get("fields", {}).get(f)
        if not caps:
            print("  %-32s (not in field_caps)" % f)
            continue
        for t, cap in caps.items():
            print("  %-32s %-12s searchable=%-5s aggregatable=%s" % (f, t, cap.get("searchable"), cap.get("aggregatable")))
    must_agg = ["eventName", "eventSource", "userIdentity.arn", "ctindex.channel"]
    for f in must_agg:
        caps = fc.get("fields", {}).get(f, {})
        if not any(cap.get("aggregatable") for cap in caps.values()):
            c.failures.append("%s not aggregatable" % f)

    def agg(field, label=None, **extra):
        body = {"size": 0, "aggs": {"a": {"terms": dict({"field": field, "size": 5}, **extra)}}}
        st, r = c.h.req("POST", "/%s/_search" % corpus_idx, body)
        if st != 200:
            print("  terms %-44s -> HTTP %d %s" % (label or field, st, short_error(r.get("error", {}))[:250]))
            return None
        b = r["aggregations"]["a"]["buckets"]
        print("  terms %-44s -> %s" % (label or field, ", ".join("%s=%d" % (x["key"], x["doc_count"]) for x in b) or "(no buckets)"))
        return b

    for f in ["eventName", "ctindex.channel", "ctindex.client", "userIdentity.type", "sourceIPAddress.ip"]:
        agg(f)
    b = agg("requestParameters.bucketName")
    if c.flavor == "elasticsearch":
        if not b:
            c.failures.append("terms agg on requestParameters.bucketName returned nothing")
        agg("resources.type")
    else:
        agg("requestParameters._valueAndPath", "requestParameters._valueAndPath (bucketName=*)", include="requestParameters\\.bucketName=.*")
        agg("requestParameters._value")
        agg("requestParameters", "requestParameters (root: key paths)")
    # searches on a sub-key
    q = {"size": 0, "query": {"term": {"requestParameters.bucketName": "stratus-red-team-ctlr-bucket-zqfsvooxqj"}}}
    st, r = c.h.req("POST", "/%s/_search" % corpus_idx, q)
    print("  term query requestParameters.bucketName -> HTTP %d hits=%s" % (st, r.get("hits", {}).get("total") if st == 200 else short_error(r.get("error", {}))[:200]))
    st, r = c.h.req("POST", "/%s/_search" % corpus_idx, {"size": 0, "query": {"exists": {"field": "requestParameters.bucketName"}}})
    print("  exists requestParameters.bucketName -> HTTP %d hits=%s" % (st, r.get("hits", {}).get("total") if st == 200 else short_error(r.get("error", {}))[:200]))
    st, r = c.h.req("POST", "/%s/_search" % corpus_idx, {"size": 0, "query": {"range": {"eventTime": {"gte": "2000-01-01"}}},
                                                         "aggs": {"t": {"date_histogram": {"field": "eventTime", "calendar_interval": "year"}}}})
    print("  date_histogram eventTime/year -> %s" % (", ".join("%s=%d" % (x["key_as_string"][:4], x["doc_count"]) for x in r["aggregations"]["t"]["buckets"] if x["doc_count"]) if st == 200 else short_error(r.get("error", {}))))


def step_values(c):
    print("\n== 5. value parsing (doc accepted; is the typed field indexed or only in _ignored?)")
    idx = c.index("values")
    times = ["2024-05-01T12:00:00Z", "2024-05-01T12:00:00.123Z", "2024-05-01T12:00:00.123456789Z", "2024-05-01T12:00:00.123+0000",
             "2024-05-01T12:00:00+11:00", "2024-05-01 12:00:00", "2024-05-01 12:00:00.1", "2024-05-01 12:00:00.123",
             "2024-05-01 12:00:00.123456", "2024-05-01 12:00:00.123456789", "2024-05-01 12:00:00Z", "2024-05-01 12:00:00+11:00",
             "20240501T120000Z", 1714564800000, "1714564800000", "eventTime", "...", "redacted", ""]
    ips = ["81.2.69.142", "2001:db8::1", "035.249.253.232", "253.252.51.07", "81.2.69.142, 192.168.10.10", "ec2.amazonaws.com",
           "AWS Internal", "300.1.1.1", ""]
    docs = []
    for i, t in enumerate(times):
        docs.append(("t%d" % i, base_event(eventTime=t), "eventTime=%r" % (t,)))
    for i, ip in enumerate(ips):
        docs.append(("ip%d" % i, base_event(sourceIPAddress=ip), "sourceIPAddress=%r" % ip))
    bools = [True, "true", "false", "TRUE", "yes", "", 1, "1", "0", None]
    for i, b in enumerate(bools):
        docs.append(("b%d" % i, base_event(readOnly=b), "readOnly=%r" % (b,)))
    # RAW: the template alone decides (no boolean coercion, no wrapping)
    made = c.binary.each([(i, d) for i, d, _ in docs], raw=True)
    ndocs = [(i, m["doc"], l) for (i, _, l), m in zip(docs, made) if m is not None]
    if len(ndocs) != len(docs):
        c.failures.append("values: ctindex made %d documents of %d events" % (len(ndocs), len(docs)))
    ok, errors, _ = c.bulk(idx, ndocs)
    for l, _id, e in errors:
        print("  REJECTED %s: %s" % (l, short_error(e)[:200]))
        c.failures.append("value %s rejected" % l)
    st, r = c.h.req("POST", "/%s/_search" % idx, {"size": 100, "_source": False, "docvalue_fields": [{"field": "eventTime", "format": "strict_date_optional_time"}, "sourceIPAddress.ip", "readOnly"]})
    got = {h["_id"]: h for h in r["hits"]["hits"]}
    for _id, _, l in docs:
        h = got.get(_id, {})
        fields = h.get("fields", {})
        ign = h.get("_ignored", [])
        val = fields.get({"t": "eventTime", "i": "sourceIPAddress.ip", "b": "readOnly"}[_id[0]])
        print("  %-48s -> %s%s" % (l, ("indexed as %s" % val[0]) if val else "not indexed", (" (_ignored: %s)" % ",".join(ign)) if ign else ""))


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    flags = [a for a in argv[1:] if a.startswith("--")]
    corpus = DEFAULT_CORPUS
    for f in flags:
        if f.startswith("--corpus="):
            corpus = f.split("=", 1)[1]
    if len(args) != 2 or args[1] not in ("elasticsearch", "opensearch"):
        print(__doc__)
        return 2
    c = Checker(args[0], args[1], "--keep" in flags)
    info = c.wait()
    print("server: %s %s at %s; template mappings/template-%s.json; documents by %s"
          % (info["version"].get("distribution", "elasticsearch"), info["version"]["number"], c.h.base, c.flavor, c.binary.path))
    c.install_template()
    try:
        corpus_idx = step_corpus(c, corpus, "--raw" in flags)
        if "--corpus-only" not in flags:
            step_probes(c)
            step_limits(c)
            step_values(c)
        step_checks(c, corpus_idx)
    finally:
        c.cleanup()
    print("\n== RESULT: %s" % ("PASS (zero rejected documents)" if not c.failures else "FAIL"))
    for f in c.failures:
        print("  - " + f)
    return 0 if not c.failures else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

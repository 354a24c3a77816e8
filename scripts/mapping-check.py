#!/usr/bin/env python3
"""Prove the ctindex index templates against a live Elasticsearch/OpenSearch.

Usage:  scripts/mapping-check.py URL FLAVOR [--corpus DIR] [--keep] [--raw]
        FLAVOR = elasticsearch | opensearch

What it does (python3 stdlib only):
  1. installs mappings/template-<FLAVOR>.json as index template `mapcheck-ctindex`
     with index_patterns ["mapcheck-*"] (priority 900, alias "mapcheck");
  2. walks the CloudTrail corpus, extracts every event (Records files, JSON arrays,
     NDJSON, single objects, EventBridge `detail`, LookupEvents `CloudTrailEvent`
     strings, CloudWatch Logs `logEvents[].message` strings), applies the SAME
     normalisation the Rust transform must apply (see `normalise()` and
     mappings/README.md), adds a `ctindex` object and bulk-indexes everything
     into one index; every item error is reported, grouped by reason;
  3. probes: 300 KB strings, 25/50-level nesting, non-object payloads, odd booleans,
     odd dates and IPs, odd keys, unknown top-level fields -- each sent both RAW
     (what the cluster does on its own) and NORMALISED (what ctindex will send);
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
"quarantined" (unknown keys moved to ctindex.overflow, see `quarantine()`);
such retries are counted and shown, and a document that fails the retry is an
error. The contract is documented in mappings/README.md.
"""

import base64
import copy
import hashlib
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
# Limits the Rust transform must enforce (kept in sync with mappings/README.md)
# --------------------------------------------------------------------------
# Depth, exactly as src/transform.rs counts it: the value of a top-level field
# is at depth 2, each step into an object member adds 1, array elements stay at
# the depth of their array. An object or array deeper than MAX_DEPTH is replaced
# by its compact JSON text. So requestParameters keeps at most 14 object levels
# (its own object included). Arrays are bounded only by serde_json's recursion
# limit (128 levels, objects and arrays counted) -- see mappings/README.md.
MAX_DEPTH = 15
# Any string leaf (and any stringified subtree) longer than this many UTF-8
# bytes is cut to this size on a char boundary, the cut ending with
# TRUNCATION_MARK. Applies everywhere in the event.
MAX_LEAF_BYTES = 16384
# Any object key longer than this many UTF-8 bytes is cut (the key path is part
# of every flattened / flat_object term).
MAX_KEY_BYTES = 256
# At most this many top-level keys the template does not know are kept at the
# top level (in document order); the rest move to ctindex.overflow (kept in
# _source, not indexed), so one odd event cannot blow the total-fields limit.
MAX_UNKNOWN_TOP_KEYS = 100
# Wrapper key for a free-form field whose value is not an object.
RAW_KEY = "_value"
TRUNCATION_MARK = "…[truncated by ctindex]"

DROP_PATHS = [("userIdentity", "accessKeyId")]


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
# Normalisation: the contract for the Rust transform
# --------------------------------------------------------------------------
def template_shapes(tmpl):
    """Split the template's explicit properties into free-form containers,
    typed objects and typed scalars (recursively for objects)."""

    def walk(props):
        shape = {}
        for k, m in props.items():
            t = m.get("type", "object" if "properties" in m else None)
            if t in ("flattened", "flat_object"):
                shape[k] = "freeform"
            elif t in ("object", "nested"):
                shape[k] = walk(m.get("properties", {}))
            else:
                shape[k] = t  # keyword, text, date, boolean, ip ...
        return shape

    return walk(tmpl["template"]["mappings"]["properties"])


def as_text(v):
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, separators=(",", ":"))


def parse_bool(v):
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("true", "false"):
        return v.strip().lower() == "true"
    return None


# Top-level names the servers reserve for metadata (a document key with such a
# name is rejected by Elasticsearch).
METADATA_FIELDS = {"_id", "_index", "_source", "_routing", "_ignored", "_ignored_source", "_seq_no", "_primary_term",
                   "_version", "_doc_count", "_field_names", "_data_stream_timestamp", "_tier", "_nested_path", "_type",
                   "_tsid", "_ts_routing_hash", "_feature", "_size", "_meta", "_all", "_uid", "_parent", "_timestamp", "_ttl"}


def safe_key(k, top):
    """Key rewrite for the TYPED part of an event (top level and the objects
    the template maps as `object`); keys inside free-form fields stay as they are."""
    nk = k.replace(".", "_")
    if nk.strip() == "":
        nk = "_blank"  # empty or whitespace-only names are rejected
    if top and nk in METADATA_FIELDS:
        nk = "_" + nk
    return nk


def sanitize_keys(obj, top, prefix, notes):
    for k in list(obj.keys()):
        nk = safe_key(k, top)
        if nk != k:
            while nk in obj:
                nk += "_"
            obj[nk] = obj.pop(k)
            notes.append(prefix + k)


def normalise_shapes(ev, shapes, notes, prefix=""):
    """Make every explicitly mapped field carry a value of the JSON shape its
    mapping accepts. Never drops data: non-conforming values are wrapped or
    stringified, and the path is recorded in ctindex.truncated."""
    sanitize_keys(ev, prefix == "", prefix, notes)
    if prefix == "":
        unknown = [k for k in ev if k not in shapes]
        for k in unknown[MAX_UNKNOWN_TOP_KEYS:]:
            ev.setdefault("ctindex", {}).setdefault("overflow", {})[k] = ev.pop(k)
            notes.append(k)
    for k, shape in shapes.items():
        if k not in ev or ev[k] is None:
            continue
        v = ev[k]
        path = prefix + k
        if shape == "freeform":
            if isinstance(v, dict):
                continue
            if isinstance(v, list):
                nv = []
                for i, x in enumerate(v):
                    if isinstance(x, dict):
                        nv.append(x)
                    else:
                        nv.append({RAW_KEY: x})
                        notes.append("%s[%d]" % (path, i))
                ev[k] = nv
            else:
                ev[k] = {RAW_KEY: v}
                notes.append(path)
        elif isinstance(shape, dict):
            if isinstance(v, dict):
                normalise_shapes(v, shape, notes, path + ".")
            elif isinstance(v, list) and all(isinstance(x, dict) for x in v):
                for x in v:
                    normalise_shapes(x, shape, notes, path + ".")
            else:
                ev[k] = {RAW_KEY: as_text(v)}
                notes.append(path)
        elif shape == "boolean" and isinstance(v, str) and parse_bool(v) is not None:
            # "TRUE"/" false " -> bool; anything else odd ("yes", 1) is left to the
            # template's ignore_malformed (kept in _source, listed in _ignored)
            ev[k] = parse_bool(v)
        else:  # keyword / text / date / ip: scalars or arrays of scalars only
            if isinstance(v, dict) or (isinstance(v, list) and any(isinstance(x, (dict, list)) for x in v)):
                ev[k] = as_text(v)
                notes.append(path)


def quarantine(doc, shapes, prefix=""):
    """Fallback for a document the cluster still rejected (in practice: an
    unknown field that changed shape between events, e.g. string -> object).
    Moves every key the template does not map explicitly -- at the top level and
    inside typed objects -- into ctindex.overflow (enabled:false: kept in
    _source, never indexed). Returns the moved paths."""
    moved = []
    overflow = {}

    def walk(obj, shp, pre):
        for k in list(obj.keys()):
            if pre == "" and k == "ctindex":
                continue
            if k not in shp:
                overflow[pre + k] = obj.pop(k)
                moved.append(pre + k)
            elif isinstance(shp[k], dict) and isinstance(obj[k], dict):
                walk(obj[k], shp[k], pre + k + ".")

    walk(doc, shapes, prefix)
    ct = doc.setdefault("ctindex", {})
    ct.setdefault("overflow", {}).update(overflow)
    ct["truncated"] = sorted(set(ct.get("truncated", [])) | set(moved))
    return moved


def cut_utf8(s, limit, mark=""):
    b = s.encode("utf-8")
    if len(b) <= limit:
        return s
    return b[:max(0, limit - len(mark.encode("utf-8")))].decode("utf-8", "ignore") + mark


def limit_size_depth(v, depth, path, notes):
    """Return v with every object/array deeper than MAX_DEPTH stringified and
    every string / key longer than the byte limits cut (mirrors
    enforce_limits in src/transform.rs, plus the key cap)."""
    if isinstance(v, str):
        if len(v) > MAX_LEAF_BYTES // 4 and len(v.encode("utf-8")) > MAX_LEAF_BYTES:
            notes.append(path)
            return cut_utf8(v, MAX_LEAF_BYTES, TRUNCATION_MARK)
        return v
    if isinstance(v, (dict, list)) and depth > MAX_DEPTH:
        notes.append(path)
        return cut_utf8(as_text(v), MAX_LEAF_BYTES, TRUNCATION_MARK)
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            nk = k
            if len(k.encode("utf-8")) > MAX_KEY_BYTES:
                nk = cut_utf8(k, MAX_KEY_BYTES)
                notes.append(path + "." + nk)
            out[nk] = limit_size_depth(x, depth + 1, path + "." + nk if path else nk, notes)
        return out
    if isinstance(v, list):
        # array elements stay at the depth of their array
        return [limit_size_depth(x, depth, path, notes) for x in v]
    return v


def limit_event(ev, notes):
    return {k: limit_size_depth(x, 2, k, notes) for k, x in ev.items()}


UA_AUTOMATION = re.compile(r"terraform|aws-cli|boto|aws-sdk|aws-internal|cloudformation|pulumi|aws-cdk|ansible|hashicorp|APN/|aws-chalice|stratus|python-requests|Go-http|curl", re.I)


def classify(ev):
    ua = ev.get("userAgent") if isinstance(ev.get("userAgent"), str) else ""
    ui = ev.get("userIdentity") if isinstance(ev.get("userIdentity"), dict) else {}
    src_ip = ev.get("sourceIPAddress") if isinstance(ev.get("sourceIPAddress"), str) else ""
    et = ev.get("eventType")
    if parse_bool(ev.get("sessionCredentialFromConsole")) or et in ("AwsConsoleSignIn", "AwsConsoleAction") or re.search(r"console\.(aws\.)?amazonaws\.com|signin\.amazonaws\.com|^Mozilla/", ua):
        channel = "console"
    elif ui.get("type") == "AWSService" or ui.get("invokedBy") or et == "AwsServiceEvent" or ua == "AWS Internal" or ua.endswith(".amazonaws.com") or src_ip.endswith(".amazonaws.com"):
        channel = "aws-service"
    elif UA_AUTOMATION.search(ua):
        channel = "automation"
    else:
        channel = "unknown"
    return channel, client_family(ua)


CLIENT_FAMILIES = [  # first match wins; (regex, family)
    (r"terraform", "terraform"), (r"aws-cli", "aws-cli"), (r"boto3|botocore", "boto3"), (r"aws-sdk-go", "aws-sdk-go"),
    (r"aws-sdk-java", "aws-sdk-java"), (r"aws-sdk-js|aws-sdk-nodejs", "aws-sdk-js"), (r"aws-sdk-", "aws-sdk-other"),
    (r"cloudformation", "cloudformation"), (r"stratus-red-team", "stratus-red-team"), (r"^AWS Internal$|aws-internal", "aws-internal"),
    (r"console\.(aws\.)?amazonaws\.com|s3console|signin\.amazonaws\.com", "aws-console"), (r"^Mozilla/", "browser"),
    (r"\.amazonaws\.com$", "aws-service"),
]


def client_family(ua):
    if not ua:
        return "none"
    for rx, fam in CLIENT_FAMILIES:
        if re.search(rx, ua, re.I):
            return fam
    return "other"


def normalise(ev, source, shapes, raw=False):
    """Return (doc, _id). `raw` skips the shape/size normalisation."""
    ev = copy.deepcopy(ev)
    for outer, inner in DROP_PATHS:
        if isinstance(ev.get(outer), dict):
            ev[outer].pop(inner, None)
    notes = []
    if not raw:
        normalise_shapes(ev, shapes, notes)
        ev = limit_event(ev, notes)
    eid = ev.get("eventID")
    id_generated = not (isinstance(eid, str) and eid)
    if id_generated:
        _id = hashlib.sha256(json.dumps(ev, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:40]
    else:
        _id = eid
    channel, client = classify(ev)
    ct = ev.get("ctindex") if isinstance(ev.get("ctindex"), dict) else {}
    ct.update({
        "channel": channel,
        "client": client,
        "source": source,
        "insight": ev.get("eventCategory") == "Insight" or "insightDetails" in ev,
        "truncated": sorted(set(notes)),
        "id_generated": id_generated,
    })
    ev["ctindex"] = ct
    return ev, _id


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

    def bulk_with_quarantine(self, index, docs):
        """bulk(); then re-send each rejected document once, quarantined."""
        ok, errors, results = self.bulk(index, docs)
        if not errors:
            return ok, errors, results, []
        by_label = {}
        retry = []
        for label, _id, e in errors:
            doc = next(d for i, d, l in docs if i == _id and l == label)
            doc = copy.deepcopy(doc)
            quarantine(doc, self.shapes)
            retry.append((_id, doc, label))
            by_label[(label, _id)] = e
        ok2, errors2, results2 = self.bulk(index, retry)
        results.update(results2)
        return ok + ok2, errors2, results, errors

    def one(self, index, doc, _id=None):
        ok, errors, _ = self.bulk(index, [(_id, doc, "probe")])
        if errors:
            return False, short_error(errors[0][2])
        return True, None

    def one_norm(self, index, doc):
        """NORM path: normalised doc, with the quarantine retry. Returns
        (ok, error, quarantined_paths)."""
        ok, errors = self.one(index, doc)
        if ok:
            return True, None, []
        doc = copy.deepcopy(doc)
        moved = quarantine(doc, self.shapes)
        ok, err2 = self.one(index, doc)
        return ok, (err2 if not ok else errors), moved

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
    docs, norm_count = [], Counter()
    for rel, ev in events:
        doc, _id = normalise(ev, rel, c.shapes, raw=raw)
        for n in doc["ctindex"]["truncated"]:
            norm_count[re.sub(r"\[\d+\]", "[]", n)] += 1
        docs.append((_id, doc, rel))
    if norm_count:
        print("  normalisations applied (path: events): " + ", ".join("%s: %d" % kv for kv in norm_count.most_common()))
    idx = c.index("corpus")
    t0 = time.time()
    ok, errors, results, first_try = c.bulk_with_quarantine(idx, docs)
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
    for name, ev in cases:
        # RAW first in its own index, so the NORM run sees a clean mapping per case
        ridx = c.index("raw")
        rdoc, _ = normalise(ev, "probe", c.shapes, raw=True)
        rok, rerr = c.one(ridx, rdoc)
        ndoc, _ = normalise(ev, "probe", c.shapes)
        nok, nerr, moved = c.one_norm(idx, ndoc)
        if not nok:
            c.failures.append("probe %s: %s" % (name, nerr))
        trunc = ndoc["ctindex"]["truncated"]
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
    ndocs = [(i, normalise(d, "probe", c.shapes, raw=True)[0], l) for i, d, l in docs]
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
    print("server: %s %s at %s; template mappings/template-%s.json; limits: depth %d, leaf %d B, key %d B"
          % (info["version"].get("distribution", "elasticsearch"), info["version"]["number"], c.h.base, c.flavor, MAX_DEPTH, MAX_LEAF_BYTES, MAX_KEY_BYTES))
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

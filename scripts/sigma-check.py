#!/usr/bin/env python3
"""Sigma rules for AWS CloudTrail against a ctindex index: do they run, and do
they find what they should?

  scripts/sigma-check.py check --url ES_URL [--url OPENSEARCH_URL ...]
      Loads the corpus (../shared/cloudtrail-corpus) with the ctindex binary
      into a fresh index prefix on each cluster, converts every rule of the
      SigmaHQ CloudTrail folder and of suzaku-rules-aws with pySigma's
      Elasticsearch Lucene backend, runs each query (query_string, _search),
      and compares the hits with an independent oracle: this script's own
      evaluation of the rule's detection on the raw events it read from the
      same files. Prints a report per rule family; exits 1 on a query error
      or a mismatch not listed in KNOWN_GAPS, 2 on a usage/setup error.

  scripts/sigma-check.py searches RULES_DIR... --out FILE [--index-prefix P]
      Turns folders of Sigma rules into saved searches (NDJSON) for Kibana and
      OpenSearch Dashboards, bound to the index pattern of `ctindex dashboards`
      (id ctindex-<prefix>-index-pattern, included in the file so that it
      imports on its own).

pySigma lives in a virtualenv of its own ($CTINDEX_CACHE/venv-sigma, default
~/.cache/ctindex/venv-sigma), created on first use from PyPI with the pinned
versions below; the script re-runs itself inside it. Details: docs/sigma.md.
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import gzip
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

PINS = ["pySigma==1.5.1", "pySigma-backend-elasticsearch==2.1.1", "PyYAML==6.0.4"]
ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared/cloudtrail-corpus"
RULE_FAMILIES = {
    "sigmahq": "sigma-rules-aws-cloudtrail",
    "suzaku": "suzaku-rules-aws/suzaku",
}
# Rule sources are not event sources.
NOT_EVENTS = {"sigma-rules-aws-cloudtrail", "suzaku-rules-aws"}

# Rules whose ctindex result differs from the oracle for a reason that is
# understood (docs/sigma.md explains each). Keyed by family/file name; the
# value is (servers it applies to, reason).
KNOWN_GAPS: dict[str, tuple[tuple[str, ...], str]] = {
    "sigmahq/aws_cloudtrail_console_login_success_without_mfa.yml": (
        ("elasticsearch", "opensearch"),
        "rule writes MFAUsed 'NO', CloudTrail writes 'No': Sigma compares case-insensitively, the "
        "backend's term query on a keyword (flattened) field does not"),
    "suzaku/aws_cloudtrail_iam_admin_policy_attached.yml": (
        ("opensearch",),
        "requestParameters.policyArn|contains becomes a leading-wildcard query on a flat_object "
        "sub-field, which OpenSearch 2.x answers with no hits (and no error)"),
    "sigmahq/aws_disable_bucket_versioning.yml": (
        ("opensearch",),
        "requestParameters|contains becomes a leading-wildcard query on a flat_object field: no hits on OpenSearch 2.x"),
    "sigmahq/aws_rds_change_master_password.yml": (
        ("opensearch",),
        "responseElements.pendingModifiedValues.masterUserPassword|contains: a leading-wildcard query on a "
        "flat_object sub-field: no hits on OpenSearch 2.x"),
    "suzaku/aws_cloudtrail_describe_instances.yml": (
        ("elasticsearch", "opensearch"),
        "one extra hit, a Panther fixture exported from a data lake with lower-case keys (eventname, eventsource): "
        "ctindex restores CloudTrail's names, the raw-event oracle does not read them"),
}


def info(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def die(msg: str) -> None:
    info(msg)
    sys.exit(2)


# ------------------------------------------------------------------ venv

def cache_dir() -> Path:
    cache = os.environ.get("CTINDEX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache/ctindex")
    return Path(cache).resolve()


def ensure_venv() -> None:
    """Re-runs this script in the pySigma virtualenv (made or updated first)."""
    venv = cache_dir() / "venv-sigma"
    py = venv / "bin/python"
    if Path(sys.prefix).resolve() == venv.resolve():
        return
    stamp = venv / ".sigma-pins"
    want = " ".join(PINS)
    current = stamp.read_text().strip() if stamp.exists() else None
    if not py.exists() or current != want:
        if not py.exists():
            info(f"sigma-check: creating virtualenv {venv}")
            shutil.rmtree(venv, ignore_errors=True)
            r = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
            if r.returncode != 0:
                info(r.stdout + r.stderr)
                die(f"sigma-check: '{sys.executable} -m venv' failed (apt-get install python3-venv)")
        info(f"sigma-check: installing {want} from PyPI into {venv}")
        r = subprocess.run([str(py), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q", *PINS],
                           capture_output=True, text=True)
        if r.returncode != 0:
            info("\n".join((r.stdout + r.stderr).splitlines()[-15:]))
            die(f"sigma-check: pip could not install {want} ('rm -rf {venv}' starts over)")
        stamp.write_text(want + "\n")
    os.execv(str(py), [str(py), str(Path(__file__).resolve()), *sys.argv[1:]])


# ------------------------------------------------------------------ rules

class Rule:
    def __init__(self, family: str, path: Path, doc: dict, collection, error: str | None):
        self.family = family
        self.path = path
        self.doc = doc
        self.id = str(doc.get("id") or path.stem)
        self.title = str(doc.get("title") or path.stem)
        self.collection = collection
        self.queries: list[str] = []
        self.error = error  # conversion error


def read_rules(family: str, folder: Path) -> list[Rule]:
    """Every rule document of every *.yml below the folder, converted."""
    import yaml
    from sigma.backends.elasticsearch import LuceneBackend
    from sigma.collection import SigmaCollection

    rules = []
    for path in sorted(folder.rglob("*.yml")):
        text = path.read_text(encoding="utf-8")
        try:
            docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
        except yaml.YAMLError as e:
            rules.append(Rule(family, path, {}, None, f"YAML: {e}"))
            continue
        logsource = [d.get("logsource") for d in docs if d.get("logsource")]
        if logsource and not any(ls.get("product") == "aws" for ls in logsource):
            continue  # e.g. an Azure rule parked under unsupported/cloud
        # A file with several documents (a base rule plus a correlation)
        # converts as one collection: the correlation is the rule.
        rule = Rule(family, path, docs[-1] if docs else {}, None, None)
        try:
            collection = SigmaCollection.from_yaml(text)
            rule.collection = collection
            rule.queries = [q for q in LuceneBackend().convert(collection) if isinstance(q, str)]
            if not rule.queries:
                rule.error = "the backend returned no query"
        except Exception as e:  # pySigma raises many kinds; each is a finding
            rule.error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        rules.append(rule)
    return rules


# ------------------------------------------------------------------ events

def looks_like_event(o) -> bool:
    return isinstance(o, dict) and ("eventName" in o or "eventSource" in o) and "detail-type" not in o


def events_of_file(path: Path) -> list[dict] | None:
    """The CloudTrail events of a file when it holds only plain events
    (a Records wrapper, one event, an array, or NDJSON); None otherwise."""
    try:
        raw = gzip.open(path, "rt", encoding="utf-8").read() if path.suffix == ".gz" else \
            path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        doc = json.loads(raw)
        if isinstance(doc, dict) and isinstance(doc.get("Records"), list):
            items = doc["Records"]
        elif isinstance(doc, list):
            items = doc
        else:
            items = [doc]
    except json.JSONDecodeError:
        try:
            items = [json.loads(line) for line in raw.splitlines() if line.strip()]
        except json.JSONDecodeError:
            return None
    if items and all(looks_like_event(e) for e in items):
        return items
    # NDJSON of fixtures (Panther's rule tests): objects that are not plain
    # events (lower-case keys of a data-lake export) stay in, unmatched by the
    # oracle, so that whatever ctindex makes of them shows as a difference.
    if path.name.endswith((".ndjson", ".jsonl")) and items and any(looks_like_event(e) for e in items) \
            and all(isinstance(e, dict) and "Records" not in e and "detail-type" not in e for e in items):
        return items
    return None


def read_events(corpus: Path) -> tuple[list[Path], list[dict]]:
    files, events = [], []
    for path in sorted(corpus.rglob("*")):
        rel = path.relative_to(corpus)
        if rel.parts[0] in NOT_EVENTS or not path.is_file():
            continue
        if not (path.name.endswith((".json", ".ndjson", ".jsonl", ".json.gz"))) or "digest" in path.name.lower():
            continue
        found = events_of_file(path)
        if found:
            files.append(path)
            events.extend(found)
    return files, events


# ------------------------------------------------------------------ oracle

# True only for the diagnosis of a mismatch: would a case-sensitive match
# (what term queries on keyword fields do) give what the cluster gave?
CASED = False


class NoOracle(Exception):
    """The detection uses something the oracle does not evaluate."""


def leaves(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from leaves(v)
    else:
        yield value


def lookup(event, path: str) -> list:
    """The values at a dotted path; lists are searched element by element."""
    current = [event]
    for key in path.split("."):
        nxt = []
        for c in current:
            if isinstance(c, list):
                c_items = c
            else:
                c_items = [c]
            for item in c_items:
                if isinstance(item, dict) and key in item:
                    v = item[key]
                    nxt.extend(v if isinstance(v, list) else [v])
        current = nxt
    return current


def text_of(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


@functools.lru_cache(maxsize=None)
def wildcard_regex(pattern: str, cased: bool = False) -> re.Pattern:
    """Sigma's value wildcards (* and ?, backslash escapes) as a regex,
    case-insensitive as the Sigma specification says plain values are."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "*?\\":
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL if cased else re.IGNORECASE | re.DOTALL)


def match_field(event, key: str, expected) -> bool:
    field, *mods = key.split("|")
    values = expected if isinstance(expected, list) else [expected]
    unsupported = set(mods) - {"contains", "startswith", "endswith", "all", "exists", "re", "cidr"}
    if unsupported:
        raise NoOracle(f"modifier {'|'.join(sorted(unsupported))}")
    found = lookup(event, field) if field else list(leaves(event))
    if "exists" in mods:
        present = any(v is not None for v in found)
        return present == bool(values[0])
    found = [v for v in found if v is not None]

    def one(value) -> bool:
        if value is None:
            return not found
        if "re" in mods:
            rx = re.compile(str(value))
            return any(rx.search(text_of(v)) for v in found)
        if "cidr" in mods:
            net = ipaddress.ip_network(str(value), strict=False)
            for v in found:
                try:
                    if ipaddress.ip_address(str(v)) in net:
                        return True
                except ValueError:
                    pass
            return False
        s = text_of(value)
        if "contains" in mods:
            s = f"*{s}*"
        elif "startswith" in mods:
            s = f"{s}*"
        elif "endswith" in mods:
            s = f"*{s}"
        rx = wildcard_regex(s, CASED)
        return any(rx.fullmatch(text_of(v)) for v in found)

    return all(one(v) for v in values) if "all" in mods else any(one(v) for v in values)


def match_item(event, item) -> bool:
    if isinstance(item, dict):
        return all(match_field(event, k, v) for k, v in item.items())
    if isinstance(item, list):
        return any(match_item(event, i) for i in item)
    # A keyword: anywhere in the event, as a substring.
    return match_field(event, "|contains", item)


def tokenize(cond: str) -> list[str]:
    return re.findall(r"\(|\)|[^\s()]+", cond)


def evaluate(event, detection: dict, cond: str) -> bool:
    if "|" in cond or " near " in f" {cond} ":
        raise NoOracle("aggregation or near condition")
    names = [k for k in detection if k != "condition"]
    tokens = tokenize(cond)
    pos = 0

    def sel(name):
        return match_item(event, detection[name])

    def group(pattern):
        return [n for n in names if fnmatch.fnmatchcase(n, pattern)] if pattern != "them" else names

    def primary():
        nonlocal pos
        t = tokens[pos]
        if t == "(":
            pos += 1
            v = expr()
            pos += 1  # ')'
            return v
        if t == "not":
            pos += 1
            return not primary()
        if t in ("1", "any", "all") and pos + 2 < len(tokens) and tokens[pos + 1] == "of":
            members = group(tokens[pos + 2])
            pos += 3
            results = [sel(m) for m in members]
            return all(results) if t == "all" else any(results)
        pos += 1
        if t not in detection:
            raise NoOracle(f"condition names {t}")
        return sel(t)

    def conj():
        nonlocal pos
        v = primary()
        while pos < len(tokens) and tokens[pos] == "and":
            pos += 1
            v = primary() and v
        return v

    def expr():
        nonlocal pos
        v = conj()
        while pos < len(tokens) and tokens[pos] == "or":
            pos += 1
            v = conj() or v
        return v

    return expr()


def oracle(rule: Rule, events: list[dict], cased: bool = False) -> tuple[set[str] | None, set[str], str]:
    """(eventIDs the rule must find, eventIDs whose copies disagree, why no
    oracle). Copies of one eventID that differ (fixtures reuse ids) and
    disagree on the match are left out: the index keeps only one of them."""
    doc = rule.doc
    if rule.collection is None or len([r for r in rule.collection.rules]) != 1:
        return None, set(), "correlation or multi-rule file"
    det = doc.get("detection") or {}
    conds = det.get("condition")
    conds = conds if isinstance(conds, list) else [conds]
    verdict: dict[str, set[bool]] = {}
    global CASED
    CASED = cased
    try:
        for e in events:
            eid = e.get("eventID")
            if not isinstance(eid, str):
                continue
            hit = any(evaluate(e, det, str(c)) for c in conds)
            verdict.setdefault(eid, set()).add(hit)
    except NoOracle as why:
        return None, set(), str(why)
    finally:
        CASED = False
    must = {k for k, v in verdict.items() if v == {True}}
    ambiguous = {k for k, v in verdict.items() if len(v) > 1}
    return must, ambiguous, ""


# ------------------------------------------------------------------ cluster

def http(method: str, url: str, body=None) -> tuple[int, dict]:
    """One request; a 429 or 503 (a node's circuit breaker under memory
    pressure, a shard not yet ready) is asked again after a pause, doubling
    up to 8 s, 7 times at most: only the last answer counts."""
    data = json.dumps(body).encode() if body is not None else None
    for pause in (1, 2, 4, 8, 8, 8, 8, None):
        req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            try:
                answer = e.code, json.loads(e.read() or b"{}")
            except json.JSONDecodeError:
                answer = e.code, {}
            if e.code not in (429, 503) or pause is None:
                return answer
            time.sleep(pause)
    raise AssertionError("unreachable")


def load(ctindex: str, url: str, prefix: str, files: list[Path], workdir: Path) -> None:
    listing = workdir / f"{prefix}-files"
    listing.mkdir()
    # One folder of links: one import run, and ctindex.source still names the file.
    for i, f in enumerate(files):
        (listing / f"{i:05d}-{f.name}").symlink_to(f)
    cmd = [ctindex, "import", str(listing), "--url", url, "--index-prefix", prefix, "--replicas", "0",
           "--dead-letter", str(workdir / f"{prefix}-dead.ndjson"), "-q"]
    r = subprocess.run(cmd, capture_output=True, text=True, env={k: v for k, v in os.environ.items()
                                                                  if not k.startswith("CTINDEX_")})
    if r.returncode not in (0, 3):  # 3: some events went to the dead-letter file
        die(f"sigma-check: ctindex import into {url} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    http("POST", f"{url}/{prefix}/_refresh")


def cleanup(url: str, prefix: str) -> None:
    """The run's indices (by name: wildcard deletes may be refused) and template."""
    _, rows = http("GET", f"{url}/_cat/indices/{prefix}-*?format=json&h=index")
    names = [r["index"] for r in rows if isinstance(r, dict) and "index" in r] if isinstance(rows, list) else []
    for i in range(0, len(names), 50):
        http("DELETE", f"{url}/{','.join(names[i:i + 50])}")
    http("DELETE", f"{url}/_index_template/ctindex-{prefix}")


def search_ids(url: str, prefix: str, query: str) -> tuple[set[str] | None, str, int]:
    body = {"size": 10000, "track_total_hits": True, "_source": ["eventID"],
            "query": {"query_string": {"query": query}}}
    status, resp = http("POST", f"{url}/{prefix}/_search", body)
    if status != 200:
        err = resp.get("error", {})
        reason = err.get("root_cause", [{}])[0].get("reason") if isinstance(err, dict) else str(err)
        return None, f"HTTP {status}: {reason or err}", 0
    hits = resp["hits"]["hits"]
    ids = {h["_source"]["eventID"] for h in hits if isinstance(h.get("_source", {}).get("eventID"), str)}
    return ids, "", resp["hits"]["total"]["value"]


def cluster_name(url: str) -> str:
    _, root = http("GET", f"{url}/")
    _, nodes = http("GET", f"{url}/_nodes/_local?filter_path=nodes.*.version")
    versions = [n.get("version") for n in nodes.get("nodes", {}).values()] or ["?"]
    distribution = root.get("version", {}).get("distribution", "elasticsearch")
    return f"{distribution} {versions[0]} at {url}"


# ------------------------------------------------------------------ check

def check(args) -> int:
    corpus = Path(args.corpus).resolve()
    if not corpus.is_dir():
        info(f"sigma-check: corpus {corpus} not found")
        return 2
    files, events = read_events(corpus)
    info(f"sigma-check: {len(events)} events in {len(files)} files of {corpus}")
    rules: list[Rule] = []
    for family, sub in RULE_FAMILIES.items():
        rules.extend(read_rules(family, corpus / sub))
    for r in rules:
        r.must, r.ambiguous, r.no_oracle = oracle(r, events)
    info(f"sigma-check: {len(rules)} rules read and converted")

    report = {"events": len(events), "files": len(files), "pins": PINS, "clusters": []}
    unexpected = 0
    with tempfile.TemporaryDirectory() as tmp:
        for url in args.url:
            url = url.rstrip("/")
            name = cluster_name(url)
            prefix = f"{args.prefix}-{os.getpid()}-{len(report['clusters'])}"
            t0 = time.time()
            load(args.ctindex, url, prefix, files, Path(tmp))
            indexed, _, total = search_ids(url, prefix, "*")
            info(f"sigma-check: {name}: {total} documents in {prefix}* ({time.time() - t0:.0f} s)")
            results = []
            try:
                for r in rules:
                    res = {"family": r.family, "id": r.id, "title": r.title,
                           "file": str(r.path.relative_to(corpus)), "queries": r.queries,
                           "compiled": r.error is None, "error": r.error, "ran": False}
                    if r.error is None:
                        hits: set[str] = set()
                        for q in r.queries:
                            ids, err, _ = search_ids(url, prefix, q)
                            if ids is None:
                                res["error"] = err
                                break
                            hits |= ids
                        else:
                            res["ran"] = True
                            res["hits"] = len(hits)
                    if res["ran"] and r.must is not None:
                        must = r.must & indexed  # an event ctindex did not load cannot be found
                        got = hits - r.ambiguous
                        res["expected"] = len(must)
                        res["not_loaded"] = len(r.must - indexed)
                        res["missing"] = sorted(must - got)[:20]
                        res["extra"] = sorted(got - must)[:20]
                        res["matched"] = must == got
                        if not res["matched"]:
                            cased, _, _ = oracle(r, events, cased=True)
                            if cased is not None and (cased & indexed) == got:
                                res["diagnosis"] = ("case: the values differ from the events' only in case; "
                                                    "Sigma matches case-insensitively, term queries do not")
                            servers, reason = KNOWN_GAPS.get(f"{r.family}/{r.path.name}", ((), None))
                            res["known_gap"] = reason if name.split()[0] in servers else None
                            unexpected += res["known_gap"] is None
                    else:
                        res["no_oracle"] = r.no_oracle or None
                        if r.error is None and not res["ran"]:
                            unexpected += 1  # a query error
                    results.append(res)
            finally:
                if not args.keep:
                    cleanup(url, prefix)
            report["clusters"].append({"url": url, "server": name, "documents": total, "rules": results})
    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 1 if unexpected else 0


def print_report(report: dict) -> None:
    print(f"Sigma check: {report['events']} events from {report['files']} files; {', '.join(report['pins'])}")
    for c in report["clusters"]:
        print(f"\n{c['server']} ({c['documents']} documents)")
        print(f"{'family':<9} {'rules':>5} {'compiled':>8} {'ran':>5} {'oracle':>6} {'with events':>11} "
              f"{'matched':>7} {'known gap':>9} {'unexpected':>10}")
        for fam in sorted({r["family"] for r in c["rules"]}):
            rs = [r for r in c["rules"] if r["family"] == fam]
            orc = [r for r in rs if "matched" in r]
            withev = [r for r in orc if r["expected"] or r["hits"]]
            matched = [r for r in withev if r["matched"]]
            known = [r for r in orc if not r["matched"] and r.get("known_gap")]
            bad = [r for r in rs if (r["compiled"] and not r["ran"]) or (not r.get("matched", True) and not r.get("known_gap"))]
            print(f"{fam:<9} {len(rs):>5} {sum(r['compiled'] for r in rs):>8} {sum(r['ran'] for r in rs):>5} "
                  f"{len(orc):>6} {len(withev):>11} {len(matched):>7} {len(known):>9} {len(bad):>10}")
        for r in c["rules"]:
            if not r["compiled"]:
                print(f"  not compiled  {r['family']}/{Path(r['file']).name}: {r['error']}")
            elif not r["ran"]:
                print(f"  QUERY ERROR   {r['family']}/{Path(r['file']).name}: {r['error']}")
            elif "matched" in r and not r["matched"]:
                tag = "known gap    " if r.get("known_gap") else "MISMATCH     "
                print(f"  {tag} {r['family']}/{Path(r['file']).name}: expected {r['expected']}, hits {r['hits']}, "
                      f"missing {r['missing'][:3]}, extra {r['extra'][:3]}"
                      + (f" — {r['known_gap']}" if r.get("known_gap") else "")
                      + (f" [{r['diagnosis']}]" if r.get("diagnosis") else ""))
            elif r.get("no_oracle"):
                print(f"  no oracle     {r['family']}/{Path(r['file']).name}: {r['no_oracle']} (ran, {r['hits']} hits)")


# ------------------------------------------------------------------ searches

def searches(args) -> int:
    prefix = args.index_prefix
    pattern_id = f"ctindex-{prefix}-index-pattern"
    title_suffix = "" if prefix == "cloudtrail" else f" ({prefix})"
    objects = [{"id": pattern_id, "type": "index-pattern",
                "attributes": {"title": prefix, "timeFieldName": "eventTime", "fields": "[]"},
                "references": [], "migrationVersion": {"index-pattern": "7.6.0"}}]
    skipped = 0
    for folder in args.rules:
        for r in read_rules("rules", Path(folder)):
            if r.error:
                info(f"sigma-searches: skipped {r.path}: {r.error}")
                skipped += 1
                continue
            query = " OR ".join(f"({q})" for q in r.queries) if len(r.queries) > 1 else r.queries[0]
            level = r.doc.get("level")
            description = str(r.doc.get("description") or "").strip()
            source = {"query": {"query": query, "language": "lucene"}, "filter": [], "highlightAll": True,
                      "version": True, "indexRefName": "kibanaSavedObjectMeta.searchSourceJSON.index"}
            objects.append({
                "id": f"ctindex-{prefix}-sigma-{re.sub(r'[^A-Za-z0-9_-]', '-', r.id)}",
                "type": "search",
                "attributes": {
                    "title": f"[Sigma{f' {level}' if level else ''}] {r.title}{title_suffix}",
                    "description": f"{description}\n\nSigma rule {r.id} ({r.path.name}).".strip(),
                    "hits": 0,
                    "columns": ["ctindex.identity", "eventSource", "eventName", "awsRegion", "sourceIPAddress",
                                "errorCode"],
                    "sort": [["eventTime", "desc"]],
                    "version": 1,
                    "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(source, separators=(",", ":"))},
                },
                "references": [{"name": "kibanaSavedObjectMeta.searchSourceJSON.index", "type": "index-pattern",
                                "id": pattern_id}],
                "migrationVersion": {"search": "7.9.3"},
            })
    seen: set[str] = set()
    out = []
    for o in objects:
        if o["id"] not in seen:  # two rule files with one id: the first wins
            seen.add(o["id"])
            out.append(json.dumps(o, separators=(",", ":")))
    Path(args.out).write_text("\n".join(out) + "\n")
    info(f"sigma-searches: {len(out) - 1} saved searches written to {args.out} ({skipped} rules skipped)")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="load the corpus, run every rule, compare with the oracle")
    c.add_argument("--url", action="append", required=True, help="cluster URL (repeat for several)")
    c.add_argument("--ctindex", default=str(ROOT / "target/debug/ctindex"), help="the ctindex binary")
    c.add_argument("--corpus", default=str(CORPUS))
    c.add_argument("--prefix", default="sigma-check", help="index prefix stem (pid and cluster number added)")
    c.add_argument("--keep", action="store_true", help="keep the indices")
    c.add_argument("--json", help="also write the full report as JSON to this file")
    s = sub.add_parser("searches", help="Sigma rule folders to saved searches (NDJSON)")
    s.add_argument("rules", nargs="+", help="folders of Sigma rules (*.yml, searched recursively)")
    s.add_argument("--out", required=True, help="NDJSON file to write")
    s.add_argument("--index-prefix", default="cloudtrail", help="the index prefix the dashboards read")
    args = p.parse_args()
    ensure_venv()
    return check(args) if args.cmd == "check" else searches(args)


if __name__ == "__main__":
    sys.exit(main())

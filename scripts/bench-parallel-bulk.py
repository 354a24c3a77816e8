#!/usr/bin/env python3
"""What users write instead of ctindex: the official Python client's parallel_bulk.

    bench-parallel-bulk.py DIR --url URL --client elasticsearch|opensearch --index-prefix P
                           [--threads N] [--max-chunk-bytes B] [--chunk-size N] [--max-events N]

Run by scripts/bench with the interpreter of its virtualenv (elasticsearch and
opensearch-py from PyPI). It reads every *.json.gz under DIR in name order
(json.load of each CloudTrail file), and sends each record as it is, with
`_id` = eventID and `_index` = P-YYYY.MM from eventTime, through
`helpers.parallel_bulk` (thread_count = ctindex's --concurrency, chunks cut at
ctindex's --batch-bytes). It does less than ctindex (no field filter, no
classification, no fitting to the template): documents the cluster refuses
(e.g. a string over 32 KB in an OpenSearch flat_object field, which ctindex
truncates) are counted and reported, not retried. The index template is
installed beforehand by scripts/bench (`ctindex setup`), so the documents land
in the same mapping.

Prints one JSON line: {"events": indexed, "failed": refused, "first_error":
..., "seconds": wall time including the final refresh}.
"""

import argparse
import gzip
import json
import os
import time


def files(root):
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            if name.endswith(".json.gz"):
                yield os.path.join(folder, name)


def actions(root, prefix, limit):
    sent = 0
    for path in files(root):
        with gzip.open(path, "rb") as f:
            records = json.load(f).get("Records", [])
        for record in records:
            if limit is not None and sent >= limit:
                return
            when = record.get("eventTime") or ""
            index = f"{prefix}-{when[0:4]}.{when[5:7]}" if len(when) >= 7 else f"{prefix}-undated"
            yield {"_index": index, "_id": record.get("eventID"), "_source": record}
            sent += 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("--url", required=True)
    p.add_argument("--client", choices=["elasticsearch", "opensearch"], required=True)
    p.add_argument("--index-prefix", required=True)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--chunk-size", type=int, default=100_000, help="documents per request at most")
    p.add_argument("--max-chunk-bytes", type=int, default=5_000_000)
    p.add_argument("--max-events", type=int)
    args = p.parse_args()

    if args.client == "elasticsearch":
        from elasticsearch import Elasticsearch, helpers

        client = Elasticsearch(args.url, request_timeout=120)
    else:
        from opensearchpy import OpenSearch, helpers

        client = OpenSearch(args.url, timeout=120)

    started = time.monotonic()
    indexed = failed = 0
    first_error = None
    for ok, item in helpers.parallel_bulk(
        client,
        actions(args.dir, args.index_prefix, args.max_events),
        thread_count=args.threads,
        chunk_size=args.chunk_size,
        max_chunk_bytes=args.max_chunk_bytes,
        raise_on_error=False,
    ):
        if ok:
            indexed += 1
        else:
            failed += 1
            if first_error is None:
                error = next(iter(item.values()), {}).get("error", item)
                first_error = (error.get("reason") if isinstance(error, dict) else str(error))[:200]
    client.indices.refresh(index=f"{args.index_prefix}-*")
    print(json.dumps({"events": indexed, "failed": failed, "first_error": first_error,
                      "seconds": time.monotonic() - started}))


if __name__ == "__main__":
    main()

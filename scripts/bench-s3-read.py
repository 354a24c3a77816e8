#!/usr/bin/env python3
"""The Python reader users would write, for scripts/bench: every CloudTrail log
file of a bucket, fetched by a thread pool and decoded, nothing else.

    bench-s3-read.py BUCKET --endpoint-url URL --threads N

boto3 (standard credential chain, path-style addressing), one ListObjectsV2
paginator over the whole bucket whose keys are handed to a
ThreadPoolExecutor(N) as each page arrives (listing overlaps fetching); each
task is GetObject, read, gzip.decompress, json.loads, and counts the Records.
The connection pool is as large as the thread pool (botocore's default of 10
would make threads wait for connections). Prints one JSON line: objects,
events, bytes, list_requests, seconds.
"""

import argparse
import gzip
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bucket")
    p.add_argument("--endpoint-url", required=True)
    p.add_argument("--threads", type=int, default=64)
    args = p.parse_args()

    s3 = boto3.client("s3", endpoint_url=args.endpoint_url,
                      config=Config(max_pool_connections=args.threads, s3={"addressing_style": "path"},
                                    retries={"mode": "standard"}))

    def read(key):
        body = s3.get_object(Bucket=args.bucket, Key=key)["Body"].read()
        return len(json.loads(gzip.decompress(body)).get("Records", [])), len(body)

    started = time.monotonic()
    objects = events = size = pages = 0
    with ThreadPoolExecutor(args.threads) as pool:
        futures = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=args.bucket):
            pages += 1
            for o in page.get("Contents", []):
                key = o["Key"]
                if key.endswith(".json.gz") and "/CloudTrail-Digest/" not in key:
                    futures.append(pool.submit(read, key))
        for f in futures:
            n, b = f.result()
            objects += 1
            events += n
            size += b
    print(json.dumps({"objects": objects, "events": events, "bytes": size, "list_requests": pages,
                      "seconds": time.monotonic() - started}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Uploads a generated trail to an S3 server, for scripts/bench.

    bench-s3-upload.py DIR BUCKET --endpoint-url URL [--threads N]

Run with the interpreter of the bench virtualenv (boto3). Creates the bucket
if needed and uploads every file under DIR with its relative path as key,
skipping keys already there with the same size, then DIR/gen-trail.manifest
last as the key `gen-trail.manifest` (outside AWSLogs/, so importers ignore
it): its presence with the same content means the upload is complete.
Credentials and region come from the environment (AWS_*), as for ctindex.
"""

import argparse
import concurrent.futures
import os
import sys

import boto3
from botocore.config import Config

MANIFEST = "gen-trail.manifest"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("bucket")
    p.add_argument("--endpoint-url", required=True)
    p.add_argument("--threads", type=int, default=16)
    args = p.parse_args()

    s3 = boto3.client(
        "s3",
        endpoint_url=args.endpoint_url,
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=args.threads, retries={"max_attempts": 10}),
    )
    try:
        s3.head_bucket(Bucket=args.bucket)
    except s3.exceptions.ClientError:
        s3.create_bucket(Bucket=args.bucket)

    existing = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=args.bucket):
        for obj in page.get("Contents", []):
            existing[obj["Key"]] = obj["Size"]

    todo = []
    for folder, dirs, names in os.walk(args.dir):
        dirs.sort()
        for name in sorted(names):
            if name == MANIFEST or name.endswith(".tmp"):
                continue
            path = os.path.join(folder, name)
            key = os.path.relpath(path, args.dir).replace(os.sep, "/")
            if existing.get(key) != os.path.getsize(path):
                todo.append((path, key))

    def put(item):
        path, key = item
        with open(path, "rb") as f:
            s3.put_object(Bucket=args.bucket, Key=key, Body=f.read())

    with concurrent.futures.ThreadPoolExecutor(args.threads) as pool:
        for _ in pool.map(put, todo):
            pass
    put((os.path.join(args.dir, MANIFEST), MANIFEST))
    print(f"bench-s3-upload: {len(todo)} objects uploaded to s3://{args.bucket} ({len(existing)} were there)", file=sys.stderr)


if __name__ == "__main__":
    main()

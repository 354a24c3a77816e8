#!/usr/bin/env python3
"""Measures `ctindex follow` on the local stack: events/s and objects/s with
1, 2 and 4 followers on one queue, and the delay from an upload to the
event being searchable.

Run with the moto virtualenv's Python (it has boto3), after
`eval "$(scripts/stack env elasticsearch s3)"`:

    ~/.cache/ctindex/venv-moto/bin/python scripts/bench-follow.py target/release/ctindex

Each round uploads FILES objects of EVENTS events, sends one S3 event
notification per object, starts N followers with --until-empty and times
them from start to the last exit (less the idle wait). The delay round
uploads one object at a time to a queue one follower is already reading,
sends its notification, and polls _count until the event is there.
"""

import gzip
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid

import boto3

ENDPOINT = os.environ["S3_ENDPOINT"]
ES = os.environ["ES_URL"]
FILES, EVENTS, IDLE = 240, 500, 3
ACCOUNT = "777777777777"


def client(service):
    return boto3.client(service, endpoint_url=ENDPOINT, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def body(tag, n):
    records = [{"eventVersion": "1.08", "eventID": f"{tag}-{i}", "eventTime": f"2024-06-01T10:{i % 60:02}:00Z",
                "eventSource": "ec2.amazonaws.com", "eventName": "DescribeInstances", "awsRegion": "us-east-1",
                "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/u"},
                "requestParameters": {"n": i}, "recipientAccountId": ACCOUNT} for i in range(n)]
    return gzip.compress(json.dumps({"Records": records}).encode())


def key(name):
    return f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2024/06/01/{ACCOUNT}_CloudTrail_us-east-1_{name}.json.gz"


def note(bucket, k):
    return json.dumps({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                                    "s3": {"bucket": {"name": bucket}, "object": {"key": k, "size": 1}}}]})


def count(prefix):
    try:
        urllib.request.urlopen(urllib.request.Request(f"{ES}/{prefix}-*/_refresh", method="POST")).read()
        return json.load(urllib.request.urlopen(f"{ES}/{prefix}-*/_count"))["count"]
    except Exception:
        return 0


def follow(binary, queue, prefix, extra=()):
    return subprocess.Popen([binary, "follow", "--queue-url", queue, "--url", ES, "--index-prefix", prefix,
                             "--endpoint-url", ENDPOINT, "--region", "us-east-1", "--replicas", "0",
                             "--wait-seconds", "1", "-q", *extra],
                            env={**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"},
                            stdout=subprocess.DEVNULL)


def main():
    binary = sys.argv[1]
    s3, sqs = client("s3"), client("sqs")
    bucket = f"bench-follow-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    payloads = [body(f"b{n}", EVENTS) for n in range(FILES)]
    for followers in (1, 2, 4):
        queue = sqs.create_queue(QueueName=f"{bucket}-{followers}")["QueueUrl"]
        prefix = f"bench-follow-{uuid.uuid4().hex[:8]}"
        keys = [key(f"r{followers}-{n}") for n in range(FILES)]
        for k, p in zip(keys, payloads):
            s3.put_object(Bucket=bucket, Key=k, Body=p)
        for i in range(0, FILES, 10):
            sqs.send_message_batch(QueueUrl=queue, Entries=[
                {"Id": str(j), "MessageBody": note(bucket, k)} for j, k in enumerate(keys[i:i + 10])])
        started = time.time()
        procs = [follow(binary, queue, prefix, ["--until-empty", str(IDLE)]) for _ in range(followers)]
        codes = [p.wait() for p in procs]
        took = time.time() - started - IDLE
        got = count(prefix)
        print(f"{followers} follower(s): {FILES} objects, {got} events in {took:.1f} s: "
              f"{got / took:.0f} events/s, {FILES / took:.1f} objects/s (exit codes {codes})")
    # Delay from upload to searchable, one object at a time.
    queue = sqs.create_queue(QueueName=f"{bucket}-delay")["QueueUrl"]
    prefix = f"bench-follow-{uuid.uuid4().hex[:8]}"
    proc = follow(binary, queue, prefix)
    delays = []
    for n in range(5):
        k = key(f"delay-{n}")
        t0 = time.time()
        s3.put_object(Bucket=bucket, Key=k, Body=body(f"d{n}", 10))
        sqs.send_message(QueueUrl=queue, MessageBody=note(bucket, k))
        while count(prefix) < 10 * (n + 1):
            time.sleep(0.05)
        delays.append(time.time() - t0)
    proc.terminate()
    proc.wait()
    print("upload to searchable: " + ", ".join(f"{d:.2f} s" for d in delays))


if __name__ == "__main__":
    main()

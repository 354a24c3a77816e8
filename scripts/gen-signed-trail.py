#!/usr/bin/env python3
"""Writes a small CloudTrail trail with signed digest files, and plants problems in it.

Written from AWS's documentation ("CloudTrail digest file structure" and "Custom
implementations of CloudTrail log file integrity validation"), independently of
ctindex's Rust code, so that `ctindex verify` can be tested against it:

- every hour, per region, a digest file lists the log files delivered in that hour,
  each with the hex SHA-256 of its uncompressed content;
- a digest names the previous digest (key, hex SHA-256 of its uncompressed content,
  its signature), or null for the first of a chain;
- the signature is SHA256withRSA (PKCS #1 v1.5), hex-encoded, over
  "digestEndTime\\ndigestS3Bucket/digestS3Object\\nhex(SHA-256(uncompressed digest))\\n
  previousDigestSignature (or 'null')", with the region's private key; S3 keeps it in
  the digest object's metadata (x-amz-meta-signature, x-amz-meta-signature-algorithm);
- the public keys are published as `aws cloudtrail list-public-keys` prints them:
  base64 of the DER PKCS #1 RSAPublicKey, with a fingerprint (here the MD5 of the DER).

Usage: gen-signed-trail.py OUT [--bucket NAME] [--intact] [--files-per-hour N --events-per-file N]

Writes OUT/trail/AWSLogs/... (the bucket's content), OUT/public-keys.json,
OUT/signatures.json (digest key -> S3 metadata to upload with it) and
OUT/manifest.json: the planted problems, the chains and what is in them.

The trail: account 111122223333, trail "audit" homed in us-east-1, regions us-east-1
and eu-west-1, eight hours across a midnight. us-east-1 rotates its key after four
hours and has an hour without log files; eu-west-1 has a backfill digest. Planted:
one log file changed by a byte, one log file deleted, one digest deleted, one digest
changed, one digest signed with a key that is not CloudTrail's (but naming CloudTrail's).
Needs the `cryptography` package.
"""

import argparse
import base64
import datetime as dt
import gzip
import hashlib
import json
import os
import random
import uuid

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ACCOUNT = "111122223333"
TRAIL = "audit"
HOME = "us-east-1"
REGIONS = ["us-east-1", "eu-west-1"]
START = dt.datetime(2024, 3, 1, 20, 0, 31, tzinfo=dt.timezone.utc)
HOURS = 8


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def new_key():
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    return {"private": private, "der": der, "fingerprint": hashlib.md5(der).hexdigest()}


def sign(key, text):
    return key["private"].sign(text.encode(), padding.PKCS1v15(), hashes.SHA256()).hex()


def gz(data):
    return gzip.compress(data, mtime=0)


class Trail:
    def __init__(self, out, bucket, events_per_file=3):
        self.events_per_file = events_per_file
        self.root = os.path.join(out, "trail")
        self.out = out
        self.bucket = bucket
        self.files = {}  # key -> bytes (gzip) as delivered
        self.signatures = {}  # digest key -> S3 metadata (signature hex, ...)
        self.rng = random.Random(21)

    def log_key(self, region, t):
        name = "%s_CloudTrail_%s_%s_%s.json.gz" % (
            ACCOUNT,
            region,
            t.strftime("%Y%m%dT%H%MZ"),
            "".join(self.rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(16)),
        )
        return "AWSLogs/%s/CloudTrail/%s/%s/%s" % (ACCOUNT, region, t.strftime("%Y/%m/%d"), name)

    def digest_key(self, region, end, backfill=False):
        name = "%s_CloudTrail-Digest_%s_%s_%s_%s%s.json.gz" % (
            ACCOUNT,
            region,
            TRAIL,
            HOME,
            end.strftime("%Y%m%dT%H%M%SZ"),
            "_backfill" if backfill else "",
        )
        return "AWSLogs/%s/CloudTrail-Digest/%s/%s/%s" % (ACCOUNT, region, end.strftime("%Y/%m/%d"), name)

    def log_file(self, region, t):
        """Delivers a log file at time t; returns its digest entry."""
        key = self.log_key(region, t)
        events = []
        n = self.events_per_file
        for i in range(n):
            when = t - dt.timedelta(seconds=240 * (n - 1 - i) // max(n - 1, 1))
            events.append(
                {
                    "eventVersion": "1.08",
                    "userIdentity": {
                        "type": "IAMUser",
                        "principalId": "AIDAEXAMPLE",
                        "arn": "arn:aws:iam::%s:user/alice" % ACCOUNT,
                        "accountId": ACCOUNT,
                        "userName": "alice",
                    },
                    "eventTime": iso(when),
                    "eventSource": "ec2.amazonaws.com",
                    "eventName": "DescribeInstances",
                    "awsRegion": region,
                    "sourceIPAddress": "198.51.100.%d" % (i + 1),
                    "userAgent": "aws-cli/2.15.0",
                    "requestParameters": {"maxResults": 5},
                    "responseElements": None,
                    "requestID": str(uuid.UUID(int=self.rng.getrandbits(128))),
                    "eventID": str(uuid.UUID(int=self.rng.getrandbits(128))),
                    "readOnly": True,
                    "eventType": "AwsApiCall",
                    "managementEvent": True,
                    "recipientAccountId": ACCOUNT,
                    "eventCategory": "Management",
                }
            )
        content = json.dumps({"Records": events}, separators=(",", ":")).encode()
        self.files[key] = gz(content)
        return {
            "s3Bucket": self.bucket,
            "s3Object": key,
            "hashValue": hashlib.sha256(content).hexdigest(),
            "hashAlgorithm": "SHA-256",
            "newestEventTime": events[-1]["eventTime"],
            "oldestEventTime": events[0]["eventTime"],
        }

    def digest(self, region, start, end, entries, key, previous, signer=None, backfill=False):
        """Writes a signed digest; previous is (key, content, signature) or None. Returns the same for it."""
        signer = signer or key
        dkey = self.digest_key(region, end, backfill)
        body = {
            "awsAccountId": ACCOUNT,
            "digestStartTime": iso(start),
            "digestEndTime": iso(end),
            "digestS3Bucket": self.bucket,
            "digestS3Object": dkey,
            "digestPublicKeyFingerprint": key["fingerprint"],
            "digestSignatureAlgorithm": "SHA256withRSA",
            "newestEventTime": max((e["newestEventTime"] for e in entries), default=None),
            "oldestEventTime": min((e["oldestEventTime"] for e in entries), default=None),
            "previousDigestS3Bucket": self.bucket if previous else None,
            "previousDigestS3Object": previous[0] if previous else None,
            "previousDigestHashValue": hashlib.sha256(previous[1]).hexdigest() if previous else None,
            "previousDigestHashAlgorithm": "SHA-256" if previous else None,
            "previousDigestSignature": previous[2] if previous else None,
            "logFiles": entries,
        }
        content = json.dumps(body).encode()
        to_sign = "%s\n%s/%s\n%s\n%s" % (
            body["digestEndTime"],
            self.bucket,
            dkey,
            hashlib.sha256(content).hexdigest(),
            body["previousDigestSignature"] or "null",
        )
        signature = sign(signer, to_sign)
        self.files[dkey] = gz(content)
        self.signatures[dkey] = {"signature": signature, "signature-algorithm": "SHA256withRSA"}
        if backfill:
            # The AWS CLI's validator also wants this on backfill digest objects.
            self.signatures[dkey]["backfill-generation-timestamp"] = iso(end)
        return (dkey, content, signature)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--bucket", default="signed-trail")
    parser.add_argument("--intact", action="store_true", help="plant no problem (every digest signed by CloudTrail's key)")
    parser.add_argument("--files-per-hour", type=int, default=2, help="log files per region and hour (bench: more)")
    parser.add_argument("--events-per-file", type=int, default=3)
    args = parser.parse_args()
    trail = Trail(args.out, args.bucket, args.events_per_file)

    keys = {"us-east-1": [new_key(), new_key()], "eu-west-1": [new_key()]}
    rogue = new_key()  # not published: a forger's key
    manifest = {"account": ACCOUNT, "bucket": args.bucket, "planted": [], "chains": {}, "empty_digests": [],
                "backfill_digests": [], "rotation": {}, "logs_per_digest": {}}
    plan = {}  # names of the files to tamper with, chosen while writing

    for region in REGIONS:
        previous = None
        chain = []
        for hour in range(HOURS):
            start = START + dt.timedelta(hours=hour)
            end = start + dt.timedelta(hours=1)
            entries = []
            empty_hour = region == "us-east-1" and hour == 3
            if not empty_hour:
                for i in range(args.files_per_hour):
                    minute = 10 + 25 * i // max(args.files_per_hour - 1, 1) if args.files_per_hour > 1 else 10
                    entries.append(trail.log_file(region, start + dt.timedelta(minutes=minute, seconds=i % 60)))
            if region == "eu-west-1" and hour == 2:
                # Delivered late: listed by a backfill digest, not by this hour's.
                late = trail.log_file(region, start + dt.timedelta(minutes=50))
                plan["backfill_entry"] = late
            region_keys = keys[region]
            key = region_keys[0] if (region == "eu-west-1" or hour < 4) else region_keys[1]
            signer = rogue if (region == "us-east-1" and hour == 2 and not args.intact) else None
            previous = trail.digest(region, start, end, entries, key, previous, signer=signer)
            chain.append(previous[0])
            manifest["logs_per_digest"][previous[0]] = [e["s3Object"] for e in entries]
            if empty_hour:
                manifest["empty_digests"].append(previous[0])
            if signer is rogue:
                manifest["planted"].append({"kind": "digest-wrong-key", "file": previous[0]})
            if region == "us-east-1" and hour == 4:
                manifest["rotation"] = {"from": keys[region][0]["fingerprint"], "to": keys[region][1]["fingerprint"],
                                        "first_digest": previous[0]}
        manifest["chains"]["%s/%s" % (region, TRAIL)] = chain
        if region == "eu-west-1":
            start = START + dt.timedelta(hours=3)
            end = start + dt.timedelta(hours=1, minutes=7)
            backfill = trail.digest(region, start, end, [plan["backfill_entry"]], keys[region][0], None, backfill=True)
            manifest["backfill_digests"].append(backfill[0])
            manifest["logs_per_digest"][backfill[0]] = [plan["backfill_entry"]["s3Object"]]

    # The planted problems, after signing.
    east = manifest["chains"]["us-east-1/%s" % TRAIL]
    west = manifest["chains"]["eu-west-1/%s" % TRAIL]
    if not args.intact:
        plant(trail, manifest, east, west)
    write(trail, manifest, keys, args.out)


def plant(trail, manifest, east, west):
    # One log file changed by a byte (in its uncompressed content).
    changed = manifest["logs_per_digest"][east[1]][0]
    content = gzip.decompress(trail.files[changed])
    at = content.index(b"DescribeInstances")
    trail.files[changed] = gz(content[:at] + b"d" + content[at + 1 :])
    manifest["planted"].append({"kind": "log-changed", "file": changed})
    # One log file deleted.
    deleted = manifest["logs_per_digest"][west[2]][1]
    del trail.files[deleted]
    manifest["planted"].append({"kind": "log-deleted", "file": deleted})
    # One digest deleted: its log files are then covered by no digest.
    gone = east[5]
    del trail.files[gone]
    del trail.signatures[gone]
    manifest["planted"].append({"kind": "digest-deleted", "file": gone, "uncovered": manifest["logs_per_digest"][gone]})
    # One digest changed (a time in it), its signature kept.
    edited = west[4]
    body = json.loads(gzip.decompress(trail.files[edited]))
    body["oldestEventTime"] = "2024-03-01T00:00:00Z"
    trail.files[edited] = gz(json.dumps(body).encode())
    manifest["planted"].append({"kind": "digest-changed", "file": edited})


def write(trail, manifest, keys, out):
    for key, data in trail.files.items():
        path = os.path.join(trail.root, key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    published = []
    for region, region_keys in keys.items():
        for i, key in enumerate(region_keys):
            published.append(
                {
                    "Value": base64.b64encode(key["der"]).decode(),
                    "ValidityStartTime": iso(START - dt.timedelta(days=30) + dt.timedelta(hours=4 * i)),
                    "ValidityEndTime": iso(START + dt.timedelta(days=30)),
                    "Fingerprint": key["fingerprint"],
                }
            )
    with open(os.path.join(out, "public-keys.json"), "w") as f:
        json.dump({"PublicKeyList": published}, f, indent=2)
    with open(os.path.join(out, "signatures.json"), "w") as f:
        json.dump(trail.signatures, f, indent=2)
    manifest["log_files"] = sorted(k for k in trail.files if "/CloudTrail/" in k)
    manifest["digests"] = sorted(k for k in trail.files if "/CloudTrail-Digest/" in k)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)


if __name__ == "__main__":
    main()

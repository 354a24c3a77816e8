#!/usr/bin/env python3
"""Runs the AWS CLI's own validator (`aws cloudtrail validate-logs`) offline.

Usage: awscli-validate.py ENDPOINT BUCKET TRAIL_ARN START END PUBLIC_KEYS_JSON REGION...

Needs a Python with the `awscli` package (v1, from PyPI). The CLI command
asks CloudTrail's ListPublicKeys and S3; here S3 is the endpoint given (the
test S3 server) and the public keys come from the JSON that
`aws cloudtrail list-public-keys` prints (as `gen-signed-trail.py` writes it),
so nothing reaches AWS. Everything else is the CLI's code: listing the
digests, following the chain, checking signatures, hashing the log files.
Its status lines go to stdout and stderr as the CLI writes them, one run per
source region; the exit status is 1 when any run found something invalid.
"""

import json
import sys

import botocore.session
from awscli.customizations.cloudtrail.validation import (
    CloudTrailValidateLogs,
    normalize_date,
    parse_date,
)


class Keys:
    """Stands in for the CloudTrail client: only list_public_keys is asked."""

    def __init__(self, path):
        with open(path) as f:
            self.keys = json.load(f)["PublicKeyList"]

    def list_public_keys(self, **_):
        # The CLI reads blobs undecoded: Value stays base64, as the JSON has it.
        return {"PublicKeyList": self.keys}


class S3Clients:
    def __init__(self, endpoint):
        session = botocore.session.get_session()
        self.client = session.create_client(
            "s3",
            region_name="us-east-1",
            endpoint_url=endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    def get_client(self, bucket_name):
        return self.client


def main():
    endpoint, bucket, arn, start, end, keys = sys.argv[1:7]
    invalid = False
    for region in sys.argv[7:]:
        command = CloudTrailValidateLogs(botocore.session.get_session())
        command.trail_arn = arn
        command.is_verbose = True
        command.s3_bucket = bucket
        command.s3_prefix = None
        command.account_id = arn.split(":")[4]
        command.start_time = normalize_date(parse_date(start))
        command.end_time = normalize_date(parse_date(end))
        command._source_region = region
        command.s3_client_provider = S3Clients(endpoint)
        command.organization_client = None
        command.cloudtrail_client = Keys(keys)
        command._call()
        sys.stdout.flush()
        invalid |= command._invalid_digests + command._invalid_backfill_digests + command._invalid_logs > 0
    sys.exit(1 if invalid else 0)


if __name__ == "__main__":
    main()

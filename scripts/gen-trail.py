#!/usr/bin/env python3
"""Write a synthetic CloudTrail trail with the real layout and realistic content.

    scripts/gen-trail.py OUT_DIR [--events N] [--files F] [--accounts A] [--regions R]
                         [--days D] [--start YYYY-MM-DD] [--seed S] [--level 1..9]
                         [--large-event-rate P] [--jobs J] [--quiet]
    scripts/gen-trail.py OUT_DIR --shape real [--events N] [--accounts A] [--days D] [--seed S] ...
    scripts/gen-trail.py OUT_DIR --large-file-mb MB [--seed S] [--level 1..9]

A developer tool for scripts/bench (not part of ctindex). Layout, as CloudTrail
delivers to S3:

    OUT_DIR/AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/
        <account>_CloudTrail_<region>_<YYYYMMDD>T<HHMM>Z_<random16>.json.gz

each file a gzip'd `{"Records":[...]}`. What is modeled on real trails (the
project's tests/fixtures and the shared corpus, see its SOURCES.md):

- files: one per account and region per 5-minute slot with activity. Each
  (account, region) stream gets a log-normal activity level: a few busy streams
  (us-east-1 of the main accounts) deliver a file almost every 5 minutes with
  hundreds to thousands of events, many quiet ones a file now and then with a
  handful of events; more files and events during office hours (UTC). The
  totals are exactly --events over --files (default 200 events per file).
- payloads: the 3,210 real events of tests/fixtures (invictus-ir and Stratus
  Red Team: EC2, SSM, IAM, S3, KMS, Secrets Manager, RDS, STS, ... with their
  nested requestParameters/responseElements, errors such as
  ThrottlingException and AccessDenied, tlsDetails, vpcEndpointId), picked
  at random; eventID, requestID, eventTime, awsRegion, recipientAccountId are
  fresh; the template's account id is replaced everywhere (ARNs too).
- callers: the template's identity, user agent and source IP are replaced by a
  caller drawn from per-account pools with a realistic mix: application
  roles (Lambda/ECS: boto3, SDKs for JS, Go, Java, .NET), AWS services
  (AWSService / service-linked roles, `invokedBy`, service host names,
  "AWS Internal"), infrastructure as code (Terraform, CloudFormation, Pulumi,
  Ansible), EC2 instance roles (SDKs, SSM agent, aws-cli), people through the
  console (SSO roles, S3Console, browsers, `sessionCredentialFromConsole`) and
  the aws-cli, legacy IAM users with access keys, rarely the root user;
  ConsoleLogin events always come from people in browsers. AwsServiceEvent
  templates keep their service identity.
- large events: about one event in --large-event-rate (default 10,000) is a
  large one, 40 to 250 KB (CloudTrail's limit is 256 KB): a RunInstances
  answering for many instances (deeply nested responseElements) or a
  CloudFormation CreateStack with a big templateBody string.

--shape real writes the shape of real trails instead: millions of tiny objects.
CloudTrail writes one file per region about every five minutes, so a quiet region
delivers many files of one to ten events. Fitted on public trails:

- events per file: max(1, round(X)), X log-normal with sigma 1.64 and mu 0.70
  (capped at 5,000). sigma is the spread of the only multi-file real trail in
  ../shared/cloudtrail-corpus, invictus-ir/aws_dataset (55 files of one
  region in one hour, 1 to 394 events, log-normal fit mu 2.88, sigma 1.64: a
  busy hour); mu makes the mean 7.9 events per file, that of the public
  17-region lab trail of issue 20 (3,872 files, 30,477 events, about 11 KB of
  JSON per file; not in the corpus). Result: median 2 events, p90 16, p99 ~90,
  mean 7.9; with the fixtures' payloads (1.3-1.4 KB of JSON per event) about
  11 KB of JSON and 3 KB gzip'd per file on average, most files under 4 KB.
- regions: the 17 regions enabled by default (us-east-1 first, as home).
- when: each account's home region delivers a file in most 5-minute slots of
  office hours (UTC) and in fewer at night; the 16 quiet regions a file in
  about one slot in twenty, day and night (AWS services acting for the
  account). --days defaults to what that density needs for --events.
- which files are big: counts are paired with slots by rank of a noisy
  busyness (home region, office hours), so the largest files are there.
--files is derived (about --events / 7.9); --accounts defaults to 1.

--large-file-mb MB writes instead one single log file of at least MB MB
compressed (for the memory benchmark), with the same content.

Deterministic: the output depends only on the arguments (and the fixtures):
every file has its own RNG seeded from --seed and its number, so --jobs does
not change a byte; gzip headers carry mtime 0. A manifest,
`OUT_DIR/gen-trail.manifest` (JSON, deliberately not *.json so importers do not
read it), is written last: its presence means the trail is complete. The last
line printed is a JSON object with the counts (files, events, bytes,
uncompressed_bytes), for scripts.
"""

import argparse
import calendar
import datetime as dt
import glob
import gzip
import hashlib
import json
import math
import multiprocessing
import os
import random
import sys
import time
import zlib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIL_GLOB = os.path.join(REPO, "tests/fixtures/trail/**/*.json.gz")
STRATUS_GLOB = os.path.join(REPO, "tests/fixtures/samples/stratus/*.json")
MANIFEST = "gen-trail.manifest"

# Regions in order of typical activity (the busy streams get the first ones).
REGIONS = [
    "us-east-1", "eu-west-1", "us-west-2", "eu-central-1", "ap-northeast-1",
    "us-east-2", "ap-southeast-2", "eu-west-2", "ap-southeast-1", "ca-central-1",
    "sa-east-1", "ap-south-1", "eu-north-1", "us-west-1", "eu-west-3", "ap-northeast-2",
    "ap-northeast-3", "eu-south-1", "me-central-1", "af-south-1",
]
ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
UPPER_DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

# Markers spliced into each template's serialized JSON. Those in quotes in
# QUOTED replace a whole JSON value (quotes included); the others the inside
# of a string.
M_ID, M_TIME, M_ACCT, M_REGION, M_REQ = "@@id@@", "@@time@@", "@@acct@@", "@@region@@", "@@req@@"
M_UA, M_IP = "@@ua@@", "@@ip@@"
M_IDENT = '"@@ident@@"'
M_EXTRA = ',"@@extra@@":0'
MARKERS = (M_IDENT, M_EXTRA, M_ID, M_TIME, M_ACCT, M_REGION, M_REQ, M_UA, M_IP)

# ------------------------------------------------------------------ callers

# Caller profiles: (name, share of API calls).
PROFILES = [
    ("app", 0.30),       # Lambda / ECS / EKS workloads through the SDKs
    ("service", 0.24),   # AWS services acting for the account
    ("iac", 0.14),       # Terraform, CloudFormation, Pulumi, Ansible
    ("ec2", 0.10),       # instance roles: SDKs, SSM agent, aws-cli
    ("console", 0.09),   # people in the console
    ("cli", 0.09),       # people with the aws-cli
    ("iamuser", 0.035),  # legacy IAM users with long-term keys
    ("root", 0.005),
]

PEOPLE = ["alice", "bob", "carol", "dmitri", "emma", "farid", "grace", "hiro", "ines", "jonas", "kemal", "lena"]
APPS = ["orders-api", "billing-worker", "image-resizer", "audit-export", "session-cleanup", "report-builder",
        "payments-sync", "search-indexer", "notifier", "etl-nightly", "user-service", "inventory", "webhooks",
        "feature-flags", "ledger"]
SERVICES = ["config.amazonaws.com", "cloudformation.amazonaws.com", "autoscaling.amazonaws.com",
            "elasticloadbalancing.amazonaws.com", "lambda.amazonaws.com", "ecs.amazonaws.com",
            "ec2.amazonaws.com", "access-analyzer.amazonaws.com", "guardduty.amazonaws.com",
            "securityhub.amazonaws.com", "inspector2.amazonaws.com", "ssm.amazonaws.com",
            "backup.amazonaws.com", "trustedadvisor.amazonaws.com", "cloudtrail.amazonaws.com",
            "resource-explorer-2.amazonaws.com"]
SERVICE_ROLES = {
    "config.amazonaws.com": "AWSServiceRoleForConfig",
    "autoscaling.amazonaws.com": "AWSServiceRoleForAutoScaling",
    "elasticloadbalancing.amazonaws.com": "AWSServiceRoleForElasticLoadBalancing",
    "ecs.amazonaws.com": "AWSServiceRoleForECS",
    "guardduty.amazonaws.com": "AWSServiceRoleForAmazonGuardDuty",
    "securityhub.amazonaws.com": "AWSServiceRoleForSecurityHub",
    "inspector2.amazonaws.com": "AWSServiceRoleForAmazonInspector2",
    "access-analyzer.amazonaws.com": "AWSServiceRoleForAccessAnalyzer",
    "backup.amazonaws.com": "AWSServiceRoleForBackup",
    "trustedadvisor.amazonaws.com": "AWSServiceRoleForTrustedAdvisor",
    "resource-explorer-2.amazonaws.com": "AWSServiceRoleForResourceExplorer",
}
KERNELS = ["5.10.205-195.807.amzn2.x86_64", "5.10.210-201.852.amzn2.x86_64", "6.1.72-96.166.amzn2023.x86_64",
           "6.1.77-99.164.amzn2023.aarch64", "5.15.0-1051-aws", "6.5.0-1014-aws"]
BROWSERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{c}.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{c}.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:{f}.0) Gecko/20100101 Firefox/{f}.0",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:{f}.0) Gecko/20100101 Firefox/{f}.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.{s} Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{c}.0.0.0 Safari/537.36 Edg/{c}.0.0.0",
]
CLI_COMMANDS = ["ec2.describe-instances", "s3.ls", "sts.get-caller-identity", "logs.tail", "ssm.start-session",
                "iam.list-roles", "lambda.invoke", "ecr.get-login-password", "eks.update-kubeconfig",
                "cloudformation.describe-stacks", "secretsmanager.get-secret-value", "s3.cp"]
SDK_APIS = ["s3", "dynamodb", "sqs", "sns", "kms", "secretsmanager", "ssm", "sts", "ec2", "lambda", "events",
            "cloudwatch", "logs", "ecr", "ecs", "rds"]


def ua_app(r):
    k = r.choice(KERNELS)
    v = r.randrange
    return r.choice([
        f"Boto3/1.34.{v(10, 60)} md/Botocore#1.34.{v(10, 60)} ua/2.0 os/linux#{k} md/arch#x86_64 "
        f"lang/python#3.12.{v(0, 4)} md/pyimpl#CPython exec-env/AWS_Lambda_python3.12 cfg/retry-mode#legacy "
        f"Botocore/1.34.{v(10, 60)}",
        f"Boto3/1.28.{v(1, 80)} Python/3.11.{v(1, 8)} Linux/{k} exec-env/AWS_ECS_FARGATE Botocore/1.31.{v(1, 80)}",
        f"aws-sdk-js/3.{v(400, 520)}.0 ua/2.0 os/linux#{k} lang/js md/nodejs#20.{v(8, 12)}.0 "
        f"api/{r.choice(SDK_APIS)}#3.{v(400, 520)}.0 exec-env/AWS_Lambda_nodejs20.x",
        f"aws-sdk-nodejs/2.{v(1300, 1550)}.0 linux/v18.{v(10, 19)}.0 exec-env/AWS_Lambda_nodejs18.x "
        f"promise",
        f"aws-sdk-go-v2/1.24.{v(0, 9)} os/linux lang/go#1.21.{v(1, 9)} md/GOOS#linux md/GOARCH#arm64 "
        f"api/{r.choice(SDK_APIS)}#1.{v(20, 60)}.{v(0, 9)}",
        f"aws-sdk-java/2.21.{v(1, 46)} Linux/{k} OpenJDK_64-Bit_Server_VM/17.0.{v(6, 10)}+7-LTS "
        f"Java/17.0.{v(6, 10)} vendor/Amazon.com_Inc. io/sync http/Apache cfg/retry-mode/legacy",
        f"aws-sdk-dotnet-coreclr/3.7.{v(200, 400)}.0 aws-sdk-dotnet-core/3.7.{v(300, 310)}.0 .NET_Core/8.0.{v(0, 3)} "
        f"OS/Linux_{k} ClientAsync",
    ])


def ua_ec2(r):
    k = r.choice(KERNELS)
    v = r.randrange
    return r.choice([
        f"aws-sdk-go/1.44.{v(100, 330)} (go1.20.{v(1, 14)}; linux; amd64) amazon-ssm-agent/3.2.{v(1000, 2200)}.0",
        f"aws-cli/2.15.{v(1, 30)} Python/3.11.{v(6, 8)} Linux/{k} exe/x86_64.amzn.2023 prompt/off "
        f"command/{r.choice(CLI_COMMANDS)}",
        f"aws-sdk-java/1.12.{v(400, 650)} Linux/{k} OpenJDK_64-Bit_Server_VM/11.0.{v(18, 22)}+9-LTS "
        f"java/11.0.{v(18, 22)} vendor/Amazon.com_Inc. cfg/retry-mode/standard",
        f"Boto3/1.26.{v(1, 160)} Python/3.9.{v(10, 18)} Linux/{k} Botocore/1.29.{v(1, 160)}",
        f"aws-sdk-go/1.50.{v(0, 30)} (go1.21.{v(1, 9)}; linux; amd64)",
    ])


def ua_iac(r):
    v = r.randrange
    return r.choice([
        f"APN/1.0 HashiCorp/1.0 Terraform/1.{v(5, 8)}.{v(0, 6)} (+https://www.terraform.io) "
        f"terraform-provider-aws/5.{v(20, 40)}.0 (+https://registry.terraform.io/providers/hashicorp/aws) "
        f"aws-sdk-go-v2/1.24.{v(0, 9)} os/linux lang/go#1.21.{v(1, 9)} md/GOOS#linux md/GOARCH#amd64 "
        f"api/{r.choice(SDK_APIS)}#1.{v(20, 140)}.{v(0, 9)}",
        f"APN/1.0 HashiCorp/1.0 Terraform/1.{v(3, 6)}.{v(0, 9)} (+https://www.terraform.io) "
        f"terraform-provider-aws/4.{v(50, 67)}.0 (+https://registry.terraform.io/providers/hashicorp/aws) "
        f"aws-sdk-go/1.44.{v(200, 330)} (go1.19.{v(1, 9)}; linux; amd64)",
        "cloudformation.amazonaws.com",
        f"aws-sdk-go/1.50.{v(0, 30)} (go1.21.{v(1, 9)}; linux; amd64) APN/1.0 Pulumi/1.0 "
        f"PulumiAWS/6.{v(10, 30)}.0",
        f"APN/1.0 Ansible/2.{v(14, 17)}.{v(0, 9)} Boto3/1.34.{v(10, 60)} Python/3.11.{v(1, 8)} "
        f"Linux/{r.choice(KERNELS)} Botocore/1.34.{v(10, 60)} Resource",
    ])


def ua_console(r):
    v = r.randrange
    return r.choice([
        "AWS Internal",
        "console.amazonaws.com",
        f"[S3Console/0.4, aws-internal/3 aws-sdk-java/1.12.{v(400, 650)} Linux/5.10.{v(200, 220)}-{v(100, 200)}."
        f"{v(300, 900)}.amzn2int.x86_64 OpenJDK_64-Bit_Server_VM/25.{v(372, 402)}-b08 java/1.8.0_{v(372, 402)} "
        f"vendor/Oracle_Corporation cfg/retry-mode/standard]",
        browser(r),
    ])


def browser(r):
    return r.choice(BROWSERS).format(c=r.randrange(118, 126), f=r.randrange(118, 125), s=r.randrange(1, 4))


def ua_cli(r):
    v = r.randrange
    return r.choice([
        f"aws-cli/2.15.{v(1, 30)} Python/3.11.{v(6, 8)} Darwin/23.{v(0, 4)}.0 exe/x86_64 prompt/off "
        f"command/{r.choice(CLI_COMMANDS)}",
        f"aws-cli/2.13.{v(1, 30)} Python/3.11.{v(4, 6)} Linux/{r.choice(KERNELS)} exe/x86_64.ubuntu.22 "
        f"prompt/off command/{r.choice(CLI_COMMANDS)}",
        f"aws-cli/2.15.{v(1, 30)} Python/3.11.{v(6, 8)} Windows/10 exe/AMD64 prompt/off "
        f"command/{r.choice(CLI_COMMANDS)}",
        f"aws-cli/1.29.{v(1, 80)} Python/3.9.{v(10, 18)} Linux/{r.choice(KERNELS)} botocore/1.31.{v(1, 80)}",
    ])


def ua_iamuser(r):
    return r.choice([ua_cli(r), ua_app(r), ua_iac(r)])


def public_ip(r):
    first = r.choice([3, 13, 18, 34, 35, 44, 52, 54, 62, 78, 81, 85, 91, 109, 176, 185, 203, 212])
    return f"{first}.{r.randrange(0, 256)}.{r.randrange(0, 256)}.{r.randrange(1, 255)}"


def private_ip(r):
    return f"10.{r.randrange(0, 256)}.{r.randrange(0, 256)}.{r.randrange(1, 255)}"


def key_id(r, prefix):
    return prefix + "".join(r.choice(UPPER_DIGITS) for _ in range(16))


def principal(r, prefix):
    return prefix + "".join(r.choice(UPPER_DIGITS) for _ in range(17))


def session_context(r, role_arn, role_id, account, role_name, console):
    ctx = {
        "sessionIssuer": {"type": "Role", "principalId": role_id, "arn": role_arn,
                          "accountId": account, "userName": role_name},
        "attributes": {"creationDate": "@@cdate@@", "mfaAuthenticated": "true" if console else "false"},
    }
    if not console:
        ctx["webIdFederationData"] = {}
    return ctx


class Caller:
    """One identity of one account, pre-serialized, with its user agents and IPs."""

    __slots__ = ("ident", "uas", "ips", "extra")

    def __init__(self, ident, uas, ips, extra=""):
        self.ident = json.dumps(ident, separators=(",", ":"))
        self.uas = [json.dumps(u)[1:-1] for u in uas]
        self.ips = ips
        self.extra = extra


def assumed_role(r, account, role_name, session, path="/"):
    role_id = principal(r, "AROA")
    role_arn = f"arn:aws:iam::{account}:role{path}{role_name}"
    return role_arn, role_id, {
        "type": "AssumedRole",
        "principalId": f"{role_id}:{session}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role_name}/{session}",
        "accountId": account,
        "accessKeyId": key_id(r, "ASIA"),
    }


def account_callers(r, account):
    """The caller pools of one account, by profile."""
    pools = {p: [] for p, _ in PROFILES}
    sso_admin = f"AWSReservedSSO_AdministratorAccess_{r.getrandbits(64):016x}"
    sso_dev = f"AWSReservedSSO_DeveloperAccess_{r.getrandbits(64):016x}"
    people = r.sample(PEOPLE, 6)
    for person in people:
        role = r.choice([sso_admin, sso_dev])
        email = f"{person}@example.com"
        arn, rid, ident = assumed_role(r, account, role, email, "/aws-reserved/sso.amazonaws.com/")
        ident["sessionContext"] = session_context(r, arn, rid, account, role, True)
        home = public_ip(r)
        pools["console"].append(Caller(ident, [ua_console(r) for _ in range(3)], [home, public_ip(r)],
                                       ',"sessionCredentialFromConsole":"true"'))
        arn, rid, ident = assumed_role(r, account, role, email, "/aws-reserved/sso.amazonaws.com/")
        ident["sessionContext"] = session_context(r, arn, rid, account, role, False)
        pools["cli"].append(Caller(ident, [ua_cli(r)], [home]))
    for app in r.sample(APPS, 8):
        role = f"{app}-role-{''.join(r.choice(ALNUM[26:]) for _ in range(8))}"
        arn, rid, ident = assumed_role(r, account, role, app)
        ident["sessionContext"] = session_context(r, arn, rid, account, role, False)
        pools["app"].append(Caller(ident, [ua_app(r)], [public_ip(r), public_ip(r), private_ip(r)]))
    for _ in range(6):
        instance = f"i-0{r.getrandbits(64):016x}"
        role = r.choice(["ec2-app-instance-role", "ecs-container-instance", "eks-node-group-role",
                         "bastion-instance-role", "batch-compute-role"])
        arn, rid, ident = assumed_role(r, account, role, instance)
        ident["sessionContext"] = session_context(r, arn, rid, account, role, False)
        ident["sessionContext"]["ec2RoleDelivery"] = "2.0"
        pools["ec2"].append(Caller(ident, [ua_ec2(r), ua_ec2(r)], [private_ip(r), public_ip(r)]))
    for role, session in [("github-actions-deploy", "GitHubActions"), ("terraform-apply", "terraform-ci"),
                          ("cdk-hnb659fds-cfn-exec-role", "AWSCloudFormation"), ("atlantis", "atlantis")]:
        arn, rid, ident = assumed_role(r, account, role, session)
        ident["sessionContext"] = session_context(r, arn, rid, account, role, False)
        pools["iac"].append(Caller(ident, [ua_iac(r), ua_iac(r)], [public_ip(r), public_ip(r)]))
    for service in SERVICES:
        if service in SERVICE_ROLES and r.random() < 0.6:
            role = SERVICE_ROLES[service]
            arn, rid, ident = assumed_role(
                r, account, role, service.split(".")[0].title() + "Session",
                f"/aws-service-role/{service}/")
            ident["sessionContext"] = session_context(r, arn, rid, account, role, False)
            ident["invokedBy"] = service
        else:
            ident = {"type": "AWSService", "invokedBy": service}
        via = "AWS Internal" if r.random() < 0.3 else service
        pools["service"].append(Caller(ident, [via], [via]))
    for user in ["ci-legacy", "backup-sync", "monitoring-readonly"]:
        ident = {"type": "IAMUser", "principalId": principal(r, "AIDA"),
                 "arn": f"arn:aws:iam::{account}:user/{user}", "accountId": account,
                 "accessKeyId": key_id(r, "AKIA"), "userName": user}
        pools["iamuser"].append(Caller(ident, [ua_iamuser(r)], [public_ip(r)]))
    ident = {"type": "Root", "principalId": account, "arn": f"arn:aws:iam::{account}:root",
             "accountId": account, "accessKeyId": key_id(r, "ASIA"),
             "sessionContext": {"sessionIssuer": {}, "webIdFederationData": {},
                                "attributes": {"creationDate": "@@cdate@@", "mfaAuthenticated": "true"}}}
    pools["root"].append(Caller(ident, [browser(r), "console.amazonaws.com"], [public_ip(r)],
                                ',"sessionCredentialFromConsole":"true"'))
    # People log in with a browser.
    logins = [Caller(json.loads(c.ident), [browser(r)], c.ips) for c in pools["console"] + pools["root"]]
    return pools, logins


# ------------------------------------------------------------------ templates


def is_event(value):
    return (
        isinstance(value, dict)
        and isinstance(value.get("eventName"), str)
        and any(k in value for k in ("eventSource", "eventVersion", "eventTime", "eventID"))
    )


def load_fixture_events():
    events = []
    for path in sorted(glob.glob(TRAIL_GLOB, recursive=True)):
        if "CloudTrail-Digest" in path:
            continue
        with gzip.open(path, "rb") as f:
            doc = json.load(f)
        if isinstance(doc, dict) and isinstance(doc.get("Records"), list):
            events.extend(e for e in doc["Records"] if is_event(e))
    for path in sorted(glob.glob(STRATUS_GLOB)):
        with open(path, "rb") as f:
            doc = json.load(f)
        if isinstance(doc, list):
            events.extend(e for e in doc if is_event(e))
    return events


def split_all(text, markers):
    """Splits text into literal pieces and marker pieces, in order."""
    out = []
    i = 0
    while True:
        best = None
        for m in markers:
            j = text.find(m, i)
            if j >= 0 and (best is None or j < best[0]):
                best = (j, m)
        if best is None:
            out.append(text[i:])
            return [p for p in out if p]
        j, m = best
        out.append(text[i:j])
        out.append(m)
        i = j + len(m)


class Template:
    """One fixture event as text pieces around the markers.

    kind: "call" (caller replaced), "login" (ConsoleLogin: a person in a
    browser), "service" (AwsServiceEvent or no identity: kept)."""

    __slots__ = ("parts", "kind")

    def __init__(self, event):
        event = dict(event)
        uid = event.get("userIdentity")
        account = event.get("recipientAccountId")
        if not (isinstance(account, str) and account.isdigit() and len(account) == 12):
            account = uid.get("accountId") if isinstance(uid, dict) else None
        event["eventID"] = M_ID
        event["eventTime"] = M_TIME
        event["recipientAccountId"] = M_ACCT
        event["awsRegion"] = M_REGION
        if "requestID" in event:
            event["requestID"] = M_REQ
        if event.get("eventName") == "ConsoleLogin":
            self.kind = "login"
        elif event.get("eventType") == "AwsServiceEvent" or not isinstance(uid, dict) or uid.get("type") == "AWSService":
            self.kind = "service"
        else:
            self.kind = "call"
        if self.kind != "service":
            event["userIdentity"] = M_IDENT[1:-1]
            event["userAgent"] = M_UA
            event["sourceIPAddress"] = M_IP
            event.pop("sessionCredentialFromConsole", None)
            event["@@extra@@"] = 0
        text = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
        if isinstance(account, str) and account.isdigit() and len(account) == 12:
            text = text.replace(account, M_ACCT)
        self.parts = split_all(text, MARKERS)


def uuid4(r):
    h = "%032x" % r.getrandbits(128)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def large_event(r, account, region, when, caller):
    """A 40-250 KB event: RunInstances for many instances, or CreateStack with a big template."""
    target = r.randrange(40_000, 250_000)
    ident = json.loads(caller.ident.replace("@@cdate@@", when[:10] + "T07:12:44Z"))
    event = {
        "eventVersion": "1.09",
        "userIdentity": ident,
        "eventTime": when,
        "awsRegion": region,
        "sourceIPAddress": r.choice(caller.ips),
        "userAgent": json.loads('"' + r.choice(caller.uas) + '"'),
        "requestID": uuid4(r),
        "eventID": uuid4(r),
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
        "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256"},
    }
    if r.random() < 0.5:
        event["eventSource"] = "ec2.amazonaws.com"
        event["eventName"] = "RunInstances"
        event["tlsDetails"]["clientProvidedHostHeader"] = f"ec2.{region}.amazonaws.com"
        subnet = f"subnet-0{r.getrandbits(64):016x}"
        vpc = f"vpc-0{r.getrandbits(64):016x}"
        sg = f"sg-0{r.getrandbits(64):016x}"
        event["requestParameters"] = {
            "instancesSet": {"items": [{"imageId": f"ami-0{r.getrandbits(64):016x}", "minCount": 1, "maxCount": 500}]},
            "instanceType": "c6i.large", "blockDeviceMapping": {}, "monitoring": {"enabled": False},
            "disableApiTermination": False, "subnetId": subnet,
            "tagSpecificationSet": {"items": [{"resourceType": "instance", "tags": [
                {"key": "Name", "value": "batch-worker"}, {"key": "team", "value": "data"}]}]},
        }
        items = []
        size = 0
        while size < target:
            ip = private_ip(r)
            item = {
                "instanceId": f"i-0{r.getrandbits(64):016x}", "imageId": event["requestParameters"]["instancesSet"]["items"][0]["imageId"],
                "instanceState": {"code": 0, "name": "pending"}, "privateDnsName": f"ip-{ip.replace('.', '-')}.ec2.internal",
                "amiLaunchIndex": len(items), "productCodes": {}, "instanceType": "c6i.large",
                "launchTime": calendar.timegm(time.strptime(when, "%Y-%m-%dT%H:%M:%SZ")) * 1000,
                "placement": {"availabilityZone": region + r.choice("abc"), "tenancy": "default"},
                "monitoring": {"state": "disabled"}, "subnetId": subnet, "vpcId": vpc, "privateIpAddress": ip,
                "stateReason": {"code": "pending", "message": "pending"}, "architecture": "x86_64",
                "rootDeviceType": "ebs", "rootDeviceName": "/dev/xvda", "blockDeviceMapping": {},
                "virtualizationType": "hvm", "clientToken": uuid4(r),
                "groupSet": {"items": [{"groupId": sg, "groupName": "batch-workers"}]},
                "sourceDestCheck": True, "hypervisor": "xen",
                "networkInterfaceSet": {"items": [{
                    "networkInterfaceId": f"eni-0{r.getrandbits(64):016x}", "subnetId": subnet, "vpcId": vpc,
                    "ownerId": account, "status": "in-use", "macAddress": ":".join("%02x" % r.getrandbits(8) for _ in range(6)),
                    "privateIpAddress": ip, "sourceDestCheck": True, "interfaceType": "interface",
                    "groupSet": {"items": [{"groupId": sg, "groupName": "batch-workers"}]},
                    "attachment": {"attachmentId": f"eni-attach-0{r.getrandbits(64):016x}", "deviceIndex": 0,
                                   "networkCardIndex": 0, "status": "attaching", "deleteOnTermination": True},
                    "privateIpAddressesSet": {"item": [{"privateIpAddress": ip, "primary": True}]},
                    "ipv6AddressesSet": {}, "tagSet": {}}]},
                "ebsOptimized": True, "enaSupport": True, "cpuOptions": {"coreCount": 1, "threadsPerCore": 2},
                "capacityReservationSpecification": {"capacityReservationPreference": "open"},
                "enclaveOptions": {"enabled": False},
                "metadataOptions": {"state": "pending", "httpTokens": "required", "httpPutResponseHopLimit": 2,
                                    "httpEndpoint": "enabled", "httpProtocolIpv4": "enabled", "httpProtocolIpv6": "disabled",
                                    "instanceMetadataTags": "disabled"},
                "maintenanceOptions": {"autoRecovery": "default"},
                "privateDnsNameOptions": {"hostnameType": "ip-name", "enableResourceNameDnsARecord": False,
                                          "enableResourceNameDnsAAAARecord": False},
            }
            items.append(item)
            size += len(json.dumps(item, separators=(",", ":")))
        event["responseElements"] = {
            "requestId": event["requestID"], "reservationId": f"r-0{r.getrandbits(64):016x}", "ownerId": account,
            "groupSet": {}, "instancesSet": {"items": items},
        }
    else:
        event["eventSource"] = "cloudformation.amazonaws.com"
        event["eventName"] = "CreateStack"
        event["tlsDetails"]["clientProvidedHostHeader"] = f"cloudformation.{region}.amazonaws.com"
        resources = {}
        size = 0
        while size < target:
            name = "Queue%s" % "".join(r.choice(ALNUM) for _ in range(10))
            resources[name] = {"Type": "AWS::SQS::Queue", "Properties": {
                "QueueName": f"{name.lower()}-{r.getrandbits(32):08x}", "VisibilityTimeout": r.choice([30, 60, 300]),
                "KmsMasterKeyId": f"arn:aws:kms:{region}:{account}:key/{uuid4(r)}",
                "Tags": [{"Key": "service", "Value": r.choice(APPS)}, {"Key": "cost-center", "Value": str(r.randrange(1000, 9999))}]}}
            size += len(json.dumps(resources[name], indent=2)) + len(name) + 10
        stack = f"app-{r.choice(APPS)}-{r.getrandbits(24):06x}"
        event["requestParameters"] = {
            "stackName": stack,
            "templateBody": json.dumps({"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources}, indent=2),
            "capabilities": ["CAPABILITY_NAMED_IAM"],
            "parameters": [{"parameterKey": "Env", "parameterValue": "prod"}],
            "tags": [{"key": "owner", "value": "platform"}],
        }
        event["responseElements"] = {
            "stackId": f"arn:aws:cloudformation:{region}:{account}:stack/{stack}/{uuid4(r)}"}
    return json.dumps(event, separators=(",", ":"))


class Catalog:
    """Everything drawn once from the seed: accounts, callers, templates."""

    def __init__(self, seed, n_accounts):
        r = random.Random(f"ctgen/{seed}/catalog")
        fixtures = load_fixture_events()
        if not fixtures:
            sys.exit(f"gen-trail: no fixture events found under {REPO}/tests/fixtures")
        templates = [Template(e) for e in fixtures]
        self.calls = [t for t in templates if t.kind == "call"]
        self.logins = [t for t in templates if t.kind == "login"]
        self.services = [t for t in templates if t.kind == "service"]
        self.accounts = []
        while len(self.accounts) < n_accounts:
            a = "%012d" % r.randrange(10**11, 10**12)
            if a not in self.accounts:
                self.accounts.append(a)
        self.pools = {}
        self.login_callers = {}
        for a in self.accounts:
            self.pools[a], self.login_callers[a] = account_callers(r, a)
        self.profile_names = [p for p, _ in PROFILES]
        total = sum(w for _, w in PROFILES)
        acc = 0.0
        self.profile_cum = []
        for _, w in PROFILES:
            acc += w / total
            self.profile_cum.append(acc)


# ------------------------------------------------------------------ files


def two_digits(n):
    return "%02d" % n


def render_file(catalog, seed, index, account, region, day, minute, n_events, large_rate):
    """The Records text of one file, and its event count (deterministic per file)."""
    r = random.Random(f"ctgen/{seed}/file/{index}")
    pools = catalog.pools[account]
    logins = catalog.login_callers[account]
    calls, login_templates, service_templates = catalog.calls, catalog.logins, catalog.services
    cum = catalog.profile_cum
    names = catalog.profile_names
    rand = r.random
    getrandbits = r.getrandbits
    day_prefix = day.isoformat() + "T"
    cdate = day_prefix + "%02d:%02d:%02dZ" % (max(0, minute // 60 - 1), r.randrange(60), r.randrange(60))
    seconds = sorted(r.randrange((minute - 5) * 60, minute * 60) for _ in range(n_events))
    idents = {}
    records = []
    for sec in seconds:
        h, rest = divmod(sec, 3600)
        m, s = divmod(rest, 60)
        when = "%s%02d:%02d:%02dZ" % (day_prefix, h, m, s)
        if large_rate and rand() < large_rate:
            pool = pools["iac"] if rand() < 0.5 else pools["app"]
            records.append(large_event(r, account, region, when, pool[int(rand() * len(pool))]))
            continue
        x = rand()
        if x < 0.012:
            tpl = service_templates[int(rand() * len(service_templates))]
            caller = None
        elif x < 0.014 and login_templates:
            tpl = login_templates[int(rand() * len(login_templates))]
            caller = logins[int(rand() * len(logins))]
        else:
            tpl = calls[int(rand() * len(calls))]
            y = rand()
            i = 0
            while i < len(cum) - 1 and y >= cum[i]:
                i += 1
            pool = pools[names[i]]
            caller = pool[int(rand() * len(pool))]
        h = "%032x" % getrandbits(128)
        values = {
            M_ID: f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}",
            M_TIME: when,
            M_ACCT: account,
            M_REGION: region,
        }
        if M_REQ in tpl.parts:
            q = "%032x" % getrandbits(128)
            values[M_REQ] = f"{q[:8]}-{q[8:12]}-{q[12:16]}-{q[16:20]}-{q[20:]}"
        if caller is not None:
            ident = idents.get(id(caller))
            if ident is None:
                ident = idents[id(caller)] = caller.ident.replace("@@cdate@@", cdate)
            values[M_IDENT] = ident
            uas = caller.uas
            values[M_UA] = uas[int(rand() * len(uas))] if len(uas) > 1 else uas[0]
            ips = caller.ips
            values[M_IP] = ips[int(rand() * len(ips))] if len(ips) > 1 else ips[0]
            values[M_EXTRA] = caller.extra
        records.append("".join([values.get(p, p) for p in tpl.parts]))
    return '{"Records":[' + ",".join(records) + "]}", len(records)


_WORKER = {}


def _init_worker(seed, n_accounts, out_dir, level, large_rate):
    _WORKER.update(catalog=Catalog(seed, n_accounts), seed=seed, out_dir=out_dir, level=level, large_rate=large_rate)


def _write_file(job):
    index, account, region, day, minute, suffix, n_events = job
    w = _WORKER
    text, n = render_file(w["catalog"], w["seed"], index, account, region, day, minute, n_events, w["large_rate"])
    stamp = day.strftime("%Y%m%d") + "T%02d%02dZ" % divmod(minute % 1440, 60)
    folder = os.path.join(w["out_dir"], "AWSLogs", account, "CloudTrail", region, day.strftime("%Y/%m/%d"))
    os.makedirs(folder, exist_ok=True)
    data = text.encode("utf-8")
    gz = gzip.compress(data, compresslevel=w["level"], mtime=0)
    name = f"{account}_CloudTrail_{region}_{stamp}_{suffix}.json.gz"
    with open(os.path.join(folder, name), "wb") as f:
        f.write(gz)
    return n, len(gz), len(data)


# ------------------------------------------------------------------ plan


def spread(total, weights, floor, caps=None):
    """Integers >= floor (and <= caps) summing to total, proportional to weights."""
    n = len(weights)
    caps = caps or [math.inf] * n
    out = [floor] * n
    left = total - floor * n
    free = [i for i in range(n) if caps[i] > floor]
    while left > 0 and free:
        wsum = sum(weights[i] for i in free)
        add = {i: left * weights[i] / wsum for i in free}
        changed = False
        for i in free:
            room = caps[i] - out[i]
            take = min(room, int(add[i]))
            if take > 0:
                out[i] += take
                left -= take
                changed = True
        if not changed:
            # Largest remainders, one each.
            for i in sorted(free, key=lambda i: -(add[i] - int(add[i])))[:left]:
                out[i] += 1
                left -= 1
        free = [i for i in free if out[i] < caps[i]]
    if left > 0:
        raise ValueError("does not fit")
    return out


def plan_trail(args, catalog):
    """(account, region, day, minute, suffix, events) per file, in key order."""
    r = random.Random(f"ctgen/{args.seed}/plan")
    days = [args.start + dt.timedelta(days=d) for d in range(args.days)]
    regions = REGIONS[: args.regions]
    streams = []
    for ai, account in enumerate(catalog.accounts):
        for ri, region in enumerate(regions):
            # Busy: the first accounts and regions; log-normal noise on top.
            level = math.exp(r.gauss(0, 1.0)) / (1 + ai * 0.6) / (1 + ri * 0.5) ** 1.3
            streams.append((account, region, level))
    slots_per_stream = len(days) * 287
    if args.files > slots_per_stream * len(streams):
        sys.exit(f"gen-trail: --files {args.files} does not fit {len(streams)} streams x {slots_per_stream} slots: "
                 "raise --days, --accounts or --regions")
    files_per_stream = spread(args.files, [s[2] ** 0.6 for s in streams], 1 if args.files >= len(streams) else 0,
                              [slots_per_stream] * len(streams))
    # Office hours (UTC) get more files and more events.
    def diurnal(minute):
        hour = minute / 60
        return 0.35 + math.exp(-((hour - 14) / 4.0) ** 2)

    files = []
    for (account, region, level), count in zip(streams, files_per_stream):
        if count == 0:
            continue
        # Slots weighted by the hour of day, without replacement (Efraimidis-Spirakis keys).
        keyed = []
        for d in days:
            for m in range(5, 1440, 5):
                keyed.append((r.random() ** (1 / diurnal(m)), d, m))
        keyed.sort(reverse=True)
        for _, d, m in keyed[:count]:
            size = level ** 0.4 * diurnal(m) * math.exp(r.gauss(0, 0.9))
            suffix = "".join(r.choice(ALNUM) for _ in range(16))
            files.append([account, region, d, m, suffix, size])
    mean = args.events / len(files)
    cap = max(5000, int(mean * 8))
    counts = spread(args.events, [f[5] for f in files], 1, [cap] * len(files))
    for f, n in zip(files, counts):
        f[5] = n
    files.sort(key=lambda f: (f[0], f[1], f[2], f[3], f[4]))
    return [tuple(f) for f in files]


# The real shape (--shape real); see the module's docstring for the sources.
REAL_REGIONS = 17          # the regions enabled by default: REGIONS[:17]
REAL_MU, REAL_SIGMA = 0.70, 1.64
REAL_CAP = 5000
REAL_HOME_DAY, REAL_HOME_NIGHT = 0.9, 0.25   # share of 5-minute slots with a file, home region
REAL_QUIET = 0.05                            # the same, quiet regions


def real_counts(r, events):
    """Events per file from the fitted log-normal, summing exactly to events."""
    counts, total = [], 0
    while total < events:
        n = min(REAL_CAP, max(1, round(r.lognormvariate(REAL_MU, REAL_SIGMA))), events - total)
        counts.append(n)
        total += n
    return counts


def plan_real(args, catalog):
    """--shape real: (account, region, day, minute, suffix, events) per file, in key order."""
    r = random.Random(f"ctgen/{args.seed}/plan-real")
    counts = real_counts(r, args.events)
    regions = REGIONS[:REAL_REGIONS]

    def home_rate(minute):
        # Office hours (UTC) busy, nights quiet.
        hour = minute / 60
        return REAL_HOME_NIGHT + (REAL_HOME_DAY - REAL_HOME_NIGHT) * math.exp(-((hour - 14) / 4.0) ** 2)

    minutes = range(5, 1440, 5)
    per_day = len(catalog.accounts) * (sum(home_rate(m) for m in minutes) + (len(regions) - 1) * REAL_QUIET * len(minutes))
    if args.days is None:
        args.days = max(1, math.ceil(len(counts) / per_day))
    days = [args.start + dt.timedelta(days=d) for d in range(args.days)]
    slots = len(catalog.accounts) * len(regions) * len(days) * len(minutes)
    if len(counts) > slots:
        sys.exit(f"gen-trail: {len(counts)} files do not fit {slots} slots: raise --days or --accounts")
    # Each slot taken with a probability proportional to its rate: the slots
    # whose uniform draw divided by the rate is smallest.
    keyed = []
    for account in catalog.accounts:
        for ri, region in enumerate(regions):
            for d in days:
                for m in minutes:
                    rate = home_rate(m) if ri == 0 else REAL_QUIET
                    keyed.append((r.random() / rate, rate, account, region, d, m))
    keyed.sort()
    chosen = keyed[: len(counts)]
    # The biggest counts go to the busiest slots, with noise.
    busy = sorted(chosen, key=lambda k: k[1] * (3 if k[3] == regions[0] else 1) * math.exp(r.gauss(0, 0.8)))
    files = []
    for (_, _, account, region, d, m), n in zip(busy, sorted(counts)):
        suffix = "".join(r.choice(ALNUM) for _ in range(16))
        files.append((account, region, d, m, suffix, n))
    files.sort(key=lambda f: (f[0], f[1], f[2], f[3], f[4]))
    return files


# ------------------------------------------------------------------ main


def quantiles(values):
    """mean, p10, p50, p90, p99 and max of a list of numbers."""
    v = sorted(values)
    out = {"mean": round(sum(v) / len(v))}
    out.update({q: v[min(len(v) - 1, int(len(v) * f))] for q, f in
                (("p10", 0.1), ("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1))})
    return out


def write_manifest(out_dir, summary):
    path = os.path.join(out_dir, MANIFEST)
    with open(path + ".tmp", "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    os.replace(path + ".tmp", path)


def large_file(args, catalog, out_dir):
    """One file of at least --large-file-mb MB compressed, written as a stream."""
    r = random.Random(f"ctgen/{args.seed}/large")
    account = catalog.accounts[0]
    region = REGIONS[0]
    day = args.start
    target = int(args.large_file_mb * 1_000_000)
    folder = os.path.join(out_dir, "AWSLogs", account, "CloudTrail", region, day.strftime("%Y/%m/%d"))
    os.makedirs(folder, exist_ok=True)
    suffix = "".join(r.choice(ALNUM) for _ in range(16))
    path = os.path.join(folder, f"{account}_CloudTrail_{region}_{day.strftime('%Y%m%d')}T2355Z_{suffix}.json.gz")
    z = zlib.compressobj(args.level, zlib.DEFLATED, 31)  # gzip wrapper, mtime 0
    written = raw = events = 0
    chunk = 0
    with open(path, "wb") as f:
        def put(data):
            nonlocal written, raw
            raw += len(data)
            out = z.compress(data)
            written += len(out)
            f.write(out)

        put(b'{"Records":[')
        while written < target:
            # 5-minute chunks spread over the day, so times look like a busy stream.
            minute = 5 + (chunk * 5) % 1435
            text, n = render_file(catalog, args.seed, f"large/{chunk}", account, region, day, minute, 2000,
                                  args.large_event_rate)
            body = text[len('{"Records":['):-2]
            put(((b"," if events else b"") + body.encode("utf-8")))
            events += n
            chunk += 1
        put(b"]}")
        tail = z.flush()
        written += len(tail)
        f.write(tail)
    return {"files": 1, "events": events, "bytes": written, "uncompressed_bytes": raw, "path": path}


def main():
    real_shape = __doc__[__doc__.index("--shape real writes"):__doc__.index("--large-file-mb MB writes")]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=real_shape.strip(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--shape", choices=("large", "real"), default="large",
                   help="large: few big files (default); real: the many tiny files of real trails (see above)")
    p.add_argument("--events", type=int, default=2_000_000, help="events in the trail (default 2,000,000)")
    p.add_argument("--files", type=int, help="log files (default: events / 200; --shape real: derived)")
    p.add_argument("--accounts", type=int, help="accounts (default 6; --shape real: 1)")
    p.add_argument("--regions", type=int, help=f"regions, at most {len(REGIONS)} (default 8; --shape real: 17)")
    p.add_argument("--days", type=int, help="days (default 7; --shape real: what the density needs)")
    p.add_argument("--start", default="2024-01-28", help="first day, YYYY-MM-DD (default 2024-01-28: two months)")
    p.add_argument("--seed", type=int, default=1, help="RNG seed (default 1)")
    p.add_argument("--level", type=int, default=6, choices=range(1, 10), metavar="1..9", help="gzip level (default 6)")
    p.add_argument("--large-event-rate", type=float, default=1e-4,
                   help="share of large (40-250 KB) events (default 0.0001; 0: none)")
    p.add_argument("--large-file-mb", type=float, help="write one file of at least this many MB compressed instead")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes (default: CPUs); the output does not depend on it")
    p.add_argument("--quiet", action="store_true", help="print only the final JSON line")
    args = p.parse_args()
    real = args.shape == "real"
    if real and (args.files or args.regions):
        p.error("--shape real derives --files and uses the 17 default regions: leave out --files and --regions")
    args.accounts = args.accounts or (1 if real else 6)
    args.regions = args.regions or (REAL_REGIONS if real else 8)
    if not real:
        args.days = args.days or 7
    if args.events < 1 or args.accounts < 1 or args.regions < 1 or (args.days is not None and args.days < 1):
        p.error("--events, --accounts, --regions and --days must be at least 1")
    if args.regions > len(REGIONS):
        p.error(f"--regions: at most {len(REGIONS)}")
    if not real:
        args.files = args.files or max(1, round(args.events / 200))
        if not 1 <= args.files <= args.events:
            p.error("--files must be between 1 and --events")
    try:
        args.start = dt.date.fromisoformat(args.start)
    except ValueError:
        p.error(f"--start {args.start}: not YYYY-MM-DD")

    began = time.monotonic()
    out_dir = os.path.abspath(args.out_dir)
    os.makedirs(out_dir, exist_ok=True)
    manifest_path = os.path.join(out_dir, MANIFEST)
    if os.path.exists(manifest_path):
        os.remove(manifest_path)
    with open(os.path.abspath(__file__), "rb") as f:
        generator = hashlib.sha256(f.read()).hexdigest()[:12]

    if args.large_file_mb:
        catalog = Catalog(args.seed, 1)
        summary = large_file(args, catalog, out_dir)
        summary.update(seed=args.seed, level=args.level, generator=generator, large_file_mb=args.large_file_mb)
    else:
        catalog = Catalog(args.seed, args.accounts)
        plan = plan_real(args, catalog) if real else plan_trail(args, catalog)
        jobs = [(i,) + f for i, f in enumerate(plan)]
        init = (args.seed, args.accounts, out_dir, args.level, args.large_event_rate)
        if args.jobs > 1:
            with multiprocessing.Pool(args.jobs, _init_worker, init) as pool:
                results = list(pool.imap(_write_file, jobs, chunksize=16))
        else:
            _init_worker(*init)
            results = [_write_file(j) for j in jobs]
        sizes = sorted(n for n, _, _ in results)
        summary = {
            "dir": out_dir,
            "files": len(plan),
            "events": sum(n for n, _, _ in results),
            "bytes": sum(b for _, b, _ in results),
            "uncompressed_bytes": sum(u for _, _, u in results),
            "shape": args.shape,
            "events_per_file": {q: sizes[min(len(sizes) - 1, int(len(sizes) * f))] for q, f in
                                (("min", 0), ("p10", 0.1), ("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1))},
            "bytes_per_file": quantiles([b for _, b, _ in results]),
            "json_bytes_per_file": quantiles([u for _, _, u in results]),
            "accounts": catalog.accounts,
            "regions": REGIONS[: args.regions],
            "days": [(args.start + dt.timedelta(days=d)).isoformat() for d in range(args.days)],
            "seed": args.seed,
            "level": args.level,
            "large_event_rate": args.large_event_rate,
            "generator": generator,
        }
    write_manifest(out_dir, summary)
    if not args.quiet:
        print(f"gen-trail: wrote {summary['files']} files, {summary['events']} events, {summary['bytes']} bytes gz "
              f"({summary['uncompressed_bytes']} uncompressed) to {out_dir} in {time.monotonic() - began:.1f} s")
    print(json.dumps({k: summary[k] for k in ("files", "events", "bytes", "uncompressed_bytes")}))


if __name__ == "__main__":
    main()

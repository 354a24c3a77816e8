#!/usr/bin/env python3
"""Writes dashboards/ctindex.ndjson: the saved objects ctindex installs.

The NDJSON holds JSON inside strings (visState, searchSourceJSON, panelsJSON),
which is painful to edit by hand; edit this file instead and run

    scripts/gen-dashboards.py            # rewrites dashboards/ctindex.ndjson
    cargo test dashboards                # validation, fields, buckets on real servers

and commit both: a test fails when the NDJSON is not exactly this script's output
(the_bundled_file_is_what_the_generator_writes). The output is deterministic.

Every object is written in the legacy formats both Kibana 8.x and OpenSearch
Dashboards 2.x import (see dashboards/README.md): visualizations with a visState
string, Lucene queries, migrationVersion 7.6.0 / 7.10.0 / 7.9.3, references by
indexRefName and panelRefName. Ids start with "ctindex-cloudtrail-", which
`ctindex dashboards` rewrites for other index prefixes.
"""
import json
import os
import sys

P = "ctindex-cloudtrail-"
IP_ID = P + "index-pattern"
IDX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"


def dumps(v):
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def search_source(query, extra=None):
    s = {"query": {"query": query, "language": "lucene"}, "filter": []}
    if extra:
        s.update(extra)
    s["indexRefName"] = IDX_REF
    return dumps(s)


def count():
    return {"id": "1", "enabled": True, "type": "count", "params": {}, "schema": "metric"}


def terms(id, field, size, schema, label=None, missing=None, order_by="1"):
    p = {
        "field": field,
        "orderBy": order_by,
        "order": "desc",
        "size": size,
        "otherBucket": False,
        "otherBucketLabel": "Other",
        "missingBucket": missing is not None,
        "missingBucketLabel": missing or "Missing",
    }
    if label:
        p["customLabel"] = label
    return {"id": id, "enabled": True, "type": "terms", "params": p, "schema": schema}


def metric(id, type, field, label):
    return {"id": id, "enabled": True, "type": type, "params": {"field": field, "customLabel": label}, "schema": "metric"}


def date_hist(id, schema="segment"):
    return {
        "id": id,
        "enabled": True,
        "type": "date_histogram",
        "params": {
            "field": "eventTime",
            "timeRange": {"from": "now-30d", "to": "now"},
            "useNormalizedEsInterval": True,
            "scaleMetricValues": False,
            "interval": "auto",
            "drop_partials": False,
            "min_doc_count": 1,
            "extended_bounds": {},
        },
        "schema": schema,
    }


def filters(id, schema, items):
    return {
        "id": id,
        "enabled": True,
        "type": "filters",
        "params": {"filters": [{"input": {"query": q, "language": "lucene"}, "label": l} for l, q in items]},
        "schema": schema,
    }


def pie_params():
    return {
        "type": "pie",
        "addTooltip": True,
        "addLegend": True,
        "legendPosition": "right",
        "isDonut": True,
        "labels": {"show": True, "values": True, "last_level": True, "truncate": 100},
    }


THRESHOLD = {"show": False, "value": 10, "width": 1, "style": "full", "color": "#E7664C"}


def bar_params(horizontal=False, mode="stacked", legend=True):
    cat_pos, val_pos = ("left", "bottom") if horizontal else ("bottom", "left")
    return {
        "type": "histogram",
        "grid": {"categoryLines": False},
        "categoryAxes": [
            {
                "id": "CategoryAxis-1",
                "type": "category",
                "position": cat_pos,
                "show": True,
                "style": {},
                "scale": {"type": "linear"},
                "labels": {"show": True, "rotate": 0, "filter": not horizontal, "truncate": 200 if horizontal else 100},
                "title": {},
            }
        ],
        "valueAxes": [
            {
                "id": "ValueAxis-1",
                "name": ("BottomAxis-1" if horizontal else "LeftAxis-1"),
                "type": "value",
                "position": val_pos,
                "show": True,
                "style": {},
                "scale": {"type": "linear", "mode": "normal"},
                "labels": {"show": True, "rotate": 0, "filter": horizontal, "truncate": 100},
                "title": {"text": "Count"},
            }
        ],
        "seriesParams": [
            {
                "show": True,
                "type": "histogram",
                "mode": mode,
                "data": {"label": "Count", "id": "1"},
                "valueAxis": "ValueAxis-1",
                "drawLinesBetweenPoints": True,
                "lineWidth": 2,
                "showCircles": True,
            }
        ],
        "addTooltip": True,
        "addLegend": legend,
        "legendPosition": "right",
        "times": [],
        "addTimeMarker": False,
        "labels": {"show": False},
        "thresholdLine": THRESHOLD,
    }


def table_params(per_page=10):
    return {
        "perPage": per_page,
        "showPartialRows": False,
        "showMetricsAtAllLevels": False,
        "showTotal": False,
        "totalFunc": "sum",
        "percentageCol": "",
    }


objects = []


def index_pattern():
    objects.append(
        {
            "id": IP_ID,
            "type": "index-pattern",
            "attributes": {"title": "cloudtrail", "timeFieldName": "eventTime", "fields": "[]"},
            "references": [],
            "migrationVersion": {"index-pattern": "7.6.0"},
        }
    )


def vis(name, title, description, vtype, params, aggs, query):
    vis_state = {"title": title, "type": vtype, "aggs": aggs, "params": params}
    objects.append(
        {
            "id": P + name,
            "type": "visualization",
            "attributes": {
                "title": title,
                "description": description,
                "visState": dumps(vis_state),
                "uiStateJSON": "{}",
                "version": 1,
                "kibanaSavedObjectMeta": {"searchSourceJSON": search_source(query)},
            },
            "references": [{"name": IDX_REF, "type": "index-pattern", "id": IP_ID}],
            "migrationVersion": {"visualization": "7.10.0"},
        }
    )
    return P + name


def search(name, title, description, query, columns):
    objects.append(
        {
            "id": P + name,
            "type": "search",
            "attributes": {
                "title": title,
                "description": description,
                "hits": 0,
                "columns": columns,
                "sort": [["eventTime", "desc"]],
                "version": 1,
                "kibanaSavedObjectMeta": {
                    "searchSourceJSON": search_source(query, {"highlightAll": True, "version": True})
                },
            },
            "references": [{"name": IDX_REF, "type": "index-pattern", "id": IP_ID}],
            "migrationVersion": {"search": "7.9.3"},
        }
    )
    return P + name


def dashboard(name, title, description, panels):
    """panels: list of (id, type, x, y, w, h)"""
    refs, pj = [], []
    for i, (oid, otype, x, y, w, h) in enumerate(panels):
        ref = f"panel_{i}"
        refs.append({"name": ref, "type": otype, "id": oid})
        pj.append(
            {
                "version": "7.9.3",
                "gridData": {"x": x, "y": y, "w": w, "h": h, "i": str(i + 1)},
                "panelIndex": str(i + 1),
                "embeddableConfig": {},
                "panelRefName": ref,
            }
        )
    objects.append(
        {
            "id": P + name,
            "type": "dashboard",
            "attributes": {
                "title": title,
                "hits": 0,
                "description": description,
                "panelsJSON": dumps(pj),
                "optionsJSON": dumps({"useMargins": True, "hidePanelTitles": False}),
                "version": 1,
                "timeRestore": True,
                "timeFrom": "now-30d",
                "timeTo": "now",
                "refreshInterval": {"pause": True, "value": 0},
                "kibanaSavedObjectMeta": {
                    "searchSourceJSON": dumps({"query": {"query": "", "language": "lucene"}, "filter": []})
                },
            },
            "references": refs,
            "migrationVersion": {"dashboard": "7.9.3"},
        }
    )


# ---------------------------------------------------------------- queries
CONSOLE = "ctindex.channel:console"
NOT_SIGNIN = 'NOT eventSource:"signin.amazonaws.com"'
CONSOLE_ACTIONS = f"{CONSOLE} AND {NOT_SIGNIN}"
CONSOLE_WRITES = f"{CONSOLE} AND readOnly:false AND {NOT_SIGNIN}"
DENIED = "errorCode:(*AccessDenied* OR *Unauthorized*)"
NET_EVENTS = [
    "AuthorizeSecurityGroupIngress",
    "AuthorizeSecurityGroupEgress",
    "RevokeSecurityGroupIngress",
    "RevokeSecurityGroupEgress",
    "ModifySecurityGroupRules",
    "UpdateSecurityGroupRuleDescriptionsIngress",
    "UpdateSecurityGroupRuleDescriptionsEgress",
    "CreateSecurityGroup",
    "DeleteSecurityGroup",
    "CreateNetworkAcl",
    "DeleteNetworkAcl",
    "CreateNetworkAclEntry",
    "ReplaceNetworkAclEntry",
    "DeleteNetworkAclEntry",
    "ReplaceNetworkAclAssociation",
]
NET_CHANGES = "eventName:(" + " OR ".join(NET_EVENTS) + ")"
RP = "requestParameters."
SG_RULE = RP + "ModifySecurityGroupRulesRequest.SecurityGroupRule.SecurityGroupRule."
INGRESS_ANYWHERE = (
    "(eventName:(AuthorizeSecurityGroupIngress OR ModifySecurityGroupRules) AND ("
    f'{RP}ipPermissions.items.ipRanges.items.cidrIp:"0.0.0.0/0" OR '
    f'{RP}ipPermissions.items.ipv6Ranges.items.cidrIpv6:"::/0" OR '
    f'{RP}cidrIp:"0.0.0.0/0" OR '
    f'{SG_RULE}CidrIpv4:"0.0.0.0/0" OR '
    f'{SG_RULE}CidrIpv6:"::/0"'
    ")) OR "
    "(eventName:(CreateNetworkAclEntry OR ReplaceNetworkAclEntry) AND "
    f"{RP}egress:false AND {RP}ruleAction:allow AND "
    f'({RP}cidrBlock:"0.0.0.0/0" OR {RP}ipv6CidrBlock:"::/0"))'
)
ALL_PORTS = (
    "(eventName:(AuthorizeSecurityGroupIngress OR AuthorizeSecurityGroupEgress OR ModifySecurityGroupRules) AND ("
    f"({RP}ipPermissions.items.fromPort:0 AND {RP}ipPermissions.items.toPort:65535) OR "
    f'{RP}ipPermissions.items.ipProtocol:"-1" OR '
    f"({RP}fromPort:0 AND {RP}toPort:65535) OR "
    f'{RP}ipProtocol:"-1" OR '
    f"({SG_RULE}FromPort:0 AND {SG_RULE}ToPort:65535) OR "
    f'{SG_RULE}IpProtocol:"-1"'
    ")) OR "
    "(eventName:(CreateNetworkAclEntry OR ReplaceNetworkAclEntry) AND "
    f"{RP}ruleAction:allow AND "
    f'(({RP}portRange.from:0 AND {RP}portRange.to:65535) OR {RP}protocol:"-1"))'
)
CREATE = "eventName:(Run* OR Create* OR Launch*)"
DELETE = "eventName:(Delete* OR Terminate*)"
SIGNIN = "eventName:ConsoleLogin"
# ctindex.signin.{result,mfa}: derived at import from responseElements.ConsoleLogin
# and additionalEventData.MFAUsed (lowercased; see src/transform.rs), typed, so
# they can be aggregated on OpenSearch too and need no (Yes OR YES OR yes).
SUCCESS = "ctindex.signin.result:success"
FAILED = "ctindex.signin.result:failure"
MFA = "ctindex.signin.mfa:true"
NO_MFA = "ctindex.signin.mfa:false"
MFA_UNKNOWN = "NOT _exists_:ctindex.signin.mfa"
OK_NO_MFA = f"{SUCCESS} AND {NO_MFA}"
# Who acted: ctindex.identity is the role (not the session) for assumed roles,
# else the ARN, the invoking service, account:user, ... (src/transform.rs), so a
# role does not split into one bucket per session as userIdentity.arn does.
IDENTITY = "ctindex.identity"
NO_IDENTITY = "(no identity)"

# ---------------------------------------------------------------- objects
index_pattern()

s_console_writes = search(
    "search-console-writes",
    "[CloudTrail] Console write actions",
    "Events that changed something and were made in the AWS console (sign-ins excluded): candidates for automation.",
    CONSOLE_WRITES,
    [IDENTITY, "userIdentity.arn", "eventSource", "eventName", "awsRegion", "sourceIPAddress", "ctindex.client"],
)
s_ingress = search(
    "search-ingress-anywhere",
    "[CloudTrail] Ingress opened to the Internet (0.0.0.0/0, ::/0)",
    "Security-group ingress rules and inbound network-ACL allow entries for 0.0.0.0/0 or ::/0.",
    INGRESS_ANYWHERE,
    [IDENTITY, "eventName", "awsRegion", "requestParameters.groupId", "requestParameters.networkAclId", "sourceIPAddress"],
)
s_all_ports = search(
    "search-all-ports",
    "[CloudTrail] Rules opening all ports (0-65535)",
    "Security-group rules and network-ACL allow entries for the port range 0-65535 or all protocols (-1).",
    ALL_PORTS,
    [IDENTITY, "eventName", "awsRegion", "requestParameters.groupId", "requestParameters.networkAclId", "sourceIPAddress"],
)
s_signins = search(
    "search-risky-signins",
    "[CloudTrail] Console sign-ins without MFA, and failed sign-ins",
    "ConsoleLogin events that succeeded without MFA or failed.",
    f"{SIGNIN} AND (({OK_NO_MFA}) OR {FAILED})",
    [IDENTITY, "userIdentity.type", "sourceIPAddress", "ctindex.signin.result", "ctindex.signin.mfa", "errorMessage", "userAgent"],
)

v_channel = vis(
    "channel-pie",
    "[CloudTrail] Events by channel",
    "console, automation (SDK, CLI, IaC), aws-service or unknown: ctindex.channel.",
    "pie",
    pie_params(),
    [count(), terms("2", "ctindex.channel", 5, "segment", "Channel")],
    "",
)
v_client = vis(
    "client-pie",
    "[CloudTrail] Events by client family",
    "terraform, aws-cli, boto3, console, browser, aws-service, …: ctindex.client.",
    "pie",
    pie_params(),
    [count(), terms("2", "ctindex.client", 15, "segment", "Client")],
    "",
)
v_console_names = vis(
    "console-actions-pie",
    "[CloudTrail] Console actions by eventName",
    "What people do in the console (sign-ins excluded): the candidates to automate next.",
    "pie",
    pie_params(),
    [count(), terms("2", "eventName", 20, "segment", "Action")],
    CONSOLE_ACTIONS,
)
v_console_writers = vis(
    "console-writers",
    "[CloudTrail] Top users and roles by console write actions",
    "Users and roles that change resources by hand in the console (ctindex.identity: an assumed role counts once, whatever its session names).",
    "horizontal_bar",
    bar_params(horizontal=True, mode="normal", legend=False),
    [count(), terms("2", IDENTITY, 15, "segment", "Identity")],
    CONSOLE_WRITES,
)
v_over_time = vis(
    "channel-over-time",
    "[CloudTrail] Console vs automation over time",
    "Events per channel over time.",
    "histogram",
    bar_params(),
    [count(), date_hist("2"), terms("3", "ctindex.channel", 5, "group", "Channel")],
    "",
)
v_services = vis(
    "services-per-channel",
    "[CloudTrail] Top services per channel",
    "The ten busiest services (eventSource) in each channel.",
    "table",
    table_params(20),
    [count(), terms("2", "ctindex.channel", 5, "bucket", "Channel"), terms("3", "eventSource", 10, "bucket", "Service")],
    "",
)
v_console_writes = vis(
    "console-writes-table",
    "[CloudTrail] Console write actions by service and action",
    "Console actions that are not read-only (sign-ins excluded), with how many identities make them and when last.",
    "table",
    table_params(20),
    [
        count(),
        metric("4", "cardinality", IDENTITY, "Identities"),
        metric("5", "max", "eventTime", "Last seen"),
        terms("2", "eventSource", 20, "bucket", "Service"),
        terms("3", "eventName", 50, "bucket", "Action"),
    ],
    CONSOLE_WRITES,
)

v_denied_time = vis(
    "denied-over-time",
    "[CloudTrail] Access denied over time",
    "AccessDenied*, *UnauthorizedOperation and other Unauthorized* errors over time.",
    "histogram",
    bar_params(),
    [count(), date_hist("2"), terms("3", "errorCode", 5, "group", "Error")],
    DENIED,
)
v_denied_who = vis(
    "denied-by-identity",
    "[CloudTrail] Access denied by identity",
    "Who gets AccessDenied / Unauthorized errors, on how many different actions, and when last.",
    "table",
    table_params(20),
    [
        count(),
        metric("3", "cardinality", "eventName", "Distinct actions"),
        metric("4", "max", "eventTime", "Last seen"),
        terms("2", IDENTITY, 25, "bucket", "Identity", missing=NO_IDENTITY),
    ],
    DENIED,
)
v_net = vis(
    "network-changes",
    "[CloudTrail] Security group and network ACL changes",
    "Authorize/Revoke/Modify security-group rules, security groups and network ACL entries, by action and identity.",
    "table",
    table_params(20),
    [
        count(),
        metric("4", "max", "eventTime", "Last seen"),
        terms("2", "eventName", 20, "bucket", "Action"),
        terms("3", IDENTITY, 10, "bucket", "Identity", missing=NO_IDENTITY),
    ],
    NET_CHANGES,
)
v_create = vis(
    "create-by-identity-region",
    "[CloudTrail] Run / Create / Launch activity by identity and region",
    "Run*, Create* and Launch* calls per identity and region.",
    "table",
    table_params(20),
    [
        count(),
        metric("4", "cardinality", "eventName", "Distinct actions"),
        terms("2", IDENTITY, 20, "bucket", "Identity", missing=NO_IDENTITY),
        terms("3", "awsRegion", 5, "bucket", "Region"),
    ],
    CREATE,
)
v_delete = vis(
    "delete-by-identity-region",
    "[CloudTrail] Delete / Terminate activity by identity and region",
    "Delete* and Terminate* calls per identity and region.",
    "table",
    table_params(20),
    [
        count(),
        metric("4", "cardinality", "eventName", "Distinct actions"),
        terms("2", IDENTITY, 20, "bucket", "Identity", missing=NO_IDENTITY),
        terms("3", "awsRegion", 5, "bucket", "Region"),
    ],
    DELETE,
)
v_signin_outcomes = vis(
    "signin-outcomes",
    "[CloudTrail] Console sign-ins: MFA and failures",
    "ConsoleLogin events by result (ctindex.signin.result: success, failure), each split by MFA use (ctindex.signin.mfa).",
    "pie",
    pie_params(),
    [
        count(),
        terms("2", "ctindex.signin.result", 5, "segment", "Result", missing="(no result)"),
        filters(
            "3",
            "segment",
            [
                ("MFA", MFA),
                ("No MFA", NO_MFA),
                ("MFA not recorded", MFA_UNKNOWN),
            ],
        ),
    ],
    SIGNIN,
)
v_no_mfa = vis(
    "signins-without-mfa",
    "[CloudTrail] Console sign-ins without MFA",
    "Successful ConsoleLogin events without MFA (ctindex.signin.mfa: false), per identity and source address.",
    "table",
    table_params(20),
    [
        count(),
        metric("4", "max", "eventTime", "Last seen"),
        terms("2", IDENTITY, 25, "bucket", "Identity", missing=NO_IDENTITY),
        terms("3", "sourceIPAddress", 5, "bucket", "Source address"),
    ],
    f"{SIGNIN} AND {OK_NO_MFA}",
)
v_failed = vis(
    "failed-signins",
    "[CloudTrail] Failed console sign-ins",
    "Failed ConsoleLogin events per source address and identity (for an unknown user name: account:name or the identity type).",
    "table",
    table_params(20),
    [
        count(),
        metric("4", "max", "eventTime", "Last seen"),
        terms("2", "sourceIPAddress", 25, "bucket", "Source address"),
        terms("3", IDENTITY, 5, "bucket", "Identity", missing=NO_IDENTITY),
    ],
    f"{SIGNIN} AND {FAILED}",
)

v_integrity_time = vis(
    "integrity-over-time",
    "[CloudTrail] Trail integrity over time",
    "Events by ctindex.integrity (import/sync --verify): verified by a signed digest, unverified (no valid digest covers the file yet), failed (the file does not match its digest).",
    "histogram",
    bar_params(),
    [count(), date_hist("2"), terms("3", "ctindex.integrity", 3, "group", "Integrity")],
    "ctindex.integrity:*",
)
v_integrity_failed = vis(
    "integrity-failed-files",
    "[CloudTrail] Log files that failed integrity validation",
    "Log files whose content does not match the hash their signed digest lists (ctindex.integrity: failed), with their events and last event time.",
    "table",
    table_params(20),
    [
        count(),
        metric("3", "max", "eventTime", "Last event"),
        terms("2", "ctindex.source", 50, "bucket", "Log file"),
    ],
    "ctindex.integrity:failed",
)

dashboard(
    "dashboard-console-vs-automation",
    "[CloudTrail] Console vs automation",
    "How the accounts are operated: by hand in the console or by automation, and which console work to automate next.",
    [
        (v_channel, "visualization", 0, 0, 16, 15),
        (v_client, "visualization", 16, 0, 16, 15),
        (v_console_names, "visualization", 32, 0, 16, 15),
        (v_over_time, "visualization", 0, 15, 48, 13),
        (v_console_writers, "visualization", 0, 28, 24, 18),
        (v_services, "visualization", 24, 28, 24, 18),
        (v_console_writes, "visualization", 0, 46, 48, 18),
        (s_console_writes, "search", 0, 64, 48, 18),
    ],
)
dashboard(
    "dashboard-security",
    "[CloudTrail] Security",
    "Access denied, security-group and network-ACL changes, ingress from anywhere, create/delete activity, console sign-ins without MFA, failed sign-ins and trail integrity.",
    [
        (v_denied_time, "visualization", 0, 0, 24, 15),
        (v_denied_who, "visualization", 24, 0, 24, 15),
        (v_net, "visualization", 0, 15, 24, 16),
        (s_ingress, "search", 24, 15, 24, 16),
        (s_all_ports, "search", 0, 31, 48, 12),
        (v_create, "visualization", 0, 43, 24, 16),
        (v_delete, "visualization", 24, 43, 24, 16),
        (v_signin_outcomes, "visualization", 0, 59, 16, 15),
        (v_no_mfa, "visualization", 16, 59, 16, 15),
        (v_failed, "visualization", 32, 59, 16, 15),
        (s_signins, "search", 0, 74, 48, 15),
        (v_integrity_time, "visualization", 0, 89, 24, 15),
        (v_integrity_failed, "visualization", 24, 89, 24, 15),
    ],
)

default = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "dashboards", "ctindex.ndjson")
out = sys.argv[1] if len(sys.argv) > 1 else default
with open(out, "w") as f:
    for o in objects:
        f.write(dumps(o) + "\n")
print(f"wrote {len(objects)} saved objects to {os.path.normpath(out)}", file=sys.stderr)

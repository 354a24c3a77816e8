# shellcheck shell=bash
# The S_* variables, ALL_SERVICES and STACK_ALIASES are read by scripts/stack.
# shellcheck disable=SC2034
# scripts/stack.d/opensearch3.sh - sourced by scripts/stack.
#
# Service "opensearch3" (alias os3, opt-in): an open OpenSearch 3.x node.
#
#   HTTP      http://127.0.0.1:$OPENSEARCH3_PORT (9210)  -> `env` prints OPENSEARCH3_URL
#   transport $OPENSEARCH3_TRANSPORT_PORT (9310), heap $OPENSEARCH3_HEAP (512m)
#
# Distribution: org.opensearch.distribution.integ-test-zip:opensearch:
# $OPENSEARCH3_VERSION:zip from Maven Central, run by the generic "search"
# family of scripts/stack like `opensearch`: no security plugin, no TLS.
# 3.8.0 is the newest 3.x integ-test-zip there (checked 2026-12: 3.9.0 exists
# only as jars, no zip; 3.3.2 works too).
#
# Unlike the 2.x zip, the 3.x one ships 22 modules: analysis-common,
# mapper-extras, reindex, lang-painless, ingest-common/-geoip/-user-agent,
# transport-grpc (it opens no port unless configured) and others; no ISM.
# What the node offers (checked with 3.8.0, JDK 25):
#   - GET / answers 200 with version.distribution "opensearch"
#   - composable templates work; the ctindex OpenSearch template is accepted
#     as is, and a nested object under requestParameters is searchable
#   - field types `flat_object`, `wildcard`, `match_only_text` and
#     `constant_keyword` (which requires its `value` parameter) exist;
#     `flattened` does not ("No handler for type [flattened]")
#   - index.mapping.total_fields.ignore_dynamic_beyond_limit is refused
#     ("unknown setting"; no OpenSearch has it)
#   - the _data_stream API exists; no ISM and no ILM (GET
#     /_plugins/_ism/policies/x, /_opendistro/_ism/policies/x, /_ilm/status:
#     400 "no handler found")
#
# JDK: 21 or newer, newest preferred (OpenSearch 3 needs Java 21; here that
# is the Temurin 25 under /usr/lib/jvm). OPENSEARCH3_JAVA_HOME overrides (else
# JAVA_HOME when 21+, else a JDK under $CTINDEX_JVM_DIRS). On JDK 25 the JVM
# prints "A restricted method in java.lang.System has been called" (bc-fips)
# to logs/stack-console.log: harmless.
#
# First start (unpack + empty data dir) took ~18-20 s here with the whole
# test stack running; RSS ~750-770 MB with the 512m heap.
#
# Knobs: OPENSEARCH3_VERSION, OPENSEARCH3_PORT, OPENSEARCH3_TRANSPORT_PORT,
# OPENSEARCH3_HEAP, OPENSEARCH3_JAVA_HOME.

OPENSEARCH3_VERSION="${OPENSEARCH3_VERSION:-3.8.0}"
OPENSEARCH3_PORT="${OPENSEARCH3_PORT:-9210}"
OPENSEARCH3_TRANSPORT_PORT="${OPENSEARCH3_TRANSPORT_PORT:-9310}"
OPENSEARCH3_HEAP="${OPENSEARCH3_HEAP:-512m}"

ALL_SERVICES+=(opensearch3)
STACK_ALIASES["os3"]=opensearch3

svc_opensearch3() {
	S_KIND=search
	S_VERSION=$OPENSEARCH3_VERSION
	S_PORT=$OPENSEARCH3_PORT
	S_TRANSPORT_PORT=$OPENSEARCH3_TRANSPORT_PORT
	S_URL_VAR=OPENSEARCH3_URL
	S_MAVEN=org.opensearch.distribution.integ-test-zip:opensearch
	S_PRODUCT=opensearch
	S_ENV_PREFIX=OPENSEARCH
	S_JDK_MIN=21 S_JDK_MAX=99 S_JDK_PREFER=high
	S_JAVA_HOME=${OPENSEARCH3_JAVA_HOME:-}
	S_HEAP=$OPENSEARCH3_HEAP
	S_HINT="3.8.0 is the newest 3.x integ-test-zip on Maven Central (checked 2026-12; 3.9.0 is published only as jars)"
}

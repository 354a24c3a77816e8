# shellcheck shell=bash
# The S_* variables, ALL_SERVICES and STACK_ALIASES are read by scripts/stack.
# shellcheck disable=SC2034
# scripts/stack.d/opensearch1.sh - sourced by scripts/stack.
#
# Service "opensearch1" (alias os1, opt-in): an open OpenSearch 1.3.x node.
#
#   HTTP      http://127.0.0.1:$OPENSEARCH1_PORT (9208)  -> `env` prints OPENSEARCH1_URL
#   transport $OPENSEARCH1_TRANSPORT_PORT (9308), heap $OPENSEARCH1_HEAP (512m)
#
# Distribution: org.opensearch.distribution.integ-test-zip:opensearch:
# $OPENSEARCH1_VERSION:zip from Maven Central, run by the generic "search"
# family of scripts/stack like `opensearch`: no security plugin, no TLS.
# 1.3.20 is the newest 1.3 integ-test-zip there (checked 2026-12: 1.3.21 is
# not published).
#
# The zip ships only the transport-netty4 module. What the node offers
# (checked with 1.3.20, JDK 17):
#   - GET / answers 200 with version.distribution "opensearch"
#   - composable templates (PUT _index_template) and _component_template work,
#     BUT field type `flat_object` does not exist (it is 2.7+): the ctindex
#     OpenSearch template is refused with 400 "composable template [...]
#     template after composition is invalid" caused by "No handler for type
#     [flat_object] declared on field [responseElements]". With every
#     flat_object replaced by {"type": "object", "enabled": false} the rest
#     of it (codec, ignore_malformed, dynamic templates, aliases) is accepted.
#   - no `flattened`, `wildcard`, `match_only_text` or `constant_keyword`
#     either ("No handler for type [...]")
#   - index.mapping.total_fields.ignore_dynamic_beyond_limit is refused
#     ("unknown setting"; no OpenSearch has it)
#   - the _data_stream API exists (GET /_data_stream: {"data_streams":[]});
#     no ISM (GET /_plugins/_ism/policies/x and /_opendistro/_ism/policies/x:
#     400 "no handler found"), no ILM (GET /_ilm/status: 405)
#
# JDK: 11..17 (1.3's supported range), newest preferred; OPENSEARCH1_JAVA_HOME
# overrides (else JAVA_HOME when in range, else a JDK under $CTINDEX_JVM_DIRS).
# The distribution's jvm.options says -Xms1g/-Xmx1g; OPENSEARCH_JAVA_OPTS
# (the heap below) comes later on the command line and wins.
#
# First start (unpack + empty data dir) took ~20 s here with the whole test
# stack running; RSS ~690 MB with the 512m heap.
#
# Knobs: OPENSEARCH1_VERSION, OPENSEARCH1_PORT, OPENSEARCH1_TRANSPORT_PORT,
# OPENSEARCH1_HEAP, OPENSEARCH1_JAVA_HOME.

OPENSEARCH1_VERSION="${OPENSEARCH1_VERSION:-1.3.20}"
OPENSEARCH1_PORT="${OPENSEARCH1_PORT:-9208}"
OPENSEARCH1_TRANSPORT_PORT="${OPENSEARCH1_TRANSPORT_PORT:-9308}"
OPENSEARCH1_HEAP="${OPENSEARCH1_HEAP:-512m}"

ALL_SERVICES+=(opensearch1)
STACK_ALIASES["os1"]=opensearch1

svc_opensearch1() {
	S_KIND=search
	S_VERSION=$OPENSEARCH1_VERSION
	S_PORT=$OPENSEARCH1_PORT
	S_TRANSPORT_PORT=$OPENSEARCH1_TRANSPORT_PORT
	S_URL_VAR=OPENSEARCH1_URL
	S_MAVEN=org.opensearch.distribution.integ-test-zip:opensearch
	S_PRODUCT=opensearch
	S_ENV_PREFIX=OPENSEARCH
	S_JDK_MIN=11 S_JDK_MAX=17 S_JDK_PREFER=high
	S_JAVA_HOME=${OPENSEARCH1_JAVA_HOME:-}
	S_HEAP=$OPENSEARCH1_HEAP
	S_HINT="1.3.20 is the newest 1.3 integ-test-zip on Maven Central (checked 2026-12; 1.3.21 is not there)"
}

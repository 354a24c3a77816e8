# shellcheck shell=bash
# The S_* variables, ALL_SERVICES and STACK_ALIASES are read by scripts/stack.
# shellcheck disable=SC2034
# scripts/stack.d/elasticsearch7.sh - sourced by scripts/stack.
#
# Service "elasticsearch7" (alias es7, opt-in): an open Elasticsearch 7.17.x
# node, to try ctindex against the oldest Elasticsearch line it may meet.
#
#   HTTP      http://127.0.0.1:$ES7_PORT (9207)   -> `env` prints ES7_URL
#   transport $ES7_TRANSPORT_PORT (9307), heap $ES7_HEAP (512m)
#
# Distribution: org.elasticsearch.distribution.integ-test-zip:elasticsearch:
# $ES7_VERSION:zip from Maven Central, run by the generic "search" family of
# scripts/stack like `elasticsearch` (same layout: dist/elasticsearch-7.17.29,
# services/elasticsearch7): no authentication, no TLS. 7.17.29 is the newest
# 7.17 integ-test-zip there (checked 2026-12: 7.17.30 is not published).
#
# The zip ships only the transport-netty4, x-pack-core and x-pack-security
# modules; scripts/stack writes `xpack.security.enabled: false` for it, and
# the generated elasticsearch.yml is accepted as is (no ML module, so no
# xpack.ml.* setting is needed or allowed). What the node offers (checked
# with 7.17.29, JDK 17):
#   - GET / answers 200 (build_flavor "oss", tagline "You Know, for Search");
#     GET /_nodes/_local?filter_path=nodes.*.version works too
#   - composable templates (PUT _index_template, priority, _meta, aliases)
#     and _component_template work; field type `flattened` works (with
#     ignore_above); `constant_keyword`, `wildcard`, `match_only_text` and
#     OpenSearch's `flat_object` do not ("No handler for type [...]")
#   - index.mapping.total_fields.ignore_dynamic_beyond_limit is refused
#     ("unknown setting", it is 8.13+): the ctindex ES template is accepted
#     only without it (src/sink/template.rs fit_to_version drops it)
#   - no ILM: GET /_ilm/status answers 405 "Incorrect HTTP method ...
#     allowed: [POST]" (the path falls through to /{index}/{type}); no
#     _data_stream API (GET /_data_stream: 400 invalid index name); no ISM
#
# JDK: 11..21, newest preferred (7.17 needs the SecurityManager, which JDK 24
# removed); on a machine with JDK 17 and 25 that is 17. ES7_JAVA_HOME
# overrides (else JAVA_HOME when in range, else a JDK under $CTINDEX_JVM_DIRS).
# The launcher prints "no-jdk distributions ... are deprecated" to
# logs/stack-console.log on every start: harmless.
#
# First start (unpack + empty data dir) took ~15 s here with the whole test
# stack running; RSS ~700 MB with the 512m heap.
#
# Knobs: ES7_VERSION, ES7_PORT, ES7_TRANSPORT_PORT, ES7_HEAP, ES7_JAVA_HOME.

ES7_VERSION="${ES7_VERSION:-7.17.29}"
ES7_PORT="${ES7_PORT:-9207}"
ES7_TRANSPORT_PORT="${ES7_TRANSPORT_PORT:-9307}"
ES7_HEAP="${ES7_HEAP:-512m}"

ALL_SERVICES+=(elasticsearch7)
STACK_ALIASES["es7"]=elasticsearch7

svc_elasticsearch7() {
	S_KIND=search
	S_VERSION=$ES7_VERSION
	S_PORT=$ES7_PORT
	S_TRANSPORT_PORT=$ES7_TRANSPORT_PORT
	S_URL_VAR=ES7_URL
	S_MAVEN=org.elasticsearch.distribution.integ-test-zip:elasticsearch
	S_PRODUCT=elasticsearch
	S_ENV_PREFIX=ES
	S_JDK_MIN=11 S_JDK_MAX=21 S_JDK_PREFER=high
	S_JAVA_HOME=${ES7_JAVA_HOME:-}
	S_HEAP=$ES7_HEAP
	S_HINT="7.17.29 is the newest 7.17 integ-test-zip on Maven Central (checked 2026-12; 7.17.30 is not there)"
}

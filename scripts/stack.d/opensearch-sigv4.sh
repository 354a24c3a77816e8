# shellcheck shell=bash disable=SC2034 # S_*, LAUNCHER, STACK_ALIASES: read by scripts/stack
# scripts/stack.d/opensearch-sigv4.sh - sourced by scripts/stack.
#
# Service opensearch-sigv4 (aliases: sigv4, os-sigv4): a stand-in for Amazon
# OpenSearch Service's IAM request signing, in front of the local plain
# `opensearch` service. scripts/sigv4-proxy.py (a threaded HTTP/1.1 server on
# 127.0.0.1:$OPENSEARCH_SIGV4_PORT, default 9206) checks the AWS Signature
# Version 4 of every request with botocore's SigV4Auth, an implementation
# independent of ctindex's, and answers refusals like AWS: 403, JSON
# {"message": "..."} and an x-amzn-ErrorType header (a signature mismatch
# also carries the canonical request and string to sign it expected). Accepted
# requests go to http://127.0.0.1:$OPENSEARCH_PORT (9201) without
# Authorization/X-Amz-*/Host, with their body as sent (gzip included).
#
# It starts on its own (the upstream is only needed for forwarding; until
# `opensearch` is up accepted requests get 502), runs as the invoking user
# with the python of the moto virtualenv ($MOTO_VENV: botocore comes with
# moto; created with moto_install when missing), and keeps its counters in
# memory (a restart empties them).
#
# Fixed test credentials: access key id AKIDCTINDEXSIGV4TEST, the secret in
# SIGV4_TEST_SECRET_ACCESS_KEY below, no session token, region us-east-1,
# service es. Requests are refused when unsigned, signed with another key or
# secret, scoped to another region/service/day, dated more than 5 minutes
# from now, not signing host and x-amz-date, carrying any
# X-Amz-Security-Token, or sending an x-amz-content-sha256 that is not the
# SHA-256 of the body bytes as received (for Content-Encoding: gzip, of the
# gzip bytes). Rules and reason codes: the docstring of scripts/sigv4-proxy.py.
#
# `scripts/stack env opensearch-sigv4` prints
#   OPENSEARCH_SIGV4_URL     http://127.0.0.1:9206
#   SIGV4_ACCESS_KEY_ID, SIGV4_SECRET_ACCESS_KEY, SIGV4_REGION (us-east-1),
#   SIGV4_SERVICE (es)
#   SIGV4_STATS_URL          http://127.0.0.1:9206/_sigv4proxy/stats: unsigned
#                            GET -> {"accepted": N, "refused": M, "reasons":
#                            {code: n}, "requests": [{"method", "path",
#                            "status", "reason"}, ... last 200]}; POST
#                            .../_sigv4proxy/reset zeroes it
#   SIGV4_REQUEST_LOG        one line per request, flushed at once:
#     127.0.0.1 - - [22/Nov/2026 15:04:05] "POST /_bulk HTTP/1.1" 200 1234 accepted
#     127.0.0.1 - - [22/Nov/2026 15:04:06] "GET / HTTP/1.1" 403 191 refused:expired
#   (appended to across restarts, removed by `wipe`; the start-up probes are
#   `GET /_sigv4proxy/stats ... control`).
#
# Knobs: OPENSEARCH_SIGV4_PORT (9206); the upstream follows OPENSEARCH_PORT.

OPENSEARCH_SIGV4_PORT="${OPENSEARCH_SIGV4_PORT:-9206}"
SIGV4_TEST_ACCESS_KEY_ID=AKIDCTINDEXSIGV4TEST
# 40 characters like a real secret, with the '/' and '+' real ones contain.
SIGV4_TEST_SECRET_ACCESS_KEY=ctindex/SigV4+TestSecret/0123456789abcde
SIGV4_TEST_REGION=us-east-1
SIGV4_TEST_SERVICE=es
SIGV4_PROXY_SCRIPT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/sigv4-proxy.py"

ALL_SERVICES+=(opensearch-sigv4)
STACK_ALIASES["sigv4"]=opensearch-sigv4
STACK_ALIASES["os-sigv4"]=opensearch-sigv4

svc_opensearch-sigv4() {
	S_KIND=sigv4
	S_VERSION=botocore # the live version is botocore's, from the moto venv
	S_PORT=$OPENSEARCH_SIGV4_PORT
	S_URL_VAR=OPENSEARCH_SIGV4_URL
	S_STACK_USER=0
}

# ------------------------------------- family "sigv4": opensearch-sigv4 --
sigv4_has_botocore() {
	[[ -x $MOTO_VENV/bin/python ]] && "$MOTO_VENV/bin/python" -c 'import botocore.auth' 2>/dev/null
}

# The moto virtualenv has botocore (moto depends on it); make that venv the
# way the s3 service does when it is missing.
sigv4_install() {
	[[ -r $SIGV4_PROXY_SCRIPT ]] || die "$S_NAME: $SIGV4_PROXY_SCRIPT is missing"
	sigv4_has_botocore && return 0
	local S_VERSION=$MOTO_VERSION
	moto_install
	sigv4_has_botocore || die "$S_NAME: no botocore in $MOTO_VENV after installing moto ('rm -rf $MOTO_VENV' starts over)"
}

sigv4_configure() {
	mkdir -p "$S_STATE/config" "$S_STATE/logs" "$S_STATE/tmp"
}

sigv4_upstream() { echo "http://$BIND_HOST:$OPENSEARCH_PORT"; }

sigv4_launch() {
	local upstream
	upstream=$(sigv4_upstream)
	info "$S_NAME: starting the SigV4 proxy on $S_URL -> $upstream (region $SIGV4_TEST_REGION, service $SIGV4_TEST_SERVICE; requests logged to $(sigv4_main_log))"
	if ! curl -fsS -m 3 -o /dev/null "$upstream/" 2>/dev/null; then
		info "$S_NAME: upstream $upstream does not answer yet; accepted requests get 502 until 'scripts/stack start opensearch'"
	fi
	rm -f "$S_PIDFILE"
	{
		echo
		echo "==== $(date '+%F %T') scripts/stack start: $SIGV4_PROXY_SCRIPT, $("$MOTO_VENV/bin/python" --version 2>&1)"
	} >>"$S_CONSOLE"
	# The launcher is the server (exec); it writes its pid file once listening.
	# setsid: no SIGINT/SIGHUP from the terminal. 9>&-: not the stack lock.
	# The secret goes in the environment, not on the command line.
	(
		cd "$S_STATE" || exit
		exec setsid env -i \
			PATH="$SAFE_PATH" HOME="$S_STATE" LANG=C.UTF-8 TMPDIR="$S_STATE/tmp" \
			PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
			SIGV4_SECRET_ACCESS_KEY="$SIGV4_TEST_SECRET_ACCESS_KEY" \
			"$MOTO_VENV/bin/python" "$SIGV4_PROXY_SCRIPT" \
			--bind "$BIND_HOST" --port "$S_PORT" --upstream "$upstream" \
			--region "$SIGV4_TEST_REGION" --service "$SIGV4_TEST_SERVICE" \
			--access-key-id "$SIGV4_TEST_ACCESS_KEY_ID" \
			--pid-file "$S_PIDFILE" --log "$(sigv4_main_log)"
	) >>"$S_CONSOLE" 2>&1 </dev/null 9>&- &
	LAUNCHER["$S_NAME"]=$!
}

sigv4_healthy() {
	curl -fsS -m 3 "$S_URL/_sigv4proxy/stats" 2>/dev/null | grep -q '^{'
}

sigv4_live_version() {
	local v
	v=$(curl -fsS -m 3 "$S_URL/_sigv4proxy/stats" 2>/dev/null |
		sed -n 's/.*"botocore": *"\([^"]*\)".*/\1/p')
	[[ -n $v ]] && echo "botocore-$v"
}

sigv4_main_log() { echo "$S_STATE/logs/requests.log"; }

sigv4_env() {
	printf 'export %s=%s\n' "$S_URL_VAR" "$S_URL"
	printf 'export SIGV4_ACCESS_KEY_ID=%s\n' "$SIGV4_TEST_ACCESS_KEY_ID"
	printf 'export SIGV4_SECRET_ACCESS_KEY=%q\n' "$SIGV4_TEST_SECRET_ACCESS_KEY"
	printf 'export SIGV4_REGION=%s\n' "$SIGV4_TEST_REGION"
	printf 'export SIGV4_SERVICE=%s\n' "$SIGV4_TEST_SERVICE"
	printf 'export SIGV4_STATS_URL=%s\n' "$S_URL/_sigv4proxy/stats"
	printf 'export SIGV4_REQUEST_LOG=%q\n' "$(sigv4_main_log)"
}

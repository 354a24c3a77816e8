# shellcheck shell=bash
# The S_* variables, ALL_SERVICES and STACK_ALIASES are read by scripts/stack.
# shellcheck disable=SC2034
# scripts/stack.d/opensearch-secure.sh - sourced by scripts/stack.
#
# Service "opensearch-secure" (alias os-secure, opt-in): OpenSearch 2.19.4 with
# the security plugin, i.e. TLS on HTTP and transport plus HTTP basic
# authentication against the plugin's internal user database, for the tests of
# ctindex's TLS / credential / least-privilege handling.
#
#   scripts/stack start opensearch-secure
#   eval "$(scripts/stack env opensearch-secure)"
#   curl --cacert "$OPENSEARCH_SECURE_CA" \
#        -u "$OPENSEARCH_SECURE_USER:$OPENSEARCH_SECURE_PASSWORD" \
#        "$OPENSEARCH_SECURE_URL/_plugins/_security/authinfo"
#
# Version: the integ-test zip org.opensearch.distribution.integ-test-zip:
# opensearch:$OPENSEARCH_SECURE_VERSION (default 2.19.4) plus the plugin
# org.opensearch.plugin:opensearch-security:<that version>.0, both from Maven
# Central through `mvn dependency:copy` (into downloads/ and ~/.m2). The plugin
# version must be the OpenSearch version + ".0"; 2.19.6.0 is not served, hence
# 2.19.4 here while `opensearch` runs 2.19.6. The plugin is installed once
# (opensearch-plugin install --batch) into a distribution of its own,
# dist/opensearch-<version>-security/; the plain dist/opensearch-<version>/ is
# unpacked too and stays untouched (shared, read-only).
#
# Knobs: OPENSEARCH_SECURE_VERSION (2.19.4), OPENSEARCH_SECURE_PORT (9205),
# OPENSEARCH_SECURE_TRANSPORT_PORT (9305), OPENSEARCH_SECURE_HEAP (512m),
# OPENSEARCH_SECURE_JAVA_HOME (else OPENSEARCH_JAVA_HOME, JAVA_HOME or the best
# JDK 11..23: 2.x needs the SecurityManager, which JDK 24 removed),
# OPENSEARCH_SECURE_ROLES_FILE (default <repo>/roles/opensearch.yml).
#
# `scripts/stack env opensearch-secure` (fast, no server needed; it creates the
# passwords if they do not exist yet) prints:
#   OPENSEARCH_SECURE_URL             https://localhost:9205 (only "localhost" is
#                                     in the certificate: https://127.0.0.1:9205
#                                     fails hostname verification, on purpose)
#   OPENSEARCH_SECURE_CA              PEM file of the CA that signed the node
#   OPENSEARCH_SECURE_USER            ctindex_writer (least-privilege user)
#   OPENSEARCH_SECURE_PASSWORD        its password
#   OPENSEARCH_SECURE_ADMIN_USER      admin (role all_access; may use the security
#                                     REST API /_plugins/_security/api/...)
#   OPENSEARCH_SECURE_ADMIN_PASSWORD  its password
# Users created through the REST API are subject to the plugin's default
# password rules (at least 8 characters and "strong"), unlike the two above.
#
# Files under services/opensearch-secure/ (all made on the first start, kept
# across stop/start, removed by `wipe`):
#   credentials              admin=... / ctindex_writer=... (mode 600), random,
#                            made once; delete it (and restart) for new ones
#   admin.curlrc             `curl -K admin.curlrc https://localhost:9205/...`:
#                            CA + admin credentials (mode 600)
#   config/certs/            made with openssl when missing: ca.pem/ca-key.pem,
#                            node.pem/node-key.pem (HTTP and transport; CN and
#                            only SAN DNS:localhost), admin.pem/admin-key.pem
#                            (client cert, plugins.security.authcz.admin_dn, for
#                            securityadmin.sh). Keys are unencrypted PKCS#8 PEM.
#   config/opensearch-security/*.yml  the plugin's configuration, written on
#                            every start: internal_users.yml (admin and
#                            ctindex_writer, bcrypt hashes from the plugin's
#                            tools/hash.sh), roles.yml (= roles/opensearch.yml,
#                            read on every start), roles_mapping.yml (all_access
#                            -> admin, ctindex_writer -> ctindex_writer),
#                            config.yml (basic auth, internal users only), ...
#   (config/ is mode 0700, owned by the stack user: the plugin warns about
#   every config file others can read; root reads it anyway)
#   logs/securityadmin.log   output of the last securityadmin.sh run
#   security-applied         checksum of the configuration in the security index
#
# The security index is created from those files on the first start
# (plugins.security.allow_default_init_securityindex). On later starts, when
# the files differ from what was last applied (e.g. roles/opensearch.yml was
# edited), the whole directory is uploaded again with securityadmin.sh and the
# admin certificate, once the node is up: this replaces users, roles and
# mappings created through the REST API. Delete security-applied to force it.
# Audit logging is off (plugins.security.audit.type: noop).

OPENSEARCH_SECURE_VERSION="${OPENSEARCH_SECURE_VERSION:-2.19.4}"
OPENSEARCH_SECURE_PORT="${OPENSEARCH_SECURE_PORT:-9205}"
OPENSEARCH_SECURE_TRANSPORT_PORT="${OPENSEARCH_SECURE_TRANSPORT_PORT:-9305}"
OPENSEARCH_SECURE_HEAP="${OPENSEARCH_SECURE_HEAP:-512m}"
OSSEC_ROLES_FILE="${BASH_SOURCE[0]%/*}/../../roles/opensearch.yml"
[[ $OSSEC_ROLES_FILE == /* ]] || OSSEC_ROLES_FILE="$PWD/$OSSEC_ROLES_FILE"
OSSEC_ROLES_FILE="${OPENSEARCH_SECURE_ROLES_FILE:-$OSSEC_ROLES_FILE}"
OSSEC_PLUGIN_MAVEN=org.opensearch.plugin:opensearch-security
# Subjects as OpenSearch writes them (RFC 2253, most specific first).
OSSEC_NODE_DN="CN=localhost,OU=node,O=ctindex"
OSSEC_ADMIN_DN="CN=admin,OU=admin,O=ctindex"
# For the short-lived JVMs of hash.sh and securityadmin.sh.
OSSEC_TOOL_JAVA_OPTS="-Xms32m -Xmx256m -XX:TieredStopAtLevel=1 -Xshare:auto"
OSSEC_APPLY_TRIES=0

svc_opensearch-secure() {
	S_KIND=ossecure
	S_VERSION=$OPENSEARCH_SECURE_VERSION
	S_PORT=$OPENSEARCH_SECURE_PORT
	S_TRANSPORT_PORT=$OPENSEARCH_SECURE_TRANSPORT_PORT
	S_URL_VAR=OPENSEARCH_SECURE_URL
	S_MAVEN=org.opensearch.distribution.integ-test-zip:opensearch
	S_PRODUCT=opensearch
	S_ENV_PREFIX=OPENSEARCH
	S_JDK_MIN=11 S_JDK_MAX=23 S_JDK_PREFER=high
	S_JAVA_HOME=${OPENSEARCH_SECURE_JAVA_HOME:-${OPENSEARCH_JAVA_HOME:-}}
	S_HEAP=$OPENSEARCH_SECURE_HEAP
}
ALL_SERVICES+=(opensearch-secure)
STACK_ALIASES["os-secure"]=opensearch-secure

# ------------------------------------------------------------------ paths --
# load_service sets S_URL to http://127.0.0.1:PORT after svc_*; launch, healthy
# and live_version put the real URL back for the messages of scripts/stack.
ossecure_home() { echo "$DIST_DIR/$S_PRODUCT-$S_VERSION-security"; }
ossecure_url() { echo "https://localhost:$S_PORT"; }
ossecure_certs() { echo "$S_STATE/config/certs"; }
ossecure_secdir() { echo "$S_STATE/config/opensearch-security"; }

# ---------------------------------------------------------------- install --
# `mvn dependency:copy` of COORDS unless ZIP is already there.
ossecure_fetch() {
	local coords=$1 zip=$2 log
	[[ -s $zip ]] && return 0
	command -v mvn >/dev/null 2>&1 || die "maven (mvn) is needed to download $coords"
	info "$S_NAME: downloading $coords from Maven Central"
	mkdir -p "$DOWNLOAD_DIR"
	log=$(mktemp)
	if ! (cd "$DOWNLOAD_DIR" && mvn -q -B -Dstyle.color=never dependency:copy \
		-Dartifact="$coords" -DoutputDirectory="$DOWNLOAD_DIR" >"$log" 2>&1); then
		grep -E 'ERROR|Could not' "$log" | head -n 5 >&2 || true
		rm -f "$zip" "$log"
		die "$S_NAME: could not download $coords (the plugin exists only for some versions: 2.19.4.0 yes, 2.19.6.0 no)"
	fi
	rm -f "$log"
	[[ -s $zip ]] || die "$S_NAME: maven reported success but $zip is missing"
}

# The plain distribution (search_install), then a copy of it with the plugin.
ossecure_install() {
	local plain home zip tmp log
	search_install
	home=$(ossecure_home)
	[[ -x $home/bin/$S_PRODUCT && -d $home/plugins/opensearch-security ]] && return 0
	plain=$(search_dist_home)
	zip="$DOWNLOAD_DIR/opensearch-security-$S_VERSION.0.zip"
	ossecure_fetch "$OSSEC_PLUGIN_MAVEN:$S_VERSION.0:zip" "$zip"
	pick_jdk
	info "$S_NAME: installing $(basename "$zip") into $home"
	tmp=$(mktemp -d "$DIST_DIR/.unpack.XXXXXX")
	log="$tmp/plugin-install.log"
	cp -a "$plain" "$tmp/dist"
	if ! env -i PATH="$SAFE_PATH" HOME="$tmp" LANG=C.UTF-8 \
		OPENSEARCH_JAVA_HOME="$S_JDK" OPENSEARCH_PATH_CONF="$tmp/dist/config" \
		"$tmp/dist/bin/opensearch-plugin" install --batch "file://$zip" >"$log" 2>&1; then
		tail -n 15 "$log" >&2
		rm -rf "$tmp"
		die "$S_NAME: opensearch-plugin could not install $zip"
	fi
	chmod -R a+rX "$tmp/dist"
	rm -rf "$home"
	mv "$tmp/dist" "$home"
	rm -rf "$tmp"
}

# -------------------------------------------------------------- credentials --
ossecure_random_password() {
	local pw
	pw=$(openssl rand -base64 48 | tr -dc 'A-Za-z0-9')
	echo "${pw:0:24}"
}

# Sets OSSEC_ADMIN_PW and OSSEC_WRITER_PW from $S_STATE/credentials, making
# that file (mode 600) the first time.
ossecure_credentials() {
	local f=$S_STATE/credentials tmp k v
	if [[ ! -s $f ]]; then
		command -v openssl >/dev/null 2>&1 || die "$S_NAME: openssl is needed (passwords, certificates)"
		mkdir -p "$S_STATE"
		tmp=$(mktemp "$S_STATE/.credentials.XXXXXX") # mode 600
		{
			echo "# Made once by scripts/stack; the passwords of $S_NAME's internal users."
			echo "admin=$(ossecure_random_password)"
			echo "ctindex_writer=$(ossecure_random_password)"
		} >"$tmp"
		ln "$tmp" "$f" 2>/dev/null || true # atomic; a concurrent `env` may have won
		rm -f "$tmp"
	fi
	OSSEC_ADMIN_PW="" OSSEC_WRITER_PW=""
	while IFS='=' read -r k v; do
		case $k in
		admin) OSSEC_ADMIN_PW=$v ;;
		ctindex_writer) OSSEC_WRITER_PW=$v ;;
		esac
	done <"$f"
	[[ -n $OSSEC_ADMIN_PW && -n $OSSEC_WRITER_PW ]] ||
		die "$S_NAME: $f lacks admin=... or ctindex_writer=... (delete it to get new passwords)"
}

# bcrypt hash of a password for internal_users.yml, made with the plugin's
# tools/hash.sh (a JVM: ~1 s) and cached in $S_STATE/.stack-hashes by the
# SHA-256 of the password.
ossecure_hash() {
	local user=$1 pw=$2 cache=$S_STATE/.stack-hashes fp u f h out
	fp=$(printf '%s' "$pw" | sha256sum | cut -d' ' -f1)
	if [[ -f $cache ]]; then
		while read -r u f h; do
			if [[ $u == "$user" && $f == "$fp" && -n $h ]]; then
				echo "$h"
				return 0
			fi
		done <"$cache"
	fi
	out=$(env -i PATH="$SAFE_PATH" HOME="$S_STATE/tmp" LANG=C.UTF-8 \
		JAVA_HOME="$S_JDK" OPENSEARCH_JAVA_HOME="$S_JDK" JAVA_OPTS="$OSSEC_TOOL_JAVA_OPTS" \
		OSSEC_PASSWORD="$pw" \
		bash "$(ossecure_home)/plugins/opensearch-security/tools/hash.sh" -env OSSEC_PASSWORD 2>&1) ||
		die "$S_NAME: tools/hash.sh failed: $out"
	# shellcheck disable=SC2016 # a literal regex
	h=$(printf '%s\n' "$out" | grep -E '^\$2[aby]\$[0-9]+\$' | tail -n 1) ||
		die "$S_NAME: no bcrypt hash in the output of tools/hash.sh: $out"
	(
		umask 077
		{
			if [[ -f $cache ]]; then grep -v "^$user " "$cache" || true; fi
			echo "$user $fp $h"
		} >"$cache.tmp"
	)
	mv "$cache.tmp" "$cache"
	echo "$h"
}

# ----------------------------------------------------------- certificates --
# A CA, the node certificate (HTTP + transport; SAN DNS:localhost only) and
# the admin client certificate; each made only when missing.
ossecure_make_certs() {
	local d ext
	d=$(ossecure_certs)
	command -v openssl >/dev/null 2>&1 || die "$S_NAME: openssl is needed to make the certificates"
	mkdir -p "$d"
	ext=$(mktemp)
	if [[ ! -s $d/ca.pem || ! -s $d/ca-key.pem ]]; then
		info "$S_NAME: making a CA and certificates with openssl in $d"
		rm -f "$d"/*.pem
		printf '%s\n' '[req]' 'distinguished_name = dn' 'x509_extensions = ca' '[dn]' '[ca]' \
			'basicConstraints = critical, CA:TRUE' 'keyUsage = critical, keyCertSign, cRLSign' \
			'subjectKeyIdentifier = hash' >"$ext"
		(umask 077 && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$d/ca-key.pem" 2>/dev/null) ||
			die "$S_NAME: openssl genpkey failed"
		openssl req -x509 -new -config "$ext" -key "$d/ca-key.pem" -sha256 -days 3650 \
			-subj "/O=ctindex/OU=stack/CN=ctindex $S_NAME test CA" -out "$d/ca.pem" ||
			die "$S_NAME: could not make the CA certificate"
	fi
	ossecure_leaf node "/O=ctindex/OU=node/CN=localhost" \
		'subjectAltName = DNS:localhost' 'extendedKeyUsage = serverAuth, clientAuth'
	ossecure_leaf admin "/O=ctindex/OU=admin/CN=admin" 'extendedKeyUsage = clientAuth'
	rm -f "$ext" "$d"/*.csr "$d"/*.srl
}

# ossecure_leaf NAME SUBJECT EXTENSION... -> $d/NAME.pem, $d/NAME-key.pem (PKCS#8)
ossecure_leaf() {
	local name=$1 subj=$2 d ext
	shift 2
	d=$(ossecure_certs)
	[[ -s $d/$name.pem && -s $d/$name-key.pem ]] && return 0
	ext=$(mktemp)
	printf '%s\n' 'basicConstraints = critical, CA:FALSE' \
		'keyUsage = critical, digitalSignature, keyEncipherment' \
		'subjectKeyIdentifier = hash' 'authorityKeyIdentifier = keyid, issuer' "$@" >"$ext"
	(umask 077 && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$d/$name-key.pem" 2>/dev/null) ||
		die "$S_NAME: openssl genpkey failed"
	openssl req -new -key "$d/$name-key.pem" -subj "$subj" -out "$d/$name.csr" ||
		die "$S_NAME: could not make the $name certificate request"
	openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.pem" -CAkey "$d/ca-key.pem" \
		-set_serial "0x$(openssl rand -hex 16)" -days 3650 -sha256 -extfile "$ext" \
		-out "$d/$name.pem" 2>/dev/null || die "$S_NAME: could not sign the $name certificate"
	rm -f "$ext" "$d/$name.csr"
}

# --------------------------------------------------------------- configure --
ossecure_write_security_config() {
	local dir admin_hash writer_hash
	dir=$(ossecure_secdir)
	mkdir -p "$dir"
	[[ -r $OSSEC_ROLES_FILE ]] || die "$S_NAME: roles file $OSSEC_ROLES_FILE is missing (OPENSEARCH_SECURE_ROLES_FILE)"
	if "$PYTHON" -c 'import yaml' >/dev/null 2>&1; then
		"$PYTHON" - "$OSSEC_ROLES_FILE" <<'PY' || die "$S_NAME: $OSSEC_ROLES_FILE is not usable"
import sys, yaml
path = sys.argv[1]
try:
    doc = yaml.safe_load(open(path))
except yaml.YAMLError as e:
    sys.exit(f"{path}: invalid YAML: {e}")
if not isinstance(doc, dict) or not isinstance(doc.get("ctindex_writer"), dict):
    sys.exit(f"{path}: no role 'ctindex_writer' at the top level")
PY
	fi
	admin_hash=$(ossecure_hash admin "$OSSEC_ADMIN_PW")
	writer_hash=$(ossecure_hash ctindex_writer "$OSSEC_WRITER_PW")
	local gen="# Generated by scripts/stack (stack.d/opensearch-secure.sh) on every start."
	cat >"$dir/config.yml" <<EOF
$gen
_meta:
  type: "config"
  config_version: 2
config:
  dynamic:
    http:
      anonymous_auth_enabled: false
    authc:
      basic_internal_auth_domain:
        description: "HTTP basic authentication against the internal users"
        http_enabled: true
        transport_enabled: true
        order: 0
        http_authenticator:
          type: basic
          challenge: true
        authentication_backend:
          type: intern
EOF
	cat >"$dir/internal_users.yml" <<EOF
$gen
# Passwords: $S_STATE/credentials
_meta:
  type: "internalusers"
  config_version: 2
admin:
  hash: "$admin_hash"
  reserved: true
  description: "scripts/stack admin (all_access, security REST API)"
ctindex_writer:
  hash: "$writer_hash"
  reserved: false
  description: "ctindex with the least-privilege role ctindex_writer"
EOF
	{
		echo "$gen"
		echo "# The role(s) of $OSSEC_ROLES_FILE, as they are:"
		if ! grep -q '^_meta:' "$OSSEC_ROLES_FILE"; then
			printf '%s\n' '_meta:' '  type: "roles"' '  config_version: 2'
		fi
		cat "$OSSEC_ROLES_FILE"
	} >"$dir/roles.yml"
	cat >"$dir/roles_mapping.yml" <<EOF
$gen
_meta:
  type: "rolesmapping"
  config_version: 2
all_access:
  reserved: false
  users: ["admin"]
  description: "scripts/stack: admin gets all_access"
ctindex_writer:
  reserved: false
  users: ["ctindex_writer"]
  description: "scripts/stack: ctindex_writer gets the role of roles/opensearch.yml"
EOF
	printf '%s\n' "$gen" '_meta:' '  type: "actiongroups"' '  config_version: 2' >"$dir/action_groups.yml"
	printf '%s\n' "$gen" '_meta:' '  type: "tenants"' '  config_version: 2' >"$dir/tenants.yml"
	printf '%s\n' "$gen" '_meta:' '  type: "nodesdn"' '  config_version: 2' >"$dir/nodes_dn.yml"
	printf '%s\n' "$gen" '_meta:' '  type: "allowlist"' '  config_version: 2' \
		'config:' '  enabled: false' >"$dir/allowlist.yml"
	# securityadmin.sh -cd also insists on the old name of allowlist.yml.
	printf '%s\n' "$gen" '_meta:' '  type: "whitelist"' '  config_version: 2' \
		'config:' '  enabled: false' >"$dir/whitelist.yml"
	printf '%s\n' "$gen" '_meta:' '  type: "audit"' '  config_version: 2' \
		'config:' '  enabled: false' >"$dir/audit.yml"
}

ossecure_configure() {
	local conf=$S_STATE/config yml fresh=apply sum
	# No data yet: the plugin creates the security index from the files itself.
	[[ -d $S_STATE/data/nodes ]] || fresh=fresh
	search_configure # general settings; the plain distribution's config files
	pick_jdk
	ossecure_credentials
	ossecure_make_certs
	ossecure_write_security_config
	yml=$conf/$S_PRODUCT.yml
	sed -i '/^plugins\.security\.disabled:/d' "$yml"
	cat >>"$yml" <<EOF
# ---- security plugin (scripts/stack.d/opensearch-secure.sh); paths relative to this dir
plugins.security.ssl.transport.pemcert_filepath: certs/node.pem
plugins.security.ssl.transport.pemkey_filepath: certs/node-key.pem
plugins.security.ssl.transport.pemtrustedcas_filepath: certs/ca.pem
plugins.security.ssl.transport.enforce_hostname_verification: false
plugins.security.ssl.http.enabled: true
plugins.security.ssl.http.pemcert_filepath: certs/node.pem
plugins.security.ssl.http.pemkey_filepath: certs/node-key.pem
plugins.security.ssl.http.pemtrustedcas_filepath: certs/ca.pem
plugins.security.nodes_dn: ["$OSSEC_NODE_DN"]
plugins.security.authcz.admin_dn: ["$OSSEC_ADMIN_DN"]
plugins.security.allow_default_init_securityindex: true
plugins.security.restapi.roles_enabled: ["all_access"]
plugins.security.audit.type: noop
EOF
	# For our own health/version checks: CA + admin, and localhost pinned to
	# the address we bind (localhost may also resolve to ::1).
	(
		umask 077
		printf 'cacert = "%s"\nuser = "admin:%s"\nresolve = "localhost:%s:%s"\n' \
			"$(ossecure_certs)/ca.pem" "$OSSEC_ADMIN_PW" "$S_PORT" "$BIND_HOST" >"$S_STATE/admin.curlrc"
	)
	sum=$(cat "$(ossecure_secdir)"/*.yml | sha256sum | cut -d' ' -f1)
	echo "$fresh $sum" >"$S_STATE/.stack-security-pending"
	OSSEC_APPLY_TRIES=0
	own_state
	# The plugin warns about every config file that others could read.
	chmod -R go= "$conf"
}

ossecure_launch() {
	# search_launch runs search_dist_home = dist/<product>-<S_VERSION>: point it
	# at the copy with the plugin.
	local S_VERSION="$S_VERSION-security"
	S_URL=$(ossecure_url)
	search_launch
}

# ----------------------------------------------------------- health, env --
ossecure_curl() {
	[[ -r $S_STATE/admin.curlrc ]] || return 1
	curl -fsS -m 3 -K "$S_STATE/admin.curlrc" "$@" 2>/dev/null
}

# Upload the configuration directory to the security index (admin cert).
ossecure_securityadmin() {
	local log=$S_STATE/logs/securityadmin.log d rc=0
	d=$(ossecure_certs)
	pick_jdk
	((OSSEC_APPLY_TRIES > 1)) ||
		info "$S_NAME: the security configuration changed; uploading it with securityadmin.sh"
	{
		echo "==== $(date '+%F %T') scripts/stack: securityadmin.sh -cd $(ossecure_secdir)"
		env -i PATH="$SAFE_PATH" HOME="$S_STATE/tmp" LANG=C.UTF-8 \
			JAVA_HOME="$S_JDK" OPENSEARCH_JAVA_HOME="$S_JDK" JAVA_OPTS="$OSSEC_TOOL_JAVA_OPTS" \
			bash "$(ossecure_home)/plugins/opensearch-security/tools/securityadmin.sh" \
			-cd "$(ossecure_secdir)" -icl -h localhost -p "$S_PORT" \
			-cacert "$d/ca.pem" -cert "$d/admin.pem" -key "$d/admin-key.pem" || rc=$?
	} >"$log" 2>&1 </dev/null
	return "$rc"
}

# Cluster health through TLS + admin. During `start`, once it first answers,
# make the security index match the files (see the header).
ossecure_healthy() {
	local mode sum applied
	S_URL=$(ossecure_url)
	ossecure_curl "$(ossecure_url)/_cluster/health" | grep -Eq '"status" *: *"(green|yellow)"' || return 1
	[[ -f $S_STATE/.stack-security-pending ]] || return 0
	[[ " ${FUNCNAME[*]} " == *" cmd_start "* ]] || return 0 # `status`: report only
	read -r mode sum <"$S_STATE/.stack-security-pending"
	applied=$(cat "$S_STATE/security-applied" 2>/dev/null || true)
	if [[ $mode != fresh && $sum != "$applied" ]]; then
		OSSEC_APPLY_TRIES=$((OSSEC_APPLY_TRIES + 1))
		if ! ossecure_securityadmin; then
			((OSSEC_APPLY_TRIES < 3)) && return 1
			printf '\n----- last 25 lines of %s -----\n' "$S_STATE/logs/securityadmin.log" >&2
			tail -n 25 "$S_STATE/logs/securityadmin.log" >&2
			die "$S_NAME: securityadmin.sh failed $OSSEC_APPLY_TRIES times; the server is left running, maybe with part of it uploaded (is $OSSEC_ROLES_FILE valid?)"
		fi
	fi
	echo "$sum" >"$S_STATE/security-applied"
	rm -f "$S_STATE/.stack-security-pending"
}

ossecure_live_version() {
	S_URL=$(ossecure_url)
	ossecure_curl "$(ossecure_url)/" | sed -n 's/.*"number" *: *"\([^"]*\)".*/\1/p' | head -n 1
}

ossecure_main_log() { search_main_log; }

ossecure_env() {
	local p=${S_URL_VAR%_URL}
	ossecure_credentials
	printf 'export %s_URL=%q\n' "$p" "$(ossecure_url)"
	printf 'export %s_CA=%q\n' "$p" "$(ossecure_certs)/ca.pem"
	printf 'export %s_USER=%q\n' "$p" ctindex_writer
	printf 'export %s_PASSWORD=%q\n' "$p" "$OSSEC_WRITER_PW"
	printf 'export %s_ADMIN_USER=%q\n' "$p" admin
	printf 'export %s_ADMIN_PASSWORD=%q\n' "$p" "$OSSEC_ADMIN_PW"
}

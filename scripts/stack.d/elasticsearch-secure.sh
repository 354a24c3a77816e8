# shellcheck shell=bash
# The S_* variables, ALL_SERVICES and STACK_ALIASES are read by scripts/stack.
# shellcheck disable=SC2034
# scripts/stack.d/elasticsearch-secure.sh - sourced by scripts/stack.
#
# Service "elasticsearch-secure" (alias es-secure, opt-in): the same
# Elasticsearch 8.x integ-test-zip as `elasticsearch` ($ES_VERSION, same
# download) with x-pack security ON, for the TLS and authentication tests.
#
#   HTTPS   https://localhost:$ES_SECURE_PORT (9204), bound to 127.0.0.1 only
#   transport $ES_SECURE_TRANSPORT_PORT (9304, TLS), heap $ES_SECURE_HEAP (512m)
#
# It runs from dist/elasticsearch-secure/elasticsearch-<version>/: a
# hard-linked copy of dist/elasticsearch-<version>/ plus a 4-class plugin
# (ctindex-security-analysis, compiled here once with the JDK's javac) that
# supplies the analyzers the .security index needs and the integ-test-zip
# lacks; without it no API key, native role or role mapping can be stored
# (see "analysis shim dist" below). The shared dist/ is not modified.
#
# The node certificate names DNS:localhost ONLY (no IP SAN), on purpose:
# https://127.0.0.1:9204 must fail hostname verification even with the CA.
# The node runs on a self-generated 30-day trial license
# (xpack.license.self_generated.type: trial), which the PKI realm needs (gold+);
# after 30 days the license falls back to basic and PKI stops working: `wipe`
# starts a new cluster with a new trial.
#
# Realms: file (order 0), pki "pki1" (order 1, CA = the stack CA), native
# (order 2); token service and API keys on; HTTP client certificates optional.
#
# Set up once (kept across stop/start, regenerated only when missing; `wipe`
# removes everything):
#   config/certs/ca.crt            the stack CA (PEM)              -> ES_SECURE_CA
#   config/certs/node.{crt,key}    HTTP + transport certificate, SAN DNS:localhost
#   secrets/ca.key                 CA private key (root/invoking user only)
#   secrets/client.{crt,key}       PKI client cert, subject CN=ctindex-pki-client
#   secrets/client.pem             client cert + unencrypted PKCS#8 key in one
#                                  file (reqwest Identity::from_pem, curl --cert)
#                                                                  -> ES_SECURE_CLIENT_CERT
#   secrets/admin-password         file-realm user ctindex_admin  (role superuser)
#   secrets/writer-password        file-realm user ctindex_writer (role ctindex_writer)
#   secrets/service-token          file-based token elastic/fleet-server/ctindex
#                                  (config/service_tokens)
# (paths relative to $CTINDEX_CACHE/services/elasticsearch-secure; secrets/ is
# mode 0700, its files 0600, owned by whoever runs scripts/stack.)
#
# After every start, once the cluster is green/yellow (done by the health check,
# then remembered in .stack-post-start until the next configure):
#   - start a trial license if the cluster is on basic (normally not needed),
#   - PUT /_security/role/ctindex_writer from roles/elasticsearch.json (as is;
#     re-read on every start, so edits take effect on restart),
#   - PUT /_security/role_mapping/ctindex_pki: dn "CN=ctindex-pki-client" ->
#     ctindex_writer,
#   - API key "ctindex-stack" (owner ctindex_admin, role_descriptors
#     {"ctindex_writer": <roles/elasticsearch.json>}): reused while it still
#     authenticates (its role descriptors are updated in place on each start),
#     created otherwise; stored in secrets/api-key.
#
# `scripts/stack env elasticsearch-secure` prints ES_SECURE_URL, ES_SECURE_CA,
# ES_SECURE_USER (ctindex_writer), ES_SECURE_PASSWORD, ES_SECURE_API_KEY (the
# "encoded" value: send "Authorization: ApiKey $ES_SECURE_API_KEY"),
# ES_SECURE_SERVICE_TOKEN ("Authorization: Bearer ..."), ES_SECURE_CLIENT_CERT,
# ES_SECURE_ADMIN_USER (ctindex_admin) and ES_SECURE_ADMIN_PASSWORD; it only
# reads files (values not created yet are left out, with a warning).
#
# Knobs: ES_SECURE_PORT, ES_SECURE_TRANSPORT_PORT, ES_SECURE_HEAP,
# ES_SECURE_ROLE_FILE (default roles/elasticsearch.json of this checkout);
# ES_VERSION and ES_JAVA_HOME as for `elasticsearch` (a JDK with javac is
# needed once, to build the plugin).

ES_SECURE_PORT="${ES_SECURE_PORT:-9204}"
ES_SECURE_TRANSPORT_PORT="${ES_SECURE_TRANSPORT_PORT:-9304}"
ES_SECURE_HEAP="${ES_SECURE_HEAP:-512m}"
ES_SECURE_ROLE_FILE="${ES_SECURE_ROLE_FILE:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/roles/elasticsearch.json}"
ES_SECURE_ADMIN_USER=ctindex_admin
ES_SECURE_WRITER_USER=ctindex_writer
ES_SECURE_WRITER_ROLE=ctindex_writer
ES_SECURE_PKI_DN="CN=ctindex-pki-client"
ES_SECURE_SERVICE_ACCOUNT=elastic/fleet-server
ES_SECURE_TOKEN_NAME=ctindex

ALL_SERVICES+=(elasticsearch-secure)
STACK_ALIASES["es-secure"]=elasticsearch-secure

svc_elasticsearch-secure() {
	svc_elasticsearch
	S_KIND=es_secure
	S_PORT=$ES_SECURE_PORT
	S_TRANSPORT_PORT=$ES_SECURE_TRANSPORT_PORT
	S_URL_VAR=ES_SECURE_URL
	S_HEAP=$ES_SECURE_HEAP
}

# load_service sets S_URL to http://127.0.0.1:PORT after svc_*; the family
# functions put the real URL back so that the messages of scripts/stack
# ("starting ... on", "up at") show it.
es_secure_url() { echo "https://localhost:$S_PORT"; }
es_secure_certs_dir() { echo "$S_STATE/config/certs"; }
es_secure_secrets_dir() { echo "$S_STATE/secrets"; }
es_secure_marker() { echo "$S_STATE/.stack-post-start"; }

# First line of a secrets/ file, or failure.
es_secure_secret() {
	local f
	f="$(es_secure_secrets_dir)/$1"
	[[ -s $f ]] || return 1
	head -n 1 "$f"
}

# Writes a secrets/ file atomically, mode 0600.
es_secure_put_secret() {
	local f tmp
	f="$(es_secure_secrets_dir)/$1"
	tmp="$f.tmp.$$"
	(
		umask 077
		printf '%s\n' "$2" >"$tmp"
	)
	mv -f "$tmp" "$f"
}

# ------------------------------------------------------ analysis shim dist --
# Security keeps users, roles, role mappings and API keys in the system index
# .security-7, whose settings define an "email" analyzer (tokenizer
# uax_url_email, filters pattern_capture, lowercase, unique). Those live in the
# analysis-common module, which the integ-test-zip does not ship (and which is
# not on Maven Central), so the index cannot be created ("Unknown filter type
# [pattern_capture]") and every API-defined security object fails. This
# service therefore runs from a copy of the distribution (hard links, next to
# it under dist/elasticsearch-secure/) with a tiny plugin that provides those
# four components from Lucene classes already in lib/. It is compiled once
# with javac from the JDK (so a JDK, not a JRE, is needed) and rebuilt when
# its source below or the version changes. The shared dist/ stays untouched.
ES_SECURE_DIST_DIR="$DIST_DIR/elasticsearch-secure"
ES_SECURE_SHIM=ctindex-security-analysis

es_secure_home() { DIST_DIR=$ES_SECURE_DIST_DIR search_dist_home; }

es_secure_shim_java() {
	cat <<'JAVA'
package org.ctindex.stack;

import java.io.IOException;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;
import java.util.regex.Pattern;

import org.apache.lucene.analysis.CharArraySet;
import org.apache.lucene.analysis.LowerCaseFilter;
import org.apache.lucene.analysis.TokenFilter;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.email.UAX29URLEmailTokenizer;
import org.apache.lucene.analysis.pattern.PatternCaptureGroupTokenFilter;
import org.apache.lucene.analysis.standard.StandardAnalyzer;
import org.apache.lucene.analysis.tokenattributes.CharTermAttribute;
import org.elasticsearch.index.analysis.TokenFilterFactory;
import org.elasticsearch.index.analysis.TokenizerFactory;
import org.elasticsearch.indices.analysis.AnalysisModule.AnalysisProvider;
import org.elasticsearch.plugins.AnalysisPlugin;
import org.elasticsearch.plugins.Plugin;

/** The analysis components of the .security index, for the integ-test-zip (scripts/stack). */
public final class SecurityAnalysisPlugin extends Plugin implements AnalysisPlugin {
    private static TokenFilterFactory filter(String name, UnaryOperator<TokenStream> create) {
        return new TokenFilterFactory() {
            @Override
            public String name() {
                return name;
            }

            @Override
            public TokenStream create(TokenStream in) {
                return create.apply(in);
            }
        };
    }

    @Override
    public Map<String, AnalysisProvider<TokenFilterFactory>> getTokenFilters() {
        Map<String, AnalysisProvider<TokenFilterFactory>> filters = new HashMap<>();
        filters.put("pattern_capture", AnalysisPlugin.requiresAnalysisSettings((index, env, name, settings) -> {
            List<String> regexes = settings.getAsList("patterns");
            if (regexes.isEmpty()) {
                throw new IllegalArgumentException("pattern_capture filter [" + name + "] needs [patterns]");
            }
            Pattern[] patterns = regexes.stream().map(Pattern::compile).toArray(Pattern[]::new);
            boolean preserveOriginal = settings.getAsBoolean("preserve_original", true);
            return filter(name, in -> new PatternCaptureGroupTokenFilter(in, preserveOriginal, patterns));
        }));
        filters.put("lowercase", (index, env, name, settings) -> filter(name, LowerCaseFilter::new));
        filters.put("unique", (index, env, name, settings) -> filter(name, UniqueFilter::new));
        return filters;
    }

    @Override
    public Map<String, AnalysisProvider<TokenizerFactory>> getTokenizers() {
        return Map.of("uax_url_email", (index, env, name, settings) -> {
            int max = settings.getAsInt("max_token_length", StandardAnalyzer.DEFAULT_MAX_TOKEN_LENGTH);
            return TokenizerFactory.newFactory(name, () -> {
                UAX29URLEmailTokenizer tokenizer = new UAX29URLEmailTokenizer();
                tokenizer.setMaxTokenLength(max);
                return tokenizer;
            });
        });
    }

    /** Drops every token whose term was seen before in the stream (like ES "unique"). */
    static final class UniqueFilter extends TokenFilter {
        private final CharTermAttribute term = addAttribute(CharTermAttribute.class);
        private final CharArraySet seen = new CharArraySet(8, false);

        UniqueFilter(TokenStream in) {
            super(in);
        }

        @Override
        public boolean incrementToken() throws IOException {
            while (input.incrementToken()) {
                if (!seen.contains(term.buffer(), 0, term.length())) {
                    seen.add(Arrays.copyOf(term.buffer(), term.length()));
                    return true;
                }
            }
            return false;
        }

        @Override
        public void reset() throws IOException {
            super.reset();
            seen.clear();
        }
    }
}
JAVA
}

# A javac for S_JDK's release: S_JDK's own, else any JDK >= its major.
es_secure_javac() {
	local major path
	if [[ -x $S_JDK/bin/javac ]]; then
		echo "$S_JDK/bin/javac"
		return 0
	fi
	while read -r major path; do
		if [[ -n $major ]] && ((major >= S_JDK_MAJOR)) && [[ -x $path/bin/javac ]]; then
			echo "$path/bin/javac"
			return 0
		fi
	done < <(list_jdks | sort -n)
	return 1
}

es_secure_install() {
	local base home stamp tmp javac jar plugin out
	search_install
	base=$(search_dist_home)
	home=$(es_secure_home)
	stamp="$S_VERSION $(es_secure_shim_java | cksum | cut -d' ' -f1)"
	if [[ -x $home/bin/$S_PRODUCT && $(cat "$home/.stack-shim" 2>/dev/null) == "$stamp" ]]; then
		return 0
	fi
	pick_jdk
	javac=$(es_secure_javac) ||
		die "$S_NAME: needs javac (a JDK >= $S_JDK_MAJOR, not a JRE) to build its analysis plugin; set ES_JAVA_HOME to a JDK"
	jar="$(dirname "$javac")/jar"
	info "$S_NAME: building $home (hard-linked copy of $(basename "$base") + plugin $ES_SECURE_SHIM)"
	mkdir -p "$ES_SECURE_DIST_DIR"
	tmp=$(mktemp -d "$ES_SECURE_DIST_DIR/.build.XXXXXX")
	if ! cp -al "$base" "$tmp/dist" 2>/dev/null; then
		rm -rf "$tmp/dist"
		cp -a "$base" "$tmp/dist"
	fi
	mkdir -p "$tmp/src/org/ctindex/stack" "$tmp/classes"
	es_secure_shim_java >"$tmp/src/org/ctindex/stack/SecurityAnalysisPlugin.java"
	if ! out=$("$javac" --release 17 -nowarn -cp "$base/lib/*" -d "$tmp/classes" \
		"$tmp/src/org/ctindex/stack/SecurityAnalysisPlugin.java" 2>&1); then
		printf '%s\n' "$out" | tail -n 20 >&2
		rm -rf "$tmp"
		die "$S_NAME: could not compile the analysis plugin"
	fi
	plugin="$tmp/dist/plugins/$ES_SECURE_SHIM"
	mkdir -p "$plugin"
	"$jar" cf "$plugin/$ES_SECURE_SHIM-$S_VERSION.jar" -C "$tmp/classes" . ||
		{
			rm -rf "$tmp"
			die "$S_NAME: could not package the analysis plugin"
		}
	cat >"$plugin/plugin-descriptor.properties" <<PROPS
description=scripts/stack: pattern_capture, uax_url_email, lowercase and unique for the .security index (the integ-test-zip lacks analysis-common)
version=$S_VERSION
name=$ES_SECURE_SHIM
classname=org.ctindex.stack.SecurityAnalysisPlugin
java.version=17
elasticsearch.version=$S_VERSION
PROPS
	chmod -R a+rX "$plugin"
	echo "$stamp" >"$tmp/dist/.stack-shim"
	rm -rf "$home"
	mv "$tmp/dist" "$home"
	rm -rf "$tmp"
}

# es_secure_key FILE: new RSA 2048 private key, PKCS#8 PEM, mode 0600.
es_secure_key() { (umask 077 && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null); }

# es_secure_leaf DIR NAME SUBJECT EXTENSIONS: DIR/NAME.{key,crt} signed by the
# stack CA, extensions from the section EXTENSIONS of DIR/openssl.cnf.
es_secure_leaf() {
	local dir=$1 name=$2
	es_secure_key "$dir/$name.key" &&
		openssl req -new -config "$dir/openssl.cnf" -key "$dir/$name.key" -subj "$3" -out "$dir/$name.csr" &&
		openssl x509 -req -in "$dir/$name.csr" -CA "$(es_secure_certs_dir)/ca.crt" \
			-CAkey "$(es_secure_secrets_dir)/ca.key" -set_serial "0x$(openssl rand -hex 15)" \
			-days 3650 -sha256 -extfile "$dir/openssl.cnf" -extensions "$4" -out "$dir/$name.crt" 2>/dev/null
}

# ------------------------------------------------------------ certificates --
# CA, node (HTTP + transport) and PKI client certificates, RSA 2048, PEM,
# unencrypted PKCS#8 keys. Each is made only when missing (a new CA re-issues
# both).
es_secure_certs() {
	local certs secrets tmp new_ca=0
	certs=$(es_secure_certs_dir)
	secrets=$(es_secure_secrets_dir)
	mkdir -p "$certs"
	command -v openssl >/dev/null 2>&1 || die "$S_NAME: openssl is needed to make the TLS certificates"
	if [[ -s $certs/ca.crt && -s $secrets/ca.key && -s $certs/node.crt && -s $certs/node.key &&
		-s $secrets/client.crt && -s $secrets/client.key && -s $secrets/client.pem ]]; then
		return 0
	fi
	tmp=$(mktemp -d)
	cat >"$tmp/openssl.cnf" <<'CNF'
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused
[ ca_ext ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ node_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ client_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
	if [[ ! -s $certs/ca.crt || ! -s $secrets/ca.key ]]; then
		info "$S_NAME: creating the stack CA in $certs"
		if ! es_secure_key "$tmp/ca.key" ||
			! openssl req -x509 -new -config "$tmp/openssl.cnf" -key "$tmp/ca.key" \
				-subj "/O=ctindex scripts-stack/CN=ctindex $S_NAME CA" -days 3650 -sha256 \
				-extensions ca_ext -out "$tmp/ca.crt"; then
			rm -rf "$tmp"
			die "$S_NAME: could not create the CA"
		fi
		mv -f "$tmp/ca.key" "$secrets/ca.key"
		mv -f "$tmp/ca.crt" "$certs/ca.crt"
		new_ca=1
	fi
	if ((new_ca)) || [[ ! -s $certs/node.crt || ! -s $certs/node.key ]]; then
		info "$S_NAME: creating the node certificate (SAN DNS:localhost only)"
		if ! es_secure_leaf "$tmp" node "/CN=localhost" node_ext; then
			rm -rf "$tmp"
			die "$S_NAME: could not create the node certificate"
		fi
		mv -f "$tmp/node.key" "$certs/node.key"
		mv -f "$tmp/node.crt" "$certs/node.crt"
	fi
	if ((new_ca)) || [[ ! -s $secrets/client.crt || ! -s $secrets/client.key || ! -s $secrets/client.pem ]]; then
		info "$S_NAME: creating the PKI client certificate ($ES_SECURE_PKI_DN)"
		if ! es_secure_leaf "$tmp" client "/${ES_SECURE_PKI_DN}" client_ext; then
			rm -rf "$tmp"
			die "$S_NAME: could not create the client certificate"
		fi
		(umask 077 && cat "$tmp/client.crt" "$tmp/client.key" >"$tmp/client.pem")
		mv -f "$tmp/client.key" "$secrets/client.key"
		mv -f "$tmp/client.crt" "$secrets/client.crt"
		mv -f "$tmp/client.pem" "$secrets/client.pem"
	fi
	rm -rf "$tmp"
	chmod 0644 "$certs/ca.crt" "$certs/node.crt" "$secrets/client.crt"
	chmod 0600 "$certs/node.key" "$secrets/ca.key" "$secrets/client.key" "$secrets/client.pem"
}

# --------------------------------------------------------- users, tokens --
# Runs an Elasticsearch CLI tool of the distribution as the stack user, on
# this service's config dir. pick_jdk and stack_user_prefix must have run.
es_secure_cli() {
	local home tool=$1
	shift
	home=$(es_secure_home)
	(
		cd "$S_STATE" || exit 1
		exec "${RUN_AS[@]}" env -i \
			PATH="$SAFE_PATH" HOME="$S_STATE" LANG=C.UTF-8 \
			ES_JAVA_HOME="$S_JDK" ES_PATH_CONF="$S_STATE/config" \
			"CLI_JAVA_OPTS=-XX:TieredStopAtLevel=1" \
			"$home/bin/$tool" "$@"
	)
}

# Password from secrets/<file>, made when missing; ES_SECURE_NEW=1 when new.
es_secure_password() {
	ES_SECURE_NEW=0
	if ! es_secure_secret "$1" >/dev/null; then
		es_secure_put_secret "$1" "$(openssl rand -hex 16)"
		ES_SECURE_NEW=1
	fi
}

# File-realm user USER with ROLE and the password in secrets/PWFILE; (re)made
# when missing, when its role is missing or when the password is new.
es_secure_user() {
	local user=$1 role=$2 pwfile=$3 conf=$S_STATE/config pw out
	es_secure_password "$pwfile"
	if ((ES_SECURE_NEW == 0)) && grep -q "^$user:" "$conf/users" 2>/dev/null &&
		grep -Eq "^$role:(.*,)?$user(,|\$)" "$conf/users_roles" 2>/dev/null; then
		return 0
	fi
	info "$S_NAME: creating file-realm user $user (role $role)"
	if grep -q "^$user:" "$conf/users" 2>/dev/null; then
		es_secure_cli elasticsearch-users userdel "$user" >/dev/null 2>&1 || true
	fi
	pw=$(es_secure_secret "$pwfile")
	# The password goes in on stdin (asked twice), not on the command line.
	if ! out=$(printf '%s\n%s\n' "$pw" "$pw" | es_secure_cli elasticsearch-users useradd "$user" -r "$role" 2>&1); then
		printf '%s\n' "$out" | tail -n 5 >&2
		die "$S_NAME: elasticsearch-users useradd $user failed"
	fi
	grep -q "^$user:" "$conf/users" || die "$S_NAME: user $user is not in $conf/users after useradd"
}

# File-based service account token elastic/fleet-server/ctindex; the value is
# only shown at creation, so it is kept in secrets/service-token.
es_secure_service_token() {
	local conf=$S_STATE/config id="$ES_SECURE_SERVICE_ACCOUNT/$ES_SECURE_TOKEN_NAME" out token
	if es_secure_secret service-token >/dev/null && grep -q "^$id:" "$conf/service_tokens" 2>/dev/null; then
		return 0
	fi
	info "$S_NAME: creating service account token $id"
	if grep -q "^$id:" "$conf/service_tokens" 2>/dev/null; then
		es_secure_cli elasticsearch-service-tokens delete "$ES_SECURE_SERVICE_ACCOUNT" "$ES_SECURE_TOKEN_NAME" >/dev/null 2>&1 || true
	fi
	if ! out=$(es_secure_cli elasticsearch-service-tokens create "$ES_SECURE_SERVICE_ACCOUNT" "$ES_SECURE_TOKEN_NAME" </dev/null 2>&1); then
		printf '%s\n' "$out" | tail -n 5 >&2
		die "$S_NAME: elasticsearch-service-tokens create failed"
	fi
	# "SERVICE_TOKEN elastic/fleet-server/ctindex = AAEAAWVs..."
	token=$(printf '%s\n' "$out" | sed -n 's/^SERVICE_TOKEN .* = *\([^ ]*\) *$/\1/p' | head -n 1)
	[[ -n $token ]] || die "$S_NAME: no token in the output of elasticsearch-service-tokens create"
	es_secure_put_secret service-token "$token"
}

# -------------------------------------------------------------- configure --
es_secure_configure() {
	local conf=$S_STATE/config yml secrets
	[[ -r $ES_SECURE_ROLE_FILE ]] || die "$S_NAME: role file $ES_SECURE_ROLE_FILE is missing (ES_SECURE_ROLE_FILE)"
	S_URL=$(es_secure_url)
	rm -f "$(es_secure_marker)"
	DIST_DIR=$ES_SECURE_DIST_DIR search_configure
	yml=$conf/$S_PRODUCT.yml
	[[ -d $(es_secure_home)/modules/x-pack-security ]] ||
		die "$S_NAME: $(es_secure_home) has no x-pack-security module"
	# search_configure turned security off; replace that line.
	{
		grep -v '^xpack\.security\.enabled:' "$yml"
		cat <<'YML'
# ---- elasticsearch-secure (scripts/stack.d/elasticsearch-secure.sh)
xpack.security.enabled: true
# A 30-day trial from the first start: the PKI realm needs gold or better.
xpack.license.self_generated.type: trial
xpack.security.http.ssl.enabled: true
xpack.security.http.ssl.key: certs/node.key
xpack.security.http.ssl.certificate: certs/node.crt
xpack.security.http.ssl.certificate_authorities: [ "certs/ca.crt" ]
# Ask for a client certificate (PKI realm) but do not require one.
xpack.security.http.ssl.client_authentication: optional
xpack.security.transport.ssl.enabled: true
xpack.security.transport.ssl.key: certs/node.key
xpack.security.transport.ssl.certificate: certs/node.crt
xpack.security.transport.ssl.certificate_authorities: [ "certs/ca.crt" ]
xpack.security.transport.ssl.verification_mode: certificate
xpack.security.authc.realms.file.file1.order: 0
xpack.security.authc.realms.pki.pki1.order: 1
xpack.security.authc.realms.pki.pki1.certificate_authorities: [ "certs/ca.crt" ]
xpack.security.authc.realms.native.native1.order: 2
xpack.security.authc.token.enabled: true
xpack.security.authc.api_key.enabled: true
YML
	} >"$yml.tmp"
	cat "$yml.tmp" >"$yml"
	rm -f "$yml.tmp"

	secrets=$(es_secure_secrets_dir)
	mkdir -p "$secrets"
	chmod 0700 "$secrets"
	es_secure_certs
	own_state
	pick_jdk
	stack_user_prefix
	es_secure_user "$ES_SECURE_ADMIN_USER" superuser admin-password
	es_secure_user "$ES_SECURE_WRITER_USER" "$ES_SECURE_WRITER_ROLE" writer-password
	es_secure_service_token
	own_state
}

es_secure_launch() {
	S_URL=$(es_secure_url)
	DIST_DIR=$ES_SECURE_DIST_DIR search_launch
}

# ------------------------------------------------------------------- HTTP --
# es_secure_http AUTH METHOD PATH [JSON]: sets ES_SECURE_CODE (000 when there
# was no answer) and ES_SECURE_BODY. AUTH is "admin", "none" or a whole
# "Authorization: ..." header; credentials go to curl through -K on stdin, so
# they never show up in `ps`.
es_secure_http() {
	local auth=$1 method=$2 path=$3 json=${4-} cfg="" out pw
	local args=(-sS -m "${ES_SECURE_CURL_TIMEOUT:-15}" --cacert "$(es_secure_certs_dir)/ca.crt"
		-X "$method" -w '\n%{http_code}' -K -)
	case $auth in
	admin)
		pw=$(es_secure_secret admin-password) || {
			ES_SECURE_CODE=000 ES_SECURE_BODY="no admin password"
			return 1
		}
		cfg="user = \"$ES_SECURE_ADMIN_USER:$pw\""
		;;
	none) ;;
	*) cfg="header = \"$auth\"" ;;
	esac
	[[ -n $json ]] && args+=(-H 'Content-Type: application/json' --data-binary "$json")
	ES_SECURE_CODE=000 ES_SECURE_BODY=""
	out=$(printf '%s\n' "$cfg" | curl "${args[@]}" "$(es_secure_url)$path" 2>/dev/null) || return 1
	ES_SECURE_CODE=${out##*$'\n'}
	ES_SECURE_BODY=${out%$'\n'*}
}

# Warns once per distinct message (the health check runs every second).
ES_SECURE_LAST_WARNING=""
es_secure_warn_once() {
	[[ $1 == "$ES_SECURE_LAST_WARNING" ]] && return 0
	ES_SECURE_LAST_WARNING=$1
	warn "$S_NAME: $1"
}

# es_secure_call WHAT METHOD PATH [JSON]: admin request that must answer 2xx.
es_secure_call() {
	local what=$1
	shift
	es_secure_http admin "$@" || true
	if [[ $ES_SECURE_CODE != 2?? ]]; then
		es_secure_warn_once "$what failed (HTTP $ES_SECURE_CODE): $(printf '%s' "$ES_SECURE_BODY" | tr -s '\n' ' ' | cut -c 1-300)"
		return 1
	fi
}

# ------------------------------------------------------------- post-start --
es_secure_post_start() {
	local role key id descriptors
	# License: the self-generated trial normally is there already.
	es_secure_call "GET /_license" GET /_license || return 1
	if ! grep -Eq '"type" *: *"(trial|gold|platinum|enterprise)"' <<<"$ES_SECURE_BODY" ||
		grep -Eq '"status" *: *"expired"' <<<"$ES_SECURE_BODY"; then
		es_secure_http admin POST '/_license/start_trial?acknowledge=true' || true
		if grep -q '"trial_was_started" *: *true' <<<"$ES_SECURE_BODY"; then
			info "$S_NAME: started a 30-day trial license (the PKI realm needs it)"
		else
			es_secure_warn_once "no trial/platinum license and no new trial possible: the PKI realm will not work ('scripts/stack wipe $S_NAME' starts a new cluster)"
		fi
	fi

	role=$(cat "$ES_SECURE_ROLE_FILE") || return 1
	es_secure_call "PUT role $ES_SECURE_WRITER_ROLE from $ES_SECURE_ROLE_FILE" \
		PUT "/_security/role/$ES_SECURE_WRITER_ROLE" "$role" || return 1
	es_secure_call "PUT role mapping ctindex_pki" PUT /_security/role_mapping/ctindex_pki \
		"{\"enabled\": true, \"roles\": [\"$ES_SECURE_WRITER_ROLE\"], \"rules\": {\"field\": {\"dn\": \"$ES_SECURE_PKI_DN\"}}, \"metadata\": {\"managed_by\": \"scripts/stack\"}}" ||
		return 1

	# API key with exactly the writer's privileges.
	descriptors="{\"$ES_SECURE_WRITER_ROLE\": $role}"
	if key=$(es_secure_secret api-key); then
		es_secure_http "Authorization: ApiKey $key" GET /_security/_authenticate || true
		if [[ $ES_SECURE_CODE == 200 ]]; then
			# The key is "base64(id:secret)": update its privileges in place.
			id=$(printf '%s' "$key" | base64 -d 2>/dev/null | cut -d: -f1)
			es_secure_call "update API key $id" PUT "/_security/api_key/$id" \
				"{\"role_descriptors\": $descriptors}" || return 1
			return 0
		fi
		info "$S_NAME: the stored API key no longer authenticates (HTTP $ES_SECURE_CODE); creating a new one"
	fi
	es_secure_call "create API key" POST /_security/api_key \
		"{\"name\": \"ctindex-stack\", \"role_descriptors\": $descriptors, \"metadata\": {\"managed_by\": \"scripts/stack\"}}" ||
		return 1
	key=$(sed -n 's/.*"encoded" *: *"\([^"]*\)".*/\1/p' <<<"$ES_SECURE_BODY")
	if [[ -z $key ]]; then
		es_secure_warn_once "create API key: no \"encoded\" value in the answer"
		return 1
	fi
	es_secure_put_secret api-key "$key"
	info "$S_NAME: created API key ctindex-stack ($(es_secure_secrets_dir)/api-key)"
}

# Green/yellow through TLS with the admin user; the first success after a
# start also runs the post-start set-up (trial, role, role mapping, API key):
# the service counts as healthy only once that is done.
es_secure_healthy() {
	S_URL=$(es_secure_url)
	ES_SECURE_CURL_TIMEOUT=3 es_secure_http admin GET /_cluster/health || return 1
	if [[ $ES_SECURE_CODE == 401 ]]; then
		es_secure_warn_once "the admin user is refused (401): does $(es_secure_secrets_dir)/admin-password match config/users? ('scripts/stack wipe $S_NAME' starts over)"
		return 1
	fi
	[[ $ES_SECURE_CODE == 200 ]] || return 1
	grep -Eq '"status" *: *"(green|yellow)"' <<<"$ES_SECURE_BODY" || return 1
	[[ -e $(es_secure_marker) ]] && return 0
	es_secure_post_start || return 1
	: >"$(es_secure_marker)"
}

es_secure_live_version() {
	ES_SECURE_CURL_TIMEOUT=3 es_secure_http admin GET '/_nodes/_local?filter_path=nodes.*.version' || return 0
	[[ $ES_SECURE_CODE == 200 ]] || return 0
	sed -n 's/.*"version" *: *"\([^"]*\)".*/\1/p' <<<"$ES_SECURE_BODY" | head -n 1
}

es_secure_main_log() { search_main_log; }

# Only reads files: fast, and works while the server is down.
es_secure_env() {
	local secrets v missing=()
	secrets=$(es_secure_secrets_dir)
	printf 'export %s=%q\n' "$S_URL_VAR" "$(es_secure_url)"
	if [[ -s $(es_secure_certs_dir)/ca.crt ]]; then
		printf 'export ES_SECURE_CA=%q\n' "$(es_secure_certs_dir)/ca.crt"
	else
		missing+=(ES_SECURE_CA)
	fi
	printf 'export ES_SECURE_USER=%q\n' "$ES_SECURE_WRITER_USER"
	if v=$(es_secure_secret writer-password); then
		printf 'export ES_SECURE_PASSWORD=%q\n' "$v"
	else
		missing+=(ES_SECURE_PASSWORD)
	fi
	if v=$(es_secure_secret api-key); then
		printf 'export ES_SECURE_API_KEY=%q\n' "$v"
	else
		missing+=(ES_SECURE_API_KEY)
	fi
	if v=$(es_secure_secret service-token); then
		printf 'export ES_SECURE_SERVICE_TOKEN=%q\n' "$v"
	else
		missing+=(ES_SECURE_SERVICE_TOKEN)
	fi
	if [[ -s $secrets/client.pem ]]; then
		printf 'export ES_SECURE_CLIENT_CERT=%q\n' "$secrets/client.pem"
	else
		missing+=(ES_SECURE_CLIENT_CERT)
	fi
	printf 'export ES_SECURE_ADMIN_USER=%q\n' "$ES_SECURE_ADMIN_USER"
	if v=$(es_secure_secret admin-password); then
		printf 'export ES_SECURE_ADMIN_PASSWORD=%q\n' "$v"
	else
		missing+=(ES_SECURE_ADMIN_PASSWORD)
	fi
	if ((${#missing[@]})); then
		warn "$S_NAME: not set up yet (run 'scripts/stack start $S_NAME'), left out: ${missing[*]}"
	fi
	return 0
}

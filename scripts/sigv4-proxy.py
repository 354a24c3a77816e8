#!/usr/bin/env python3
"""sigv4-proxy: a stand-in for Amazon OpenSearch Service's request signing.

A threaded HTTP/1.1 server on 127.0.0.1 that checks the AWS Signature Version 4
of every request, the way the service does, and forwards the accepted ones to
a plain OpenSearch/Elasticsearch (no authentication there). Refusals look like
AWS's: status 403, a JSON body {"message": "..."} and an x-amzn-ErrorType
header. The signature is recomputed with botocore's SigV4Auth (an
implementation independent of the client under test); it needs botocore, e.g.
the moto virtualenv of scripts/stack.

    python sigv4-proxy.py --port 9206 --upstream http://127.0.0.1:9201 \\
        --access-key-id AKID --secret-access-key SECRET \\
        [--region us-east-1] [--service es] [--session-token TOKEN] \\
        [--pid-file FILE] [--log FILE]

What is checked, in this order (first failure wins; reason codes in []):
  - an Authorization header "AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/
    SERVICE/aws4_request, SignedHeaders=..., Signature=..." [unsigned,
    malformed-authorization]
  - X-Amz-Date present, ISO-8601 basic format, within --max-skew (300 s) of
    now, and its day equal to DATE of the scope [missing-date, bad-date,
    expired, scope-date-mismatch]; the Date header is not accepted instead
  - the access key id is the configured one [unknown-access-key]; REGION and
    SERVICE are the configured ones (--service es,aoss accepts both) and the
    scope ends in aws4_request [wrong-region, wrong-service, bad-terminator]
  - host and x-amz-date are among SignedHeaders [host-not-signed,
    date-not-signed]
  - X-Amz-Security-Token equals --session-token when one is configured, and is
    absent when none is [security-token]
  - X-Amz-Content-SHA256, when sent (required for aoss), is the SHA-256 of the
    body bytes as received: for Content-Encoding: gzip that is the gzip bytes
    [content-sha256-mismatch, content-sha256-missing]
  - the signature [signature-mismatch]: the 403 then carries the canonical
    request and string to sign the proxy computed, as AWS does.
The canonical request is computed over exactly the headers named in
SignedHeaders (with the values received), the raw path as received (botocore
normalises dot segments and empty segments and URI-encodes it once more: the
"double encoding" of every service but S3, so `*` counts as %2A and a `%2A`
sent on the wire as %252A), and the query string decoded (`+` and %20 are a
space) and URI-encoded again per the SigV4 rules (so `*` and %2A both count
as %2A), sorted. The payload hash is the SHA-256 of the body as received.

Accepted requests go to --upstream with the same method, path and query, body
and headers, less Authorization, X-Amz-*, Host, Expect and hop-by-hop headers
(Content-Type and Content-Encoding are kept: OpenSearch inflates gzip request
bodies); the upstream's status, headers (less hop-by-hop) and body come back.
A request over --max-body (100 MiB, AWS's limit for large instance types) gets
413; an unreachable upstream 502.

Unsigned control endpoints (never forwarded, not counted):
  GET  /_sigv4proxy/stats   {"accepted": N, "refused": M, "reasons": {code: n},
                             "requests": [{"method", "path", "status",
                             "reason"}, ... the last 200], "config": {...}}
  POST /_sigv4proxy/reset   zeroes the counters
Every request gets one line in --log (flushed at once):
  127.0.0.1 - - [22/Nov/2026 15:04:05] "POST /_bulk HTTP/1.1" 200 1234 accepted
  127.0.0.1 - - [22/Nov/2026 15:04:06] "GET / HTTP/1.1" 403 191 refused:expired
"""

import argparse
import collections
import datetime as dt
import hashlib
import hmac
import http.client
import json
import os
import signal
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    import botocore
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest, HTTPHeaders
    from botocore.credentials import Credentials
except ImportError as e:  # pragma: no cover
    sys.exit(f"sigv4-proxy: botocore is needed ({e}); run it with the moto virtualenv's python")

CONTROL_PREFIX = "/_sigv4proxy/"
KEEP_REQUESTS = 200
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
}
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)
INVALID_TOKEN = "The security token included in the request is invalid."


class Refusal(Exception):
    def __init__(self, reason, error_type, message, status=403):
        super().__init__(message)
        self.reason = reason
        self.error_type = error_type
        self.message = message
        self.status = status


class ExactSigV4Auth(SigV4Auth):
    """botocore's SigV4, over exactly the headers the client said it signed.

    SigV4Auth.headers_to_sign takes every request header except a blacklist
    (user-agent, expect, ...) and adds host when missing; the server side must
    instead use the client's SignedHeaders list, nothing more, nothing less.
    Everything else (canonical URI with its normalisation and second encoding,
    canonical query from `params`, header value trimming, payload hash, string
    to sign, key derivation) is botocore's own code.
    """

    def __init__(self, credentials, service_name, region_name, signed_names):
        super().__init__(credentials, service_name, region_name)
        self._signed_names = signed_names

    def headers_to_sign(self, request):
        header_map = HTTPHeaders()
        for name in self._signed_names:
            values = request.headers.get_all(name) or [""]
            for value in values:
                header_map[name] = value
        return header_map


def wire_text(s):
    """http.server decodes the request line and headers as latin-1; get the
    characters the client meant (UTF-8 bytes) back, when they are UTF-8."""
    try:
        return s.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return s


def query_params(query):
    """The query string as decoded (name, value) pairs, for botocore's
    `params` canonicalisation (which URI-encodes each with safe='-_.~' and
    sorts). `+` is a space, as in form encoding; a name without `=` has an
    empty value; empty pieces (a&&b) are skipped."""
    pairs = []
    for piece in query.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        pairs.append(
            (
                urllib.parse.unquote_plus(name, errors="strict"),
                urllib.parse.unquote_plus(value, errors="strict"),
            )
        )
    return pairs


def parse_authorization(value):
    """-> (access_key, date, region, service, terminator, signed_names, signature)."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme != "AWS4-HMAC-SHA256":
        raise Refusal(
            "malformed-authorization",
            "IncompleteSignatureException",
            f"Authorization header requires 'Credential' parameter. Authorization header requires "
            f"'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. "
            f"Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
            f"Authorization={value}",
        )
    params = {}
    for part in rest.split(","):
        k, eq, v = part.strip().partition("=")
        if eq:
            params[k.strip()] = v.strip()
    missing = [p for p in ("Credential", "Signature", "SignedHeaders") if not params.get(p)]
    if missing:
        raise Refusal(
            "malformed-authorization",
            "IncompleteSignatureException",
            " ".join(f"Authorization header requires '{p}' parameter." for p in missing)
            + f" Authorization={value}",
        )
    scope = params["Credential"].split("/")
    if len(scope) != 5 or not all(scope):
        raise Refusal(
            "malformed-authorization",
            "IncompleteSignatureException",
            f"Credential should be scoped to a valid region, service and terminator: "
            f"'{params['Credential']}' is not of the form AKID/YYYYMMDD/region/service/aws4_request.",
        )
    signed = [h.strip().lower() for h in params["SignedHeaders"].split(";") if h.strip()]
    return (*scope, signed, params["Signature"])


class Proxy:
    def __init__(self, args):
        self.args = args
        self.access_key_id = args.access_key_id
        self.secret = args.secret_access_key
        self.token = args.session_token or None
        self.regions = [r.strip() for r in args.region.split(",") if r.strip()]
        self.services = [s.strip() for s in args.service.split(",") if s.strip()]
        up = urllib.parse.urlsplit(args.upstream)
        if up.scheme not in ("http", "https") or not up.hostname:
            sys.exit(f"sigv4-proxy: --upstream must be http(s)://host:port, not {args.upstream!r}")
        self.up_scheme = up.scheme
        self.up_host = up.hostname
        self.up_port = up.port or (443 if up.scheme == "https" else 80)
        self.up_prefix = up.path.rstrip("/")
        self.lock = threading.Lock()
        self.local = threading.local()
        self.log_file = open(args.log, "a", encoding="utf-8", buffering=1) if args.log else None
        self.reset()

    # ---- counters
    def reset(self):
        with self.lock:
            self.accepted = 0
            self.refused = 0
            self.reasons = collections.Counter()
            self.requests = collections.deque(maxlen=KEEP_REQUESTS)

    def count(self, method, path, status, reason):
        with self.lock:
            if reason is None:
                self.accepted += 1
            else:
                self.refused += 1
                self.reasons[reason] += 1
            self.requests.append({"method": method, "path": path, "status": status, "reason": reason})

    def stats(self):
        with self.lock:
            return {
                "accepted": self.accepted,
                "refused": self.refused,
                "reasons": dict(self.reasons),
                "requests": list(self.requests),
                "config": {
                    "upstream": self.args.upstream,
                    "regions": self.regions,
                    "services": self.services,
                    "access_key_id": self.access_key_id,
                    "session_token": self.token is not None,
                    "max_skew_seconds": self.args.max_skew,
                    "botocore": botocore.__version__,
                },
            }

    def log(self, line):
        if self.log_file is None:
            return
        with self.lock:
            self.log_file.write(line + "\n")

    # ---- verification
    def verify(self, method, raw_target, headers, body):
        """Raises Refusal, or returns the service the request was signed for."""
        auth_values = headers.get_all("Authorization") or []
        if not auth_values:
            raise Refusal("unsigned", "MissingAuthenticationTokenException", "Missing Authentication Token")
        if len(auth_values) > 1:
            raise Refusal(
                "malformed-authorization",
                "IncompleteSignatureException",
                "Only one Authorization header may be sent.",
            )
        authorization = auth_values[0]
        akid, scope_date, region, service, terminator, signed_names, signature = parse_authorization(authorization)

        amz_date = headers.get("X-Amz-Date")
        if amz_date is None:
            raise Refusal(
                "missing-date",
                "IncompleteSignatureException",
                "Authorization header requires existence of a 'X-Amz-Date' header "
                f"(this stand-in does not take 'Date' instead). Authorization={authorization}",
            )
        amz_date = amz_date.strip()
        try:
            when = dt.datetime.strptime(amz_date, AMZ_DATE_FORMAT).replace(tzinfo=dt.timezone.utc)
        except ValueError:
            raise Refusal(
                "bad-date",
                "IncompleteSignatureException",
                f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'. See http://en.wikipedia.org/wiki/ISO_8601",
            ) from None
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        skew = dt.timedelta(seconds=self.args.max_skew)
        minutes = f"{self.args.max_skew / 60:g} min."
        if when < now - skew:
            raise Refusal(
                "expired",
                "InvalidSignatureException",
                f"Signature expired: {amz_date} is now earlier than {(now - skew).strftime(AMZ_DATE_FORMAT)} "
                f"({now.strftime(AMZ_DATE_FORMAT)} - {minutes})",
            )
        if when > now + skew:
            raise Refusal(
                "expired",
                "InvalidSignatureException",
                f"Signature not yet current: {amz_date} is still later than {(now + skew).strftime(AMZ_DATE_FORMAT)} "
                f"({now.strftime(AMZ_DATE_FORMAT)} + {minutes})",
            )
        if scope_date != amz_date[:8]:
            raise Refusal(
                "scope-date-mismatch",
                "InvalidSignatureException",
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                f"'{scope_date}' != '{amz_date[:8]}', from '{amz_date}'.",
            )

        if not hmac.compare_digest(akid.encode(), self.access_key_id.encode()):
            raise Refusal("unknown-access-key", "UnrecognizedClientException", INVALID_TOKEN)
        if region not in self.regions:
            raise Refusal(
                "wrong-region",
                "InvalidSignatureException",
                f"Credential should be scoped to a valid region, not '{region}'. ",
            )
        if service not in self.services:
            raise Refusal(
                "wrong-service",
                "InvalidSignatureException",
                f"Credential should be scoped to correct service: '{self.services[0]}'. ",
            )
        if terminator != "aws4_request":
            raise Refusal(
                "bad-terminator",
                "InvalidSignatureException",
                f"Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'. ",
            )

        if "host" not in signed_names:
            raise Refusal(
                "host-not-signed",
                "IncompleteSignatureException",
                "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
            )
        if "x-amz-date" not in signed_names:
            raise Refusal(
                "date-not-signed",
                "IncompleteSignatureException",
                "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.",
            )

        tokens = headers.get_all("X-Amz-Security-Token") or []
        if self.token is None:
            if tokens:
                raise Refusal("security-token", "UnrecognizedClientException", INVALID_TOKEN)
        elif len(tokens) != 1 or not hmac.compare_digest(tokens[0].strip().encode(), self.token.encode()):
            raise Refusal("security-token", "UnrecognizedClientException", INVALID_TOKEN)

        body_sha256 = hashlib.sha256(body).hexdigest()
        claimed = headers.get_all("X-Amz-Content-SHA256") or []
        if claimed:
            if len(claimed) != 1 or claimed[0].strip() != body_sha256:
                raise Refusal(
                    "content-sha256-mismatch",
                    "InvalidSignatureException",
                    "The provided 'x-amz-content-sha256' header does not match what was computed. "
                    f"Sent: '{', '.join(claimed)}'; SHA-256 of the {len(body)} body bytes received "
                    f"(as sent, Content-Encoding {headers.get('Content-Encoding', 'none')!r}): '{body_sha256}'.",
                )
        elif service == "aoss":
            raise Refusal(
                "content-sha256-missing",
                "InvalidSignatureException",
                "Requests to OpenSearch Serverless must carry an 'x-amz-content-sha256' header.",
            )

        expected, canonical, string_to_sign = self.compute_signature(
            method, raw_target, headers, body, amz_date, region, service, signed_names
        )
        if expected is None or not hmac.compare_digest(expected.encode(), signature.strip().encode()):
            raise Refusal(
                "signature-mismatch",
                "InvalidSignatureException",
                f"{SIGNATURE_MISMATCH}\n\nThe Canonical String for this request should have been\n'{canonical}'\n\n"
                f"The String-to-Sign should have been\n'{string_to_sign}'\n",
            )
        return service

    def compute_signature(self, method, raw_target, headers, body, amz_date, region, service, signed_names):
        """-> (signature or None, canonical request, string to sign), by botocore."""
        path, _, query = raw_target.partition("?")
        path = wire_text(path)
        try:
            params = query_params(query)
        except UnicodeDecodeError:
            return None, f"(query string is not UTF-8 once percent-decoded: {query!r})", ""
        signed_headers = {}
        for name in signed_names:
            values = headers.get_all(name)
            if values:
                signed_headers[name] = [wire_text(v) for v in values]
        host = (signed_headers.get("host") or ["localhost"])[0]
        request = AWSRequest(method=method, url=f"http://{host}{path}", data=body, params=params)
        request.headers = HTTPHeaders()
        for name, values in signed_headers.items():
            for value in values:
                request.headers[name] = value  # HTTPHeaders appends repeated names
        request.context["timestamp"] = amz_date
        signer = ExactSigV4Auth(Credentials(self.access_key_id, self.secret, self.token), service, region, signed_names)
        try:
            canonical = signer.canonical_request(request)
            string_to_sign = signer.string_to_sign(request, canonical)
            return signer.signature(string_to_sign, request), canonical, string_to_sign
        except (ValueError, UnicodeError) as e:
            return None, f"(cannot canonicalise this request: {e})", ""

    # ---- forwarding
    def upstream_connection(self, fresh=False):
        conn = getattr(self.local, "conn", None)
        if conn is not None and not fresh:
            return conn, True
        if conn is not None:
            conn.close()
        cls = http.client.HTTPSConnection if self.up_scheme == "https" else http.client.HTTPConnection
        conn = cls(self.up_host, self.up_port, timeout=self.args.upstream_timeout)
        self.local.conn = conn
        return conn, False

    def forward(self, method, raw_target, headers, body):
        out = {}
        for name, value in headers.items():
            lname = name.lower()
            if (
                lname in HOP_BY_HOP
                or lname in ("authorization", "host", "content-length", "expect")
                or lname.startswith("x-amz-")
            ):
                continue
            out.setdefault(name, []).append(value)
        target = self.up_prefix + raw_target
        for attempt in range(2):
            conn, reused = self.upstream_connection(fresh=attempt > 0)
            try:
                conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                conn.putheader("Host", f"{self.up_host}:{self.up_port}")
                for name, values in out.items():
                    for value in values:
                        conn.putheader(name, value)
                if body or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body if body else None)
                resp = conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    conn.close()
                    self.local.conn = None
                return resp.status, resp.reason, resp.getheaders(), data
            except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected) as e:
                conn.close()
                self.local.conn = None
                if reused and attempt == 0:
                    continue  # a kept-alive connection the upstream had closed
                raise OSError(f"upstream {self.args.upstream}: {e}") from e
            except Exception:
                conn.close()
                self.local.conn = None
                raise
        raise AssertionError("unreachable")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sigv4-proxy"
    timeout = 300  # idle keep-alive connections
    proxy: Proxy = None  # set in main()

    def version_string(self):
        return self.server_version

    def log_request(self, code="-", size="-"):
        pass  # one line per request is written by finish_request_line

    def log_message(self, format, *args):
        sys.stderr.write(f"{self.address_string()} - - [{self.log_date_time_string()}] {format % args}\n")

    def do_GET(self):
        self.handle_any()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_GET

    # ---- plumbing
    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks, total = [], 0
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                total += size
                if total > self.proxy.args.max_body:
                    raise Refusal("too-large", "RequestEntityTooLarge", "Request Entity Too Large", 413)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        n = int(length)
        if n < 0:
            raise ValueError("negative Content-Length")
        if n > self.proxy.args.max_body:
            raise Refusal(
                "too-large",
                "RequestEntityTooLarge",
                f"Request size exceeded {self.proxy.args.max_body} bytes",
                413,
            )
        body = self.rfile.read(n)
        if len(body) != n:
            raise ValueError(f"body ended after {len(body)} of {n} bytes")
        return body

    def reply(self, status, headers, body, reason=None):
        self.send_response(status, reason)
        for name, value in headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
        self.wfile.flush()

    def reply_json(self, status, obj, extra=()):
        body = json.dumps(obj, indent=None).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        headers.extend(extra)
        self.reply(status, headers, body)
        return len(body)

    def handle_any(self):
        p = self.proxy
        method, target = self.command, self.path
        log_path = target
        try:
            body = self.read_body()
        except Refusal as r:
            self.close_connection = True
            size = self.reply_json(r.status, {"message": r.message}, [("x-amzn-ErrorType", r.error_type)])
            p.count(method, log_path, r.status, r.reason)
            self.line(r.status, size, f"refused:{r.reason}")
            return
        except (ValueError, OSError) as e:
            self.close_connection = True
            size = self.reply_json(400, {"message": f"Could not read the request body: {e}"})
            self.line(400, size, "bad-request")
            return

        if target.split("?", 1)[0].startswith(CONTROL_PREFIX):
            self.control(method, target)
            return

        request_id = str(uuid.uuid4())
        try:
            p.verify(method, target, self.headers, body)
        except Refusal as r:
            size = self.reply_json(
                r.status,
                {"message": r.message},
                [("x-amzn-RequestId", request_id), ("x-amzn-ErrorType", r.error_type)],
            )
            p.count(method, log_path, r.status, r.reason)
            self.line(r.status, size, f"refused:{r.reason}")
            return

        try:
            status, reason, headers, data = p.forward(method, target, self.headers, body)
        except (OSError, http.client.HTTPException) as e:
            status = 504 if isinstance(e, TimeoutError) else 502
            size = self.reply_json(
                status,
                {"message": f"sigv4-proxy: upstream {p.args.upstream} failed: {e}"},
                [("x-amzn-RequestId", request_id)],
            )
            p.count(method, log_path, status, None)
            self.line(status, size, "accepted:upstream-error")
            return
        out = [("x-amzn-RequestId", request_id)]
        for name, value in headers:
            lname = name.lower()
            if lname in HOP_BY_HOP or (lname == "content-length" and method != "HEAD"):
                continue
            out.append((name, value))
        if method != "HEAD":
            out.append(("Content-Length", str(len(data))))
        self.reply(status, out, data, reason)
        p.count(method, log_path, status, None)
        self.line(status, len(data), "accepted")

    def control(self, method, target):
        p = self.proxy
        path = target.split("?", 1)[0]
        if path == CONTROL_PREFIX + "stats" and method in ("GET", "HEAD"):
            status, obj = 200, p.stats()
        elif path == CONTROL_PREFIX + "reset" and method == "POST":
            p.reset()
            status, obj = 200, {"acknowledged": True}
        else:
            status, obj = 404, {"message": f"sigv4-proxy: GET {CONTROL_PREFIX}stats or POST {CONTROL_PREFIX}reset"}
        self.line(status, self.reply_json(status, obj), "control")

    def line(self, status, size, outcome):
        self.proxy.log(
            f'{self.address_string()} - - [{self.log_date_time_string()}] "{self.requestline}" {status} {size} {outcome}'
        )


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def write_atomic(path, text):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=9206)
    ap.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ap.add_argument("--upstream", default="http://127.0.0.1:9201", help="where accepted requests go")
    ap.add_argument("--region", default="us-east-1", help="expected region (comma-separated for several)")
    ap.add_argument("--service", default="es", help="expected service: es, aoss, or es,aoss")
    ap.add_argument("--access-key-id", default=os.environ.get("SIGV4_ACCESS_KEY_ID"))
    ap.add_argument(
        "--secret-access-key",
        default=os.environ.get("SIGV4_SECRET_ACCESS_KEY"),
        help="(default: $SIGV4_SECRET_ACCESS_KEY)",
    )
    ap.add_argument(
        "--session-token",
        default=os.environ.get("SIGV4_SESSION_TOKEN"),
        help="require this X-Amz-Security-Token (default: $SIGV4_SESSION_TOKEN; none: refuse any token)",
    )
    ap.add_argument("--max-skew", type=int, default=300, help="seconds X-Amz-Date may be off (default 300)")
    ap.add_argument("--max-body", type=int, default=100 * 1024 * 1024, help="bytes (default 100 MiB)")
    ap.add_argument("--upstream-timeout", type=float, default=120.0, help="seconds (default 120)")
    ap.add_argument("--pid-file")
    ap.add_argument("--log", help="request log: one line per request, appended")
    args = ap.parse_args(argv)
    if not args.access_key_id or not args.secret_access_key:
        ap.error("--access-key-id and --secret-access-key are required")

    proxy = Proxy(args)
    Handler.proxy = proxy
    server = Server((args.bind, args.port), Handler)
    if args.pid_file:
        write_atomic(args.pid_file, f"{os.getpid()}\n")

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(
        f"sigv4-proxy: listening on http://{args.bind}:{args.port}, forwarding to {args.upstream}; "
        f"region {','.join(proxy.regions)}, service {','.join(proxy.services)}, key {args.access_key_id}, "
        f"session token {'required' if proxy.token else 'none'}; botocore {botocore.__version__}, "
        f"python {sys.version.split()[0]}",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
        print(f"sigv4-proxy: stopped at {time.strftime('%F %T')}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()

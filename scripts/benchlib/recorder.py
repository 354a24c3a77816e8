"""The recording endpoint: an HTTP server in this process that answers ctindex like a cluster.
With a folder it writes every _bulk body to a file (the ceiling posts those very bodies with
curl); without one it only counts them, answering at once (the client section)."""

import gzip
import http.server
import json
import os
import re
import threading
import urllib.parse


class Recorder:
    """An HTTP endpoint that answers ctindex like a cluster and writes every _bulk body to a file
    (out_dir None: only counts them, answering at once)."""

    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.lock = threading.Lock()
        self.bodies = 0
        self.items = 0
        self.bytes = 0
        self.unexpected = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def body(self):
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = bytearray()
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        data += self.rfile.read(size)
                        self.rfile.readline()
                    data = bytes(data)
                else:
                    data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding", "").lower() == "gzip":
                    data = gzip.decompress(data)
                return data

            def answer(self, obj, status=200):
                out = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def do_HEAD(self):
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self):
                self.body()
                path = urllib.parse.urlsplit(self.path).path
                if path == "/":
                    self.answer({"name": "bench-recorder", "cluster_name": "bench",
                                 "version": {"distribution": "opensearch", "number": "2.19.0"},
                                 "tagline": "The OpenSearch Project: https://opensearch.org/"})
                elif "/_alias" in path:
                    self.answer({})
                else:
                    recorder.unexpected.append(f"GET {self.path}")
                    self.answer({})

            def do_PUT(self):
                self.body()
                if "/_index_template/" not in self.path:
                    recorder.unexpected.append(f"PUT {self.path}")
                self.answer({"acknowledged": True})

            def do_DELETE(self):
                self.body()
                recorder.unexpected.append(f"DELETE {self.path}")
                self.answer({"acknowledged": True})

            def do_POST(self):
                data = self.body()
                path = urllib.parse.urlsplit(self.path).path
                if path.endswith("/_bulk"):
                    lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
                    n = lines // 2
                    action = b"index"
                    m = re.match(rb'\{\s*"(\w+)"', data)
                    if m:
                        action = m.group(1)
                    with recorder.lock:
                        recorder.bodies += 1
                        recorder.items += n
                        recorder.bytes += len(data)
                        name = recorder.out_dir and os.path.join(recorder.out_dir, f"{recorder.bodies:07d}.ndjson")
                    if name:
                        with open(name, "wb") as f:
                            f.write(data)
                    item = b'{"' + action + b'":{"status":201,"result":"created"}}'
                    self.answer(b'{"errors":false,"items":[' + b",".join([item] * n) + b"]}")
                elif path.endswith("/_refresh"):
                    self.answer({"_shards": {"total": 1, "successful": 1, "failed": 0}})
                elif path.endswith("/_aliases"):
                    self.answer({"acknowledged": True})
                else:
                    recorder.unexpected.append(f"POST {self.path}")
                    self.answer({})

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

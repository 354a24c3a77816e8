# scripts/stacklib/moto_server.py: copied by scripts/stack into services/<name>/config/
# on every start; change this original, not the copy.
# usage: python moto_server.py REQUEST_LOG PID_FILE VERSION_FILE [moto_server args]
import logging
import os
import re
import sys
from importlib.metadata import version

request_log, pid_file, version_file = sys.argv[1:4]

import werkzeug.serving

# werkzeug wraps non-200 request lines in ANSI colour codes; keep the file plain.
if hasattr(werkzeug.serving, "_log_add_style"):
    werkzeug.serving._log_add_style = False

REQUEST_LINE = re.compile(r"^\S+ - - \[")


class RequestLines(logging.Filter):
    def filter(self, record):
        return bool(REQUEST_LINE.match(record.getMessage()))


class OtherLines(logging.Filter):
    def filter(self, record):
        return not REQUEST_LINE.match(record.getMessage())


to_file = logging.FileHandler(request_log, encoding="utf-8")  # flushes every record
to_file.setFormatter(logging.Formatter("%(message)s"))
to_file.addFilter(RequestLines())
to_stderr = logging.StreamHandler(sys.stderr)
to_stderr.addFilter(OtherLines())
werkzeug_log = logging.getLogger("werkzeug")
werkzeug_log.setLevel(logging.INFO)
werkzeug_log.addHandler(to_file)
werkzeug_log.addHandler(to_stderr)


def write(path, text):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


write(version_file, version("moto") + "\n")
write(pid_file, f"{os.getpid()}\n")

from moto.server import main

main(sys.argv[4:])

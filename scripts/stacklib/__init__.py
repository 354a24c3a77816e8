"""scripts/stack's code, one module per concern:

  cli.py          argument parsing and the commands (start, stop, status, ...)
  services.py     every service: name, family, version, ports, knobs, aliases
  base.py         Service: what the commands call on a service
  common.py       settings, messages, lock, pid files, stack user, HTTP, quoting
  java.py         JDK discovery and choice
  search.py       family "search": open Elasticsearch / OpenSearch nodes
  secure_es.py    elasticsearch-secure (x-pack security, certificates, plugin)
  secure_os.py    opensearch-secure (security plugin, certificates, users)
  moto.py         s3 (moto server in a virtualenv)
  s3fast.py       s3-fast (s3s-fs from crates.io, built once with cargo install)
  sigv4.py        opensearch-sigv4 (scripts/sigv4-proxy.py)
  moto_server.py  copied into the s3 service's config/ and run there
  SecurityAnalysisPlugin.java  compiled into elasticsearch-secure's plugin
"""

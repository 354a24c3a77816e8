"""The modules of scripts/bench, one concern each (scripts/bench itself only parses the
arguments, prepares and runs the chosen sections, and prints):

  common    paths, targets, the settings main() decides once, log, Failure, small helpers
  prepare   server URLs, the S3 server, the release build, the Python virtualenv, machine info
  trail     the synthetic trail (gen-trail.py, cached) and the curl loop's sample of files
  cluster   a small Elasticsearch/OpenSearch client and the Cleanup of what a run made
  recorder  an HTTP endpoint answering like a cluster, recording (or only counting) bulk bodies
  procs     running and measuring processes: wall time, peak RSS, CPU, the RSS guard, idleness
  runner    Bench: the runs so far, the ctindex command line, best_of and record
  pipeline  section pipeline: dry-run against the gzip -dc floor
  e2e       section e2e: ctindex against the ceiling, Python parallel_bulk and the curl loop
  client    section client: both clients against an endpoint that answers at once
  memory    section memory: one very large file
  sync      section sync: a full and a no-op sync from S3
  report    the printed tables (runs, targets) and the JSON

Only the standard library: the Python clients run in their own virtualenv, as separate
processes (scripts/bench-parallel-bulk.py, scripts/bench-s3-upload.py)."""

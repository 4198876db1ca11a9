#!/usr/bin/env bash
# Runs every fuzz target in the module for DURATION each (default 10m): the
# long campaign that CI's 100000 executions per target (.ci/fuzz 100000x) only samples. New
# crashers are written under each package's testdata/fuzz/ and the run
# stops at the first one; commit it as a regression case once fixed.
# A target's corpus grows in the Go build cache between runs.
set -euo pipefail
exec "$(dirname "$0")/../.ci/fuzz" "${1:-10m}"

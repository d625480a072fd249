#!/usr/bin/env bash
# The test suite: node's test runner over the compiled tests, one file at a
# time (the namespace tests share the machine's two cores).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -ne 0 ]]; then
  echo "test: the namespace tests need root (CAP_NET_ADMIN); run as root" >&2
  exit 1
fi
exec node --test --test-concurrency=1 --test-reporter=spec dist/test/*.test.js

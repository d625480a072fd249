#!/usr/bin/env bash
# The README's first command: after set-up, show dpr routing connections in a
# namespace cluster (see tools/demo.ts). Everything it makes is removed.
set -euo pipefail
cd "$(dirname "$0")/.."
exec node dist/tools/demo.js "$@"

#!/usr/bin/env bash
# Remove everything dpr installed (lib/install.ts): every DPR_* chain and the
# jumps into it, every lo address labelled lo:dpr, and the sysctls set back to
# the values they had before the first install. What is ours is found by name,
# so CONFIG is not needed (it is accepted for older callers and ignored).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
exec node "$root/dist/lib/cli.js" uninstall

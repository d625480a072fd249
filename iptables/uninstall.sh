#!/usr/bin/env bash
# Remove everything dpr installed (lib/install.ts): every DPR_* chain and the
# jumps into it (iptables and ip6tables), every lo address labelled lo:dpr and
# the IPv6 ones the ip6tables chain DPR_LO6 names, and the sysctls set back to
# the values they had before the first install. What is ours is found by name,
# so CONFIG is not needed (it is accepted for older callers and ignored).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
exec node "$root/dist/lib/cli.js" uninstall

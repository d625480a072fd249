#!/usr/bin/env bash
# Remove dpr's rules: the jumps into DPR_* chains and those chains, nothing
# else. Sysctls are left as they are (other software may rely on forwarding).
set -euo pipefail
config=${1:?usage: iptables/uninstall.sh CONFIG}
root=$(cd "$(dirname "$0")/.." && pwd)
script=$(node "$root/dist/lib/cli.js" rules --config "$config" --format uninstall-script)
sh -c "$script"
echo "dpr: rules removed"

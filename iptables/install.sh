#!/usr/bin/env bash
# Install dpr's rules and sysctls for this host, rendered from CONFIG.
# Atomic per table (iptables-restore --noflush fills our DPR_* chains in one
# commit); idempotent (our chains are declared, so emptied, then refilled; the
# jumps into them are added only when absent). A bad CONFIG stops it before
# anything changes.
set -euo pipefail
config=${1:?usage: iptables/install.sh CONFIG}
root=$(cd "$(dirname "$0")/.." && pwd)
script=$(node "$root/dist/lib/cli.js" rules --config "$config" --format script)
sh -c "$script"
echo "dpr: rules installed (iptables -t raw -S DPR_PRE to see them)"

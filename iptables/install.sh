#!/usr/bin/env bash
# Install dpr's rules, sysctls and restore addresses for this host, rendered
# from CONFIG (lib/install.ts). The configuration is checked whole first: a
# bad one stops here with exit 2, before anything changes. Then all or
# nothing: the rules (iptables-restore --noflush, and ip6tables-restore for a
# dual-stack cluster), the sysctls, the addresses on lo; a step that fails
# undoes the ones before it (exit 1). Idempotent:
# running it again changes nothing, and restore addresses of hosts no longer
# in CONFIG are removed.
set -euo pipefail
config=${1:?usage: iptables/install.sh CONFIG}
root=$(cd "$(dirname "$0")/.." && pwd)
exec node "$root/dist/lib/cli.js" install --config "$config"

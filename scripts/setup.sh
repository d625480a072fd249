#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine with Node 20, run first by
# `npm test` and `npm run demo`: Debian packages, npm ci, the addon, the
# TypeScript build. Each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# What the addon builds against, what the tests and benches drive.
packages=(
  iptables iproute2 libnetfilter-queue-dev libmnl-dev pkg-config curl conntrack
  iputils-ping procps
  clang libclang-rt-14-dev   # libFuzzer + ASan/UBSan for the fuzz target
  wrk haproxy                # benchmarks
  etcd-server                # membership.source etcd: the tests and the demo start their own, in a namespace
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  # etcd-server's package would start (and enable) a system etcd on
  # 127.0.0.1:2379; the tests start their own in namespaces and want none.
  # Masked under systemd; elsewhere invoke-rc.d asks policy-rc.d, which says
  # no for the length of this install (only where there is none already).
  policy=/usr/sbin/policy-rc.d own_policy=
  if [[ " ${missing[*]} " == *" etcd-server "* ]]; then
    [[ -d /run/systemd/system ]] && systemctl mask --quiet etcd.service
    [[ -e $policy ]] || { printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1; }
  fi
  rc=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
  if [[ -n $own_policy ]]; then rm -f "$policy"; fi
  ((rc == 0)) || exit "$rc"
fi

# npm ci only when package-lock.json changed since the last install.
stamp=node_modules/.dpr-lock-sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  echo "setup: npm ci"
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
  echo "$want" >"$stamp"
fi

# The addon, when a source is newer than the binary.
addon=build/Release/dpr.node
if [[ ! -f $addon || -n $(find native binding.gyp -newer "$addon" -print -quit) ]]; then
  echo "setup: building the addon"
  npm run --silent build:native >/tmp/dpr-build-native.log 2>&1 || { cat /tmp/dpr-build-native.log >&2; exit 1; }
fi

# TypeScript: always (a few seconds); a stale dist/ hides removed files.
rm -rf dist
npm run --silent build:ts

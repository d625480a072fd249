#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine with Node 20, run first by
# `npm test` and `npm run demo`: Debian packages, npm ci, the addon, the
# TypeScript build. Each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# What the addon builds against, what the tests and benches drive.
packages=(
  iptables iproute2 libnetfilter-queue-dev libmnl-dev pkg-config curl conntrack
  ipset                      # the kernel modes (direct, tunnel)
  iputils-ping procps
  clang libclang-rt-14-dev   # libFuzzer + ASan/UBSan for the fuzz target
  wrk haproxy nginx-light    # benchmarks
  etcd-server                # membership.source etcd: the tests and the demo start their own, in a namespace
  openssl                    # certificates for the etcd TLS test
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
  # Under systemd policy-rc.d is not asked: etcd-server would be enabled and started
  # on 127.0.0.1:2379, where the tests start their own in namespaces.
  if [[ " ${missing[*]} " == *" etcd-server "* && -d /run/systemd/system ]]; then systemctl mask --quiet etcd.service; fi
  # No service may start on install (nginx would listen on port 80 of this
  # host): invoke-rc.d asks policy-rc.d, and 101 means "not allowed". Ours
  # only if none is there, and removed again.
  policy=
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && policy=/usr/sbin/policy-rc.d
  fi
  rc=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
  if [[ -n $policy ]]; then rm -f "$policy"; fi
  if ((rc)); then exit "$rc"; fi
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

#!/bin/sh
# npm runs this when the package is installed ("install" in package.json):
# it builds the addon (build/Release/dpr.node) with node-gyp. The headers of
# the native libraries come from Debian packages, not from npm, so say which
# ones are missing instead of failing deep inside the compiler.
set -e
need="libnetfilter-queue-dev libmnl-dev pkg-config g++ make python3"
if ! command -v pkg-config >/dev/null 2>&1; then
  echo "dpr: cannot build the addon: pkg-config is not installed." >&2
  echo "dpr: on Debian: apt-get install $need" >&2
  exit 1
fi
if ! pkg-config --exists libnetfilter_queue libmnl; then
  echo "dpr: cannot build the addon: pkg-config finds no libnetfilter_queue or no libmnl (their development headers)." >&2
  echo "dpr: on Debian: apt-get install $need" >&2
  exit 1
fi
# Node's own headers: those installed beside node (Debian and NodeSource
# packages ship them) rather than a download from nodejs.org.
if [ -z "${npm_config_nodedir:-}" ]; then
  prefix=$(dirname "$(dirname "$(node -p process.execPath)")")
  [ -f "$prefix/include/node/node.h" ] && export npm_config_nodedir="$prefix"
fi
exec node-gyp rebuild -j max

#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: libtorch (+ OpenBLAS) when none is found, npm dependencies,
# the native addon and the compiled TypeScript. Used by scripts/demo.sh, scripts/test.sh and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else echo "need root for: $*" >&2; return 1; fi; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# 1. libtorch: $LIBTORCH, a python3 with torch, or Debian's libtorch-dev (installed here when none is found).
if ! node cmake/find-libtorch.mjs source >/dev/null 2>&1; then
  if command -v apt-get >/dev/null; then
    echo "setup: installing libtorch-dev and libopenblas0-pthread (Debian)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libtorch-dev libopenblas0-pthread cmake g++ >/dev/null
  else
    node cmake/find-libtorch.mjs source # prints what to install or set
    exit 1
  fi
fi
# Debian's libtorch uses the reference BLAS (~25x slower) unless OpenBLAS is installed beside it.
if [ "$(node cmake/find-libtorch.mjs source)" = system ] && command -v apt-get >/dev/null && ! installed libopenblas0-pthread; then
  echo "setup: installing libopenblas0-pthread"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas0-pthread >/dev/null
fi
# gloo's headers: emlab's c10d Gloo backend (data-parallel training) is compiled only where they exist;
# neither libtorch-dev nor pip's torch wheel ships them.
if command -v apt-get >/dev/null && ! installed libgloo-dev; then
  echo "setup: installing libgloo-dev (headers for the Gloo backend of emlab train --nproc)"
  as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libgloo-dev >/dev/null || echo "setup: libgloo-dev not installed; emlab train --nproc will be unavailable"
fi
for tool in cmake g++; do
  command -v "$tool" >/dev/null || { as_root apt-get update -qq; as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake g++ >/dev/null; }
done

# 2. npm dependencies (npm ci also builds the addon and the TypeScript through install/prepare).
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
fi

# 3. Chromium for the report's browser test, only when asked (scripts/test.sh asks).
if [ "${1:-}" = "--with-chromium" ] && ! command -v chromium >/dev/null && command -v apt-get >/dev/null; then
  echo "setup: installing chromium (the report test opens the report in it)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || echo "setup: chromium not installed; the report browser test will be skipped"
fi

# 4. Incremental rebuilds (fast when nothing changed).
npx cmake-js compile --out build >/tmp/emlab-native-build.log 2>&1 || { cat /tmp/emlab-native-build.log; exit 1; }
npx tsc -p tsconfig.build.json

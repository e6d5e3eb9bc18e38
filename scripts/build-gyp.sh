#!/usr/bin/env bash
# The node-gyp build of the addon (binding.gyp: the same sources and libtorch discovery as the cmake-js
# build) into its own directory, so it never touches build/ (node-gyp's `rebuild` would start by
# deleting ./build); configure + build, so a second run recompiles only what changed.
# Usage: scripts/build-gyp.sh [OUTDIR] (default build-gyp); the addon lands in
# OUTDIR/build/Release/emlab.node; load it with EMLAB_NATIVE=OUTDIR/build/Release/emlab.node.
#
# node-gyp: the one npm ships (npm puts it on PATH for `npm run`; $npm_config_node_gyp names it), else
# `node-gyp` on PATH. Node headers: $npm_config_nodedir when set, else the running node's own install
# prefix when it has include/node/common.gypi (Debian's and NodeSource's nodejs packages do), so
# nothing is downloaded; otherwise node-gyp fetches them from nodejs.org as usual.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mkdir -p "${1:-$root/build-gyp}" && cd "${1:-$root/build-gyp}" && pwd)"
[ "$out" != "$root" ] || { echo "build-gyp: OUTDIR must not be the package root (node-gyp would delete build/)" >&2; exit 2; }

for entry in binding.gyp native cmake node_modules package.json; do
  ln -sfn "$root/$entry" "$out/$entry"
done

gyp=()
if [ -n "${npm_config_node_gyp:-}" ] && [ -f "$npm_config_node_gyp" ]; then
  gyp=(node "$npm_config_node_gyp")
elif command -v node-gyp >/dev/null 2>&1; then
  gyp=(node-gyp)
else
  npm_gyp="$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")/node_modules/node-gyp/bin/node-gyp.js"
  [ -f "$npm_gyp" ] || { echo "build-gyp: node-gyp not found (npm ships one; or npm install -g node-gyp)" >&2; exit 1; }
  gyp=(node "$npm_gyp")
fi

nodedir="${npm_config_nodedir:-}"
if [ -z "$nodedir" ]; then
  prefix="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
  [ -f "$prefix/include/node/common.gypi" ] && nodedir="$prefix"
fi

cd "$out"
echo "build-gyp: ${gyp[*]} configure + build in $out (node headers: ${nodedir:-downloaded by node-gyp})" >&2
"${gyp[@]}" configure ${nodedir:+--nodedir="$nodedir"}
"${gyp[@]}" build --jobs "${EMLAB_BUILD_JOBS:-$(nproc)}"
ls -l "$out/build/Release/emlab.node"

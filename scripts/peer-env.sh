#!/usr/bin/env bash
# Creates (or reuses) the peer environment: a Python venv with pip's torch 2.x (CUDA wheel; it runs
# on CPU too), transformers, PEFT and safetensors. It serves the peer suite, the peer benchmark, the
# fixture generator and the second libtorch build (build-torch2/); emlab itself never imports it.
#   scripts/peer-env.sh            create/reuse, verify, print the venv path
#   scripts/peer-env.sh --check    verify only (exit 1 when missing or broken)
# Location: $EMLAB_PEER_ENV, default ~/.cache/emlab/peer-env (outside the repo, so fresh clones reuse it).
set -euo pipefail
ENV_DIR="${EMLAB_PEER_ENV:-$HOME/.cache/emlab/peer-env}"
# Pinned versions: the parity tolerances and the benchmark table were measured with these.
# nvidia-cuda-crt: the crt/ headers that cuda_runtime.h includes (needed to compile emlab's CUDA paths; no nvcc).
PINS=(torch==2.15.0 transformers==5.24.0 peft==0.21.2 safetensors==0.8.0 numpy==2.4.6 nvidia-cuda-crt==13.2.86)

verify() {
  "$ENV_DIR/bin/python" - "${PINS[@]}" <<'PY'
import importlib.metadata as md, sys
bad = []
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    try:
        have = md.version(name)
    except md.PackageNotFoundError:
        have = None
    if have != want:
        bad.append(f"{name}: want {want}, have {have}")
import torch, transformers, peft, safetensors.torch  # noqa: F401  (the imports themselves are the check)
if bad:
    print("peer-env: version mismatch: " + "; ".join(bad), file=sys.stderr)
    sys.exit(1)
PY
}

if [ -x "$ENV_DIR/bin/python" ] && verify 2>/dev/null; then
  echo "$ENV_DIR"
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  echo "peer-env: no working peer environment at $ENV_DIR (run scripts/peer-env.sh)" >&2
  exit 1
fi
PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null || { echo "peer-env: need python3 (>= 3.10) with venv" >&2; exit 1; }
echo "peer-env: installing ${PINS[*]} into $ENV_DIR (several GB the first time)" >&2
[ -x "$ENV_DIR/bin/python" ] || "$PYTHON" -m venv "$ENV_DIR"
"$ENV_DIR/bin/python" -m pip install -q --disable-pip-version-check "${PINS[@]}" >&2
verify || { echo "peer-env: installed, but the imports or versions do not check out" >&2; exit 1; }
echo "$ENV_DIR"

#!/usr/bin/env bash
# The main job on a built-in default: set up, check the runtime, then train a small model on CPU
# and print its falling loss.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node bin/emlab.js doctor
npx tsx examples/train-tiny-mlp.ts "$@"

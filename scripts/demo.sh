#!/usr/bin/env bash
# The main job on a built-in default: set up, then run the miniature experiment of examples/demo on CPU
# (a tiny chat model trained here, general vs KL-regularised narrow fine-tunes on wrong answers in one
# domain, an exact rule judge, efficiency / stability / significance / gradients), write its report,
# and print the report's path with a table of the headline numbers. Re-running skips finished stages.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node bin/emlab.js organism examples/demo/organism >/dev/null
node bin/emlab.js experiment examples/demo/experiment.yaml "$@"
node bin/emlab.js report runs/demo

#!/usr/bin/env bash
# Runs the engine on photos and prints the Face API detect JSON (until the REST service lands).
# With no argument it uses the test photos fetched by set-up.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

scripts/setup.sh
if [ "$#" -eq 0 ]; then
  set -- "$FACE_CACHE/testdata/obama.jpg" "$FACE_CACHE/testdata/biden.jpg"
fi
cargo xtask detect "$@"

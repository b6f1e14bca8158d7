#!/usr/bin/env bash
# Runs the engine on photos and prints the Face API detect JSON (until the REST service lands).
# With no argument it uses the test photos fetched by set-up.
set -euo pipefail
# Photo paths are taken relative to where the command was started.
photos=()
for p in "$@"; do photos+=("$(realpath -- "$p")"); done
cd "$(dirname "$0")/.."
. scripts/env.sh

scripts/setup.sh
if [ "${#photos[@]}" -eq 0 ]; then
  photos=("$FACE_CACHE/testdata/obama.jpg" "$FACE_CACHE/testdata/biden.jpg")
fi
cargo xtask detect "${photos[@]}"

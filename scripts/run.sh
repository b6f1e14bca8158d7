#!/usr/bin/env bash
# Sets up, builds and runs the service: face-server on http://localhost:5000/face/v1.0 with its
# defaults (SQLite face database in $FACE_CACHE/data, one engine instance per core). The key is
# $FACE_API_KEY (default local-key); further Key=value arguments are passed on as settings.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

scripts/setup.sh
exec cargo xtask serve "$@"

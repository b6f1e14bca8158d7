# Sourced by the other scripts: one build cache and one download cache outside the clone, so a
# fresh clone (CI's included) reuses what earlier runs built and verified.
export FACE_CACHE="${FACE_CACHE:-$HOME/.cache/face}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$FACE_CACHE/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
mkdir -p "$FACE_CACHE"

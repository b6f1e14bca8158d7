#!/usr/bin/env bash
# Every test: set-up, face-core's build for browsers (wasm32-unknown-unknown), the workspace's
# tests natively, and face-core's tests on wasm32-wasip1 inside wasmtime.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

scripts/setup.sh

echo "test: face-core builds for browsers (wasm32-unknown-unknown)" >&2
cargo build --package face-core --target wasm32-unknown-unknown

echo "test: native" >&2
cargo test --workspace

echo "test: face-core on wasm32-wasip1 in wasmtime" >&2
cargo xtask wasm-test

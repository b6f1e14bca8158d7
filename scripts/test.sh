#!/usr/bin/env bash
# Every test: set-up, the workspace's tests natively, face-core's tests on wasm32-wasip1 inside
# wasmtime, and face-core's build for browsers (wasm32-unknown-unknown).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

scripts/setup.sh

echo "test: native" >&2
cargo test --workspace

echo "test: wasm32-wasip1 in wasmtime" >&2
cargo xtask wasm-test

echo "test: wasm32-unknown-unknown build" >&2
cargo build --package face-core --target wasm32-unknown-unknown

#!/usr/bin/env bash
# Every test: set-up; the guest component and the npm package built; the workspace's tests
# natively (the host's engine-pool tests run the guest in wasmtime); face-core's tests on
# wasm32-wasip1 inside wasmtime; the packed npm package in Node; face-server through the official
# Python client, on SQLite and on two hosts sharing one PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

scripts/setup.sh --test

echo "test: formatting (cargo fmt --check)" >&2
cargo fmt --all --check

echo "test: lints (cargo clippy, every warning refused)" >&2
cargo clippy --workspace --all-targets -- -D warnings

echo "test: no import cycle between files (cargo xtask cycles)" >&2
cargo xtask cycles

echo "test: build the wasmtime guest (wasm32-wasip2 component)" >&2
cargo xtask guest

echo "test: native (host tests run the guest in wasmtime)" >&2
cargo test --workspace

echo "test: face-core on wasm32-wasip1 in wasmtime" >&2
cargo xtask wasm-test

echo "test: the npm package (wasm32-unknown-unknown + wasm-bindgen) in Node" >&2
cargo xtask npm-test

echo "test: face-server through the official Python client (all 69 operations)" >&2
cargo xtask e2e

echo "test: two face-servers on one PostgreSQL through PgBouncer in transaction mode, TLS on both sides (verify-full; the Python client's run alternating hosts), then one host killed under load (directly on a cluster of its own)" >&2
cargo xtask e2e --hosts 2 --tls --pgbouncer

echo "test: bounded load on loopback (wrk: detect, identify, both; 3 s each)" >&2
cargo xtask load --seconds 3

echo "test: the in-browser demo served by face-server, in headless Chromium" >&2
cargo xtask web-test

echo "test: soak, a short pass (1000 mixed requests at concurrency 16, kill -9 and restart halfway)" >&2
cargo xtask soak --requests 1000

echo "test: scale, a short pass (a 20,000-face LargePersonGroup and LargeFaceList: train, identify, restart; SQLite, then PostgreSQL with a second host)" >&2
cargo xtask scale --faces 20000 --requests 40 --registry-photos --postgres

echo "test: fuzzing, a short pass (decode, request parsers, guest values; 20 s each)" >&2
cargo xtask fuzz --seconds 20

echo "test: the container image (hadolint; the runtime stage built over the package; run with podman as an operator would, the Python client's run included)" >&2
cargo xtask image-test

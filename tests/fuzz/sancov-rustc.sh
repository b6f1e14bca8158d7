#!/bin/sh
# RUSTC_WORKSPACE_WRAPPER of `cargo xtask fuzz`: the project's own crates are compiled with
# libFuzzer's coverage instrumentation (the flags cargo-fuzz passes, without a sanitizer, so the
# stable toolchain builds them). Cargo runs it for workspace members only and keeps their
# instrumented artifacts apart, so the optimised dependencies are shared with the normal build.
# Build scripts and proc-macros run at build time, outside libFuzzer, and stay uninstrumented.
rustc="$1"
shift
case " $* " in
*" --crate-name build_script_build "* | *" proc-macro "*) exec "$rustc" "$@" ;;
esac
exec "$rustc" "$@" \
    -Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    -Cllvm-args=-sanitizer-coverage-stack-depth \
    -Cdebug-assertions \
    -Coverflow-checks \
    --cfg fuzzing

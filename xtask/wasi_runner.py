"""Runs a wasm32-wasip1 program (a cargo test binary) inside wasmtime, for `cargo xtask wasm-test`.

Cargo calls it as the target runner: `python wasi_runner.py PROGRAM.wasm ARGS...`. The program sees
the environment, stdout and stderr of this process, and the folders named in $FACE_WASI_DIRS
(colon-separated) at the same paths as on the host, so tests find models and photos unchanged.
Exits with the program's exit code; a trap prints its message and exits 101, as a panic would.
"""
import os
import sys

from wasmtime import Config, Engine, ExitTrap, Linker, Module, Store, Trap, WasiConfig, WasmtimeError


def main():
    program, args = sys.argv[1], sys.argv[2:]
    config = Config()
    config.wasm_simd = True
    config.cache = True  # compiled code is reused across runs of the same binary
    engine = Engine(config)
    linker = Linker(engine)
    linker.define_wasi()
    module = Module.from_file(engine, program)
    wasi = WasiConfig()
    wasi.argv = [os.path.basename(program)] + args
    wasi.inherit_env()
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    for folder in filter(None, os.environ.get("FACE_WASI_DIRS", "").split(":")):
        wasi.preopen_dir(folder, folder)
    store = Store(engine)
    store.set_wasi(wasi)
    instance = linker.instantiate(store, module)
    try:
        instance.exports(store)["_start"](store)
    except ExitTrap as e:
        sys.exit(e.code)
    except (Trap, WasmtimeError) as e:
        print(f"wasm trap: {e}", file=sys.stderr)
        sys.exit(101)


if __name__ == "__main__":
    main()

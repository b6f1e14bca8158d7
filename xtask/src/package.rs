//! `cargo xtask package [--release] DIR`: everything the service needs at run time, in one
//! folder laid out the way face-server looks for it beside its binary: `face-server`,
//! `face-meter`, `face_wasm.wasm` (the guest) with `face_wasm.cwasm` and its sha256 record,
//! `models/` (with `libonnxruntime.so` and the manifest of sources and licenses), `swagger-ui/`
//! and `demo/` (the in-browser demo, whose models are links to `models/` where the files are the
//! same, so each is held once). The Dockerfile's build stage runs this command; the test command
//! runs it too (`cargo xtask image-test` builds the image's runtime stage over its folder).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util::{models_dir, repo_root, run, target_dir};

const SWAGGER_UI: [&str; 4] =
    ["swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "favicon-32x32.png"];

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

pub fn package(args: &[String]) -> Result<()> {
    let (release, out) = match args {
        [dir] => (false, PathBuf::from(dir)),
        [flag, dir] if flag == "--release" => (true, PathBuf::from(dir)),
        _ => bail!("usage: cargo xtask package [--release] DIR"),
    };
    let profile: &[&str] = if release { &["--release"] } else { &[] };
    let dir = if release { "release" } else { "debug" };
    crate::models::models()?;
    run(Command::new(env!("CARGO"))
        .args(["build", "--package", "face-wasm", "--features", "component", "--target", "wasm32-wasip2"])
        .args(profile))?;
    run(Command::new(env!("CARGO")).args(["build", "--package", "face-host", "--bins"]).args(profile))?;
    crate::web::web(&[])?;
    let swagger = repo_root().join("host/swagger-ui");
    if !swagger.join("node_modules/swagger-ui-dist/swagger-ui-bundle.js").exists() {
        run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&swagger))?;
    }

    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("clearing {}", out.display()))?;
    }
    std::fs::create_dir_all(out.join("models"))?;
    std::fs::create_dir_all(out.join("swagger-ui"))?;
    let target = target_dir();
    for bin in ["face-server", "face-meter"] {
        copy(&target.join(dir).join(bin), &out.join(bin))?;
        if release {
            // The release profile keeps line tables (for profiles and backtraces while
            // developing): the image carries the symbols without them.
            run(Command::new("strip").arg("--strip-debug").arg(out.join(bin)))
                .context("stripping the binaries needs binutils' strip")?;
        }
    }
    // The guest, compiled by this face-server, and the record of its sha256: the only compiled
    // guest face-server will load from disk (precompiled in the build folder once per build).
    // A release package's guest has its DWARF sections taken out first (its function names stay).
    let mut guest = target.join("wasm32-wasip2").join(dir).join("face_wasm.wasm");
    if release {
        let stripped = target.join("wasm32-wasip2").join(dir).join("package/face_wasm.wasm");
        write_if_changed(&stripped, &strip_wasm_debug(&std::fs::read(&guest)?)?)?;
        guest = stripped;
    }
    crate::wasm::precompile(&target.join(dir).join("face-server"), &guest)?;
    for ext in ["wasm", "cwasm", "cwasm.sha256"] {
        copy(&guest.with_extension(ext), &out.join("face_wasm").with_extension(ext))?;
    }
    // The models the server loads: face-core's required and attribute models.
    for m in face_core::ModelSet::FILES {
        copy(&models_dir().join(m), &out.join("models").join(m))?;
    }
    // The onnxruntime library for Engine:Backend=onnxruntime, where face-server looks by default.
    for runtime in crate::models::manifest()?.runtime {
        copy(&models_dir().join(&runtime.file), &out.join("models").join(&runtime.file))?;
    }
    for f in SWAGGER_UI {
        copy(&swagger.join("node_modules/swagger-ui-dist").join(f), &out.join("swagger-ui").join(f))?;
    }
    // Where each model comes from, its license and sha256.
    copy(&models_dir().join("manifest.toml"), &out.join("models/manifest.toml"))?;
    crate::web::copy_dir(&crate::web::dist_dir(), &out.join("demo"))?;
    let linked = link_duplicates(&out.join("demo/pkg/models"), &out.join("models"), "../../../models")?;
    eprintln!("package: {} ({} build); the demo's {linked} models shared with the server's", out.display(), dir);
    Ok(())
}

/// Each file of `dir` with the same bytes as the file of that name in `models` becomes a relative
/// link to it (`to_models` is `models` seen from `dir`), so the package holds each model once.
fn link_duplicates(dir: &Path, models: &Path, to_models: &str) -> Result<usize> {
    let mut linked = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let Some(name) = path.file_name() else { continue };
        let twin = models.join(name);
        if twin.is_file() && std::fs::read(&twin)? == std::fs::read(&path)? {
            std::fs::remove_file(&path)?;
            std::os::unix::fs::symlink(Path::new(to_models).join(name), &path)
                .with_context(|| format!("linking {}", path.display()))?;
            linked += 1;
        }
    }
    Ok(linked)
}

/// `wasm` (a module, or a component and the modules and components inside it) without its custom
/// sections named `.debug*` (DWARF), every other section as it was.
fn strip_wasm_debug(wasm: &[u8]) -> Result<Vec<u8>> {
    fn put_leb(out: &mut Vec<u8>, mut value: usize) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    fn leb(bytes: &[u8], at: &mut usize) -> Result<usize> {
        let (mut value, mut shift) = (0usize, 0);
        loop {
            let byte = *bytes.get(*at).context("a truncated wasm section header")?;
            *at += 1;
            value |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
            shift += 7;
            if shift >= 35 {
                bail!("a wasm section size longer than 5 bytes");
            }
        }
    }
    if wasm.get(..4) != Some(b"\0asm") {
        bail!("not a wasm binary");
    }
    // Version 1 is a core module; layer 1 (bytes 0d 00 01 00) a component, whose sections 1
    // (core module) and 4 (component) hold whole binaries.
    let component = wasm.get(4..8) == Some(&[0x0d, 0x00, 0x01, 0x00]);
    let mut out = wasm[..8].to_vec();
    let mut at = 8;
    while at < wasm.len() {
        let start = at;
        let id = wasm[at];
        at += 1;
        let size = leb(wasm, &mut at)?;
        let end = at.checked_add(size).filter(|&e| e <= wasm.len()).context("a wasm section past the end")?;
        let debug = id == 0 && {
            let section = &wasm[at..end];
            let mut name_at = 0;
            let len = leb(section, &mut name_at)?;
            let name = name_at.checked_add(len).and_then(|e| section.get(name_at..e));
            name.context("a custom section's name past its end")?.starts_with(b".debug")
        };
        if component && (id == 1 || id == 4) {
            let inner = strip_wasm_debug(&wasm[at..end])?;
            out.push(id);
            put_leb(&mut out, inner.len());
            out.extend_from_slice(&inner);
        } else if !debug {
            out.extend_from_slice(&wasm[start..end]);
        }
        at = end;
    }
    Ok(out)
}

/// Writes `bytes` to `path` unless it holds them already (so its time, which the precompile
/// step compares, moves only when the guest does).
fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_loses_its_dwarf_and_keeps_everything_else() {
        // A module of a type section, a `.debug_info` custom section and a `name` custom section.
        let mut wasm = b"\0asm\x01\0\0\0".to_vec();
        wasm.extend_from_slice(&[1, 4, 1, 0x60, 0, 0]);
        wasm.extend_from_slice(&[0, 14, 11]);
        wasm.extend_from_slice(b".debug_info");
        wasm.extend_from_slice(&[1, 2]);
        wasm.extend_from_slice(&[0, 5, 4]);
        wasm.extend_from_slice(b"name");
        let stripped = strip_wasm_debug(&wasm).unwrap();
        let mut expected = b"\0asm\x01\0\0\0".to_vec();
        expected.extend_from_slice(&[1, 4, 1, 0x60, 0, 0, 0, 5, 4]);
        expected.extend_from_slice(b"name");
        assert_eq!(stripped, expected);
        assert!(strip_wasm_debug(b"\0asm\x01\0\0\0\x01\x09").is_err(), "a section past the end");
        // The same module inside a component: stripped there, its section's size rewritten.
        let mut component = b"\0asm\x0d\0\x01\0".to_vec();
        component.push(1);
        component.push(wasm.len() as u8);
        component.extend_from_slice(&wasm);
        let mut expected_component = b"\0asm\x0d\0\x01\0".to_vec();
        expected_component.push(1);
        expected_component.push(expected.len() as u8);
        expected_component.extend_from_slice(&expected);
        assert_eq!(strip_wasm_debug(&component).unwrap(), expected_component);
    }
}

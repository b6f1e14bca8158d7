//! The compiled guest, trusted only when verified.
//!
//! Deserialising a compiled component runs its machine code in face-server, around the sandbox,
//! so a compiled guest is loaded only when its sha256 equals the one recorded beside the guest by
//! `face-server compile-guest` (run at package time into the read-only install folder, and by
//! `cargo xtask guest`). The record names the guest's own sha256 and wasmtime's compatibility
//! hash too, so it applies to this guest and this engine only. Candidates, in order: the
//! precompiled file beside the guest, then the entry in `Engine:Cache`. A candidate that does not
//! match is never loaded; the guest is compiled instead, and the cache entry rewritten (fsynced,
//! then renamed into place) when the fresh compile matches the record. Without a record the
//! guest is compiled in memory and nothing on disk is trusted.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, anyhow};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where a pool's compiled guest came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Source {
    /// The precompiled file beside the guest, verified against its record.
    Precompiled,
    /// The `Engine:Cache` entry, verified against the record.
    Cache,
    /// Compiled at start-up (no record, or no candidate that matched it).
    #[default]
    Compiled,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Precompiled => "precompiled",
            Source::Cache => "cache",
            Source::Compiled => "compiled",
        }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn compat_hex(engine: &Engine) -> String {
    let mut compat = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut compat);
    format!("{:016x}", compat.finish())
}

/// The precompiled guest beside `guest`, and its record.
pub fn precompiled_paths(guest: &Path) -> (PathBuf, PathBuf) {
    (guest.with_extension("cwasm"), guest.with_extension("cwasm.sha256"))
}

/// What `compile-guest` records: the compiled bytes' sha256, for which guest and which engine.
#[derive(Debug, PartialEq, Eq)]
struct Record {
    compiled: String,
    guest: String,
    engine: String,
}

impl Record {
    fn to_text(&self) -> String {
        format!("compiled {}\nguest {}\nengine {}\n", self.compiled, self.guest, self.engine)
    }

    fn parse(text: &str) -> Option<Record> {
        let field = |key: &str| {
            text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')).map(str::trim).map(str::to_owned)
        };
        Some(Record { compiled: field("compiled")?, guest: field("guest")?, engine: field("engine")? })
    }
}

/// Writes `bytes` to `path` durably: a temporary name, fsync, rename, fsync of the folder.
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static WRITERS: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension(format!("tmp{}-{}", std::process::id(), WRITERS.fetch_add(1, Ordering::Relaxed)));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Compiles `guest` for this engine and writes it beside the guest with its record
/// (`face-server compile-guest`). Returns the compiled file's path.
pub fn precompile(engine: &Engine, guest: &Path) -> Result<PathBuf> {
    let bytes = std::fs::read(guest).with_context(|| format!("reading the guest {}", guest.display()))?;
    let compiled = engine.precompile_component(&bytes).map_err(|e| anyhow!("compiling the guest: {e}"))?;
    let record = Record { compiled: sha256_hex(&compiled), guest: sha256_hex(&bytes), engine: compat_hex(engine) };
    let (file, record_path) = precompiled_paths(guest);
    write_durably(&file, &compiled).with_context(|| format!("writing {}", file.display()))?;
    write_durably(&record_path, record.to_text().as_bytes())
        .with_context(|| format!("writing {}", record_path.display()))?;
    Ok(file)
}

/// Deserialises `bytes`: either verified against the record, or just compiled in memory.
fn deserialize(engine: &Engine, bytes: &[u8]) -> Result<Component> {
    // SAFETY: callers pass only bytes that hash to the sha256 `precompile` recorded for this
    // guest and this engine's compatibility hash (beside the guest, where only the installer
    // writes), or bytes this same engine's `precompile_component` has just produced in memory.
    #[allow(unsafe_code)]
    unsafe { Component::deserialize(engine, bytes) }.map_err(|e| anyhow!("loading the compiled guest: {e}"))
}

/// The compiled guest for `engine`: verified from disk when a record allows, else compiled.
pub fn component(engine: &Engine, guest: &Path, cache_dir: &Path) -> Result<(Component, Source)> {
    let bytes = std::fs::read(guest).with_context(|| format!("reading the guest {}", guest.display()))?;
    let guest_sha = sha256_hex(&bytes);
    let compat = compat_hex(engine);
    let (beside, record_path) = precompiled_paths(guest);
    let record = std::fs::read_to_string(&record_path).ok().and_then(|t| Record::parse(&t));
    let record = match record {
        Some(r) if r.guest == guest_sha && r.engine == compat => Some(r),
        Some(_) => {
            tracing::warn!(
                record = %record_path.display(),
                "the precompiled guest's record is for another guest or wasmtime build; compiling at start-up \
                 (run `face-server compile-guest {}` to precompile)",
                guest.display()
            );
            None
        }
        None => None,
    };
    let cached = cache_dir.join(format!("face-guest-{}-{compat}.cwasm", &guest_sha[..24]));
    if let Some(record) = &record {
        for (path, source) in [(&beside, Source::Precompiled), (&cached, Source::Cache)] {
            let Ok(candidate) = std::fs::read(path) else { continue };
            if sha256_hex(&candidate) == record.compiled {
                match deserialize(engine, &candidate) {
                    Ok(component) => return Ok((component, source)),
                    Err(e) => {
                        tracing::warn!(file = %path.display(), error = %e, "the compiled guest did not load; compiling");
                        continue;
                    }
                }
            }
            tracing::warn!(
                file = %path.display(),
                "a compiled guest does not match the sha256 recorded in {}; it is not loaded",
                record_path.display()
            );
        }
    }
    let compiled = engine.precompile_component(&bytes).map_err(|e| anyhow!("compiling the guest: {e}"))?;
    if record.as_ref().is_some_and(|r| r.compiled == sha256_hex(&compiled)) {
        // The cache is best effort: a read-only or full disk costs the next start a compile.
        if let Err(e) = write_durably(&cached, &compiled) {
            tracing::warn!(file = %cached.display(), error = %e, "could not write the compiled guest cache");
        }
        // Entries for other guests or engines will not match any record again.
        for entry in std::fs::read_dir(cache_dir).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("face-guest-") && entry.path() != cached {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok((deserialize(engine, &compiled)?, Source::Compiled))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_refuse_partial_text() {
        let r = Record { compiled: "ab".into(), guest: "cd".into(), engine: "ef".into() };
        assert_eq!(Record::parse(&r.to_text()), Some(r));
        assert_eq!(Record::parse("compiled ab\nguest cd\n"), None);
    }
}

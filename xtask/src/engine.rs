//! Loading the engine from models/.

use anyhow::{Context, Result};
use face_core::{Engine, ModelSet};

use crate::util::models_dir;

pub fn load() -> Result<Engine> {
    let dir = models_dir();
    let models = ModelSet::read_with(|name| {
        std::fs::read(dir.join(name))
            .with_context(|| format!("reading {}: run `cargo xtask models` first", dir.join(name).display()))
    })?;
    Ok(Engine::new(&models.bytes())?)
}

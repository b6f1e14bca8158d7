use anyhow::Result; pub fn wasm_test(_a: &[String]) -> Result<()> { anyhow::bail!("not yet") }

//! face-meter: the reference billing endpoint for face-server (see face_host::billing for the
//! protocol): `face-meter Keys=<key>[,<key>...] [Address=127.0.0.1:5001] [DataDirectory=meter]
//! [Quota=<transactions per key>]`; the same keys in the environment (`KEYS`, ...) also work.

use std::collections::{HashMap, HashSet};
use std::process::ExitCode;

mod meter;

use meter::{MeterConfig, run};

fn main() -> ExitCode {
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    let mut values: HashMap<String, String> = std::env::vars()
        .filter(|(k, _)| ["keys", "address", "datadirectory", "quota"].contains(&k.to_ascii_lowercase().as_str()))
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    for arg in std::env::args().skip(1) {
        let Some((k, v)) = arg.split_once('=') else {
            eprintln!(
                "face-meter: argument {arg:?} is not Key=value; e.g. face-meter Keys=my-key Address=127.0.0.1:5001"
            );
            return ExitCode::from(2);
        };
        values.insert(k.to_ascii_lowercase(), v.to_owned());
    }
    let keys: HashSet<String> = values
        .get("keys")
        .map(|k| k.split(',').map(str::trim).filter(|k| !k.is_empty()).map(String::from).collect())
        .unwrap_or_default();
    if keys.is_empty() {
        eprintln!("face-meter: the Keys setting is missing: give the keys to accept, e.g. face-meter Keys=my-key");
        return ExitCode::from(2);
    }
    let address = match values.get("address").map(|a| a.parse()).unwrap_or(Ok(([127, 0, 0, 1], 5001).into())) {
        Ok(a) => a,
        Err(_) => {
            eprintln!("face-meter: the Address setting is not an address like 127.0.0.1:5001");
            return ExitCode::from(2);
        }
    };
    let quota = match values.get("quota").map(|q| q.parse::<u64>()) {
        None => None,
        Some(Ok(q)) => Some(q),
        Some(Err(_)) => {
            eprintln!("face-meter: the Quota setting is not a whole number of transactions");
            return ExitCode::from(2);
        }
    };
    let config = MeterConfig {
        address,
        data_dir: values.get("datadirectory").map(Into::into).unwrap_or_else(|| "meter".into()),
        keys,
        quota,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("face-meter: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("face-meter: {e:#}");
            ExitCode::FAILURE
        }
    }
}

//! Start-up settings: parsed once, from arguments over environment variables. A missing or
//! invalid required setting, or one this service does not know (a typo such as
//! `Billing:Interval`), is refused before anything listens, naming the setting. The Azure
//! container's settings that have no effect here are accepted and listed in the start-up log.

use std::collections::BTreeMap;
use std::fmt;

/// A key: used as it is, never written out by `Debug`, so no log line, panic or `{:?}` of a
/// configuration shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(key: impl Into<String>) -> Secret {
        Secret(key.into())
    }

    /// The key itself, for the one place that sends or compares it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The required settings, checked.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    pub billing: String,
    pub api_key: String,
    /// Every other `Section:Key` setting, keys lower-cased, for the parts that read them.
    pub other: BTreeMap<String, String>,
    /// The Azure container's settings given that have no effect here, as spelled.
    pub ignored: Vec<String>,
}

/// The settings this service reads besides Eula, Billing and ApiKey (the README's table).
pub const READ: [&str; 35] = [
    "Server:Address",
    "Server:MaxFaceIds",
    "Server:SwaggerUi",
    "Server:ShutdownTimeoutSeconds",
    "Server:Demo",
    "Server:MemoryBudgetMiB",
    "Server:MaxConnections",
    "Server:HeaderTimeoutSeconds",
    "Storage:Scenario",
    "Storage:DataDirectory",
    "Storage:ConnectionString",
    "Storage:EventsConnectionString",
    "Engine:Guest",
    "Engine:Models",
    "Engine:Cache",
    "Engine:Backend",
    "Engine:OnnxRuntime",
    "Engine:PoolSize",
    "Engine:MemoryMiB",
    "Engine:TimeoutSeconds",
    "Engine:MaxQueue",
    "Engine:RecycleCalls",
    "Engine:RecycleMiB",
    "Engine:PerfMap",
    "Security:AllowPrivateUrls",
    "Security:UrlTimeoutSeconds",
    "Security:RequireKey",
    "Billing:IntervalSeconds",
    "Billing:RetrySeconds",
    "Billing:GraceSeconds",
    "Logging:Console:LogLevel",
    "Logging:Console:Format",
    "Logging:Disk:Format",
    "Logging:Disk:LogLevel",
    "Mounts:Output",
];

/// The Azure container's spellings of settings read here: (Azure's key, ours).
const ALIASES: [(&str, &str); 3] = [
    ("Logging:Console:LogLevel:Default", "Logging:Console:LogLevel"),
    ("Logging:Disk:LogLevel:Default", "Logging:Disk:LogLevel"),
    ("CloudAI:Storage:StorageScenario", "Storage:Scenario"),
];

/// The Azure container's settings with no effect here (telemetry and log shipping to Azure, an
/// outbound proxy for its billing calls, log file rotation).
const IGNORED: [&str; 11] = [
    "ApplicationInsights:InstrumentationKey",
    "Fluentd:Host",
    "Fluentd:Port",
    "Fluentd:HeartbeatMs",
    "Fluentd:SendBufferSize",
    "Fluentd:TlsConnectionEstablishmentTimeoutMs",
    "Fluentd:UseTLS",
    "HTTP_PROXY",
    "HTTP_PROXY_CREDS",
    "Logging:Disk:MaxFileSize",
    "Logging:Debug:LogLevel",
];

/// The first sections of the settings above: environment variables in them are settings and
/// are checked; other environment variables (PATH, HOME, ...) are not.
const SECTIONS: [&str; 12] = [
    "eula",
    "billing",
    "apikey",
    "server",
    "storage",
    "engine",
    "security",
    "logging",
    "mounts",
    "cloudai",
    "fluentd",
    "applicationinsights",
];

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("billing", &self.billing)
            .field("api_key", &"<redacted>")
            .field("other", &self.other.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Why the service refuses to start.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SettingsError {
    Missing { setting: &'static str },
    Invalid { setting: &'static str, reason: String },
    Malformed { argument: String },
    Unknown { setting: String, hint: String },
}

const EXAMPLE: &str = "Eula=accept Billing=https://<your-resource>.cognitiveservices.azure.com/ ApiKey=<key>";

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingsError::Missing { setting } => write!(
                f,
                "the {setting} setting is missing: pass it as an argument or environment variable, e.g. {EXAMPLE}"
            ),
            SettingsError::Invalid { setting, reason } => {
                write!(f, "the {setting} setting is invalid: {reason}; e.g. {EXAMPLE}")
            }
            SettingsError::Unknown { setting, hint } => {
                write!(f, "the {setting} setting is unknown{hint}; the README's settings table lists every setting")
            }
            SettingsError::Malformed { argument } => {
                write!(f, "argument {argument:?} is not of the form Key=value (or Section:Key=value); e.g. {EXAMPLE}")
            }
        }
    }
}

impl std::error::Error for SettingsError {}

/// Normalises a key: case-insensitive, `__` and `:` both separate sections.
fn key(raw: &str) -> String {
    raw.replace("__", ":").to_ascii_lowercase()
}

impl Settings {
    /// Parses `args` (without the program name) over `env`; arguments win.
    pub fn parse<I, E>(args: I, env: E) -> Result<Settings, SettingsError>
    where
        I: IntoIterator<Item = String>,
        E: IntoIterator<Item = (String, String)>,
    {
        // Lower-cased key -> (the key as given, value).
        let mut given: BTreeMap<String, (String, String)> = BTreeMap::new();
        for (k, v) in env {
            let normal = key(&k);
            if SECTIONS.contains(&normal.split(':').next().unwrap_or("")) {
                given.insert(normal, (k, v));
            }
        }
        for arg in args {
            let (k, v) = arg.split_once('=').ok_or_else(|| SettingsError::Malformed { argument: arg.clone() })?;
            if k.trim().is_empty() {
                return Err(SettingsError::Malformed { argument: arg.clone() });
            }
            given.insert(key(k.trim()), (k.trim().to_owned(), v.to_owned()));
        }
        let (mut values, ignored) = known(given)?;
        let eula = values.remove("eula").ok_or(SettingsError::Missing { setting: "Eula" })?;
        if !eula.eq_ignore_ascii_case("accept") {
            return Err(SettingsError::Invalid {
                setting: "Eula",
                reason: format!("it is {eula:?}, it must be \"accept\""),
            });
        }
        let billing = values.remove("billing").ok_or(SettingsError::Missing { setting: "Billing" })?;
        let host = billing.strip_prefix("http://").or_else(|| billing.strip_prefix("https://"));
        if host.is_none_or(|h| h.is_empty() || h.starts_with('/')) {
            return Err(SettingsError::Invalid {
                setting: "Billing",
                reason: format!("{billing:?} is not an http(s) URL"),
            });
        }
        let api_key = values.remove("apikey").ok_or(SettingsError::Missing { setting: "ApiKey" })?;
        if api_key.trim().is_empty() {
            return Err(SettingsError::Invalid { setting: "ApiKey", reason: "it is empty".into() });
        }
        Ok(Settings { billing, api_key, other: values, ignored })
    }
}

/// Sorts the given settings into those read (aliases resolved) and those ignored, refusing an
/// unknown one with the nearest known spelling.
#[allow(clippy::type_complexity)]
fn known(given: BTreeMap<String, (String, String)>) -> Result<(BTreeMap<String, String>, Vec<String>), SettingsError> {
    let lower = |k: &str| k.to_ascii_lowercase();
    let mut values = BTreeMap::new();
    let mut ignored = Vec::new();
    let mut aliased = Vec::new();
    for (normal, (spelled, value)) in given {
        if ["eula", "billing", "apikey"].contains(&normal.as_str()) || READ.iter().any(|k| lower(k) == normal) {
            values.insert(normal, value);
        } else if let Some((_, ours)) = ALIASES.iter().find(|(azure, _)| lower(azure) == normal) {
            aliased.push((spelled, lower(ours), value));
        } else if IGNORED.iter().any(|k| lower(k) == normal) || normal.starts_with("logging:console:loglevel:") {
            ignored.push(spelled);
        } else {
            return Err(SettingsError::Unknown { hint: hint(&normal), setting: spelled });
        }
    }
    for (spelled, ours, value) in aliased {
        if ours == "storage:scenario" && !value.trim().eq_ignore_ascii_case("memory") {
            return Err(SettingsError::Invalid {
                setting: "CloudAI:Storage:StorageScenario",
                reason: format!(
                    "{value:?} is not available here: only Memory is; leave it out for the default, a SQLite file \
                     under Storage:DataDirectory ({spelled} is read as Storage:Scenario)"
                ),
            });
        }
        // The service's own spelling wins over the Azure one.
        values.entry(ours).or_insert(value);
    }
    Ok((values, ignored))
}

/// `" (did you mean X?)"` for an unknown setting: a known one of the same section that one of
/// the two names begins, or else the section's settings.
fn hint(normal: &str) -> String {
    let (section, name) = normal.rsplit_once(':').unwrap_or(("", normal));
    let same_section: Vec<&str> = READ
        .iter()
        .copied()
        .filter(|k| k.to_ascii_lowercase().rsplit_once(':').is_some_and(|(s, _)| s == section))
        .collect();
    let close = same_section.iter().find(|k| {
        let known = k.to_ascii_lowercase();
        let known_name = known.rsplit(':').next().unwrap_or("");
        !name.is_empty() && (known_name.starts_with(name) || name.starts_with(known_name))
    });
    match (close, same_section.is_empty()) {
        (Some(k), _) => format!(" (did you mean {k}?)"),
        (None, false) => {
            format!(" ({} has {})", same_section[0].split(':').next().unwrap_or(""), same_section.join(", "))
        }
        (None, true) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments_are_case_insensitive_and_win_over_environment() {
        let env = vec![
            ("BILLING".to_owned(), "http://env".to_owned()),
            ("Logging__Console__LogLevel".to_owned(), "Debug".to_owned()),
        ];
        let s = Settings::parse(
            args(&["eula=Accept", "Billing=http://meter:5001/", "APIKEY=k1", "Storage:Scenario=Memory"]),
            env,
        )
        .unwrap();
        assert_eq!(s.billing, "http://meter:5001/");
        assert_eq!(s.api_key, "k1");
        assert_eq!(s.other.get("storage:scenario").map(String::as_str), Some("Memory"));
        assert_eq!(s.other.get("logging:console:loglevel").map(String::as_str), Some("Debug"));
        assert!(!format!("{s:?}").contains("k1"), "the key is redacted");
    }

    #[test]
    fn unknown_settings_are_refused_and_azure_ones_accepted() {
        let base = ["Eula=accept", "Billing=http://m", "ApiKey=k"];
        let with = |extra: &[&str]| {
            Settings::parse(base.iter().chain(extra).map(|s| s.to_string()), Vec::<(String, String)>::new())
        };
        let e = with(&["Billing:Interval=60"]).unwrap_err().to_string();
        assert!(e.contains("the Billing:Interval setting is unknown (did you mean Billing:IntervalSeconds?)"), "{e}");
        let e = with(&["Engine:Pool=2"]).unwrap_err().to_string();
        assert!(e.contains("Engine:PoolSize"), "{e}");
        assert!(with(&["Colour=blue"]).unwrap_err().to_string().contains("the Colour setting is unknown"));
        // Environment variables outside the settings' sections are not settings.
        let env = vec![("PATH".to_owned(), "/bin".to_owned()), ("SERVER_NAME".to_owned(), "x".to_owned())];
        assert!(Settings::parse(base.iter().map(|s| s.to_string()), env).is_ok());
        let env = vec![("Engine__Backnd".to_owned(), "tract".to_owned())];
        assert!(Settings::parse(base.iter().map(|s| s.to_string()), env).is_err(), "a typo in the environment");
        // The Azure container's settings: read where they mean something here, else accepted and listed.
        let s = with(&[
            "Logging:Console:LogLevel:Default=Warning",
            "CloudAI:Storage:StorageScenario=Memory",
            "Fluentd:Host=logs",
            "ApplicationInsights:InstrumentationKey=1",
        ])
        .unwrap();
        assert_eq!(s.other.get("logging:console:loglevel").map(String::as_str), Some("Warning"));
        assert_eq!(s.other.get("storage:scenario").map(String::as_str), Some("Memory"));
        assert_eq!(s.ignored, ["ApplicationInsights:InstrumentationKey", "Fluentd:Host"]);
        let e = with(&["CloudAI:Storage:StorageScenario=Azure"]).unwrap_err().to_string();
        assert!(e.contains("the CloudAI:Storage:StorageScenario setting is invalid"), "{e}");
    }

    #[test]
    fn every_setting_read_is_in_the_readme() {
        // This clone's README (cargo test sets the variable at run time; clones share one target folder).
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
        let readme = std::fs::read_to_string(format!("{dir}/../README.md")).unwrap();
        for k in READ {
            assert!(readme.contains(&format!("`{k}`")), "{k} is not in the README's settings table");
        }
    }

    #[test]
    fn each_missing_or_wrong_setting_is_named() {
        let env = Vec::<(String, String)>::new;
        let cases = [
            (vec!["Billing=http://m", "ApiKey=k"], "Eula"),
            (vec!["Eula=accept", "ApiKey=k"], "Billing"),
            (vec!["Eula=accept", "Billing=http://m"], "ApiKey"),
            (vec!["Eula=decline", "Billing=http://m", "ApiKey=k"], "Eula"),
            (vec!["Eula=accept", "Billing=ftp://m", "ApiKey=k"], "Billing"),
            (vec!["Eula=accept", "Billing=https://", "ApiKey=k"], "Billing"),
            (vec!["Eula=accept", "Billing=http://m", "ApiKey= "], "ApiKey"),
        ];
        for (list, expected) in cases {
            let err = Settings::parse(args(&list), env()).unwrap_err();
            let named = match &err {
                SettingsError::Missing { setting } | SettingsError::Invalid { setting, .. } => *setting,
                other => panic!("{list:?}: {other:?}"),
            };
            assert_eq!(named, expected, "{list:?}");
            let text = err.to_string();
            assert!(
                text.starts_with(&format!("the {expected} setting")) && text.contains("Eula=accept Billing="),
                "{text}"
            );
        }
        let err = Settings::parse(args(&["Eula"]), env()).unwrap_err();
        assert!(matches!(err, SettingsError::Malformed { .. }));
    }

    #[test]
    fn environment_alone_is_enough() {
        let env = vec![
            ("EULA".to_owned(), "accept".to_owned()),
            ("BILLING".to_owned(), "https://billing.example".to_owned()),
            ("APIKEY".to_owned(), "secret".to_owned()),
        ];
        assert!(Settings::parse(Vec::new(), env).is_ok());
    }
}

//! Start-up settings: parsed once, from arguments over environment variables. A missing or
//! invalid required setting is refused before anything listens, naming the setting and showing
//! an example.

use std::collections::BTreeMap;
use std::fmt;

/// The required settings, checked.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    pub billing: String,
    pub api_key: String,
    /// Every other `Section:Key` setting, keys lower-cased, for the parts that read them.
    pub other: BTreeMap<String, String>,
}

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
        let mut values = BTreeMap::new();
        for (k, v) in env {
            values.insert(key(&k), v);
        }
        for arg in args {
            let (k, v) = arg.split_once('=').ok_or_else(|| SettingsError::Malformed { argument: arg.clone() })?;
            if k.trim().is_empty() {
                return Err(SettingsError::Malformed { argument: arg.clone() });
            }
            values.insert(key(k.trim()), v.to_owned());
        }
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
        Ok(Settings { billing, api_key, other: values })
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

//! face-host: the native server around the engine. This first piece is the start-up contract
//! the Azure Face container defines (shared/DESIGN.md, decision 5): `Eula=accept`,
//! `Billing=<url>` and `ApiKey=<key>`, as arguments (keys case-insensitive, `Section:Key=value`
//! for the rest) or environment variables (`EULA`, `BILLING`, `APIKEY`, nested keys with `__`).

pub mod settings;

//! The listener for the [`Event`]s other hosts send through the database (`LISTEN`), on a
//! connection of its own.

use super::*;

impl PostgresStore {
    /// Listens for [`Event`]s on a connection of its own (to `Storage:EventsConnectionString`
    /// where it is set), on a thread of its own, for as long as the process runs: each event is
    /// handed to `deliver`, and `None` before the first and after every reconnection (events may
    /// have been missed while the connection was down).
    pub fn listen(&self, deliver: impl Fn(Option<Event>) + Send + 'static) -> std::io::Result<()> {
        let (config, tls) = self.events.clone();
        std::thread::Builder::new().name("face-events".into()).spawn(move || {
            loop {
                match listen_once(&config, &tls, &deliver) {
                    Ok(()) => {}
                    Err(e) => tracing::warn!(error = %e, "the database's event connection failed; reconnecting"),
                }
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        })?;
        Ok(())
    }
}

/// One connection's worth of [`PostgresStore::listen`]; returns when it fails.
fn listen_once(
    config: &::postgres::Config,
    tls: &tls::Tls,
    deliver: &impl Fn(Option<Event>),
) -> Result<(), ::postgres::Error> {
    let mut client = tls.connect(config)?;
    client.batch_execute(&format!("LISTEN {EVENTS}"))?;
    deliver(None);
    loop {
        let any = {
            let mut notifications = client.notifications();
            let mut waiting = notifications.timeout_iter(std::time::Duration::from_secs(10));
            let mut any = false;
            while let Some(n) = waiting.next()? {
                any = true;
                match serde_json::from_str::<Event>(n.payload()) {
                    Ok(event) => deliver(Some(event)),
                    Err(e) => {
                        tracing::warn!(error = %e, payload = n.payload(), "an event from the database is not understood")
                    }
                }
            }
            any
        };
        if !any {
            // Quiet for a while: ask, so a dead connection is noticed.
            client.simple_query("SELECT 1")?;
        }
    }
}

//! Billing (decision 6): every billable transaction is written to the usage journal (the store)
//! before its response is sent; a heartbeat sends unsent records to the Billing endpoint and
//! marks them sent only when the meter acknowledges them. Each record carries a UUID, so a
//! resend never counts twice. When the meter cannot be reached past the grace period, billable
//! queries are refused (503 with Retry-After) until it answers again.
//!
//! The protocol (the project's `face-meter` implements it):
//! - `GET {Billing}/v1/status` with `Ocp-Apim-Subscription-Key: <ApiKey>` answers 200 `{"status":
//!   "Valid"}`, 401 (Invalid key), 402 (OutOfQuota), or 429/503 (busy, with Retry-After).
//! - `POST {Billing}/v1/usage` with the same header and `{"records": [{"id", "time", "meter",
//!   "quantity", "operation"}]}` answers 200 `{"accepted": [ids]}`: the ids it has recorded, now
//!   or before. Other answers are as for status.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::settings::Secret;
use crate::store::{PendingUsage, Store, UsageRecord};
use crate::time::{iso8601, now_ms};

tokio::task_local! {
    /// The usage of the billable request being served: its first store write that changes rows
    /// journals it in the same transaction (`AppState::db`), else the billing layer does.
    pub static REQUEST_USAGE: Arc<PendingUsage>;
}

/// The meter every transaction is counted on.
pub const METER: &str = "face.transactions";

#[derive(Debug, Clone)]
pub struct BillingConfig {
    /// The Billing setting, e.g. `http://127.0.0.1:5001/`.
    pub endpoint: String,
    pub api_key: Secret,
    /// How often usage is sent when the meter answers.
    pub interval: Duration,
    /// How often a failed send is retried.
    pub retry: Duration,
    /// How long billable queries are still served while the meter cannot be reached.
    pub grace: Duration,
    /// Records per request.
    pub batch: usize,
}

impl BillingConfig {
    pub fn new(endpoint: &str, api_key: &str) -> BillingConfig {
        let interval = Duration::from_secs(600);
        BillingConfig {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            api_key: Secret::new(api_key),
            interval,
            retry: Duration::from_secs(30),
            grace: interval * 10,
            batch: 500,
        }
    }
}

/// The `apiStatus` values of `/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApiStatus {
    Valid,
    Invalid,
    CouldNotConnect,
    OutOfQuota,
    BillingEndpointBusy,
}

#[derive(Debug)]
struct State {
    status: ApiStatus,
    message: String,
    /// Since when the meter has not answered 200 (start-up counts); `None` while it answers.
    failing_since: Option<Instant>,
    /// When the meter was last asked.
    last_contact: Option<Instant>,
}

/// Why billable queries are refused now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: ApiStatus,
    /// Seconds to wait before trying again.
    pub retry_after: u64,
    pub message: String,
}

#[derive(Debug)]
pub struct Billing {
    config: BillingConfig,
    store: Arc<dyn Store>,
    agent: ureq::Agent,
    state: Mutex<State>,
    /// Serialises sends, so the heartbeat and a final flush never send the same batch twice at once.
    sending: tokio::sync::Mutex<()>,
    /// One status check at a time.
    checking: tokio::sync::Mutex<()>,
    /// Records the journal could not take (its write failed): written again before each flush,
    /// so work already done is neither answered with an error nor left unbilled.
    pending: Mutex<Vec<UsageRecord>>,
}

/// What one meter call said.
#[derive(Debug)]
enum Answer {
    Ok(Vec<String>),
    Refused(ApiStatus, String),
}

impl Billing {
    pub fn new(config: BillingConfig, store: Arc<dyn Store>) -> Billing {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(20)))
            .http_status_as_error(false)
            .build()
            .into();
        Billing {
            config,
            store,
            agent,
            state: Mutex::new(State {
                status: ApiStatus::CouldNotConnect,
                message: "The billing endpoint has not been contacted yet.".into(),
                failing_since: Some(Instant::now()),
                last_contact: None,
            }),
            sending: tokio::sync::Mutex::new(()),
            checking: tokio::sync::Mutex::new(()),
            pending: Mutex::new(Vec::new()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `apiStatus` and `apiStatusMessage`.
    pub fn status(&self) -> (ApiStatus, String) {
        let s = self.state();
        (s.status, s.message.clone())
    }

    /// Whether billable queries are served. An invalid key or a used-up quota refuses them at
    /// once; a meter that cannot be reached (or is busy) only after the grace period, counted
    /// from when it stopped answering (or from start-up, until it first answers).
    pub fn admits(&self) -> Result<(), Refusal> {
        let s = self.state();
        let retry_after = self.config.retry.as_secs().max(1);
        match s.status {
            ApiStatus::Valid => Ok(()),
            ApiStatus::Invalid | ApiStatus::OutOfQuota => {
                Err(Refusal { status: s.status, retry_after, message: s.message.clone() })
            }
            ApiStatus::CouldNotConnect | ApiStatus::BillingEndpointBusy => {
                let since = s.failing_since.map(|t| t.elapsed()).unwrap_or_default();
                if since <= self.config.grace {
                    return Ok(());
                }
                Err(Refusal {
                    status: s.status,
                    retry_after,
                    message: format!(
                        "Billing endpoint {} has not accepted usage for {} s (grace {} s): {} Queries are served again \
                         as soon as it answers.",
                        self.config.endpoint,
                        since.as_secs(),
                        self.config.grace.as_secs(),
                        s.message
                    ),
                })
            }
        }
    }

    /// A new record of one billable transaction of `operation`, with the id `id` (the request
    /// id of the billed call, which its answer carries as `apim-request-id`).
    pub fn usage(id: String, operation: &str) -> UsageRecord {
        UsageRecord { id, time_ms: now_ms(), meter: METER.into(), quantity: 1, operation: operation.into() }
    }

    /// Journals one transaction (one that no write of its request journalled); called before the
    /// billed response is sent, and durable when it returns `true`. When the journal cannot take
    /// the record, it is kept in memory and written again before the next flush (`false`): the
    /// answer to work already done is still sent.
    pub fn record(&self, record: UsageRecord) -> bool {
        match self.store.record_usage(&record) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, operation = %record.operation, "the usage journal did not take a record; it is kept in memory and written again before the next send");
                self.pending.lock().unwrap_or_else(|p| p.into_inner()).push(record);
                false
            }
        }
    }

    /// Writes the records kept in memory to the journal; returns how many are still waiting.
    pub fn journal_pending(&self) -> usize {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let mut left = Vec::new();
        for record in pending.drain(..) {
            if let Err(e) = self.store.record_usage(&record) {
                tracing::error!(error = %e, id = %record.id, "the usage journal still does not take a record");
                left.push(record);
            }
        }
        *pending = left;
        pending.len()
    }

    /// Records not yet acknowledged by the meter: in the journal and waiting in memory.
    pub fn backlog(&self) -> u64 {
        let waiting = self.pending.lock().unwrap_or_else(|p| p.into_inner()).len() as u64;
        self.store.usage_backlog().unwrap_or(0) + waiting
    }

    /// [`Billing::backlog`] from async code: the journal's store blocks, so it runs off the
    /// runtime's workers.
    pub async fn backlog_async(self: &Arc<Self>) -> u64 {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.backlog()).await.unwrap_or(0)
    }

    fn request(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> Answer {
        let url = format!("{}{path}", self.config.endpoint);
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Ocp-Apim-Subscription-Key", self.config.api_key.expose());
        let bytes = match body {
            Some(b) => {
                builder = builder.header("Content-Type", "application/json");
                serde_json::to_vec(&b).unwrap_or_default()
            }
            None => vec![],
        };
        let Ok(request) = builder.body(bytes) else {
            return Answer::Refused(ApiStatus::CouldNotConnect, format!("Invalid billing URL {url}."));
        };
        let response = match self.agent.run(request) {
            Ok(r) => r,
            Err(e) => return Answer::Refused(ApiStatus::CouldNotConnect, format!("Could not connect to {url}: {e}.")),
        };
        let status = response.status().as_u16();
        let text = response.into_body().read_to_string().unwrap_or_default();
        match status {
            200 => {
                #[derive(Deserialize)]
                struct Accepted {
                    #[serde(default)]
                    accepted: Vec<String>,
                }
                let accepted = serde_json::from_str::<Accepted>(&text).map(|a| a.accepted).unwrap_or_default();
                Answer::Ok(accepted)
            }
            401 | 403 => {
                Answer::Refused(ApiStatus::Invalid, format!("The billing endpoint refused the ApiKey ({status})."))
            }
            402 => Answer::Refused(ApiStatus::OutOfQuota, "The billing endpoint says the quota is used up.".into()),
            429 | 503 => {
                Answer::Refused(ApiStatus::BillingEndpointBusy, format!("The billing endpoint is busy ({status})."))
            }
            _ => Answer::Refused(ApiStatus::CouldNotConnect, format!("The billing endpoint answered {status}: {text}")),
        }
    }

    fn note(&self, answer: &Answer) {
        let mut s = self.state();
        s.last_contact = Some(Instant::now());
        match answer {
            Answer::Ok(_) => {
                s.status = ApiStatus::Valid;
                s.message = "The ApiKey is valid and usage is being reported.".into();
                s.failing_since = None;
            }
            Answer::Refused(status, message) => {
                s.status = *status;
                s.message = message.clone();
                s.failing_since.get_or_insert_with(Instant::now);
            }
        }
    }

    /// The status, asked of the meter unless it was asked in the last 5 s or a check is under
    /// way (so a flood of `/status` probes makes at most one call at a time).
    pub async fn status_now(self: &Arc<Self>) -> (ApiStatus, String) {
        let fresh = self.state().last_contact.is_some_and(|t| t.elapsed() < Duration::from_secs(5));
        if fresh {
            return self.status();
        }
        match self.checking.try_lock() {
            Ok(_one) => self.check().await,
            Err(_) => self.status(),
        }
    }

    /// Asks the meter whether the key is valid (start-up and `/status`).
    pub async fn check(self: &Arc<Self>) -> (ApiStatus, String) {
        let me = self.clone();
        let answer = tokio::task::spawn_blocking(move || me.request("GET", "/v1/status", None))
            .await
            .unwrap_or_else(|e| Answer::Refused(ApiStatus::CouldNotConnect, e.to_string()));
        self.note(&answer);
        self.status()
    }

    /// Sends every unsent record, batch by batch; returns how many the meter acknowledged, or the
    /// refusal that stopped it.
    pub async fn flush(self: &Arc<Self>) -> Result<usize, String> {
        let _one_at_a_time = self.sending.lock().await;
        let mut sent = 0;
        loop {
            let me = self.clone();
            let step = tokio::task::spawn_blocking(move || -> Result<Option<usize>, String> {
                me.journal_pending();
                let records = me.store.unsent_usage(me.config.batch).map_err(|e| e.to_string())?;
                if records.is_empty() {
                    return Ok(None);
                }
                let body = json!({ "records": records.iter().map(|r| json!({
                    "id": r.id, "time": iso8601(r.time_ms), "meter": r.meter, "quantity": r.quantity,
                    "operation": r.operation,
                })).collect::<Vec<_>>() });
                let answer = me.request("POST", "/v1/usage", Some(body));
                me.note(&answer);
                match answer {
                    Answer::Ok(accepted) => {
                        let wanted: std::collections::HashSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
                        let acked: Vec<String> =
                            accepted.into_iter().filter(|id| wanted.contains(id.as_str())).collect();
                        me.store.mark_usage_sent(&acked, now_ms()).map_err(|e| e.to_string())?;
                        if acked.is_empty() {
                            return Err("the billing endpoint acknowledged none of the records sent".into());
                        }
                        Ok(Some(acked.len()))
                    }
                    Answer::Refused(_, message) => Err(message),
                }
            })
            .await
            .map_err(|e| e.to_string())??;
            match step {
                None => return Ok(sent),
                Some(n) => sent += n,
            }
        }
    }

    /// The heartbeat: a check at start, then a flush every interval (every retry period while
    /// the meter does not answer).
    pub fn spawn_heartbeat(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let (status, message) = me.check().await;
            tracing::info!(endpoint = %me.config.endpoint, ?status, %message, "billing endpoint checked");
            loop {
                // With nothing to send, the meter is still asked, so its state stays current.
                let sent = if me.backlog_async().await == 0 {
                    match me.check().await {
                        (ApiStatus::Valid, _) => Ok(0),
                        (_, message) => Err(message),
                    }
                } else {
                    me.flush().await
                };
                let wait = match sent {
                    Ok(n) => {
                        if n > 0 {
                            tracing::info!(records = n, "usage sent");
                        }
                        me.config.interval
                    }
                    Err(message) => {
                        let backlog = me.backlog_async().await;
                        tracing::warn!(%message, backlog, "the billing endpoint did not accept usage; retrying");
                        me.config.retry
                    }
                };
                tokio::time::sleep(wait).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    /// A real journal write that fails (its table is gone): the record waits in memory, counts
    /// in the backlog, and is journalled once the journal takes writes again.
    #[test]
    fn a_record_the_journal_refuses_waits_and_is_written_later() {
        let dir = std::env::temp_dir().join(format!("face-billing-pending-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_dir(&dir).unwrap());
        let billing = Billing::new(BillingConfig::new("http://127.0.0.1:9", "k"), store.clone());
        assert!(billing.record(Billing::usage(uuid::Uuid::new_v4().to_string(), "POST /face/v1.0/detect")));
        let sql = rusqlite::Connection::open(dir.join("face.db")).unwrap();
        sql.execute_batch("ALTER TABLE usage RENAME TO usage_away").unwrap();
        assert!(
            !billing.record(Billing::usage(uuid::Uuid::new_v4().to_string(), "POST /face/v1.0/detect")),
            "the journal refused it"
        );
        assert_eq!(billing.journal_pending(), 1, "still refused");
        sql.execute_batch("ALTER TABLE usage_away RENAME TO usage").unwrap();
        assert_eq!(billing.backlog(), 2, "one journalled, one waiting");
        assert_eq!(billing.journal_pending(), 0);
        assert_eq!(store.usage_backlog().unwrap(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

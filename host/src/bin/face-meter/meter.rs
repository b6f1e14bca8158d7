//! face-meter: the reference billing endpoint (the protocol is in `billing`). It validates keys,
//! stores each usage record once (by id) in SQLite, and reports totals per key and meter.
//!
//! - `GET /v1/status`: 200 `{"status": "Valid"}`, 401 for an unknown key, 402 past the quota.
//! - `POST /v1/usage`: records `{"records": [...]}`; 200 `{"accepted": [ids]}`.
//! - `GET /v1/totals`: the calling key's own `{"totals": [{"keyId", "meter", "quantity",
//!   "records"}], "duplicatesReceived"}`, 401 without an accepted key; keys are shown as the first
//!   12 hex digits of their SHA-256.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rusqlite::{Connection, params};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone)]
pub struct MeterConfig {
    pub address: SocketAddr,
    pub data_dir: PathBuf,
    /// Keys accepted.
    pub keys: HashSet<String>,
    /// Most transactions per key before 402 OutOfQuota; none by default.
    pub quota: Option<u64>,
}

#[derive(Debug)]
struct Meter {
    conn: Mutex<Connection>,
    config: MeterConfig,
}

fn key_id(key: &str) -> String {
    Sha256::digest(key.as_bytes()).iter().take(6).map(|b| format!("{b:02x}")).collect()
}

impl Meter {
    fn open(config: MeterConfig) -> Result<Meter> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create {} (DataDirectory)", config.data_dir.display()))?;
        let conn = Connection::open(config.data_dir.join("meter.db"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS usage (id TEXT PRIMARY KEY, key_id TEXT NOT NULL, meter TEXT NOT NULL,
                quantity INTEGER NOT NULL, time TEXT, operation TEXT);
             CREATE INDEX IF NOT EXISTS usage_by_key ON usage (key_id);
             CREATE TABLE IF NOT EXISTS stats (name TEXT PRIMARY KEY, value INTEGER NOT NULL);",
        )?;
        Ok(Meter { conn: Mutex::new(conn), config })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The caller's key id, or the refusal to send. Usage is always recorded for a valid key
    /// (it was served already); `check_quota` refuses the key in `/v1/status` past its quota.
    #[expect(clippy::result_large_err, reason = "the refusal is the HTTP answer itself, made once a refused call")]
    fn authorise(&self, headers: &HeaderMap, check_quota: bool) -> Result<String, Response> {
        let key = headers.get("ocp-apim-subscription-key").and_then(|v| v.to_str().ok()).unwrap_or("");
        if !self.config.keys.contains(key) {
            return Err((StatusCode::UNAUTHORIZED, axum::Json(json!({ "status": "Invalid" }))).into_response());
        }
        let id = key_id(key);
        if let Some(quota) = self.config.quota.filter(|_| check_quota) {
            let used: i64 = self
                .conn()
                .query_row("SELECT COALESCE(SUM(quantity), 0) FROM usage WHERE key_id = ?1", params![id], |r| r.get(0))
                .unwrap_or(0);
            if used as u64 >= quota {
                return Err(
                    (StatusCode::PAYMENT_REQUIRED, axum::Json(json!({ "status": "OutOfQuota" }))).into_response()
                );
            }
        }
        Ok(id)
    }
}

#[expect(clippy::result_large_err, reason = "the refusal is the HTTP answer itself, made once a refused call")]
async fn status(State(meter): State<Arc<Meter>>, headers: HeaderMap) -> Response {
    let m = meter.clone();
    let answer = tokio::task::spawn_blocking(move || m.authorise(&headers, true)).await;
    match answer.unwrap_or_else(|e| Err((StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response())) {
        Ok(_) => axum::Json(json!({ "status": "Valid" })).into_response(),
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
struct Record {
    id: String,
    #[serde(default)]
    time: Option<String>,
    meter: String,
    quantity: u32,
    #[serde(default)]
    operation: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Usage {
    records: Vec<Record>,
}

async fn usage(State(meter): State<Arc<Meter>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let key = match meter.authorise(&headers, false) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let usage: Usage = match serde_json::from_slice(&body) {
        Ok(u) => u,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("invalid usage body: {e}")).into_response(),
    };
    let result = tokio::task::spawn_blocking(move || -> rusqlite::Result<Vec<String>> {
        let mut conn = meter.conn();
        let tx = conn.transaction()?;
        let mut accepted = Vec::with_capacity(usage.records.len());
        let mut duplicates = 0i64;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO usage (id, key_id, meter, quantity, time, operation) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for r in &usage.records {
                let n = insert.execute(params![r.id, key, r.meter, r.quantity, r.time, r.operation])?;
                duplicates += i64::from(n == 0);
                accepted.push(r.id.clone());
            }
        }
        // Resends of records already stored, per key ('duplicates:<key id>').
        tx.execute(
            "INSERT INTO stats VALUES ('duplicates:' || ?1, ?2)
             ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            params![key, duplicates],
        )?;
        tx.commit()?;
        Ok(accepted)
    })
    .await;
    match result {
        Ok(Ok(accepted)) => axum::Json(json!({ "accepted": accepted })).into_response(),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("the meter's database failed: {e}")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The calling key's totals only: a caller without an accepted key learns nothing.
async fn totals(State(meter): State<Arc<Meter>>, headers: HeaderMap) -> Response {
    let key = match meter.authorise(&headers, false) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let conn = meter.conn();
    let rows = conn
        .prepare(
            "SELECT key_id, meter, SUM(quantity), COUNT(*) FROM usage WHERE key_id = ?1
             GROUP BY key_id, meter ORDER BY meter",
        )
        .and_then(|mut s| {
            s.query_map(params![key], |r| {
                Ok(json!({ "keyId": r.get::<_, String>(0)?, "meter": r.get::<_, String>(1)?,
                    "quantity": r.get::<_, i64>(2)?, "records": r.get::<_, i64>(3)? }))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        });
    let duplicates: i64 = conn
        .query_row("SELECT value FROM stats WHERE name = 'duplicates:' || ?1", params![key], |r| r.get(0))
        .unwrap_or(0);
    match rows {
        Ok(rows) => axum::Json(json!({ "totals": rows, "duplicatesReceived": duplicates })).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[derive(Debug, serde::Deserialize)]
struct Page {
    after: Option<String>,
    limit: Option<u32>,
}

/// The calling key's records, by id (`?after=<id>&limit=N`, at most 10000 a page): the audit
/// trail a usage record's id (the request id of the billed call) is looked up in.
async fn records(
    State(meter): State<Arc<Meter>>,
    headers: HeaderMap,
    axum::extract::Query(page): axum::extract::Query<Page>,
) -> Response {
    let key = match meter.authorise(&headers, false) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let limit = page.limit.unwrap_or(10_000).clamp(1, 10_000);
    let conn = meter.conn();
    let rows = conn
        .prepare("SELECT id, meter, quantity, operation FROM usage WHERE key_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3")
        .and_then(|mut s| {
            s.query_map(params![key, page.after.unwrap_or_default(), limit], |r| {
                Ok(json!({ "id": r.get::<_, String>(0)?, "meter": r.get::<_, String>(1)?,
                    "quantity": r.get::<_, i64>(2)?, "operation": r.get::<_, Option<String>>(3)? }))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        });
    match rows {
        Ok(rows) => axum::Json(json!({ "records": rows })).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Serves until SIGTERM or Ctrl-C.
pub async fn run(config: MeterConfig) -> Result<()> {
    let address = config.address;
    let meter = Arc::new(Meter::open(config)?);
    let app = Router::new()
        .route("/v1/status", get(status))
        .route("/v1/usage", post(usage))
        .route("/v1/totals", get(totals))
        .route("/v1/records", get(records))
        .with_state(meter);
    let listener =
        tokio::net::TcpListener::bind(address).await.with_context(|| format!("cannot listen on {address}"))?;
    tracing::info!(address = %listener.local_addr()?, "face-meter listening");
    axum::serve(listener, app).with_graceful_shutdown(face_host::server::shutdown_signal()).await?;
    Ok(())
}

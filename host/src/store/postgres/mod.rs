//! The PostgreSQL implementation of [`Store`] (`Storage:Scenario=Postgres`), for several hosts on
//! one face database: a small pool of connections (the synchronous `postgres` client: the store's
//! calls already run off the async runtime, one blocking call each), every write one
//! transaction, reads in one read-only snapshot each; migrations from `migrations/*.sql` counted
//! in `face_schema`, applied under an advisory lock so that hosts starting together migrate once.
//!
//! Writes that several hosts may race on take the collection's row lock first (`FOR UPDATE`): a
//! quota is checked and the face added with no other host's add between them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use ::postgres::fallible_iterator::FallibleIterator;
use ::postgres::types::{ToSql, Type};
use ::postgres::{Client, IsolationLevel, Row, Transaction};

mod collections;
mod events;
mod face_ids;
mod leases;
mod snapshots;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
pub mod tls;
pub use tls::check_connection_string;
use tls::parse_connection;
mod usage;

use super::*;

impl From<::postgres::Error> for StoreError {
    fn from(e: ::postgres::Error) -> StoreError {
        let unavailable = connection_lost(&e);
        let message = match e.as_db_error() {
            Some(db) => format!("{} ({})", db.message(), db.code().code()),
            None => e.to_string(),
        };
        if unavailable { StoreError::Unavailable(message) } else { StoreError::Internal(message) }
    }
}

/// Whether `e` says the database went away (it shut down or restarted, the connection was cut,
/// it refuses connections while it starts), rather than that a statement failed.
fn connection_lost(e: &::postgres::Error) -> bool {
    use ::postgres::error::SqlState;
    if e.is_closed() {
        return true;
    }
    if let Some(db) = e.as_db_error() {
        // The server going away (57P01-03), a connection error (class 08: PgBouncer's "server
        // conn crashed?" or "cannot connect to server" while the database restarts), or any
        // error that ends the session (FATAL).
        return [SqlState::ADMIN_SHUTDOWN, SqlState::CRASH_SHUTDOWN, SqlState::CANNOT_CONNECT_NOW].contains(db.code())
            || db.code().code().starts_with("08")
            || db.severity() == "FATAL";
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            return matches!(
                io.kind(),
                K::ConnectionRefused
                    | K::ConnectionReset
                    | K::ConnectionAborted
                    | K::NotConnected
                    | K::BrokenPipe
                    | K::TimedOut
                    | K::UnexpectedEof
                    | K::HostUnreachable
                    | K::NetworkUnreachable
                    | K::AddrNotAvailable
            );
        }
        source = s.source();
    }
    false
}

/// Migrations, applied in order; `face_schema.version` records how many ran.
const MIGRATIONS: &[&str] = &[include_str!("migrations/001_schema.sql"), include_str!("migrations/002_leases.sql")];

/// The advisory lock key under which hosts migrate one at a time ("face" in ASCII).
const MIGRATION_LOCK: i64 = 0x6661_6365;

/// Idle connections kept; more are opened when calls overlap, and closed after.
const IDLE_CONNECTIONS: usize = 8;

/// Connections a host opens at most for its calls; more calls wait for one (at most
/// [`POOL_WAIT`]). Lease renewals take theirs from the pool too; the event listener has one of
/// its own besides.
const MAX_CONNECTIONS: usize = 32;

/// The longest a call waits for a connection before it fails.
const POOL_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Default)]
struct Pool {
    idle: Vec<Client>,
    /// Connections open for calls, idle or in use.
    open: usize,
}

/// The PostgreSQL store: its pool of connections, and what a host needs besides (leases, the
/// event listener's own connection).
pub struct PostgresStore {
    db: Arc<Connections>,
    /// Where the event listener connects: `Storage:EventsConnectionString` where a pooler in
    /// transaction mode stands before the database (it carries no `LISTEN`), else the store's own.
    events: (::postgres::Config, tls::Tls),
    /// Who takes this store's leases: the host's name and process id.
    owner: String,
    leases: leases::LeaseTimes,
}

impl std::ops::Deref for PostgresStore {
    type Target = Connections;

    fn deref(&self) -> &Connections {
        &self.db
    }
}

/// The pool of connections to one database, shared with the threads that renew leases.
pub struct Connections {
    config: ::postgres::Config,
    tls: tls::Tls,
    pool: Mutex<Pool>,
    freed: Condvar,
    stats: Stats,
}

/// Counters for `/metrics` ([`PoolStats`]).
#[derive(Default)]
struct Stats {
    waiting: AtomicU64,
    waits: AtomicU64,
    wait_micros: AtomicU64,
    opened: AtomicU64,
    lost: AtomicU64,
    lease_waits: AtomicU64,
    lease_wait_micros: AtomicU64,
}

impl Drop for Connections {
    fn drop(&mut self) {
        // A blocking client may not be dropped on an async worker: the idle ones go on a thread.
        let idle = std::mem::take(&mut self.pool.lock().unwrap_or_else(|p| p.into_inner()).idle);
        if !idle.is_empty() {
            let _ = std::thread::spawn(move || drop(idle)).join();
        }
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").field("db", &self.db).field("owner", &self.owner).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections")
            .field("hosts", &self.config.get_hosts())
            .field("ports", &self.config.get_ports())
            .field("dbname", &self.config.get_dbname())
            .finish_non_exhaustive()
    }
}

/// A write's transaction, counting the rows its statements change.
pub(super) struct Tx<'a> {
    tx: Transaction<'a>,
    changed: u64,
}

type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

/// What a statement's parameters are sent as, tried in this order: each Rust value the store
/// binds is accepted by exactly one of them (strings as text, `i64` as bigint, bytes as bytea,
/// lists of ids as text[], a bulk load's embeddings as bytea[]), the types the schema's columns
/// have.
const PARAM_TYPES: [Type; 10] = [
    Type::INT8,
    Type::INT4,
    Type::BOOL,
    Type::FLOAT8,
    Type::FLOAT4,
    Type::BYTEA,
    Type::TEXT,
    Type::TEXT_ARRAY,
    Type::INT8_ARRAY,
    Type::BYTEA_ARRAY,
];

/// `params` with the type each is sent as. Every statement goes unnamed, parsed and run in one
/// round trip with its parameters' types given (`*_typed`), never as a named prepared statement:
/// a pooler in transaction mode (PgBouncer before 1.21) hands each transaction any server
/// connection and carries no prepared statements between them.
fn typed<'p>(params: Params<'p>) -> StoreResult<Vec<(&'p (dyn ToSql + Sync), Type)>> {
    let mut scratch = bytes::BytesMut::new();
    params
        .iter()
        .map(|&p| {
            let ty = PARAM_TYPES.iter().find(|ty| {
                scratch.clear();
                p.to_sql_checked(ty, &mut scratch).is_ok()
            });
            ty.map(|ty| (p, ty.clone())).ok_or_else(|| {
                StoreError::Internal(format!("a statement parameter of a type the store does not send: {p:?}"))
            })
        })
        .collect()
}

impl Tx<'_> {
    pub(super) fn execute(&mut self, sql: &str, params: Params<'_>) -> StoreResult<u64> {
        let n = self.tx.execute_typed(sql, &typed(params)?)?;
        self.changed += n;
        Ok(n)
    }

    pub(super) fn query_opt(&mut self, sql: &str, params: Params<'_>) -> StoreResult<Option<Row>> {
        Ok(self.tx.query_typed_opt(sql, &typed(params)?)?)
    }

    /// The rows a statement returns (`RETURNING`); they count as changed.
    pub(super) fn query(&mut self, sql: &str, params: Params<'_>) -> StoreResult<Vec<Row>> {
        let rows = self.tx.query_typed(sql, &typed(params)?)?;
        self.changed += rows.len() as u64;
        Ok(rows)
    }

    /// Sends `event` to every host listening ([`PostgresStore::listen`]) when this transaction
    /// commits; nothing if it rolls back.
    pub(super) fn notify(&mut self, event: &Event) -> StoreResult<()> {
        let payload = serde_json::to_string(event).map_err(|e| StoreError::Internal(e.to_string()))?;
        self.execute("SELECT pg_notify($1, $2)", &[&EVENTS, &payload])?;
        Ok(())
    }
}

/// Runs its closure when dropped.
struct Defer<F: FnMut()>(F);

impl<F: FnMut()> Drop for Defer<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

impl Connections {
    /// The pool's figures now ([`CollectionStore::pool_stats`]).
    pub(super) fn stats(&self) -> PoolStats {
        let (open, idle) = {
            let pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
            (pool.open as u64, pool.idle.len() as u64)
        };
        let s = &self.stats;
        let seconds = |micros: &AtomicU64| micros.load(Ordering::Relaxed) as f64 / 1e6;
        PoolStats {
            open,
            in_use: open.saturating_sub(idle),
            waiting: s.waiting.load(Ordering::Relaxed),
            waits: s.waits.load(Ordering::Relaxed),
            wait_seconds: seconds(&s.wait_micros),
            opened: s.opened.load(Ordering::Relaxed),
            lost: s.lost.load(Ordering::Relaxed),
            lease_waits: s.lease_waits.load(Ordering::Relaxed),
            lease_wait_seconds: seconds(&s.lease_wait_micros),
        }
    }
}

/// Starts a read's transaction: read-only, one snapshot of the database.
fn begin_read(client: &mut Client) -> Result<Transaction<'_>, ::postgres::Error> {
    client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start()
}

/// A read's transaction (read-only, one snapshot), its statements unnamed like [`Tx`]'s.
pub(super) struct Rx<'a> {
    tx: Transaction<'a>,
}

impl Rx<'_> {
    pub(super) fn query(&mut self, sql: &str, params: Params<'_>) -> StoreResult<Vec<Row>> {
        Ok(self.tx.query_typed(sql, &typed(params)?)?)
    }

    pub(super) fn query_opt(&mut self, sql: &str, params: Params<'_>) -> StoreResult<Option<Row>> {
        Ok(self.tx.query_typed_opt(sql, &typed(params)?)?)
    }

    pub(super) fn query_one(&mut self, sql: &str, params: Params<'_>) -> StoreResult<Row> {
        Ok(self.tx.query_typed_one(sql, &typed(params)?)?)
    }

    /// Each row of the statement handed to `f` as it arrives, without the whole result in memory.
    pub(super) fn for_each(
        &mut self,
        sql: &str,
        params: Params<'_>,
        mut f: impl FnMut(&Row) -> StoreResult<()>,
    ) -> StoreResult<()> {
        let mut rows = self.tx.query_typed_raw(sql, typed(params)?)?;
        while let Some(row) = rows.next()? {
            f(&row)?;
        }
        Ok(())
    }
}

/// The channel of [`Event`]s.
const EVENTS: &str = "face_events";

impl PostgresStore {
    /// Connects to the database `url` names (a libpq URL or key=value string, as
    /// `Storage:ConnectionString` gives it) and applies pending migrations.
    pub fn connect(url: &str) -> StoreResult<PostgresStore> {
        Self::connect_with(url, None)
    }

    /// [`PostgresStore::connect`], with the event listener connecting to `events` (the same
    /// database reached without a pooler) where it is given.
    pub fn connect_with(url: &str, events: Option<&str>) -> StoreResult<PostgresStore> {
        let (config, tls) = parse_connection(url, "Storage:ConnectionString")?;
        let events = match events {
            Some(url) => parse_connection(url, "Storage:EventsConnectionString")?,
            None => (config.clone(), tls.clone()),
        };
        let db = Connections {
            config,
            tls,
            pool: Mutex::new(Pool::default()),
            freed: Condvar::new(),
            stats: Stats::default(),
        };
        db.migrate()?;
        Ok(PostgresStore {
            db: Arc::new(db),
            events,
            owner: leases::owner_name(),
            leases: leases::LeaseTimes::default(),
        })
    }
}

impl Connections {
    fn open(&self) -> StoreResult<Client> {
        self.stats.opened.fetch_add(1, Ordering::Relaxed);
        self.tls.connect(&self.config).map_err(|e| {
            // The TLS error is the source's text: say it, not only "error performing TLS handshake".
            let cause = std::error::Error::source(&e).map(|s| format!(": {s}")).unwrap_or_default();
            let message = format!(
                "cannot connect to PostgreSQL at {:?} (Storage:ConnectionString, sslmode {:?}): {e}{cause}",
                self.config.get_hosts(),
                self.tls.mode
            );
            // Refused or starting up: the database is away for now. A refused password or
            // certificate is not something a retry mends.
            if connection_lost(&e) { StoreError::Unavailable(message) } else { StoreError::Internal(message) }
        })
    }

    fn migrate(&self) -> StoreResult<()> {
        self.with(|client| {
            let mut tx = Tx { tx: client.transaction()?, changed: 0 };
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
            tx.tx.batch_execute("CREATE TABLE IF NOT EXISTS face_schema (version INTEGER NOT NULL)")?;
            let version: i32 = match tx.query_opt("SELECT version FROM face_schema", &[])? {
                Some(row) => row.get(0),
                None => {
                    tx.execute("INSERT INTO face_schema (version) VALUES (0)", &[])?;
                    0
                }
            };
            if version as usize > MIGRATIONS.len() {
                return Err(StoreError::Internal(format!(
                    "the database was written by a newer version of this service (schema {version}, this one \
                     knows {}); run the newer version or restore a backup",
                    MIGRATIONS.len()
                )));
            }
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
                tx.tx.batch_execute(sql)?;
                tx.execute("UPDATE face_schema SET version = $1", &[&(i as i32 + 1)])?;
            }
            tx.tx.commit()?;
            Ok(())
        })
    }

    /// Runs `f` on a pooled connection (waiting for one while [`MAX_CONNECTIONS`] are in use);
    /// one that failed is not kept.
    pub(super) fn with<T>(&self, f: impl FnOnce(&mut Client) -> StoreResult<T>) -> StoreResult<T> {
        // Given back when dropped, even if `f` panics: the pool never loses a slot.
        struct Lease<'a>(&'a Connections, Option<Client>);
        impl Drop for Lease<'_> {
            fn drop(&mut self) {
                self.0.give_back(self.1.take());
            }
        }
        let mut lease = Lease(self, self.take()?);
        if lease.1.is_none() {
            lease.1 = Some(self.open()?);
        }
        let Some(client) = lease.1.as_mut() else { return Err(StoreError::Internal("no connection".into())) };
        f(client)
    }

    /// An idle connection, or `None` when a new one may be opened (counted as open already).
    fn take(&self) -> StoreResult<Option<Client>> {
        let deadline = std::time::Instant::now() + POOL_WAIT;
        // When this call began to wait for a connection, if it had to: counted when it ends.
        let waited: std::cell::Cell<Option<std::time::Instant>> = std::cell::Cell::new(None);
        let _counted = Defer(|| {
            if let Some(since) = waited.get() {
                self.stats.waiting.fetch_sub(1, Ordering::Relaxed);
                self.stats.waits.fetch_add(1, Ordering::Relaxed);
                self.stats.wait_micros.fetch_add(since.elapsed().as_micros() as u64, Ordering::Relaxed);
            }
        });
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            while let Some(c) = pool.idle.pop() {
                if !c.is_closed() {
                    return Ok(Some(c));
                }
                pool.open -= 1;
            }
            if pool.open < MAX_CONNECTIONS {
                pool.open += 1;
                return Ok(None);
            }
            if waited.get().is_none() {
                self.stats.waiting.fetch_add(1, Ordering::Relaxed);
                waited.set(Some(std::time::Instant::now()));
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(StoreError::Internal(format!(
                    "all {MAX_CONNECTIONS} database connections stayed busy for {} s; the database is too slow \
                     for the load",
                    POOL_WAIT.as_secs()
                )));
            }
            pool = self.freed.wait_timeout(pool, left).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Returns a connection taken with [`PostgresStore::take`] (`None`: it could not be opened);
    /// a closed one, or one past the idle ones kept, is closed.
    fn give_back(&self, client: Option<Client>) {
        let surplus = {
            let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
            let surplus = match client {
                Some(c) if !c.is_closed() && pool.idle.len() < IDLE_CONNECTIONS => {
                    pool.idle.push(c);
                    None
                }
                other => {
                    pool.open -= 1;
                    other
                }
            };
            self.freed.notify_one();
            surplus
        };
        drop(surplus);
    }

    /// Runs a write in one transaction. When it changes rows and is made for a billable request
    /// whose usage no write has journalled yet, the usage record is written in the same
    /// transaction: the effect and its bill commit together.
    pub(super) fn write<T>(&self, f: impl FnOnce(&mut Tx<'_>) -> StoreResult<T>) -> StoreResult<T> {
        self.transaction(Client::transaction, |tx| {
            let mut tx = Tx { tx, changed: 0 };
            if let Some((key, token)) = crate::store::fence() {
                Connections::check_fence(&mut tx, &key, &token)?;
            }
            let out = f(&mut tx)?;
            let pending = if tx.changed > 0 { pending_usage() } else { None };
            let Some(pending) = pending else {
                tx.tx.commit()?;
                return Ok(out);
            };
            let mut record = pending.lock();
            if let Some(r) = record.as_ref() {
                usage::insert(&mut tx, r)?;
            }
            tx.tx.commit()?;
            record.take();
            Ok(out)
        })
    }

    /// Runs a read in one read-only transaction: one consistent snapshot of the database.
    pub(super) fn read<T>(&self, f: impl FnOnce(&mut Rx<'_>) -> StoreResult<T>) -> StoreResult<T> {
        self.transaction(begin_read, |tx| {
            let mut rx = Rx { tx };
            let out = f(&mut rx)?;
            rx.tx.commit()?;
            Ok(out)
        })
    }

    /// The rows of one read-only statement, sent on its own (no BEGIN and COMMIT around it: one
    /// statement sees one snapshot by itself), so a lookup on a request's path costs one round
    /// trip, not three. A read is safe to send again: a connection found broken (the database
    /// restarted, a pooler closed it) is dropped and another tried.
    pub(super) fn read_one(&self, sql: &str, params: Params<'_>) -> StoreResult<Vec<Row>> {
        let typed = typed(params)?;
        self.on_live_connection(|client| client.query_typed(sql, &typed).map(Ok))
    }

    /// Runs `f` in the transaction `begin` starts on a pooled connection. A connection that broke
    /// while idle (the database restarted, a pooler or a firewall closed it) fails at its BEGIN,
    /// before anything ran: it is dropped and another (idle, or new) tried, so the first call after
    /// a restart is not failed for it.
    fn transaction<T>(
        &self,
        begin: impl for<'c> Fn(&'c mut Client) -> Result<Transaction<'c>, ::postgres::Error>,
        f: impl FnOnce(Transaction<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut f = Some(f);
        self.on_live_connection(|client| {
            let tx = begin(client)?;
            Ok(match f.take() {
                Some(f) => f(tx),
                None => Err(StoreError::Internal("a transaction's work ran twice".into())),
            })
        })
    }

    /// Runs `first` on a pooled connection. Its outer error is the statement that may be sent
    /// again: when it says the connection was found broken, that connection is dropped and
    /// `first` runs on another, at most [`IDLE_CONNECTIONS`] times (the idle ones may all be
    /// broken after a restart); its inner result is the call's.
    fn on_live_connection<T>(
        &self,
        mut first: impl FnMut(&mut Client) -> Result<StoreResult<T>, ::postgres::Error>,
    ) -> StoreResult<T> {
        let mut tries = 0;
        loop {
            tries += 1;
            let done = self.with(|client| match first(client) {
                Ok(out) => out.map(Some),
                Err(e) if connection_lost(&e) && tries <= IDLE_CONNECTIONS => {
                    self.stats.lost.fetch_add(1, Ordering::Relaxed);
                    Ok(None)
                }
                Err(e) => Err(e.into()),
            })?;
            if let Some(out) = done {
                return Ok(out);
            }
        }
    }
}

/// Locks the collection's row until the transaction ends; `false` when there is none.
pub(super) fn lock_collection(tx: &mut Tx<'_>, kind: Kind, cid: &str) -> StoreResult<bool> {
    Ok(tx
        .query_opt("SELECT 1 FROM collections WHERE kind = $1 AND id = $2 FOR UPDATE", &[&kind.name(), &cid])?
        .is_some())
}

pub(super) fn person_exists(tx: &mut Tx<'_>, kind: Kind, cid: &str, pid: &str) -> StoreResult<bool> {
    Ok(tx
        .query_opt(
            "SELECT 1 FROM persons WHERE kind = $1 AND cid = $2 AND person_id = $3",
            &[&kind.name(), &cid, &pid],
        )?
        .is_some())
}

pub(super) fn read_collection(row: &::postgres::Row, kind: Kind) -> Collection {
    Collection {
        kind,
        id: row.get(0),
        name: row.get(1),
        user_data: row.get(2),
        recognition_model: row.get(3),
        created_ms: row.get(4),
    }
}

pub(super) fn read_face(row: &::postgres::Row) -> StoredFace {
    let person: String = row.get(1);
    StoredFace {
        face_id: row.get(0),
        person_id: Some(person).filter(|p| !p.is_empty()),
        user_data: row.get(2),
        model: row.get(3),
        embedding: floats(row.get::<_, &[u8]>(4)),
    }
}

//! `/metrics` (prometheus-client, OpenMetrics text): requests by matched route, method and
//! status; latency histograms by route; engine pool occupancy; usage journal backlog; with
//! PostgreSQL, the database connection pool (in use, waiting, waits, reconnects) and lease waits;
//! trained-index loads (count, seconds, bytes).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Histogram bucket bounds, seconds.
const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// Values read at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    pub pool_size: usize,
    pub pool_busy: usize,
    pub pool_discarded: u64,
    pub engine_queue: usize,
    pub usage_backlog: u64,
    pub face_ids: usize,
    pub memory_held: usize,
    /// The database's connection pool (PostgreSQL).
    pub database: Option<crate::store::PoolStats>,
}

type FloatCounter = Counter<f64, std::sync::atomic::AtomicU64>;

/// The database pool's metrics (PostgreSQL; they stay 0 with SQLite, which has no pool).
#[derive(Debug, Default)]
struct DatabaseMetrics {
    open: Gauge,
    in_use: Gauge,
    waiting: Gauge,
    waits: Counter,
    wait_seconds: FloatCounter,
    opened: Counter,
    lost: Counter,
    lease_waits: Counter,
    lease_wait_seconds: FloatCounter,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pool_size: Gauge,
    pool_busy: Gauge,
    discarded: Counter,
    engine_queue: Gauge,
    usage_backlog: Gauge,
    face_ids: Gauge,
    memory_held: Gauge,
    in_flight: Gauge,
    database: DatabaseMetrics,
    index_loads: Counter,
    index_load_seconds: FloatCounter,
    index_load_bytes: Counter,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("face_requests", "HTTP requests by route, method and status", requests.clone());
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(histogram as fn() -> _);
        registry.register("face_request_duration_seconds", "Request latency by route", latency.clone());
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let pool_size = gauge(&mut registry, "face_engine_pool_size", "Warm engine instances");
        let pool_busy = gauge(&mut registry, "face_engine_pool_busy", "Engine instances running a call");
        let discarded = Counter::default();
        registry.register(
            "face_engine_instances_discarded",
            "Instances discarded after a trap, timeout or memory cap",
            discarded.clone(),
        );
        let engine_queue =
            gauge(&mut registry, "face_engine_queue", "Requests holding or waiting for an engine instance");
        let usage_backlog =
            gauge(&mut registry, "face_usage_backlog", "Usage records not yet acknowledged by the billing endpoint");
        let face_ids = gauge(&mut registry, "face_face_ids", "faceIds kept");
        let memory_held = gauge(
            &mut registry,
            "face_memory_held_bytes",
            "Bytes requests hold within Server:MemoryBudgetMiB (bodies, fetched images, decoded pixels)",
        );
        let in_flight = gauge(
            &mut registry,
            "face_requests_in_flight",
            "Face API requests (under /face/v1.0) begun and not yet answered; a shutdown waits for them",
        );
        let database = DatabaseMetrics::default();
        let d = &database;
        for (name, help, metric) in [
            (
                "face_db_connections_open",
                "Database connections open for calls (PostgreSQL)",
                &d.open as &dyn Registered,
            ),
            ("face_db_connections_in_use", "Database connections running a call", &d.in_use),
            ("face_db_waiting", "Calls waiting for a database connection now", &d.waiting),
            ("face_db_waits", "Calls that waited for a database connection", &d.waits),
            ("face_db_wait_seconds", "Seconds calls waited for a database connection", &d.wait_seconds),
            ("face_db_connections_opened", "Database connections opened", &d.opened),
            (
                "face_db_reconnects",
                "Database connections found broken (the database restarted or cut them) and replaced",
                &d.lost,
            ),
            ("face_lease_waits", "Waits for another host's training or snapshot lease", &d.lease_waits),
            ("face_lease_wait_seconds", "Seconds waited for other hosts' leases", &d.lease_wait_seconds),
        ] {
            metric.register_in(&mut registry, name, help);
        }
        let index_loads = Counter::default();
        registry.register(
            "face_index_loads",
            "Trained indexes loaded (at a collection's first search, or another host's training)",
            index_loads.clone(),
        );
        let index_load_seconds = FloatCounter::default();
        registry.register(
            "face_index_load_seconds",
            "Seconds spent loading trained indexes",
            index_load_seconds.clone(),
        );
        let index_load_bytes = Counter::default();
        registry.register("face_index_load_bytes", "Bytes of trained indexes loaded", index_load_bytes.clone());
        Metrics {
            registry,
            requests,
            latency,
            pool_size,
            pool_busy,
            discarded,
            engine_queue,
            usage_backlog,
            face_ids,
            memory_held,
            in_flight,
            database,
            index_loads,
            index_load_seconds,
            index_load_bytes,
        }
    }
}

/// A metric registered under a name of the caller's.
trait Registered {
    fn register_in(&self, registry: &mut Registry, name: &str, help: &str);
}

impl Registered for Gauge {
    fn register_in(&self, registry: &mut Registry, name: &str, help: &str) {
        registry.register(name, help, self.clone());
    }
}

impl Registered for Counter {
    fn register_in(&self, registry: &mut Registry, name: &str, help: &str) {
        registry.register(name, help, self.clone());
    }
}

impl Registered for FloatCounter {
    fn register_in(&self, registry: &mut Registry, name: &str, help: &str) {
        registry.register(name, help, self.clone());
    }
}

/// Brings a counter up to `total`, a count kept elsewhere that never goes back.
fn follow(counter: &Counter, total: u64) {
    counter.inc_by(total.saturating_sub(counter.get()));
}

fn follow_f64(counter: &FloatCounter, total: f64) {
    let by = total - counter.get();
    if by > 0.0 {
        counter.inc_by(by);
    }
}

/// Counts one Face API request in `face_requests_in_flight` until it is dropped.
#[derive(Debug)]
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    /// One request: `route` is the route it matched (`/face/v1.0/persongroups/{personGroupId}`)
    /// or `unmatched`, so the number of label values is bounded by the route table.
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let method = match method {
            "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS" => method,
            _ => "OTHER",
        };
        self.requests
            .get_or_create(&RequestLabels { route: route.to_owned(), method: method.to_owned(), status })
            .inc();
        self.latency.get_or_create(&RouteLabels { route: route.to_owned() }).observe(seconds);
    }

    /// A Face API request has begun (its headers are read); it ends when the guard is dropped.
    pub fn begin(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// A trained index was loaded (at its first search, or another host's training): `bytes` in
    /// memory, in `seconds`.
    pub fn index_loaded(&self, seconds: f64, bytes: usize) {
        self.index_loads.inc();
        self.index_load_seconds.inc_by(seconds);
        self.index_load_bytes.inc_by(bytes as u64);
    }

    /// The exposition text, with the scrape-time values `g`.
    pub fn render(&self, g: Gauges) -> String {
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.pool_size.set(as_i64(g.pool_size as u64));
        self.pool_busy.set(as_i64(g.pool_busy as u64));
        follow(&self.discarded, g.pool_discarded);
        self.engine_queue.set(as_i64(g.engine_queue as u64));
        self.usage_backlog.set(as_i64(g.usage_backlog));
        self.face_ids.set(as_i64(g.face_ids as u64));
        self.memory_held.set(as_i64(g.memory_held as u64));
        if let Some(db) = g.database {
            let d = &self.database;
            d.open.set(as_i64(db.open));
            d.in_use.set(as_i64(db.in_use));
            d.waiting.set(as_i64(db.waiting));
            follow(&d.waits, db.waits);
            follow_f64(&d.wait_seconds, db.wait_seconds);
            follow(&d.opened, db.opened);
            follow(&d.lost, db.lost);
            follow(&d.lease_waits, db.lease_waits);
            follow_f64(&d.lease_wait_seconds, db.lease_wait_seconds);
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding the metrics failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.observe("POST", "/face/v1.0/detect", 200, 0.2);
        m.observe("POST", "/face/v1.0/detect", 400, 0.001);
        let text = m.render(Gauges { pool_size: 2, usage_backlog: 5, pool_discarded: 3, ..Default::default() });
        for wanted in [
            "face_requests_total{route=\"/face/v1.0/detect\",method=\"POST\",status=\"200\"} 1",
            "face_request_duration_seconds_bucket{le=\"0.25\",route=\"/face/v1.0/detect\"} 2",
            "face_request_duration_seconds_bucket{le=\"0.005\",route=\"/face/v1.0/detect\"} 1",
            "face_request_duration_seconds_count{route=\"/face/v1.0/detect\"} 2",
            "face_usage_backlog 5",
            "face_engine_instances_discarded_total 3",
            "# EOF",
        ] {
            assert!(text.contains(wanted), "{wanted} missing:\n{text}");
        }
        // The discarded counter follows the pool's count and never goes back.
        let text = m.render(Gauges { pool_discarded: 4, ..Default::default() });
        assert!(text.contains("face_engine_instances_discarded_total 4"), "{text}");
        // The database pool's figures, and index loads.
        m.index_loaded(0.5, 1000);
        let database = crate::store::PoolStats {
            open: 3,
            in_use: 2,
            waiting: 1,
            waits: 7,
            wait_seconds: 1.5,
            opened: 9,
            lost: 4,
            lease_waits: 2,
            lease_wait_seconds: 3.25,
        };
        let text = m.render(Gauges { database: Some(database), ..Default::default() });
        for wanted in [
            "face_db_connections_open 3",
            "face_db_connections_in_use 2",
            "face_db_waiting 1",
            "face_db_waits_total 7",
            "face_db_wait_seconds_total 1.5",
            "face_db_connections_opened_total 9",
            "face_db_reconnects_total 4",
            "face_lease_waits_total 2",
            "face_lease_wait_seconds_total 3.25",
            "face_index_loads_total 1",
            "face_index_load_seconds_total 0.5",
            "face_index_load_bytes_total 1000",
        ] {
            assert!(text.contains(wanted), "{wanted} missing:\n{text}");
        }
    }
}

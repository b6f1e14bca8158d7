//! Counters for `/metrics` (Prometheus text format): requests by matched route, method and status;
//! latency histograms by route; engine pool occupancy; usage journal backlog.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Histogram bucket bounds, seconds.
const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Debug, Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
}

#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
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
}

impl Metrics {
    /// One request: `route` is the route it matched (`/face/v1.0/persongroups/{personGroupId}`)
    /// or `unmatched`, so the number of label values is bounded by the route table.
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let route = route.to_owned();
        let method = match method {
            "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS" => method,
            _ => "OTHER",
        };
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *inner.requests.entry((route.clone(), method.to_owned(), status)).or_default() += 1;
        let h = inner.latency.entry(route).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                h.buckets[i] += 1;
            }
        }
        h.sum += seconds;
        h.count += 1;
    }

    /// The exposition text.
    pub fn render(&self, g: Gauges) -> String {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        let _ = writeln!(out, "# HELP face_requests_total HTTP requests by route, method and status.");
        let _ = writeln!(out, "# TYPE face_requests_total counter");
        for ((route, method, status), n) in &inner.requests {
            let _ =
                writeln!(out, "face_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {n}");
        }
        let _ = writeln!(out, "# HELP face_request_duration_seconds Request latency by route.");
        let _ = writeln!(out, "# TYPE face_request_duration_seconds histogram");
        for (route, h) in &inner.latency {
            for (bound, n) in BUCKETS.iter().zip(h.buckets) {
                let _ = writeln!(out, "face_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {n}");
            }
            let _ = writeln!(out, "face_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "face_request_duration_seconds_sum{{route=\"{route}\"}} {}", h.sum);
            let _ = writeln!(out, "face_request_duration_seconds_count{{route=\"{route}\"}} {}", h.count);
        }
        let gauges: [(&str, &str, &str, f64); 6] = [
            ("face_engine_pool_size", "gauge", "Warm engine instances.", g.pool_size as f64),
            ("face_engine_pool_busy", "gauge", "Engine instances running a call.", g.pool_busy as f64),
            (
                "face_engine_instances_discarded_total",
                "counter",
                "Instances discarded after a trap, timeout or memory cap.",
                g.pool_discarded as f64,
            ),
            (
                "face_engine_queue",
                "gauge",
                "Requests holding or waiting for an engine instance.",
                g.engine_queue as f64,
            ),
            (
                "face_usage_backlog",
                "gauge",
                "Usage records not yet acknowledged by the billing endpoint.",
                g.usage_backlog as f64,
            ),
            ("face_face_ids", "gauge", "faceIds kept.", g.face_ids as f64),
        ];
        for (name, kind, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
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
        let text = m.render(Gauges { pool_size: 2, usage_backlog: 5, ..Default::default() });
        assert!(text.contains("face_requests_total{route=\"/face/v1.0/detect\",method=\"POST\",status=\"200\"} 1"));
        assert!(text.contains("face_request_duration_seconds_bucket{route=\"/face/v1.0/detect\",le=\"0.25\"} 2"));
        assert!(text.contains("face_request_duration_seconds_bucket{route=\"/face/v1.0/detect\",le=\"0.005\"} 1"));
        assert!(text.contains("face_request_duration_seconds_count{route=\"/face/v1.0/detect\"} 2"));
        assert!(text.contains("face_usage_backlog 5"));
    }
}

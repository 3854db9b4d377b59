//! Prometheus metrics: requests and latency by route and status class, events ingested, and
//! the model version being served, as text at `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 11] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

#[derive(Debug, Default, Clone)]
struct Route {
    /// Requests by status class ("2xx", "4xx", "5xx").
    by_status: BTreeMap<&'static str, u64>,
    /// Cumulative counts per bucket, then the total.
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
}

/// The counters of one server.
#[derive(Debug, Default)]
pub struct Metrics {
    routes: Mutex<BTreeMap<String, Route>>,
    events_ingested: AtomicU64,
    /// Impressions stored, and those dropped because the writer's queue was full or a
    /// batch could not be written.
    pub(crate) impressions_written: AtomicU64,
    pub(crate) impressions_dropped: AtomicU64,
}

impl Metrics {
    /// Records one answered request.
    pub fn observe(&self, route: &str, status: u16, seconds: f64) {
        let class = match status {
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        if let Ok(mut routes) = self.routes.lock() {
            // Looked up by `&str` first: `entry` would allocate the key on every request.
            let r = match routes.get_mut(route) {
                Some(r) => r,
                None => routes.entry(route.to_owned()).or_default(),
            };
            *r.by_status.entry(class).or_default() += 1;
            for (b, &bound) in r.buckets.iter_mut().zip(&BUCKETS) {
                if seconds <= bound {
                    *b += 1;
                }
            }
            r.count += 1;
            r.sum_seconds += seconds;
        }
    }

    /// Counts events accepted (new, not duplicates).
    pub fn add_events(&self, n: u64) {
        self.events_ingested.fetch_add(n, Ordering::Relaxed);
    }

    /// The text exposition format.
    pub fn render(&self, model_version: &str, model_kind: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP marquee_model_info The model being served.");
        let _ = writeln!(out, "# TYPE marquee_model_info gauge");
        let _ = writeln!(
            out,
            "marquee_model_info{{version=\"{model_version}\",kind=\"{model_kind}\"}} 1"
        );
        let _ = writeln!(
            out,
            "# HELP marquee_events_ingested_total Events stored (not counting retried duplicates)."
        );
        let _ = writeln!(out, "# TYPE marquee_events_ingested_total counter");
        let _ = writeln!(
            out,
            "marquee_events_ingested_total {}",
            self.events_ingested.load(Ordering::Relaxed)
        );
        for (name, help, value) in [
            (
                "marquee_impressions_written_total",
                "Recommendation answers recorded as impressions.",
                &self.impressions_written,
            ),
            (
                "marquee_impressions_dropped_total",
                "Impressions not recorded: the writer's queue was full (answers never wait for it) or the store refused a batch.",
                &self.impressions_dropped,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        let routes = self.routes.lock().map(|r| r.clone()).unwrap_or_default();
        let _ = writeln!(
            out,
            "# HELP marquee_http_requests_total Requests by route and status class."
        );
        let _ = writeln!(out, "# TYPE marquee_http_requests_total counter");
        for (route, r) in &routes {
            for (class, n) in &r.by_status {
                let _ = writeln!(
                    out,
                    "marquee_http_requests_total{{route=\"{route}\",status=\"{class}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP marquee_http_request_duration_seconds Request latency by route."
        );
        let _ = writeln!(
            out,
            "# TYPE marquee_http_request_duration_seconds histogram"
        );
        for (route, r) in &routes {
            for (bound, n) in BUCKETS.iter().zip(&r.buckets) {
                let _ = writeln!(
                    out,
                    "marquee_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "marquee_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                r.count
            );
            let _ = writeln!(
                out,
                "marquee_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                r.sum_seconds
            );
            let _ = writeln!(
                out,
                "marquee_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                r.count
            );
        }
        out
    }
}

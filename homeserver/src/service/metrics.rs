//! Prometheus metrics: one registry, built only when `enable_metrics` is true, and the handles
//! the rest of the server counts with.
//!
//! Counters, gauges and histograms are the `prometheus-client` crate's, so recording is an atomic
//! add (histograms take the crate's short internal lock); nothing here is awaited. Values that
//! already live elsewhere (database pools, the process) are read when Prometheus scrapes, by the
//! collectors in `metrics/pools.rs` and `metrics/process.rs`. Our own metrics are named
//! `causeway_*`; the process metrics carry the standard `process_*` names every exporter uses.

mod pools;
mod process;

use std::time::{Duration, Instant};

use prometheus_client::{
    encoding::{EncodeLabelSet, prometheus_text},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};

use crate::store::Store;

/// The `Content-Type` of a scrape: Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The `route` label of a request no route matched (ids in paths never become labels).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Request durations, in seconds: from a millisecond up to the longest `/sync` long-poll.
const REQUEST_SECONDS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];
/// One event-writer commit, in seconds.
const WRITE_SECONDS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
/// Events in one commit (the writer takes at most 1,000 at once, a batch send more).
const GROUP_EVENTS: [f64; 11] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 5000.0,
];

/// Labels of `causeway_http_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: &'static str,
}

/// Labels of `causeway_http_request_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_SECONDS)
}

/// The registry and every metric the server records.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    events_written: Counter,
    groups_written: Counter,
    events_per_group: Histogram,
    write_seconds: Histogram,
    write_failures: Counter,
    sync_waiting: Gauge,
}

impl Metrics {
    /// Registers every metric; the database pools of `store` are read at each scrape.
    pub fn new(store: &Store) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(process::ProcessCollector));
        let ours = registry.sub_registry_with_prefix("causeway");

        let requests = Family::<RequestLabels, Counter>::default();
        ours.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status class",
            requests.clone(),
        );
        let request_seconds = Family::new_with_constructor(request_histogram as fn() -> Histogram);
        ours.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival to its response headers, by route template",
            Unit::Seconds,
            request_seconds.clone(),
        );

        let events_written = Counter::default();
        ours.register(
            "event_writer_events",
            "Events written by the event writer",
            events_written.clone(),
        );
        let groups_written = Counter::default();
        ours.register(
            "event_writer_groups",
            "Commits by the event writer (a group of events from one or more rooms)",
            groups_written.clone(),
        );
        let events_per_group = Histogram::new(GROUP_EVENTS);
        ours.register(
            "event_writer_events_per_group",
            "Events in each commit of the event writer",
            events_per_group.clone(),
        );
        let write_seconds = Histogram::new(WRITE_SECONDS);
        ours.register_with_unit(
            "event_writer_write_duration",
            "Time of each commit attempt of the event writer, failed ones included",
            Unit::Seconds,
            write_seconds.clone(),
        );
        let write_failures = Counter::default();
        ours.register(
            "event_writer_write_failures",
            "Commits of the event writer that failed (a failed shared commit is retried room by room)",
            write_failures.clone(),
        );

        let sync_waiting = Gauge::default();
        ours.register(
            "sync_long_polls_waiting",
            "/sync requests currently waiting for something to report",
            sync_waiting.clone(),
        );
        ours.register_collector(Box::new(pools::PoolCollector::new(store.clone())));

        Self {
            registry,
            requests,
            request_seconds,
            events_written,
            groups_written,
            events_per_group,
            write_seconds,
            write_failures,
            sync_waiting,
        }
    }

    /// Everything, in Prometheus text format (`CONTENT_TYPE`).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; a collector that fails leaves what it wrote so far.
        if let Err(e) = prometheus_text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        out
    }

    /// Counts one answered request. `route` is the matched route template (`None`: no route).
    pub fn observe_request(
        &self,
        method: &http::Method,
        route: Option<&str>,
        status: http::StatusCode,
        elapsed: Duration,
    ) {
        let route = route.unwrap_or(UNMATCHED_ROUTE).to_owned();
        self.request_seconds
            .get_or_create(&RouteLabels {
                route: route.clone(),
            })
            .observe(elapsed.as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels {
                method: method_label(method),
                route,
                status: status_class(status),
            })
            .inc();
    }

    /// Counts one commit attempt of the event writer, started at `started`, of `events` events.
    pub fn observe_write(metrics: Option<&Self>, events: usize, started: Instant, ok: bool) {
        let Some(m) = metrics else { return };
        m.write_seconds.observe(started.elapsed().as_secs_f64());
        if ok {
            m.groups_written.inc();
            m.events_written.inc_by(events as u64);
            m.events_per_group.observe(events as f64);
        } else {
            m.write_failures.inc();
        }
    }

    /// Marks a `/sync` as waiting until the returned guard is dropped (answered or cancelled).
    pub fn sync_waiting(&self) -> SyncWaiting {
        self.sync_waiting.inc();
        SyncWaiting(self.sync_waiting.clone())
    }
}

/// A `/sync` long-poll counted in `causeway_sync_long_polls_waiting` while this lives.
#[derive(Debug)]
pub struct SyncWaiting(Gauge);

impl Drop for SyncWaiting {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The standard methods by name; anything else as `other`, so a client cannot add labels.
fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::PATCH => "PATCH",
        _ => "other",
    }
}

fn status_class(status: http::StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_become_their_class() {
        assert_eq!(status_class(http::StatusCode::OK), "2xx");
        assert_eq!(status_class(http::StatusCode::NOT_FOUND), "4xx");
        assert_eq!(status_class(http::StatusCode::BAD_GATEWAY), "5xx");
    }

    #[test]
    fn unusual_methods_share_one_label() {
        let custom = http::Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&custom), "other");
        assert_eq!(method_label(&http::Method::PUT), "PUT");
    }
}

//! Prometheus metrics of a bridge: events in and out, errors, transactions, and the latency
//! from an event's arrival to the end of its handling. Served as text at `/metrics`.
//!
//! ```
//! use appservice_sdk::metrics::Metrics;
//! use std::time::Duration;
//! let m = Metrics::default();
//! m.event_in("matrix");
//! m.observe_latency(Duration::from_millis(12));
//! let text = m.render();
//! assert!(text.contains(r#"bridge_events_in_total{source="matrix"} 1"#));
//! assert!(text.contains("bridge_event_latency_seconds_count 1"));
//! ```

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Counters and a latency histogram; lock-free, shared by reference.
#[derive(Debug, Default)]
pub struct Metrics {
    matrix_in: AtomicU64,
    remote_in: AtomicU64,
    events_out: AtomicU64,
    errors: AtomicU64,
    transactions: AtomicU64,
    latency_buckets: [AtomicU64; 10],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
}

impl Metrics {
    /// Counts an incoming event; `source` is `matrix` or `remote`.
    pub fn event_in(&self, source: &str) {
        match source {
            "matrix" => &self.matrix_in,
            _ => &self.remote_in,
        }
        .fetch_add(1, Relaxed);
    }

    /// Counts an event sent to Matrix or to the remote network.
    pub fn event_out(&self) {
        self.events_out.fetch_add(1, Relaxed);
    }

    /// Counts a failed handling.
    pub fn error(&self) {
        self.errors.fetch_add(1, Relaxed);
    }

    /// Counts a transaction received from the homeserver.
    pub fn transaction(&self) {
        self.transactions.fetch_add(1, Relaxed);
    }

    /// Records how long handling one event took.
    pub fn observe_latency(&self, latency: Duration) {
        let secs = latency.as_secs_f64();
        for (bucket, bound) in self.latency_buckets.iter().zip(BUCKETS) {
            if secs <= bound {
                bucket.fetch_add(1, Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_sum_micros
            .fetch_add(latency.as_micros() as u64, Relaxed);
    }

    /// Events received so far from Matrix.
    pub fn matrix_events_in(&self) -> u64 {
        self.matrix_in.load(Relaxed)
    }

    /// Events sent so far.
    pub fn events_out(&self) -> u64 {
        self.events_out.load(Relaxed)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP bridge_events_in_total Events received, by source.\n");
        out.push_str("# TYPE bridge_events_in_total counter\n");
        out.push_str(&format!(
            "bridge_events_in_total{{source=\"matrix\"}} {}\n",
            self.matrix_in.load(Relaxed)
        ));
        out.push_str(&format!(
            "bridge_events_in_total{{source=\"remote\"}} {}\n",
            self.remote_in.load(Relaxed)
        ));
        out.push_str(
            "# HELP bridge_events_out_total Events sent.\n# TYPE bridge_events_out_total counter\n",
        );
        out.push_str(&format!(
            "bridge_events_out_total {}\n",
            self.events_out.load(Relaxed)
        ));
        out.push_str("# HELP bridge_errors_total Failed event handlings.\n# TYPE bridge_errors_total counter\n");
        out.push_str(&format!(
            "bridge_errors_total {}\n",
            self.errors.load(Relaxed)
        ));
        out.push_str(
            "# HELP bridge_transactions_total Transactions received from the homeserver.\n",
        );
        out.push_str("# TYPE bridge_transactions_total counter\n");
        out.push_str(&format!(
            "bridge_transactions_total {}\n",
            self.transactions.load(Relaxed)
        ));
        out.push_str("# HELP bridge_event_latency_seconds Time to handle one event.\n");
        out.push_str("# TYPE bridge_event_latency_seconds histogram\n");
        for (bucket, bound) in self.latency_buckets.iter().zip(BUCKETS) {
            out.push_str(&format!(
                "bridge_event_latency_seconds_bucket{{le=\"{bound}\"}} {}\n",
                bucket.load(Relaxed)
            ));
        }
        let count = self.latency_count.load(Relaxed);
        out.push_str(&format!(
            "bridge_event_latency_seconds_bucket{{le=\"+Inf\"}} {count}\n"
        ));
        let sum = self.latency_sum_micros.load(Relaxed) as f64 / 1e6;
        out.push_str(&format!("bridge_event_latency_seconds_sum {sum}\n"));
        out.push_str(&format!("bridge_event_latency_seconds_count {count}\n"));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_lands_in_every_bucket_at_or_above_it() {
        let m = Metrics::default();
        m.observe_latency(Duration::from_millis(30));
        let text = m.render();
        assert!(
            text.contains("bridge_event_latency_seconds_bucket{le=\"0.025\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("bridge_event_latency_seconds_bucket{le=\"0.05\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("bridge_event_latency_seconds_bucket{le=\"+Inf\"} 1"),
            "{text}"
        );
    }
}

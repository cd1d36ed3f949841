//! `GET /_synapse/metrics`: Prometheus scrapes, in its text format.
//!
//! Served only where the config asks: on a `type: metrics` listener (also at `/metrics`, as
//! Prometheus expects by default), and on an HTTP listener that lists the `metrics` resource.

use std::sync::Arc;

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};

use crate::service::metrics::{CONTENT_TYPE, Metrics};

/// Where Synapse serves its metrics; dashboards and scrape configs point here.
pub const METRICS_PATH: &str = "/_synapse/metrics";

/// The `metrics` resource of an HTTP listener: `/_synapse/metrics` only.
pub fn resource(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route(METRICS_PATH, get(scrape))
        .with_state(metrics)
}

/// A `type: metrics` listener: `/_synapse/metrics` and `/metrics`, nothing else.
pub fn listener(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route(METRICS_PATH, get(scrape))
        .route("/metrics", get(scrape))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "Not found: metrics are at /metrics\n",
            )
        })
        .with_state(metrics)
}

async fn scrape(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics.encode())
}

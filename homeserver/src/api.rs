//! axum routers and extractors only: parse and authenticate requests, map errors to Matrix
//! errcodes. No SQL.

mod client;
mod error_response;
pub mod metrics;
mod ruma_extract;
mod synapse_admin;

use std::{sync::Arc, time::Instant};

use axum::{Router, extract::MatchedPath, http::Method, routing::MethodFilter};
use ruma::api::{IncomingRequest, path_builder::PathBuilder};
use tower_http::cors::{Any, CorsLayer};

use crate::{
    error::Error,
    service::{Services, metrics::Metrics},
};

use ruma_extract::EmptyLastArg;
pub(crate) use ruma_extract::{Ruma, RumaResponse};

/// The whole HTTP application.
pub fn router(services: Services) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(Any);
    let router = Router::new()
        .merge(client::router())
        .merge(synapse_admin::router())
        .fallback(|| async { Error::unrecognized("Unrecognized request") })
        .method_not_allowed_fallback(|| async {
            Error::Matrix {
                kind: ruma::api::error::ErrorKind::Unrecognized,
                message: "Unrecognized request: method not allowed".to_owned(),
            }
            .with_status(http::StatusCode::METHOD_NOT_ALLOWED)
        })
        .layer(axum::middleware::from_fn(run_writes_to_completion));
    // Without `enable_metrics` there is no layer at all, so requests cost nothing extra.
    let router = match &services.metrics {
        Some(metrics) => router.layer(axum::middleware::from_fn_with_state(
            metrics.clone(),
            count_requests,
        )),
        None => router,
    };
    router
        .layer(cors)
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(services)
}

/// Counts every request by method, route template and status class, and times it by route
/// template. A layer on the router sees the matched route (`MatchedPath`), so ids in paths
/// never become labels; requests no route matched share one label.
async fn count_requests(
    axum::extract::State(metrics): axum::extract::State<Arc<Metrics>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let response = next.run(req).await;
    metrics.observe_request(
        &method,
        route.as_ref().map(MatchedPath::as_str),
        response.status(),
        started.elapsed(),
    );
    response
}

/// Requests that change something run on their own task, so a client that hangs up halfway
/// cannot cancel them between a database commit and the in-memory state that follows it (an
/// event committed but missing from its room's state would break the room). Reads may be
/// dropped freely.
async fn run_writes_to_completion(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    match tokio::spawn(next.run(req)).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = %e, "request handler panicked");
            axum::response::IntoResponse::into_response(Error::internal("request handler failed"))
        }
    }
}

/// Adds a handler for a ruma endpoint on every path the spec has given it.
pub(crate) trait RouteExt {
    fn ruma<T, H, M>(self, handler: H) -> Self
    where
        T: IncomingRequest,
        H: axum::handler::Handler<M, Services>,
        M: 'static;
}

impl RouteExt for Router<Services> {
    fn ruma<T, H, M>(mut self, handler: H) -> Self
    where
        T: IncomingRequest,
        H: axum::handler::Handler<M, Services>,
        M: 'static,
    {
        let filter =
            MethodFilter::try_from(T::METHOD).expect("ruma endpoints use standard methods");
        for path in T::PATH_BUILDER.all_paths() {
            self = self.route(path, axum::routing::on(filter, handler.clone()));
            // An empty state key: `/state/{type}` and `/state/{type}/` mean `state_key = ""`.
            if let Some(trimmed) = path.strip_suffix("/{state_key}") {
                for p in [trimmed.to_owned(), format!("{trimmed}/")] {
                    let route = axum::routing::on(filter, handler.clone())
                        .layer(axum::Extension(EmptyLastArg));
                    self = self.route(&p, route);
                }
            }
        }
        self
    }
}

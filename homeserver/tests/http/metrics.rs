//! Prometheus metrics: what a scrape says after real requests, and where it is served.

use std::time::Duration;

use axum::{Router, body::Body};
use homeserver::config::Listener;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

use crate::support::{Db, TestServer};

on_both_backends!(
    a_scrape_counts_requests_by_route_template_and_the_events_written,
    a_waiting_long_poll_is_counted_until_it_returns,
    a_write_the_database_refuses_is_counted_as_a_failure,
    the_metrics_path_is_served_only_where_the_config_lists_it,
);

/// An HTTP listener with the client API and the `metrics` resource.
const WITH_RESOURCE: &str = "enable_metrics: true\nlisteners:\n  - {port: 8008, type: http, resources: [{names: [client, metrics]}]}\n";

const SEND_ROUTE: &str = "/_matrix/client/v3/rooms/{room_id}/send/{event_type}/{txn_id}";

/// GETs `path` from `app`: (status, content type, body).
async fn get(app: &Router, path: &str) -> (StatusCode, String, String) {
    let response = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

/// The app of the server's first configured listener.
fn listener_app(s: &TestServer) -> Router {
    homeserver::listener_app(&s.services, &s.services.config.listeners[0])
        .expect("an HTTP listener is always started")
}

async fn scrape(app: &Router) -> String {
    let (status, content_type, body) = get(app, "/_synapse/metrics").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    body
}

/// The value of the sample `name` whose labels include every pair of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let all = labels.iter().all(|(k, v)| {
                series_labels
                    .split(',')
                    .any(|p| p == format!("{k}=\"{v}\""))
            });
            (series_name == name && all).then(|| value.parse().unwrap())
        })
}

#[track_caller]
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(text, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{text}"))
}

async fn a_scrape_counts_requests_by_route_template_and_the_events_written(db: Db) {
    let s = TestServer::with_config(db, WITH_RESOURCE).await;
    let app = listener_app(&s);
    let (_, token, _) = s.register("alice", "pw").await;
    let room = s.create_room(&token, json!({})).await;
    let (status, _) = s.get("/_matrix/client/v3/no/such/endpoint", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let before = scrape(&app).await;
    let register = [
        ("method", "POST"),
        ("route", "/_matrix/client/v3/register"),
        ("status", "2xx"),
    ];
    assert_eq!(
        value(&before, "causeway_http_requests_total", &register),
        1.0
    );
    let unmatched = [("route", "unmatched"), ("status", "4xx")];
    assert_eq!(
        value(&before, "causeway_http_requests_total", &unmatched),
        1.0
    );
    assert_eq!(
        sample(
            &before,
            "causeway_http_requests_total",
            &[("route", SEND_ROUTE)]
        ),
        None
    );
    let events_before = value(&before, "causeway_event_writer_events_total", &[]);
    assert!(
        events_before >= 1.0,
        "createRoom wrote its events: {before}"
    );
    let groups_before = value(&before, "causeway_event_writer_groups_total", &[]);
    assert_eq!(
        value(&before, "causeway_event_writer_events_per_group_count", &[]),
        groups_before,
        "one observation per commit"
    );
    assert_eq!(
        value(&before, "causeway_event_writer_events_per_group_sum", &[]),
        events_before,
        "the group sizes add up to the events written"
    );

    s.send_text(&token, &room, "counted").await;
    let after = scrape(&app).await;
    let send = [("method", "PUT"), ("route", SEND_ROUTE), ("status", "2xx")];
    assert_eq!(value(&after, "causeway_http_requests_total", &send), 1.0);
    let send_route = [("route", SEND_ROUTE)];
    assert_eq!(
        value(
            &after,
            "causeway_http_request_duration_seconds_count",
            &send_route
        ),
        1.0
    );
    let inf = [("route", SEND_ROUTE), ("le", "+Inf")];
    assert_eq!(
        value(
            &after,
            "causeway_http_request_duration_seconds_bucket",
            &inf
        ),
        1.0
    );
    assert_eq!(
        value(&after, "causeway_event_writer_events_total", &[]),
        events_before + 1.0,
        "the send wrote one event"
    );
    assert_eq!(
        value(&after, "causeway_event_writer_groups_total", &[]),
        groups_before + 1.0
    );
    assert_eq!(
        value(
            &after,
            "causeway_event_writer_write_duration_seconds_count",
            &[]
        ),
        value(
            &before,
            "causeway_event_writer_write_duration_seconds_count",
            &[]
        ) + 1.0,
        "the write duration histogram moved"
    );
    assert_eq!(
        value(&after, "causeway_event_writer_write_failures_total", &[]),
        0.0
    );

    // Scrape-time readings: the pools and the process.
    let writer_open = value(
        &after,
        "causeway_db_pool_connections",
        &[("pool", "writer"), ("state", "idle")],
    ) + value(
        &after,
        "causeway_db_pool_connections",
        &[("pool", "writer"), ("state", "in_use")],
    );
    assert!(writer_open >= 1.0, "{after}");
    assert!(
        value(
            &after,
            "causeway_db_pool_connections",
            &[("pool", "reader"), ("state", "idle")]
        ) >= 1.0,
        "{after}"
    );
    assert!(value(&after, "process_resident_memory_bytes", &[]) > 1e6);
    assert!(value(&after, "process_open_fds", &[]) >= 3.0);
    assert!(value(&after, "process_cpu_seconds_total", &[]) > 0.0);
    let started = value(&after, "process_start_time_seconds", &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        started <= now + 1.0 && started > now - 3600.0,
        "{started} vs {now}"
    );
}

async fn a_write_the_database_refuses_is_counted_as_a_failure(db: Db) {
    let s = TestServer::with_config(db, WITH_RESOURCE).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let room = s.create_room(&token, json!({})).await;
    let path = format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/repeated");
    let content = json!({"msgtype": "m.text", "body": "once"});
    let (status, first) = s.put(&path, Some(&token), content.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    // After a restart only the database knows the transaction id: the repeat reaches the
    // writer, whose commit the unique index refuses; the sender answers from the store.
    let s = s.restart().await;
    let app = listener_app(&s);
    let (status, again) = s.put(&path, Some(&token), content).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["event_id"], first["event_id"]);
    let text = scrape(&app).await;
    assert_eq!(
        value(&text, "causeway_event_writer_write_failures_total", &[]),
        1.0
    );
    assert_eq!(value(&text, "causeway_event_writer_events_total", &[]), 0.0);
    assert_eq!(value(&text, "causeway_event_writer_groups_total", &[]), 0.0);
    assert_eq!(
        value(
            &text,
            "causeway_event_writer_write_duration_seconds_count",
            &[]
        ),
        1.0,
        "failed attempts are timed too"
    );
}

async fn a_waiting_long_poll_is_counted_until_it_returns(db: Db) {
    let s = TestServer::with_config(db, WITH_RESOURCE).await;
    let app = listener_app(&s);
    let (_, token, _) = s.register("alice", "pw").await;
    let room = s.create_room(&token, json!({})).await;
    let next = s.sync(&token, None, 0).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    let waiting = "causeway_sync_long_polls_waiting";
    assert_eq!(value(&scrape(&app).await, waiting, &[]), 0.0);

    let (synced, during) = tokio::join!(s.sync(&token, Some(&next), 20_000), async {
        // Until the long-poll is seen waiting (or give up after 10 s).
        let mut during = 0.0;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            during = value(&scrape(&app).await, waiting, &[]);
            if during > 0.0 {
                break;
            }
        }
        s.send_text(&token, &room, "wake up").await;
        during
    });
    assert_eq!(during, 1.0);
    assert_eq!(TestServer::timeline_bodies(&synced, &room), vec!["wake up"]);
    assert_eq!(value(&scrape(&app).await, waiting, &[]), 0.0);
}

async fn the_metrics_path_is_served_only_where_the_config_lists_it(db: Db) {
    // Enabled, but the client listener does not list the resource.
    let s = TestServer::with_config(db, "enable_metrics: true\n").await;
    let (status, _, _) = get(&listener_app(&s), "/_synapse/metrics").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = s.get("/_synapse/metrics", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["errcode"], "M_UNRECOGNIZED");
    assert_eq!(s.get("/metrics", None).await.0, StatusCode::NOT_FOUND);

    // A `type: metrics` listener: both paths, and nothing of the client API.
    let dedicated = Listener {
        kind: "metrics".to_owned(),
        resources: Vec::new(),
        ..Listener::default()
    };
    let app = homeserver::listener_app(&s.services, &dedicated).expect("metrics are enabled");
    for path in ["/_synapse/metrics", "/metrics"] {
        let (status, content_type, body) = get(&app, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(content_type.starts_with("text/plain; version=0.0.4"));
        assert!(
            body.contains("# TYPE causeway_event_writer_events_total counter"),
            "{body}"
        );
    }
    let (status, _, _) = get(&app, "/_matrix/client/versions").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    drop(s);

    // Disabled: the resource is not served and the metrics listener is not started.
    let off = TestServer::with_config(
        db,
        "listeners:\n  - {port: 8008, type: http, resources: [{names: [client, metrics]}]}\n",
    )
    .await;
    assert!(off.services.metrics.is_none());
    let (status, _, _) = get(&listener_app(&off), "/_synapse/metrics").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(homeserver::listener_app(&off.services, &dedicated).is_none());
}

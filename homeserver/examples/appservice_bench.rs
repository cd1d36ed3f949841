//! Application service benchmark: transaction delivery latency, delivery rate to one appservice,
//! and batch-send rate. The homeserver is driven in-process (`oneshot`, no client HTTP); the
//! appservice is a real axum server on loopback, so deliveries go over HTTP as in production.
//!
//! `cargo run --release -p homeserver --example appservice_bench -- [sqlite|postgres://...]`

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    body::Body,
    extract::{Path, State},
    routing::put,
};
use http::Request;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

#[derive(Default)]
struct Arrivals {
    /// (body, arrival instant) of every message, in arrival order.
    events: Mutex<Vec<(String, Instant)>>,
}

async fn txn(
    State(a): State<Arc<Arrivals>>,
    Path(_txn): Path<String>,
    Json(body): Json<Value>,
) -> Json<Value> {
    let now = Instant::now();
    let mut events = a.events.lock().unwrap();
    for e in body["events"].as_array().into_iter().flatten() {
        if let Some(b) = e["content"]["body"].as_str() {
            events.push((b.to_owned(), now));
        }
    }
    Json(json!({}))
}

async fn call(app: &Router, method: &str, path: &str, token: &str, body: Value) -> Value {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {v}");
    v
}

async fn wait_for(a: &Arrivals, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while a.events.lock().unwrap().len() < n {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for deliveries"
        );
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `RUST_LOG=homeserver=info` shows, for one, how a batch send splits into build and persist.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    let db = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sqlite".to_owned());
    let arrivals = Arc::new(Arrivals::default());
    let as_app = Router::new()
        .route("/_matrix/app/v1/transactions/{txn}", put(txn))
        .with_state(arrivals.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, as_app).await });

    let dir = tempfile::tempdir()?;
    let reg = dir.path().join("bench.yaml");
    std::fs::write(
        &reg,
        format!(
            "id: bench\nurl: {url}\nas_token: as-bench\nhs_token: hs-bench\nsender_localpart: benchbot\n\
             rate_limited: false\nnamespaces:\n  users:\n    - exclusive: true\n      regex: '@bench_.*'\n"
        ),
    )?;
    let database = if db == "sqlite" {
        format!(
            "database:\n  name: sqlite3\n  args: {{database: \"{}/hs.db\"}}\n",
            dir.path().display()
        )
    } else {
        let u = url::Url::parse(&db)?;
        format!(
            "database:\n  name: psycopg2\n  args: {{user: {}, host: {}, port: {}, database: {}, cp_max: 8}}\n",
            u.username(),
            u.host_str().unwrap_or("127.0.0.1"),
            u.port().unwrap_or(5432),
            u.path().trim_start_matches('/')
        )
    };
    let text = format!(
        "server_name: bench.local\nenable_registration: true\n{database}\
         media_store_path: \"{}/media\"\n\
         rc_registration: {{per_second: 1000, burst_count: 1000}}\n\
         app_service_config_files: [\"{}\"]\n",
        dir.path().display(),
        reg.display()
    );
    let config = homeserver::Config::parse(&text, "bench.yaml")?;
    let services = homeserver::services(config).await?;
    let app = homeserver::app(services);

    call(&app, "POST", "/_matrix/client/v3/register", "as-bench",
        json!({"type": "m.login.application_service", "username": "bench_ghost", "inhibit_login": true})).await;
    let room = call(
        &app,
        "POST",
        "/_matrix/client/v3/createRoom?user_id=@bench_ghost:bench.local",
        "as-bench",
        json!({}),
    )
    .await["room_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let send = |i: usize, body: String| {
        let app = app.clone();
        let path = format!(
            "/_matrix/client/v3/rooms/{room}/send/m.room.message/t{i}?user_id=@bench_ghost:bench.local"
        );
        async move {
            call(
                &app,
                "PUT",
                &path,
                "as-bench",
                json!({"msgtype": "m.text", "body": body}),
            )
            .await;
        }
    };

    // 1. Latency: one message at a time, from the start of the send to its arrival.
    let n = 2_000;
    let mut started = Vec::with_capacity(n);
    for i in 0..n {
        let before = arrivals.events.lock().unwrap().len();
        let t0 = Instant::now();
        send(i, format!("lat{i}")).await;
        started.push(t0);
        wait_for(&arrivals, before + 1).await;
    }
    let got = arrivals.events.lock().unwrap().clone();
    let mut lat: Vec<f64> = got
        .iter()
        .filter_map(|(b, t)| {
            let i: usize = b.strip_prefix("lat")?.parse().ok()?;
            Some(t.duration_since(started[i]).as_secs_f64() * 1000.0)
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "latency over {} sends: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        pct(0.50),
        pct(0.99),
        lat[lat.len() - 1]
    );

    // 2. Batch send: 10,000 messages in one request.
    let batch = 10_000;
    let events: Vec<Value> = (0..batch)
        .map(|i| json!({"type": "m.room.message", "sender": "@bench_ghost:bench.local",
            "content": {"msgtype": "m.text", "body": format!("b{i}")}, "origin_server_ts": 1_000_000 + i}))
        .collect();
    let base = arrivals.events.lock().unwrap().len();
    let t0 = Instant::now();
    let r = call(
        &app,
        "POST",
        &format!("/_matrix/client/unstable/fi.causeway.batch_send/rooms/{room}/batch_send"),
        "as-bench",
        json!({"events": events}),
    )
    .await;
    let took = t0.elapsed();
    assert_eq!(r["event_ids"].as_array().unwrap().len(), batch);
    println!(
        "batch send: {batch} events in {:.3} s = {:.0} events/s",
        took.as_secs_f64(),
        batch as f64 / took.as_secs_f64()
    );

    // 3. Delivery rate: the 10,000 just persisted, drained to the appservice.
    wait_for(&arrivals, base + batch).await;
    let delivered = t0.elapsed();
    let got = arrivals.events.lock().unwrap();
    let first = got[base].1;
    let last = got[base + batch - 1].1;
    let span = last.duration_since(first).as_secs_f64();
    println!(
        "delivery: {batch} events to one appservice, first to last arrival {:.3} s = {:.0} events/s \
         (all delivered {:.3} s after the batch send began)",
        span,
        batch as f64 / span,
        delivered.as_secs_f64()
    );
    let in_order = got[base..]
        .iter()
        .enumerate()
        .all(|(i, (b, _))| *b == format!("b{i}"));
    println!("in order: {in_order}");
    Ok(())
}

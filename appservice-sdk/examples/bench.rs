//! Throughput and memory of the SDK: transactions in over HTTP -> per-portal dispatch ->
//! network handler -> ghost send out, against the in-process sink homeserver.
//!
//! ```text
//! cargo run --release -p appservice-sdk --features testing --example bench -- [EVENTS] [DATABASE_URL]
//! ```
//! Defaults: 20000 events, SQLite in a temporary directory. 1,000 Matrix senders (so 1,000
//! ghosts) write round-robin into 100 portals, 50 events per transaction, transactions sent
//! one after the other as a homeserver does.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use appservice_sdk::bridge::{
    Bridge, MatrixMessage, Network, NetworkInfo, RemoteEvent, RemoteEventKind, RemoteSender,
};
use appservice_sdk::config::BridgeConfig;
use appservice_sdk::registration::Registration;
use appservice_sdk::store::{PortalRecord, Store};
use appservice_sdk::testing::TestHomeserver;
use appservice_sdk::{Appservice, Result};
use serde_json::{Value, json};

const GHOSTS: usize = 1000;
const PORTALS: usize = 100;
const PER_TXN: usize = 50;

#[derive(Default)]
struct Echo {
    bridge: OnceLock<Bridge>,
}

#[async_trait::async_trait]
impl Network for Echo {
    fn info(&self) -> NetworkInfo {
        NetworkInfo::new("echo", "Echo", "echo_")
    }
    async fn start(&self, bridge: Bridge) -> Result<()> {
        let _ = self.bridge.set(bridge);
        Ok(())
    }
    async fn handle_matrix_message(
        &self,
        portal: &PortalRecord,
        m: &MatrixMessage,
    ) -> Result<Option<String>> {
        let echo = RemoteEvent {
            id: format!("echo:{}", m.event_id),
            sender: RemoteSender {
                id: m.sender.localpart().to_owned(),
                displayname: None,
            },
            ts: None,
            kind: RemoteEventKind::Message {
                content: json!({"msgtype": "m.text", "body": m.body}),
                reply_to: None,
            },
        };
        self.bridge
            .get()
            .expect("started")
            .handle_remote_event(portal, echo)
            .await?;
        Ok(Some(format!("in:{}", m.event_id)))
    }
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn message(n: usize) -> Value {
    json!({"type": "m.room.message", "event_id": format!("$bench{n}"),
        "room_id": format!("!portal{}:test", n % PORTALS), "sender": format!("@user{}:test", n % GHOSTS),
        "origin_server_ts": 1, "content": {"msgtype": "m.text", "body": format!("message {n}")}})
}

async fn push(http: &reqwest::Client, url: &str, txn: usize, events: Vec<Value>) {
    let resp = http
        .put(format!("{url}/_matrix/app/v1/transactions/b{txn}"))
        .bearer_auth("h")
        .json(&json!({"events": events}))
        .send()
        .await
        .expect("transaction sent");
    assert!(
        resp.status().is_success(),
        "transaction {txn}: {}",
        resp.status()
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let events: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| format!("sqlite:{}", dir.path().join("bench.db").display()));
    let rss_start = rss_kib();

    let hs = TestHomeserver::start_sink().await;
    let registration = Registration::from_yaml(
        "id: echo\nurl: null\nas_token: a\nhs_token: h\nsender_localpart: bot\nnamespaces: {}\n",
    )
    .expect("registration");
    let appservice = Appservice::new(registration, hs.url(), "test").expect("appservice");
    let store = Store::connect(&db).await.expect("database");
    let config: BridgeConfig = BridgeConfig::from_yaml(
        "homeserver: {address: x, domain: test}\nappservice: {address: x, id: echo, bot: {username: bot}}\nbridge: {permissions: {test: user}}\n",
    )
    .expect("config");
    for p in 0..PORTALS {
        let portal = PortalRecord {
            remote_id: format!("chat{p}"),
            room_id: format!("!portal{p}:test").try_into().expect("room id"),
            name: None,
            relay_enabled: false,
        };
        store.upsert_portal(&portal).await.expect("portal");
    }
    let bridge = Bridge::from_parts(appservice, store, Arc::new(Echo::default()), &config);
    bridge.start().await.expect("start");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let router = bridge.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let http = reqwest::Client::new();

    // Warm-up: one message per sender, so every ghost is registered and joined.
    let started = Instant::now();
    let mut txn = 0;
    for chunk in (0..GHOSTS).collect::<Vec<_>>().chunks(PER_TXN) {
        txn += 1;
        push(
            &http,
            &url,
            txn,
            chunk.iter().map(|&n| message(n)).collect(),
        )
        .await;
    }
    let warmup = started.elapsed();
    let rss_ready = rss_kib();

    let started = Instant::now();
    let sends_before = hs.send_count();
    for chunk in (GHOSTS..GHOSTS + events)
        .collect::<Vec<_>>()
        .chunks(PER_TXN)
    {
        txn += 1;
        push(
            &http,
            &url,
            txn,
            chunk.iter().map(|&n| message(n)).collect(),
        )
        .await;
    }
    let elapsed = started.elapsed();
    let sent = hs.send_count() - sends_before;
    if sent as usize != events {
        eprintln!("{}", bridge.metrics().render());
    }
    assert_eq!(sent as usize, events, "every event was echoed once");
    let rss_end = rss_kib();
    let backend = if db.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    };

    println!("database: {backend}");
    println!(
        "warm-up: {GHOSTS} events from {GHOSTS} new ghosts in {PORTALS} portals: {:.2} s",
        warmup.as_secs_f64()
    );
    println!(
        "throughput: {events} events in {:.2} s = {:.0} events/s (transaction in -> handler -> ghost send out)",
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64()
    );
    println!(
        "rss: start {} KiB, with {GHOSTS} ghosts and {PORTALS} portals {} KiB, after the run {} KiB",
        rss_start, rss_ready, rss_end
    );
}

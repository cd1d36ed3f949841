//! Delivery latency through the bridge, both ways, and memory with many ghosts.
//!
//! `cargo bench -p telegram-bridge --bench delivery` (add `--profile dev` for a quick run). Everything runs in
//! this one process: fake-bot-api as Telegram, the SDK's test homeserver as Matrix, the bridge on SQLite.
//! - Telegram -> Matrix: an update is injected into the fake; the clock stops when the homeserver records the
//!   ghost's send (the bridge long-polls `getUpdates`, so this includes the poll wake-up).
//! - Matrix -> Telegram: one transaction with one message; the SDK answers the transaction once the network
//!   handled it, i.e. once `sendMessage` returned.
//! - Memory: resident set size before and after 500 distinct Telegram users each send a message (500 ghosts).
//!   It counts the fake and the test homeserver too, so it is an upper bound for the bridge.
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it does a short smoke run.

#[path = "../tests/support/harness.rs"]
mod harness;

use harness::*;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name}: n={} p50={:.2} ms p99={:.2} ms max={:.2} ms",
        samples.len(),
        percentile(&samples, 0.50).as_secs_f64() * 1000.0,
        percentile(&samples, 0.99).as_secs_f64() * 1000.0,
        samples.last().unwrap().as_secs_f64() * 1000.0,
    );
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

async fn wait_for_send(h: &Harness, room: &str, body: &str) {
    loop {
        if h.sends(room).iter().any(|r| r.body["body"] == body) {
            return;
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let h = Harness::start("sqlite").await;
    let portal = h.portal().await;
    let room = portal.room_id.to_string();
    let full = std::env::args().any(|a| a == "--bench");
    let rounds = if full { 300 } else { 20 };
    let ghosts = if full { 500 } else { 50 };

    // Warm up: ghost registration and avatar lookup happen once per user.
    h.fake.update(text_from_ann("warm-up", json!({}))).await;
    wait_for_send(&h, &room, "warm-up").await;

    let mut to_matrix = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let body = format!("t2m {i}");
        let started = Instant::now();
        h.fake.update(text_from_ann(&body, json!({}))).await;
        wait_for_send(&h, &room, &body).await;
        to_matrix.push(started.elapsed());
    }
    report("Telegram -> Matrix", to_matrix);

    let mut to_telegram = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let event = matrix_event(
            "m.room.message",
            &format!("$b{i}"),
            &room,
            json!({"msgtype": "m.text", "body": format!("m2t {i}")}),
        );
        let started = Instant::now();
        h.txn(vec![event]).await;
        to_telegram.push(started.elapsed());
    }
    report("Matrix -> Telegram", to_telegram);

    let before = rss_kib();
    for user in 0..ghosts {
        let sender =
            json!({"id": 10_000 + user, "is_bot": false, "first_name": format!("User {user}")});
        let body = format!("ghost {user}");
        h.fake
            .update(json!({"message": {"chat": group(), "from": sender, "text": body}}))
            .await;
        if user % 50 == 49 {
            wait_for_send(&h, &room, &body).await;
        }
    }
    wait_for_send(&h, &room, &format!("ghost {}", ghosts - 1)).await;
    let after = rss_kib();
    println!(
        "memory: RSS {:.1} MiB before, {:.1} MiB after {ghosts} ghosts (+{:.1} MiB; process total incl. fake and test homeserver)",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        after.saturating_sub(before) as f64 / 1024.0
    );
    h.finish().await;
}

//! `loadgen`: users send messages concurrently into shared rooms while every user long-polls
//! `/sync`; reports sends per second, send latency, send-to-sync delivery latency, and how many
//! deliveries waited for a long-poll timeout. Works against any homeserver with open
//! registration (`m.login.dummy`).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::{Value, json};

/// Load generator for Matrix homeservers.
#[derive(Parser, Clone)]
#[command(version, about)]
struct Args {
    /// Homeserver base URL.
    #[arg(long)]
    url: String,
    /// Number of users (each sends and syncs).
    #[arg(long, default_value_t = 20)]
    users: usize,
    /// Number of rooms; users are spread over them round-robin.
    #[arg(long, default_value_t = 5)]
    rooms: usize,
    /// Total messages sent.
    #[arg(long, default_value_t = 2000)]
    messages: usize,
    /// Prefix for the user names (to run several times against one server).
    #[arg(long, default_value = "lg")]
    prefix: String,
    /// Long-poll timeout of the syncing clients, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    sync_timeout_ms: u64,
    /// Process id of the server on this machine: reports the CPU time it spent per message
    /// while messages were sent and delivered (a figure that other load on the machine does
    /// not distort the way wall-clock rates are).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Also report when the slowest 1% of deliveries were sent: how many fell in the first
    /// tenth of the sending time (start-up), and the longest 20 ms window's share.
    #[arg(long)]
    tail_timing: bool,
}

/// User plus system CPU time of a process, in milliseconds (Linux `/proc/<pid>/stat`).
fn cpu_ms(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // The kernel reports clock ticks; USER_HZ is 100 on every Linux platform we run on.
    Some((utime + stime) * 10.0)
}

struct User {
    token: String,
    user_id: String,
    room: String,
}

#[derive(Default)]
struct Stats {
    send_ms: Vec<f64>,
    delivery_ms: Vec<f64>,
    /// When each delivered message was sent (ms since start), beside `delivery_ms`.
    delivery_sent_ms: Vec<f64>,
    errors: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(120))
        .build()?;
    let base = args.url.trim_end_matches('/').to_owned();

    eprintln!("registering {} users", args.users);
    let mut users = Vec::new();
    // An extra user creates the rooms and does nothing else.
    for i in 0..=args.users {
        let name = if i == args.users {
            format!("{}admin", args.prefix)
        } else {
            format!("{}{}", args.prefix, i)
        };
        let r = post(
            &client,
            &format!("{base}/_matrix/client/v3/register"),
            None,
            json!({"username": name, "password": "loadgen-pw", "auth": {"type": "m.login.dummy"}}),
        )
        .await?;
        users.push((
            r["access_token"].as_str().context("no token")?.to_owned(),
            r["user_id"].as_str().context("no user id")?.to_owned(),
        ));
    }
    eprintln!("creating {} rooms", args.rooms);
    let admin = users.pop().context("no admin")?;
    let mut rooms = Vec::new();
    for r in 0..args.rooms {
        let body = post(
            &client,
            &format!("{base}/_matrix/client/v3/createRoom"),
            Some(&admin.0),
            json!({"preset": "public_chat", "name": format!("load {r}")}),
        )
        .await?;
        rooms.push(body["room_id"].as_str().context("no room id")?.to_owned());
    }
    let mut members: Vec<User> = Vec::new();
    for (i, (token, user_id)) in users.into_iter().enumerate() {
        let room = rooms[i % args.rooms].clone();
        {
            post(
                &client,
                &format!("{base}/_matrix/client/v3/join/{}", urlencode(&room)),
                Some(&token),
                json!({}),
            )
            .await?;
        }
        members.push(User {
            token,
            user_id,
            room,
        });
    }
    let start = Instant::now();
    let stats = Arc::new(Mutex::new(Stats::default()));
    let filter = urlencode(&json!({"room": {"timeline": {"limit": 400}, "state": {"lazy_load_members": true}}, "presence": {"not_types": ["*"]}}).to_string());

    // Message k is sent by member k mod n into that member's room; every member of the room
    // (the sender included) must see it.
    let member_rooms: Vec<usize> = members
        .iter()
        .map(|m| {
            rooms
                .iter()
                .position(|r| r == &m.room)
                .expect("room exists")
        })
        .collect();
    let n = members.len();
    let expected_per_user: Vec<usize> = member_rooms
        .iter()
        .map(|room| {
            (0..args.messages)
                .filter(|k| member_rooms[k % n] == *room)
                .count()
        })
        .collect();
    let mut syncers = Vec::new();
    for (m, expected) in members.iter().zip(expected_per_user) {
        let initial = get(
            &client,
            &format!("{base}/_matrix/client/v3/sync?filter={filter}&timeout=0"),
            &m.token,
        )
        .await?;
        let mut since = initial["next_batch"]
            .as_str()
            .context("no next_batch")?
            .to_owned();
        let (client, base, token, filter, stats) = (
            client.clone(),
            base.clone(),
            m.token.clone(),
            filter.clone(),
            stats.clone(),
        );
        let timeout = args.sync_timeout_ms;
        syncers.push(tokio::spawn(async move {
            let mut seen = 0usize;
            while seen < expected {
                let body = match get(&client, &format!("{base}/_matrix/client/v3/sync?filter={filter}&timeout={timeout}&since={since}"), &token).await {
                    Ok(b) => b,
                    Err(_) => {
                        stats.lock().unwrap().errors += 1;
                        continue;
                    }
                };
                let now = start.elapsed().as_secs_f64() * 1000.0;
                since = body["next_batch"].as_str().unwrap_or(&since).to_owned();
                if let Some(rooms) = body["rooms"]["join"].as_object() {
                    for room in rooms.values() {
                        for e in room["timeline"]["events"].as_array().into_iter().flatten() {
                            if let Some(sent_at) = e["content"]["lg_sent_us"].as_u64() {
                                seen += 1;
                                let sent_ms = sent_at as f64 / 1000.0;
                                let mut stats = stats.lock().unwrap();
                                stats.delivery_ms.push(now - sent_ms);
                                stats.delivery_sent_ms.push(sent_ms);
                            }
                        }
                    }
                }
            }
        }));
    }

    eprintln!(
        "sending {} messages from {} users",
        args.messages,
        members.len()
    );
    let send_start = Instant::now();
    let cpu_start = args.server_pid.and_then(cpu_ms);
    let mut senders = Vec::new();
    for (i, m) in members.iter().enumerate() {
        let count = (0..args.messages).filter(|k| k % n == i).count();
        let (client, base, token, room, stats, user_id) = (
            client.clone(),
            base.clone(),
            m.token.clone(),
            m.room.clone(),
            stats.clone(),
            m.user_id.clone(),
        );
        senders.push(tokio::spawn(async move {
            for k in 0..count {
                // Canonical JSON has no floats: microseconds as an integer.
                let sent_at = start.elapsed().as_micros() as u64;
                let t0 = Instant::now();
                let url = format!("{base}/_matrix/client/v3/rooms/{}/send/m.room.message/{user_id}-{k}", urlencode(&room));
                let body = json!({"msgtype": "m.text", "body": format!("load {k}"), "lg_sent_us": sent_at});
                match client.put(&url).bearer_auth(&token).json(&body).send().await {
                    Ok(r) if r.status().is_success() => stats.lock().unwrap().send_ms.push(t0.elapsed().as_secs_f64() * 1000.0),
                    Ok(r) => {
                        let status = r.status();
                        eprintln!("send failed: {status} {}", r.text().await.unwrap_or_default());
                        stats.lock().unwrap().errors += 1;
                    }
                    Err(e) => {
                        eprintln!("send failed: {e}");
                        stats.lock().unwrap().errors += 1;
                    }
                }
            }
        }));
    }
    for s in senders {
        s.await?;
    }
    let send_secs = send_start.elapsed().as_secs_f64();
    let deadline = Duration::from_secs(120);
    if tokio::time::timeout(deadline, futures::future::join_all(syncers))
        .await
        .is_err()
    {
        bail!("not every message was delivered within {deadline:?}");
    }
    let server_cpu_ms_per_message = match (args.server_pid.and_then(cpu_ms), cpu_start) {
        (Some(end), Some(start)) => Some((end - start) / args.messages as f64),
        _ => None,
    };
    let stats = stats.lock().unwrap();
    let mut send = stats.send_ms.clone();
    let mut delivery = stats.delivery_ms.clone();
    let waited_for_timeout = delivery
        .iter()
        .filter(|d| **d >= args.sync_timeout_ms as f64 * 0.9)
        .count();
    let tail = args
        .tail_timing
        .then(|| tail_timing(&stats.delivery_ms, &stats.delivery_sent_ms));
    let mut summary = json!({
        "messages": send.len(),
        "errors": stats.errors,
        "sends_per_s": send.len() as f64 / send_secs,
        "send_p50_ms": percentile(&mut send, 50.0),
        "send_p99_ms": percentile(&mut send, 99.0),
        "deliveries": delivery.len(),
        "delivery_p50_ms": percentile(&mut delivery, 50.0),
        "delivery_p99_ms": percentile(&mut delivery, 99.0),
        "delivery_max_ms": delivery.iter().cloned().fold(0.0, f64::max),
        "deliveries_that_waited_for_the_long_poll_timeout": waited_for_timeout,
        "server_cpu_ms_per_message": server_cpu_ms_per_message,
    });
    if let Some(tail) = tail {
        summary["slowest_1pct"] = tail;
    }
    println!("{summary}");
    Ok(())
}

/// When the slowest 1% of deliveries were sent: the share in the first tenth of the sending
/// time, and the share in the 20 ms window that holds most of them.
fn tail_timing(delivery_ms: &[f64], sent_ms: &[f64]) -> serde_json::Value {
    let mut sorted = delivery_ms.to_vec();
    let p99 = percentile(&mut sorted, 99.0);
    let first = sent_ms.iter().cloned().fold(f64::INFINITY, f64::min);
    let last = sent_ms.iter().cloned().fold(0.0, f64::max);
    let slow: Vec<f64> = delivery_ms
        .iter()
        .zip(sent_ms)
        .filter(|(d, _)| **d >= p99)
        .map(|(_, s)| s - first)
        .collect();
    if slow.is_empty() {
        return json!(null);
    }
    let in_first_tenth = slow.iter().filter(|s| **s <= (last - first) / 10.0).count();
    let mut windows: std::collections::HashMap<i64, usize> = Default::default();
    for s in &slow {
        *windows.entry((s / 20.0) as i64).or_default() += 1;
    }
    let (window, most) = windows
        .into_iter()
        .max_by_key(|(w, n)| (*n, -w))
        .unwrap_or_default();
    json!({
        "count": slow.len(),
        "share_sent_in_first_tenth": in_first_tenth as f64 / slow.len() as f64,
        "busiest_20ms_window_from_ms": window * 20,
        "share_in_busiest_20ms_window": most as f64 / slow.len() as f64,
    })
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let rank = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
    values[rank.min(values.len() - 1)]
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: Value,
) -> anyhow::Result<Value> {
    let mut req = client.post(url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await?;
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("POST {url}: {status} {body}");
    }
    Ok(body)
}

async fn get(client: &reqwest::Client, url: &str, token: &str) -> anyhow::Result<Value> {
    let r = client.get(url).bearer_auth(token).send().await?;
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("GET {url}: {status} {body}");
    }
    Ok(body)
}

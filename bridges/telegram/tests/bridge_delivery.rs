//! No loss: updates missed while down, redeliveries, flood control (see `support/harness.rs`).

#[path = "support/harness.rs"]
mod harness;

use harness::*;

async fn updates_missed_while_down_arrive_once_in_order_with_their_dates(backend: &str) {
    let h = Harness::start(backend).await;
    let portal = h.portal().await;
    let room = portal.room_id.to_string();
    h.fake.update(text_from_ann("before", json!({}))).await;
    h.wait_send(&room, "the first message", |r| r.body["body"] == "before")
        .await;
    let h = {
        h.network.stop().await.unwrap();
        // Telegram users keep talking while the bridge is down.
        for i in 0..5 {
            h.fake
                .update(text_from_ann(
                    &format!("missed {i}"),
                    json!({"date": 1_600_000_000 + i}),
                ))
                .await;
        }
        h.restart().await
    };
    h.wait_send(&room, "the last missed message", |r| {
        r.body["body"] == "missed 4"
    })
    .await;
    h.fake.update(text_from_ann("after", json!({}))).await;
    h.wait_send(&room, "a new message", |r| r.body["body"] == "after")
        .await;
    let bodies: Vec<(String, Option<u64>)> = h
        .sends(&room)
        .into_iter()
        .map(|r| (r.body["body"].as_str().unwrap_or_default().to_owned(), r.ts))
        .collect();
    let mut expected = vec![("before".to_owned(), bodies[0].1)];
    expected.extend((0..5).map(|i| (format!("missed {i}"), Some((1_600_000_000 + i) * 1000))));
    expected.push(("after".to_owned(), bodies[6].1));
    assert_eq!(
        bodies, expected,
        "each message once, in order, with its Telegram date"
    );
    h.finish().await;
}

async fn a_burst_of_429s_loses_nothing_and_keeps_order(backend: &str) {
    let h = Harness::start(backend).await;
    let portal = h.portal().await;
    let room = portal.room_id.as_str();
    h.fake.update(text_from_ann("hello", json!({}))).await;
    h.wait_send(room, "the first message", |r| r.body["body"] == "hello")
        .await;
    h.fake
        .post(
            "/_fake/fail",
            json!({"count": 3, "error_code": 429, "retry_after": 1, "method": "sendMessage"}),
        )
        .await;
    let events = (0..3)
        .map(|i| {
            matrix_event(
                "m.room.message",
                &format!("$burst{i}"),
                room,
                json!({"msgtype": "m.text", "body": format!("burst {i}")}),
            )
        })
        .collect();
    let started = Instant::now();
    h.txn(events).await;
    h.wait_sent("the last message", |m| m["text"] == "@alice:test: burst 2")
        .await;
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "three retry_after waits of 1 s"
    );
    let texts: Vec<String> = h
        .fake
        .sent(GROUP)
        .await
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        texts,
        [
            "@alice:test: burst 0",
            "@alice:test: burst 1",
            "@alice:test: burst 2"
        ]
    );
    h.finish().await;
}

/// Telegram redelivers an update whose offset was not saved (a crash between the Matrix send and the save):
/// the same message id arrives again, and must not be posted twice.
async fn a_redelivered_update_is_not_bridged_twice(backend: &str) {
    let h = Harness::start(backend).await;
    let portal = h.portal().await;
    let room = portal.room_id.to_string();
    let first = h
        .fake
        .update(text_from_ann("once", json!({"date": 1_650_000_000})))
        .await;
    h.wait_send(&room, "the message", |r| r.body["body"] == "once")
        .await;
    let h = {
        h.network.stop().await.unwrap();
        let again = json!({"message_id": first["message_id"], "date": 1_650_000_000});
        h.fake.update(text_from_ann("once", again)).await;
        h.restart().await
    };
    h.fake.update(text_from_ann("next", json!({}))).await;
    h.wait_send(&room, "the next message", |r| r.body["body"] == "next")
        .await;
    let bodies: Vec<String> = h
        .sends(&room)
        .iter()
        .map(|r| r.body["body"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(bodies, ["once", "next"]);
    h.finish().await;
}

/// 5xx answers are retried in order, like 429s. (teloxide itself waits 10 s after any 5xx before it
/// reports it, so one failure is enough here.)
async fn server_errors_are_retried_in_order(backend: &str) {
    let h = Harness::start(backend).await;
    let portal = h.portal().await;
    let room = portal.room_id.as_str();
    h.fake.update(text_from_ann("hello", json!({}))).await;
    h.wait_send(room, "the first message", |r| r.body["body"] == "hello")
        .await;
    h.fake
        .post(
            "/_fake/fail",
            json!({"count": 1, "error_code": 502, "method": "sendMessage"}),
        )
        .await;
    let events = (0..2)
        .map(|i| {
            matrix_event(
                "m.room.message",
                &format!("$e{i}"),
                room,
                json!({"msgtype": "m.text", "body": format!("m{i}")}),
            )
        })
        .collect();
    h.txn(events).await;
    h.wait_sent("the second message", |m| m["text"] == "@alice:test: m1")
        .await;
    let texts: Vec<String> = h
        .fake
        .sent(GROUP)
        .await
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, ["@alice:test: m0", "@alice:test: m1"]);
    h.finish().await;
}

/// A token Telegram refuses shows in the bridge status (and so in management rooms), and clears when polling
/// works again.
async fn a_refused_token_shows_in_the_bridge_status(backend: &str) {
    use appservice_sdk::status::BridgeState;
    let h = Harness::start(backend).await;
    h.fake
        .post(
            "/_fake/fail",
            json!({"count": 2, "error_code": 401, "method": "getUpdates"}),
        )
        .await;
    wait_for("BadCredentials", || async {
        (h.bridge.status().state_event == BridgeState::BadCredentials).then_some(())
    })
    .await;
    wait_for("Connected again", || async {
        (h.bridge.status().state_event == BridgeState::Connected).then_some(())
    })
    .await;
    h.finish().await;
}

on_both_backends!(
    updates_missed_while_down_arrive_once_in_order_with_their_dates,
    a_burst_of_429s_loses_nothing_and_keeps_order,
    a_redelivered_update_is_not_bridged_twice,
    server_errors_are_retried_in_order,
    a_refused_token_shows_in_the_bridge_status,
);

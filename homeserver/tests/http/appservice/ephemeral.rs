//! Ephemeral data in transactions (`receive_ephemeral`, MSC2409): typing, receipts, presence.

use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};

use super::{AS_TOKEN, Appservice, Setup, room_with_ghost, setup, setup_with};
use crate::support::{Db, TestServer};

impl Appservice {
    /// Every ephemeral event received, deduplicated by txn id, with the txn id it came in.
    fn ephemeral(&self) -> Vec<(u64, Value)> {
        let txns = self.seen.ephemeral.lock().unwrap();
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for (txn, events) in txns.iter() {
            if seen.insert(txn.clone()) {
                out.extend(events.iter().map(|e| (txn.parse().unwrap(), e.clone())));
            }
        }
        out
    }

    /// Waits until an ephemeral event matching `pred` arrives (or panics after 10 s).
    async fn wait_for_ephemeral(&self, what: &str, pred: impl Fn(&Value) -> bool) -> (u64, Value) {
        for _ in 0..200 {
            if let Some(found) = self.ephemeral().into_iter().find(|(_, e)| pred(e)) {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no {what} arrived: {:?}", self.ephemeral());
    }

    /// The txn id a message with this body arrived in.
    fn txn_of_message(&self, body: &str) -> u64 {
        let txns = self.seen.txns.lock().unwrap();
        let (txn, _) = txns
            .iter()
            .find(|(_, events)| events.iter().any(|e| e["content"]["body"] == body))
            .unwrap();
        txn.parse().unwrap()
    }
}

async fn typing(s: &TestServer, token: &str, room: &str, user: &str, typing: bool) {
    let r = s
        .put(
            &format!("/_matrix/client/v3/rooms/{room}/typing/{user}"),
            Some(token),
            json!({"typing": typing, "timeout": 30000}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
}

async fn receipt(s: &TestServer, token: &str, room: &str, kind: &str, event: &str) {
    let r = s
        .post(
            &format!("/_matrix/client/v3/rooms/{room}/receipt/{kind}/{event}"),
            Some(token),
            json!({}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
}

const OPTED_IN: &str = "receive_ephemeral: true\n";
const PRESENCE: &str = "presence:\n  enabled: true\n";

async fn typing_receipts_and_presence_reach_appservices_that_opted_in(db: Db) {
    let Setup {
        server: s,
        appservice,
        ..
    } = setup_with(db, OPTED_IN, PRESENCE).await;
    let (alice, room) = room_with_ghost(&s).await;
    let ghost = "@bridge_ghost:test.local";
    typing(&s, &alice, &room, "@alice:test.local", true).await;
    let (_, t) = appservice
        .wait_for_ephemeral("typing", |e| e["type"] == "m.typing")
        .await;
    assert_eq!(t["room_id"], room.as_str(), "{t}");
    assert_eq!(
        t["content"]["user_ids"],
        json!(["@alice:test.local"]),
        "{t}"
    );
    typing(&s, &alice, &room, "@alice:test.local", false).await;
    appservice
        .wait_for_ephemeral("typing stopped", |e| {
            e["type"] == "m.typing" && e["content"]["user_ids"] == json!([])
        })
        .await;

    let event = s.send_text(&alice, &room, "read me").await;
    receipt(&s, &alice, &room, "m.read", &event).await;
    // Others' private receipts are not the appservice's business; its own users' are.
    receipt(&s, &alice, &room, "m.read.private", &event).await;
    let r = s
        .post(
            &format!(
                "/_matrix/client/v3/rooms/{room}/receipt/m.read.private/{event}?user_id={ghost}"
            ),
            Some(AS_TOKEN),
            json!({}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    s.send_text(&alice, &room, "after the receipts").await;
    let (receipt_txn, r) = appservice
        .wait_for_ephemeral("alice's receipt", |e| {
            e["type"] == "m.receipt"
                && e["content"][&event]["m.read"]["@alice:test.local"].is_object()
        })
        .await;
    assert_eq!(r["room_id"], room.as_str(), "{r}");
    assert!(
        r["content"][&event]["m.read"]["@alice:test.local"]["ts"].is_i64(),
        "{r}"
    );
    appservice
        .wait_for_ephemeral("the ghost's private receipt", |e| {
            e["type"] == "m.receipt" && e["content"][&event]["m.read.private"][ghost].is_object()
        })
        .await;
    appservice.wait_for_messages(2).await;
    assert!(
        appservice
            .ephemeral()
            .iter()
            .all(|(_, e)| e["content"][&event]["m.read.private"]["@alice:test.local"].is_null()),
        "{:?}",
        appservice.ephemeral()
    );
    // In order with events: the receipt went out no later than the message sent after it, and
    // after the message it points at.
    assert!(receipt_txn <= appservice.txn_of_message("after the receipts"));
    assert!(receipt_txn >= appservice.txn_of_message("read me"));

    // Presence of a user sharing a room with its ghost.
    let r = s
        .put(
            "/_matrix/client/v3/presence/@alice:test.local/status",
            Some(&alice),
            json!({"presence": "unavailable", "status_msg": "away"}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    let (_, p) = appservice
        .wait_for_ephemeral("presence", |e| e["type"] == "m.presence")
        .await;
    assert_eq!(p["sender"], "@alice:test.local");
    assert_eq!(p["content"]["presence"], "unavailable");
    assert_eq!(p["content"]["status_msg"], "away");
    // Only the spec's key.
    let keys = appservice.seen.body_keys.lock().unwrap().clone();
    assert!(keys.contains("ephemeral"), "{keys:?}");
    assert!(!keys.contains("de.sorunome.msc2409.ephemeral"), "{keys:?}");
}

async fn ephemeral_data_of_rooms_without_its_users_is_not_sent(db: Db) {
    let Setup {
        server: s,
        appservice,
        ..
    } = setup_with(db, OPTED_IN, PRESENCE).await;
    let (alice, room) = room_with_ghost(&s).await;
    let (_, bob, _) = s.register("bob", "password-bob").await;
    let other = s
        .create_room(&alice, json!({"preset": "public_chat"}))
        .await;
    s.join(&bob, &other).await;
    let event = s.send_text(&alice, &other, "private").await;
    typing(&s, &alice, &other, "@alice:test.local", true).await;
    receipt(&s, &bob, &other, "m.read", &event).await;
    // Bob shares no room with the ghost.
    s.put(
        "/_matrix/client/v3/presence/@bob:test.local/status",
        Some(&bob),
        json!({"presence": "online"}),
    )
    .await;
    // Then something it does see, which comes after all of the above.
    typing(&s, &alice, &room, "@alice:test.local", true).await;
    s.send_text(&alice, &room, "bridged").await;
    appservice.wait_for_messages(1).await;
    appservice
        .wait_for_ephemeral("typing in the bridged room", |e| {
            e["room_id"] == room.as_str()
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (_, e) in appservice.ephemeral() {
        assert_ne!(e["room_id"], other.as_str(), "{e}");
        assert_ne!(e["sender"], "@bob:test.local", "{e}");
    }
}

async fn the_msc2409_key_opts_in_too(db: Db) {
    let Setup {
        server: s,
        appservice,
        ..
    } = setup_with(db, "de.sorunome.msc2409.push_ephemeral: true\n", "").await;
    let (alice, room) = room_with_ghost(&s).await;
    typing(&s, &alice, &room, "@alice:test.local", true).await;
    appservice
        .wait_for_ephemeral("typing", |e| e["type"] == "m.typing")
        .await;
}

async fn appservices_that_did_not_opt_in_get_no_ephemeral_data(db: Db) {
    let Setup {
        server: s,
        appservice,
        ..
    } = setup(db).await;
    let (alice, room) = room_with_ghost(&s).await;
    typing(&s, &alice, &room, "@alice:test.local", true).await;
    let event = s.send_text(&alice, &room, "one").await;
    receipt(&s, &alice, &room, "m.read", &event).await;
    s.send_text(&alice, &room, "two").await;
    appservice.wait_for_messages(2).await;
    assert!(
        appservice.ephemeral().is_empty(),
        "{:?}",
        appservice.ephemeral()
    );
    assert!(
        !appservice
            .seen
            .body_keys
            .lock()
            .unwrap()
            .contains("ephemeral")
    );
}

async fn receipts_survive_an_outage_and_a_restart(db: Db) {
    let Setup {
        server: s,
        appservice,
        _dir,
    } = setup_with(db, OPTED_IN, "").await;
    let (alice, room) = room_with_ghost(&s).await;
    let event = s.send_text(&alice, &room, "read me").await;
    appservice.wait_for_messages(1).await;
    appservice.set_down(true);
    receipt(&s, &alice, &room, "m.read", &event).await;
    for _ in 0..200 {
        if *appservice.seen.refused.lock().unwrap() >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(*appservice.seen.refused.lock().unwrap() >= 1);
    let s = s.restart().await;
    appservice.set_down(false);
    appservice
        .wait_for_ephemeral("the receipt", |e| {
            e["type"] == "m.receipt"
                && e["content"][&event]["m.read"]["@alice:test.local"].is_object()
        })
        .await;
    // A receipt given while the appservice was down is delivered once.
    let count = appservice
        .ephemeral()
        .iter()
        .filter(|(_, e)| e["type"] == "m.receipt")
        .count();
    assert_eq!(count, 1);
    drop(s);
}

on_both_backends!(
    typing_receipts_and_presence_reach_appservices_that_opted_in,
    ephemeral_data_of_rooms_without_its_users_is_not_sent,
    the_msc2409_key_opts_in_too,
    appservices_that_did_not_opt_in_get_no_ephemeral_data,
    receipts_survive_an_outage_and_a_restart,
);

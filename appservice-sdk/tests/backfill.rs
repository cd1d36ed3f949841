//! Backfill: batch send when advertised, else one `ts` send per event; resumable.

use appservice_sdk::Appservice;
use appservice_sdk::backfill::{BATCH_SIZE, HistoryEvent, backfill};
use appservice_sdk::content;
use appservice_sdk::registration::Registration;
use appservice_sdk::store::{PortalRecord, Store};
use appservice_sdk::testing::TestHomeserver;

fn registration() -> Registration {
    Registration::from_yaml(
        "id: t\nurl: null\nas_token: a\nhs_token: h\nsender_localpart: bot\nnamespaces: {}\n",
    )
    .unwrap()
}

async fn setup(
    batch: bool,
) -> (
    TestHomeserver,
    Appservice,
    Store,
    PortalRecord,
    tempfile::TempDir,
) {
    let hs = TestHomeserver::start(batch).await;
    let appservice = Appservice::new(registration(), hs.url(), "test").unwrap();
    appservice.client().discover_versions().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite:{}", dir.path().join("b.db").display()))
        .await
        .unwrap();
    let portal = PortalRecord {
        remote_id: "chat".to_owned(),
        room_id: "!room:test".try_into().unwrap(),
        name: None,
        relay_enabled: false,
    };
    store.upsert_portal(&portal).await.unwrap();
    (hs, appservice, store, portal, dir)
}

fn history(appservice: &Appservice, n: usize) -> Vec<HistoryEvent> {
    (0..n)
        .map(|i| HistoryEvent {
            remote_id: format!("m{i}"),
            sender: appservice.user_id(&format!("echo_{}", i % 3)).unwrap(),
            event_type: "m.room.message".to_owned(),
            content: content::text(&format!("old {i}")),
            ts: 1_600_000_000_000 + i as u64,
            state_key: None,
        })
        .collect()
}

#[tokio::test]
async fn an_advertised_batch_send_carries_history_in_batches() {
    let (hs, appservice, store, portal, _dir) = setup(true).await;
    let events = history(&appservice, 250);
    let report = backfill(&appservice, &store, &portal, &events)
        .await
        .unwrap();
    assert_eq!(
        (report.sent, report.skipped, report.batched),
        (250, 0, true)
    );
    let batches = hs.recorded_of("batch_send");
    let sizes: Vec<_> = batches
        .iter()
        .map(|b| b.body["events"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [BATCH_SIZE, BATCH_SIZE, 50]);
    let first = &batches[0].body["events"][0];
    assert_eq!(first["sender"], "@echo_0:test");
    assert_eq!(first["origin_server_ts"], 1_600_000_000_000u64);
    assert_eq!(first["content"]["body"], "old 0");
    assert!(hs.recorded_of("send").is_empty());
    assert_eq!(
        store.backfill_cursor("chat").await.unwrap().as_deref(),
        Some("m249")
    );
    assert!(
        store
            .message_by_remote_id("chat", "m120")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn without_batch_send_each_event_goes_alone_in_order_with_its_ts() {
    let (hs, appservice, store, portal, _dir) = setup(false).await;
    let events = history(&appservice, 5);
    let report = backfill(&appservice, &store, &portal, &events)
        .await
        .unwrap();
    assert_eq!((report.sent, report.batched), (5, false));
    let sends = hs.recorded_of("send");
    let got: Vec<_> = sends
        .iter()
        .map(|s| (s.body["body"].as_str().unwrap().to_owned(), s.ts.unwrap()))
        .collect();
    let want: Vec<_> = events
        .iter()
        .map(|e| (e.content["body"].as_str().unwrap().to_owned(), e.ts))
        .collect();
    assert_eq!(got, want);
    assert_eq!(sends[1].user_id.as_deref(), Some("@echo_1:test"));
}

#[tokio::test]
async fn a_backfill_resumes_after_its_cursor_and_never_sends_twice() {
    let (hs, appservice, store, portal, _dir) = setup(false).await;
    let events = history(&appservice, 6);
    // An earlier run got through the first three before it was interrupted.
    backfill(&appservice, &store, &portal, &events[..3])
        .await
        .unwrap();
    hs.clear();
    let report = backfill(&appservice, &store, &portal, &events)
        .await
        .unwrap();
    assert_eq!((report.sent, report.skipped), (3, 3));
    let bodies: Vec<_> = hs
        .recorded_of("send")
        .iter()
        .map(|s| s.body["body"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(bodies, ["old 3", "old 4", "old 5"]);
    let again = backfill(&appservice, &store, &portal, &events)
        .await
        .unwrap();
    assert_eq!((again.sent, again.skipped), (0, 6));
}

#[tokio::test]
async fn a_failed_batch_leaves_the_cursor_at_the_last_batch_that_landed() {
    let (hs, appservice, store, portal, _dir) = setup(true).await;
    let events = history(&appservice, 150);
    backfill(&appservice, &store, &portal, &events[..100])
        .await
        .unwrap();
    hs.fail_next(1, 400, None);
    assert!(
        backfill(&appservice, &store, &portal, &events)
            .await
            .is_err()
    );
    assert_eq!(
        store.backfill_cursor("chat").await.unwrap().as_deref(),
        Some("m99")
    );
    let report = backfill(&appservice, &store, &portal, &events)
        .await
        .unwrap();
    assert_eq!((report.sent, report.skipped), (50, 100));
}

//! Intents and the client against the in-process test homeserver: what goes over the wire.

use std::time::Duration;

use appservice_sdk::Appservice;
use appservice_sdk::client::{Client, RetryPolicy};
use appservice_sdk::content;
use appservice_sdk::intent::SendOptions;
use appservice_sdk::registration::Registration;
use appservice_sdk::testing::TestHomeserver;
use ruma::{EventId, RoomId};

fn registration() -> Registration {
    Registration::from_yaml(
        r#"
id: echo
url: http://127.0.0.1:1
as_token: as-secret
hs_token: hs-secret
sender_localpart: bot
namespaces: {users: [{exclusive: true, regex: "@echo_.*:test"}]}
"#,
    )
    .unwrap()
}

fn appservice(hs: &TestHomeserver) -> Appservice {
    let client = Client::new(hs.url(), "as-secret").with_retry_policy(RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
    });
    Appservice::with_client(registration(), client, "test").unwrap()
}

fn room() -> &'static RoomId {
    <&RoomId>::try_from("!room:test").unwrap()
}

#[tokio::test]
async fn a_ghost_is_registered_once_and_joins_before_its_first_message() {
    let hs = TestHomeserver::start(false).await;
    let appservice = appservice(&hs);
    let ghost = appservice.intent(&appservice.user_id("echo_alice").unwrap());
    ghost
        .send_text(room(), "one", SendOptions::default())
        .await
        .unwrap();
    ghost
        .send_text(room(), "two", SendOptions::default())
        .await
        .unwrap();
    let kinds: Vec<_> = hs.recorded().into_iter().map(|r| r.kind).collect();
    assert_eq!(kinds, ["register", "join", "send", "send"]);
    let register = &hs.recorded_of("register")[0];
    assert_eq!(register.body["type"], "m.login.application_service");
    assert_eq!(register.body["username"], "echo_alice");
    let sends = hs.recorded_of("send");
    assert!(
        sends
            .iter()
            .all(|s| s.user_id.as_deref() == Some("@echo_alice:test"))
    );
    assert_eq!(sends[1].body["body"], "two");
}

#[tokio::test]
async fn an_already_registered_ghost_is_not_an_error() {
    let hs = TestHomeserver::start(false).await;
    let first = appservice(&hs);
    first
        .intent(&first.user_id("echo_a").unwrap())
        .ensure_registered()
        .await
        .unwrap();
    let restarted = appservice(&hs);
    restarted
        .intent(&restarted.user_id("echo_a").unwrap())
        .ensure_registered()
        .await
        .unwrap();
    assert_eq!(hs.recorded_of("register").len(), 2);
}

#[tokio::test]
async fn when_a_room_needs_an_invite_the_bot_invites_the_ghost() {
    let hs = TestHomeserver::start(false).await;
    hs.make_invite_only("!room:test", "@bot:test");
    let appservice = appservice(&hs);
    let ghost = appservice.intent(&appservice.user_id("echo_bob").unwrap());
    ghost.ensure_joined(room()).await.unwrap();
    let kinds: Vec<_> = hs.recorded().into_iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        ["register", "join_refused", "join", "invite", "join"]
    );
    let invite = &hs.recorded_of("invite")[0];
    assert_eq!(invite.user_id.as_deref(), Some("@bot:test"));
    assert_eq!(invite.body["user_id"], "@echo_bob:test");
}

#[tokio::test]
async fn every_kind_of_send_carries_its_ts_and_shape() {
    let hs = TestHomeserver::start(false).await;
    let appservice = appservice(&hs);
    let ghost = appservice.intent(&appservice.user_id("echo_c").unwrap());
    let at = |ts| SendOptions::at(ts);
    let parent = ghost.send_text(room(), "text", at(1)).await.unwrap();
    ghost.send_notice(room(), "notice", at(2)).await.unwrap();
    ghost.send_emote(room(), "emote", at(3)).await.unwrap();
    ghost
        .send_html(room(), "b", "<b>b</b>", at(4))
        .await
        .unwrap();
    ghost
        .send_media(room(), vec![1, 2, 3], "image/png", "a.png", at(5))
        .await
        .unwrap();
    ghost
        .send_reply(room(), &parent, content::text("re"), at(6))
        .await
        .unwrap();
    ghost
        .send_edit(room(), &parent, content::text("text2"), at(7))
        .await
        .unwrap();
    ghost.react(room(), &parent, "👍", at(8)).await.unwrap();
    ghost
        .redact(room(), &parent, Some("why"), at(9))
        .await
        .unwrap();
    ghost
        .send_state(
            room(),
            "m.bridge",
            "k",
            &serde_json::json!({"a": 1}),
            at(10),
        )
        .await
        .unwrap();

    let sends = hs.recorded_of("send");
    let ts: Vec<_> = sends.iter().map(|s| s.ts).collect();
    assert_eq!(ts, [1, 2, 3, 4, 5, 6, 7, 8].map(Some));
    let msgtypes: Vec<_> = sends
        .iter()
        .map(|s| s.body["msgtype"].as_str().unwrap_or("-").to_owned())
        .collect();
    assert_eq!(
        msgtypes,
        [
            "m.text", "m.notice", "m.emote", "m.text", "m.image", "m.text", "m.text", "-"
        ]
    );
    assert_eq!(sends[3].body["formatted_body"], "<b>b</b>");
    assert_eq!(sends[4].body["url"], "mxc://test/uploaded");
    assert_eq!(
        sends[5].body["m.relates_to"]["m.in_reply_to"]["event_id"],
        parent.as_str()
    );
    assert_eq!(sends[6].body["m.new_content"]["body"], "text2");
    assert_eq!(sends[7].event_type.as_deref(), Some("m.reaction"));
    let redact = &hs.recorded_of("redact")[0];
    assert_eq!(
        (redact.ts, redact.body["reason"].as_str()),
        (Some(9), Some("why"))
    );
    assert_eq!(redact.body["redacts"], parent.as_str());
    assert_eq!(hs.recorded_of("state")[0].ts, Some(10));
    assert_eq!(hs.recorded_of("upload").len(), 1);
}

#[tokio::test]
async fn the_same_txn_id_posts_once() {
    let hs = TestHomeserver::start(false).await;
    let appservice = appservice(&hs);
    let ghost = appservice.intent(&appservice.user_id("echo_d").unwrap());
    let opts = || SendOptions::default().txn_id("remote-1");
    let a = ghost.send_text(room(), "x", opts()).await.unwrap();
    let b = ghost.send_text(room(), "x", opts()).await.unwrap();
    assert_eq!(a, b);
    assert_eq!(hs.recorded_of("send").len(), 1);
}

#[tokio::test]
async fn profile_typing_and_receipts_go_to_their_endpoints() {
    let hs = TestHomeserver::start(false).await;
    let appservice = appservice(&hs);
    let ghost = appservice.intent(&appservice.user_id("echo_e").unwrap());
    ghost.set_displayname("Eve").await.unwrap();
    let mxc = ghost.set_avatar(vec![0; 10], "image/png").await.unwrap();
    assert_eq!(mxc.as_str(), "mxc://test/uploaded");
    ghost
        .typing(room(), Some(Duration::from_secs(5)))
        .await
        .unwrap();
    ghost
        .mark_read(room(), <&EventId>::try_from("$x").unwrap())
        .await
        .unwrap();
    assert_eq!(hs.recorded_of("displayname")[0].body["displayname"], "Eve");
    assert_eq!(
        hs.recorded_of("avatar_url")[0].body["avatar_url"],
        "mxc://test/uploaded"
    );
    assert_eq!(hs.recorded_of("typing")[0].body["typing"], true);
    assert_eq!(hs.recorded_of("receipt")[0].body["type"], "m.read");
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried() {
    let hs = TestHomeserver::start(false).await;
    let appservice = appservice(&hs);
    let bot = appservice.bot();
    hs.fail_next(2, 429, Some(20));
    let started = std::time::Instant::now();
    bot.send_text(room(), "after 429s", SendOptions::default())
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(40),
        "retry_after_ms was not honoured"
    );
    hs.fail_next(3, 502, None);
    bot.send_text(room(), "after 502s", SendOptions::default())
        .await
        .unwrap();
    assert_eq!(hs.recorded_of("send").len(), 2);
}

#[tokio::test]
async fn retries_give_up_after_the_policy_and_client_errors_are_not_retried() {
    let hs = TestHomeserver::start(false).await;
    let appservice = appservice(&hs);
    let bot = appservice.bot();
    hs.fail_next(10, 500, None);
    let err = bot
        .send_text(room(), "x", SendOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.errcode(), Some("M_UNKNOWN"));
    hs.fail_next(2, 400, None);
    assert!(
        bot.send_text(room(), "y", SendOptions::default())
            .await
            .is_err()
    );
    // One 400 was consumed, one remains: the request was not retried.
    assert!(
        bot.send_text(room(), "z", SendOptions::default())
            .await
            .is_err()
    );
    bot.send_text(room(), "w", SendOptions::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn downloading_an_mxc_uri_falls_back_to_the_legacy_media_route() {
    let hs = TestHomeserver::start(false).await;
    let appservice = appservice(&hs);
    let mxc = appservice
        .bot()
        .upload(b"GIF89a...".to_vec(), "image/gif", "cat.gif")
        .await
        .unwrap();
    let media = appservice
        .client()
        .download_mxc(mxc.as_str())
        .await
        .unwrap();
    assert_eq!(&media.data[..], b"GIF89a...");
    assert_eq!(media.content_type.as_deref(), Some("image/gif"));
    let missing = appservice
        .client()
        .download_mxc("mxc://test/other")
        .await
        .unwrap_err();
    assert_eq!(missing.errcode(), Some("M_NOT_FOUND"));
    for not_mxc in [
        "https://test/uploaded",
        "mxc://test",
        "mxc:///x",
        "mxc://test/a/b",
    ] {
        assert!(
            matches!(
                appservice.client().download_mxc(not_mxc).await,
                Err(appservice_sdk::Error::Protocol(_))
            ),
            "{not_mxc}"
        );
    }
}

//! The bridge framework driven in-process: transactions in through the router, network calls
//! and homeserver requests out (to the in-process test homeserver).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use appservice_sdk::bridge::{
    Bridge, MatrixEdit, MatrixMessage, MatrixRedaction, Network, NetworkInfo, RedactionTarget,
    RemoteEvent, RemoteEventKind, RemoteSender,
};
use appservice_sdk::commands::{CommandContext, CommandHelp};
use appservice_sdk::config::{BridgeConfig, Permission};
use appservice_sdk::intent::RoomOptions;
use appservice_sdk::registration::Registration;
use appservice_sdk::server::ThirdPartyLookup;
use appservice_sdk::store::{PortalRecord, Store};
use appservice_sdk::testing::TestHomeserver;
use appservice_sdk::{Appservice, Result};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use ruma::{RoomAliasId, RoomId, UserId};
use serde_json::{Value, json};
use tower::ServiceExt;

/// Records what reaches the network, and answers each message from a ghost like the echo
/// bridge does.
#[derive(Default)]
struct Mirror {
    bridge: OnceLock<Bridge>,
    seen: Mutex<Vec<String>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    displaynames: Mutex<Vec<Option<String>>>,
}

#[async_trait::async_trait]
impl ThirdPartyLookup for Mirror {
    async fn thirdparty_protocol(&self, protocol: &str) -> Option<Value> {
        (protocol == "mirror").then(|| {
            json!({"user_fields": [], "location_fields": ["chat"], "icon": "mxc://x/y",
            "field_types": {}, "instances": []})
        })
    }
}

#[async_trait::async_trait]
impl Network for Mirror {
    fn info(&self) -> NetworkInfo {
        let mut info = NetworkInfo::new("mirror", "Mirror", "mirror_");
        info.alias_prefix = Some("mirror_".to_owned());
        info
    }

    async fn portal_for_alias(&self, alias: &RoomAliasId) -> Result<Option<(String, RoomOptions)>> {
        let chat = alias.alias().trim_start_matches("mirror_");
        if chat == "missing" {
            return Ok(None);
        }
        Ok(Some((
            format!("chat:{chat}"),
            RoomOptions {
                name: Some(chat.to_owned()),
                ..Default::default()
            },
        )))
    }

    fn third_party(&self) -> Option<&dyn ThirdPartyLookup> {
        Some(self)
    }

    /// A route of the network's own, e.g. what a media proxy would serve.
    fn routes(&self) -> Option<axum::Router> {
        Some(axum::Router::new().route(
            "/_mirror/echo/{word}",
            axum::routing::get(
                |axum::extract::Path(word): axum::extract::Path<String>| async move {
                    format!("mirror: {word}")
                },
            ),
        ))
    }

    fn commands(&self) -> Vec<CommandHelp> {
        vec![
            CommandHelp::new("mirror", "mirror TEXT: the bridge says TEXT back"),
            CommandHelp::new(
                "unlink",
                "unlink: stop bridging this room (the user who linked it)",
            ),
        ]
    }

    /// `mirror TEXT` for anyone; `unlink` for `user` permission in a portal, else the built-in one.
    async fn handle_command(
        &self,
        context: &CommandContext<'_>,
        command: &str,
        args: &[&str],
    ) -> Result<Option<String>> {
        match command {
            "mirror" => Ok(Some(format!(
                "{} says {} (management room: {})",
                context.sender,
                args.join(" "),
                context.in_management_room
            ))),
            "unlink" if context.permission == Permission::User => {
                let Some(portal) = context.portal else {
                    return Ok(Some("Not a portal.".to_owned()));
                };
                context
                    .bridge
                    .store()
                    .delete_portal(&portal.remote_id)
                    .await?;
                Ok(Some(format!("Unlinked {}.", portal.remote_id)))
            }
            _ => Ok(None),
        }
    }

    async fn start(&self, bridge: Bridge) -> Result<()> {
        let _ = self.bridge.set(bridge);
        Ok(())
    }

    async fn portal_for_invite(
        &self,
        room_id: &RoomId,
        _inviter: &UserId,
    ) -> Result<Option<String>> {
        Ok(Some(format!("chat:{room_id}")))
    }

    async fn handle_matrix_message(
        &self,
        portal: &PortalRecord,
        m: &MatrixMessage,
    ) -> Result<Option<String>> {
        // Slow enough that events of two rooms overlap.
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.displaynames
            .lock()
            .unwrap()
            .push(m.sender_displayname.clone());
        self.seen
            .lock()
            .unwrap()
            .push(format!("{} {}", portal.room_id, m.body));
        let echo = RemoteEvent {
            id: format!("echo:{}", m.event_id),
            sender: RemoteSender {
                id: m.sender.localpart().to_owned(),
                displayname: Some("Echo".to_owned()),
            },
            ts: Some(1234),
            kind: RemoteEventKind::Message {
                content: json!({"msgtype": "m.text", "body": m.body}),
                reply_to: None,
            },
        };
        self.bridge
            .get()
            .unwrap()
            .handle_remote_event(portal, echo)
            .await?;
        Ok(Some(format!("in:{}", m.event_id)))
    }

    async fn handle_matrix_edit(&self, portal: &PortalRecord, e: &MatrixEdit) -> Result<()> {
        self.seen.lock().unwrap().push(format!(
            "{} edit {} {}",
            portal.room_id, e.target_remote_id, e.body
        ));
        Ok(())
    }

    async fn handle_matrix_typing(
        &self,
        portal: &PortalRecord,
        user: &UserId,
        typing: bool,
    ) -> Result<()> {
        self.seen
            .lock()
            .unwrap()
            .push(format!("{} typing {user} {typing}", portal.room_id));
        Ok(())
    }

    async fn handle_matrix_receipt(
        &self,
        portal: &PortalRecord,
        user: &UserId,
        remote_id: &str,
    ) -> Result<()> {
        self.seen
            .lock()
            .unwrap()
            .push(format!("{} read {user} {remote_id}", portal.room_id));
        Ok(())
    }

    async fn handle_matrix_redaction(
        &self,
        portal: &PortalRecord,
        r: &MatrixRedaction,
    ) -> Result<()> {
        let RedactionTarget::Message(target) = &r.target else {
            return Ok(());
        };
        self.seen
            .lock()
            .unwrap()
            .push(format!("{} redact {target}", portal.room_id));
        Ok(())
    }
}

struct Harness {
    hs: TestHomeserver,
    network: Arc<Mirror>,
    bridge: Bridge,
    router: axum::Router,
    next: Mutex<u32>,
    _dir: tempfile::TempDir,
}

const CONFIG: &str = r#"
homeserver: {address: "http://unused", domain: test}
appservice: {address: "http://unused", id: mirror, bot: {username: bot}}
bridge:
  permissions: {elsewhere: relay, test: user, "@boss:test": admin}
  relay: {enabled: true, message_format: "{sender}: {body}"}
"#;

async fn harness() -> Harness {
    harness_on(TestHomeserver::start(false).await).await
}

async fn harness_on(hs: TestHomeserver) -> Harness {
    let registration = Registration::from_yaml(
        "id: mirror\nurl: null\nas_token: a\nhs_token: h\nsender_localpart: bot\nnamespaces: {}\n",
    )
    .unwrap();
    let appservice = Appservice::new(registration, hs.url(), "test").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite:{}", dir.path().join("b.db").display()))
        .await
        .unwrap();
    let network = Arc::new(Mirror::default());
    let config: BridgeConfig = BridgeConfig::from_yaml(CONFIG).unwrap();
    let bridge = Bridge::from_parts(appservice, store, network.clone(), &config);
    bridge.start().await.unwrap();
    let router = bridge.router();
    Harness {
        hs,
        network,
        bridge,
        router,
        next: Mutex::new(0),
        _dir: dir,
    }
}

impl Harness {
    async fn txn(&self, events: Vec<Value>) -> StatusCode {
        let id = {
            let mut n = self.next.lock().unwrap();
            *n += 1;
            *n
        };
        self.txn_with_id(&format!("t{id}"), events).await
    }

    async fn txn_with_id(&self, txn_id: &str, events: Vec<Value>) -> StatusCode {
        self.send_txn(txn_id, json!({"events": events})).await
    }

    async fn ephemeral(&self, events: Vec<Value>) -> StatusCode {
        let id = {
            let mut n = self.next.lock().unwrap();
            *n += 1;
            *n
        };
        self.send_txn(
            &format!("e{id}"),
            json!({"events": [], "de.sorunome.msc2409.ephemeral": events}),
        )
        .await
    }

    async fn send_txn(&self, txn_id: &str, body: Value) -> StatusCode {
        let req = Request::put(format!("/_matrix/app/v1/transactions/{txn_id}"))
            .header("authorization", "Bearer h")
            .body(Body::from(body.to_string()))
            .unwrap();
        self.router.clone().oneshot(req).await.unwrap().status()
    }

    fn seen(&self) -> Vec<String> {
        self.network.seen.lock().unwrap().clone()
    }

    async fn portal(&self, room: &str) {
        let status = self.txn(vec![invite(room, "@alice:test", false)]).await;
        assert_eq!(status, StatusCode::OK);
    }
}

fn invite(room: &str, inviter: &str, is_direct: bool) -> Value {
    json!({"type": "m.room.member", "event_id": format!("$inv{room}{is_direct}"), "room_id": room,
        "sender": inviter, "state_key": "@bot:test", "origin_server_ts": 1,
        "content": {"membership": "invite", "is_direct": is_direct}})
}

fn message(id: &str, room: &str, sender: &str, body: &str) -> Value {
    json!({"type": "m.room.message", "event_id": id, "room_id": room, "sender": sender,
        "origin_server_ts": 10, "content": {"msgtype": "m.text", "body": body}})
}

#[tokio::test]
async fn an_invite_makes_a_portal_and_a_message_comes_back_from_a_ghost() {
    let h = harness().await;
    h.portal("!a:test").await;
    let portal = h
        .bridge
        .store()
        .portal_by_room_id("!a:test")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(portal.remote_id, "chat:!a:test");
    let bot_joins = h.hs.recorded_of("join");
    assert_eq!(bot_joins[0].user_id.as_deref(), Some("@bot:test"));
    let state_types: Vec<_> =
        h.hs.recorded_of("state")
            .into_iter()
            .filter_map(|s| s.event_type)
            .collect();
    assert_eq!(state_types, ["m.bridge", "uk.half-shot.bridge"]);

    assert_eq!(
        h.txn(vec![message("$m1", "!a:test", "@alice:test", "hi")])
            .await,
        StatusCode::OK
    );
    assert_eq!(h.seen(), ["!a:test hi"]);
    let sends = h.hs.recorded_of("send");
    let echo = sends.iter().find(|s| s.body["body"] == "hi").unwrap();
    assert_eq!(echo.user_id.as_deref(), Some("@mirror_alice:test"));
    assert_eq!(echo.ts, Some(1234));
    assert_eq!(
        h.hs.recorded_of("displayname")[0].body["displayname"],
        "Echo"
    );
    let stored = h
        .bridge
        .store()
        .message_by_event_id("$m1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.remote_id, "in:$m1");
}

#[tokio::test]
async fn events_keep_their_order_within_a_portal_while_portals_run_side_by_side() {
    let h = harness().await;
    h.portal("!a:test").await;
    h.portal("!b:test").await;
    let mut events = Vec::new();
    for i in 0..5 {
        events.push(message(
            &format!("$a{i}"),
            "!a:test",
            "@alice:test",
            &format!("a{i}"),
        ));
        events.push(message(
            &format!("$b{i}"),
            "!b:test",
            "@alice:test",
            &format!("b{i}"),
        ));
    }
    assert_eq!(h.txn(events).await, StatusCode::OK);
    let seen = h.seen();
    for room in ["!a:test", "!b:test"] {
        let in_room: Vec<_> = seen
            .iter()
            .filter(|s| s.starts_with(room))
            .cloned()
            .collect();
        let letter = &room[1..2];
        let want: Vec<_> = (0..5).map(|i| format!("{room} {letter}{i}")).collect();
        assert_eq!(in_room, want);
    }
    // The two portals were handled side by side.
    assert_eq!(h.network.max_in_flight.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_event_redelivered_in_another_transaction_is_handled_once() {
    let h = harness().await;
    h.portal("!a:test").await;
    let m = message("$m1", "!a:test", "@alice:test", "once");
    h.txn_with_id("x1", vec![m.clone()]).await;
    h.txn_with_id("x2", vec![m]).await;
    assert_eq!(h.seen(), ["!a:test once"]);
}

#[tokio::test]
async fn edits_and_redactions_reach_the_network_with_remote_ids() {
    let h = harness().await;
    h.portal("!a:test").await;
    h.txn(vec![message("$m1", "!a:test", "@alice:test", "v1")])
        .await;
    let mut edit = message("$e1", "!a:test", "@alice:test", "* v2");
    edit["content"]["m.new_content"] = json!({"msgtype": "m.text", "body": "v2"});
    edit["content"]["m.relates_to"] = json!({"rel_type": "m.replace", "event_id": "$m1"});
    let redaction = json!({"type": "m.room.redaction", "event_id": "$r1", "room_id": "!a:test",
        "sender": "@alice:test", "redacts": "$m1", "origin_server_ts": 1, "content": {}});
    h.txn(vec![edit, redaction]).await;
    assert_eq!(
        h.seen()[1..],
        ["!a:test edit in:$m1 v2", "!a:test redact in:$m1"]
    );
    assert!(
        h.bridge
            .store()
            .message_by_event_id("$m1")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn ghosts_and_the_bot_are_never_bridged_back() {
    let h = harness().await;
    h.portal("!a:test").await;
    h.txn(vec![
        message("$g", "!a:test", "@mirror_alice:test", "loop?"),
        message("$b", "!a:test", "@bot:test", "loop?"),
    ])
    .await;
    assert!(h.seen().is_empty());
}

#[tokio::test]
async fn relay_users_are_bridged_only_once_an_admin_turns_relay_on() {
    let h = harness().await;
    h.portal("!a:test").await;
    h.txn(vec![message(
        "$x1",
        "!a:test",
        "@guest:elsewhere",
        "ignored",
    )])
    .await;
    assert!(h.seen().is_empty());
    h.txn(vec![message(
        "$c1",
        "!a:test",
        "@alice:test",
        "!bridge relay on",
    )])
    .await;
    let refusal = h.hs.recorded_of("send").last().unwrap().body["body"].clone();
    assert_eq!(refusal, "That command is for bridge admins.");
    h.txn(vec![message(
        "$c2",
        "!a:test",
        "@boss:test",
        "!bridge relay on",
    )])
    .await;
    assert_eq!(
        h.hs.recorded_of("send").last().unwrap().body["body"],
        "Relay mode on."
    );
    h.txn(vec![message(
        "$x2",
        "!a:test",
        "@guest:elsewhere",
        "relayed",
    )])
    .await;
    assert_eq!(h.seen(), ["!a:test @guest:elsewhere: relayed"]);
}

#[tokio::test]
async fn a_dm_invite_becomes_the_management_room_and_answers_commands() {
    let h = harness().await;
    h.txn(vec![invite("!dm:test", "@alice:test", true)]).await;
    let settings = h.bridge.store().user_settings("@alice:test").await.unwrap();
    assert_eq!(settings.management_room.as_deref(), Some("!dm:test"));
    h.txn(vec![message("$h", "!dm:test", "@alice:test", "help")])
        .await;
    h.txn(vec![message("$p", "!dm:test", "@alice:test", "ping")])
        .await;
    h.txn(vec![message(
        "$l",
        "!dm:test",
        "@alice:test",
        "login secret",
    )])
    .await;
    let notices: Vec<_> =
        h.hs.recorded_of("send")
            .into_iter()
            .filter(|s| s.body["msgtype"] == "m.notice")
            .map(|s| s.body["body"].as_str().unwrap().to_owned())
            .collect();
    assert!(notices[0].contains("management room"), "{notices:?}");
    assert!(notices[1].starts_with("Commands:"), "{notices:?}");
    assert_eq!(notices[2], "Pong. Bridge connected; you are not logged in.");
    assert_eq!(
        notices[3],
        "Login failed: network: this bridge has no logins"
    );
    assert!(h.seen().is_empty());
}

#[tokio::test]
async fn an_invite_from_someone_without_permission_is_declined() {
    let h = harness().await;
    h.txn(vec![invite("!x:test", "@nobody:nowhere", false)])
        .await;
    let leaves = h.hs.recorded_of("leave");
    assert_eq!(leaves.len(), 1);
    assert_eq!(leaves[0].user_id.as_deref(), Some("@bot:test"));
    assert_eq!(leaves[0].room_id.as_deref(), Some("!x:test"));
    assert!(
        h.bridge
            .store()
            .portal_by_room_id("!x:test")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn metrics_count_events_in_and_out() {
    let h = harness().await;
    h.portal("!a:test").await;
    h.txn(vec![message("$m1", "!a:test", "@alice:test", "hi")])
        .await;
    let req = Request::get("/metrics").body(Body::empty()).unwrap();
    let resp = h.router.clone().oneshot(req).await.unwrap();
    let text = String::from_utf8(
        axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(
        text.contains("bridge_events_in_total{source=\"matrix\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("bridge_events_in_total{source=\"remote\"} 1"),
        "{text}"
    );
    assert!(text.contains("bridge_events_out_total 2"), "{text}");
    let req = Request::get("/_causeway/status")
        .body(Body::empty())
        .unwrap();
    let resp = h.router.clone().oneshot(req).await.unwrap();
    let status: Value = serde_json::from_slice(
        &axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(status["state_event"], "CONNECTED");
}

#[tokio::test]
async fn the_networks_own_routes_are_served_beside_the_appservice_api_without_the_hs_token() {
    let h = harness().await;
    let get = |uri: &str| Request::get(uri).body(Body::empty()).unwrap();
    let resp = h
        .router
        .clone()
        .oneshot(get("/_mirror/echo/hello"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = axum::body::to_bytes(resp.into_body(), 1 << 10)
        .await
        .unwrap();
    assert_eq!(&body[..], b"mirror: hello");
    // The appservice API still wants the hs_token.
    let resp = h
        .router
        .clone()
        .oneshot(get("/_matrix/app/v1/users/@mirror_x:test"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn looking_up_an_alias_in_the_namespace_creates_its_portal() {
    let h = harness().await;
    let get = |uri: &str| {
        Request::get(uri)
            .header("authorization", "Bearer h")
            .body(Body::empty())
            .unwrap()
    };
    let resp = h
        .router
        .clone()
        .oneshot(get("/_matrix/app/v1/rooms/%23mirror_lobby:test"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let created = &h.hs.recorded_of("create_room")[0];
    assert_eq!(created.body["room_alias_name"], "mirror_lobby");
    assert_eq!(created.body["name"], "lobby");
    let portal = h
        .bridge
        .store()
        .portal_by_remote_id("chat:lobby")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(Some(portal.room_id.to_string()), created.room_id);
    for missing in [
        "/_matrix/app/v1/rooms/%23mirror_missing:test",
        "/_matrix/app/v1/rooms/%23other:test",
    ] {
        let resp = h.router.clone().oneshot(get(missing)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{missing}");
    }
    let resp = h
        .router
        .clone()
        .oneshot(get("/_matrix/app/v1/thirdparty/protocol/mirror"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_admin_links_and_unlinks_a_room() {
    let h = harness().await;
    h.txn(vec![message(
        "$l1",
        "!r:test",
        "@alice:test",
        "!bridge link chat:x",
    )])
    .await;
    assert!(
        h.bridge
            .store()
            .portal_by_room_id("!r:test")
            .await
            .unwrap()
            .is_none()
    );
    h.txn(vec![message(
        "$l2",
        "!r:test",
        "@boss:test",
        "!bridge link chat:x",
    )])
    .await;
    let portal = h
        .bridge
        .store()
        .portal_by_room_id("!r:test")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(portal.remote_id, "chat:x");
    h.txn(vec![message(
        "$l3",
        "!r:test",
        "@boss:test",
        "!bridge unlink",
    )])
    .await;
    assert!(
        h.bridge
            .store()
            .portal_by_room_id("!r:test")
            .await
            .unwrap()
            .is_none()
    );
    let answers: Vec<_> =
        h.hs.recorded_of("send")
            .into_iter()
            .map(|s| s.body["body"].as_str().unwrap().to_owned())
            .collect();
    assert_eq!(
        answers,
        [
            "That command is for bridge admins.",
            "This room is now bridged to chat:x.",
            "This room is no longer bridged to chat:x."
        ]
    );
}

#[tokio::test]
async fn network_commands_run_before_the_built_in_ones_and_are_listed_in_help() {
    let h = harness().await;
    h.txn(vec![invite("!dm:test", "@alice:test", true)]).await;
    h.portal("!p:test").await;
    h.hs.clear();
    for (id, room, sender, line) in [
        ("$c1", "!dm:test", "@alice:test", "help"),
        ("$c2", "!dm:test", "@alice:test", "mirror hello there"),
        ("$c3", "!p:test", "@boss:test", "!bridge mirror hi"),
        ("$c4", "!p:test", "@guest:elsewhere", "!bridge unlink"),
        ("$c5", "!p:test", "@alice:test", "!bridge unlink"),
        ("$c6", "!dm:test", "@alice:test", "nonsense"),
    ] {
        assert_eq!(
            h.txn(vec![message(id, room, sender, line)]).await,
            StatusCode::OK
        );
    }
    let answers: Vec<_> =
        h.hs.recorded_of("send")
            .into_iter()
            .map(|s| s.body["body"].as_str().unwrap().to_owned())
            .collect();
    let help = &answers[0];
    assert!(help.starts_with("Commands:\nhelp: this list"), "{help}");
    assert!(
        help.ends_with(
            "Mirror commands:\nmirror TEXT: the bridge says TEXT back\n\
             unlink: stop bridging this room (the user who linked it)"
        ),
        "{help}"
    );
    assert!(
        !help.contains("unlink: stop bridging this room (admin)"),
        "{help}"
    );
    assert!(help.contains("link REMOTE_ID: bridge this room"), "{help}");
    assert_eq!(
        &answers[1..],
        [
            "@alice:test says hello there (management room: true)",
            "@boss:test says hi (management room: false)",
            // A relay user is not the network's to answer: the built-in command refuses.
            "That command is for bridge admins.",
            "Unlinked chat:!p:test.",
            "Unknown command `nonsense`. Send `help` for the list.",
        ]
    );
    assert!(
        h.bridge
            .store()
            .portal_by_room_id("!p:test")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn messages_carry_the_sender_displayname_from_their_member_event() {
    let h = harness().await;
    h.portal("!p:test").await;
    let join = json!({"type": "m.room.member", "event_id": "$j", "room_id": "!p:test",
        "sender": "@alice:test", "state_key": "@alice:test", "origin_server_ts": 1,
        "content": {"membership": "join", "displayname": "Alice A."}});
    h.txn(vec![join, message("$m", "!p:test", "@alice:test", "hi")])
        .await;
    assert_eq!(
        h.bridge
            .displayname_of(UserId::parse("@alice:test").unwrap().as_ref())
            .await
            .as_deref(),
        Some("Alice A.")
    );
    assert_eq!(
        h.network.displaynames.lock().unwrap().clone(),
        [Some("Alice A.".to_owned())]
    );
    // Without a member event the profile is asked; the test homeserver has none.
    assert_eq!(
        h.bridge
            .displayname_of(UserId::parse("@carol:test").unwrap().as_ref())
            .await,
        None
    );
}

#[tokio::test]
async fn a_status_change_is_announced_in_management_rooms() {
    use appservice_sdk::status::BridgeState;
    let h = harness().await;
    h.txn(vec![invite("!dm:test", "@alice:test", true)]).await;
    h.bridge
        .set_status(BridgeState::TransientDisconnect, Some("timeout".to_owned()))
        .await;
    h.bridge
        .set_status(BridgeState::TransientDisconnect, Some("timeout".to_owned()))
        .await;
    let notices: Vec<_> =
        h.hs.recorded_of("send")
            .into_iter()
            .filter(|s| {
                s.body["body"]
                    .as_str()
                    .unwrap()
                    .starts_with("Bridge status")
            })
            .collect();
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].room_id.as_deref(), Some("!dm:test"));
    assert_eq!(
        notices[0].body["body"],
        "Bridge status: disconnected, reconnecting (timeout)"
    );
}

#[tokio::test]
async fn a_ghost_avatar_is_uploaded_once_per_picture() {
    let h = harness().await;
    let sender = RemoteSender {
        id: "carol".to_owned(),
        displayname: None,
    };
    let picture = || async { Ok((vec![1, 2, 3], "image/png".to_owned())) };
    assert!(
        h.bridge
            .set_ghost_avatar(&sender, "pic1", picture())
            .await
            .unwrap()
    );
    assert!(
        !h.bridge
            .set_ghost_avatar(&sender, "pic1", picture())
            .await
            .unwrap()
    );
    assert!(
        h.bridge
            .set_ghost_avatar(&sender, "pic2", picture())
            .await
            .unwrap()
    );
    assert_eq!(h.hs.recorded_of("upload").len(), 2);
    let avatars = h.hs.recorded_of("avatar_url");
    assert_eq!(avatars.len(), 2);
    assert_eq!(avatars[0].user_id.as_deref(), Some("@mirror_carol:test"));
    let puppet = h
        .bridge
        .store()
        .puppet_by_remote_id("carol")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(puppet.avatar_source.as_deref(), Some("pic2"));
    assert_eq!(puppet.avatar_url.as_deref(), Some("mxc://test/uploaded"));
}

#[tokio::test]
async fn typing_is_sent_as_changes_and_receipts_name_the_remote_message() {
    let h = harness().await;
    h.portal("!a:test").await;
    h.txn(vec![message("$m1", "!a:test", "@alice:test", "hi")])
        .await;
    let typing = |users: Vec<&str>| json!({"type": "m.typing", "room_id": "!a:test", "content": {"user_ids": users}});
    h.ephemeral(vec![typing(vec!["@alice:test", "@mirror_alice:test"])])
        .await;
    h.ephemeral(vec![typing(vec!["@alice:test", "@bob:test"])])
        .await;
    h.ephemeral(vec![typing(vec![])]).await;
    let receipt = json!({"type": "m.receipt", "room_id": "!a:test",
        "content": {"$m1": {"m.read": {"@bob:test": {"ts": 1}}}, "$unknown": {"m.read": {"@bob:test": {"ts": 1}}}}});
    h.ephemeral(vec![receipt]).await;
    assert_eq!(
        h.seen()[1..],
        [
            "!a:test typing @alice:test true",
            "!a:test typing @bob:test true",
            "!a:test typing @alice:test false",
            "!a:test typing @bob:test false",
            "!a:test read @bob:test in:$m1",
        ]
    );
}

#[tokio::test]
async fn a_crash_between_sending_and_recording_does_not_post_twice() {
    // The first bridge handles a message; the second, with an empty database (as if the crash
    // lost everything after the send), handles the redelivery. The echo's transaction id is
    // derived from the remote event, so the homeserver answers with the first event.
    let first = harness().await;
    first.portal("!a:test").await;
    first
        .txn(vec![message("$m1", "!a:test", "@alice:test", "once")])
        .await;
    let second = harness_on(first.hs.clone()).await;
    second.portal("!a:test").await;
    second
        .txn(vec![message("$m1", "!a:test", "@alice:test", "once")])
        .await;
    assert_eq!(second.seen(), ["!a:test once"]);
    let echoes: Vec<_> = first
        .hs
        .recorded_of("send")
        .into_iter()
        .filter(|s| s.body["body"] == "once")
        .collect();
    assert_eq!(echoes.len(), 1);
    let a = first
        .bridge
        .store()
        .message_by_remote_id("chat:!a:test", "echo:$m1")
        .await
        .unwrap()
        .unwrap();
    let b = second
        .bridge
        .store()
        .message_by_remote_id("chat:!a:test", "echo:$m1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.event_id, b.event_id);
}

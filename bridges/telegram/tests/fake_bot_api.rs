//! HTTP tests of `fake-bot-api`: the Bot API envelope, the methods a bridge uses, and the control routes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use telegram_bridge::fake_bot_api::{FakeBotApi, FakeConfig, app};
use tower::ServiceExt;

const BOT: &str = "/bot123456:TEST-token_x";
const GROUP: i64 = -100_200;

fn fake() -> Router {
    app(FakeBotApi::new(FakeConfig::default()))
}

async fn send(router: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)));
    (status, body)
}

async fn post(router: &Router, path: &str, body: Value) -> (StatusCode, Value) {
    let request = Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    send(router, request).await
}

async fn get(router: &Router, path: &str) -> (StatusCode, Value) {
    send(router, Request::get(path).body(Body::empty()).unwrap()).await
}

/// Calls a method with a JSON body and returns its `result`, asserting success.
async fn call(router: &Router, method: &str, params: Value) -> Value {
    let (status, body) = post(router, &format!("{BOT}/{method}"), params).await;
    assert_eq!(status, StatusCode::OK, "{method}: {body}");
    assert_eq!(body["ok"], true);
    body["result"].clone()
}

/// Calls a method that must fail; returns (error_code, description).
async fn call_err(router: &Router, method: &str, params: Value) -> (u64, String) {
    let (status, body) = post(router, &format!("{BOT}/{method}"), params).await;
    assert_eq!(body["ok"], false, "{method}: {body}");
    let code = body["error_code"].as_u64().unwrap();
    assert_eq!(u64::from(status.as_u16()), code);
    (code, body["description"].as_str().unwrap().to_owned())
}

fn user(id: i64, name: &str) -> Value {
    json!({"id": id, "is_bot": false, "first_name": name})
}

/// Injects a group text message from user 7 and returns its message id.
async fn user_says(router: &Router, text: &str) -> i64 {
    let update = json!({"message": {"chat": {"id": GROUP, "type": "supergroup", "title": "Group"},
                                    "from": user(7, "Ann"), "text": text}});
    let (status, body) = post(router, "/_fake/updates", update).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["message_id"].as_i64().unwrap()
}

async fn sent(router: &Router, chat_id: i64) -> Vec<Value> {
    let (_, body) = get(router, &format!("/_fake/sent?chat_id={chat_id}")).await;
    body.as_array().unwrap().clone()
}

fn multipart(fields: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "XyZzYboundary";
    let mut body = Vec::new();
    for (name, file_name, content) in fields {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file_name {
            Some(f) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn post_multipart(
    router: &Router,
    path: &str,
    fields: &[(&str, Option<&str>, &[u8])],
) -> (StatusCode, Value) {
    let (content_type, body) = multipart(fields);
    let request = Request::post(path)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .unwrap();
    send(router, request).await
}

#[tokio::test]
async fn get_me_reports_the_token_id_and_privacy_mode() {
    let router = fake();
    let me = call(&router, "getMe", json!({})).await;
    assert_eq!(me["id"], 123_456);
    assert_eq!(me["is_bot"], true);
    assert_eq!(me["can_read_all_group_messages"], true);
    let private = app(FakeBotApi::new(FakeConfig {
        can_read_all_group_messages: false,
        ..FakeConfig::default()
    }));
    let (status, body) = get(&private, &format!("{BOT}/getme")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["result"]["can_read_all_group_messages"], false);
}

#[tokio::test]
async fn bad_tokens_are_401_and_unknown_methods_404() {
    let router = fake();
    let (status, body) = get(&router, "/botnot-a-token/getMe").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"ok": false, "error_code": 401, "description": "Unauthorized"})
    );
    let (status, body) = get(&router, &format!("{BOT}/sendTelepathy")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["description"], "Not Found");
}

#[tokio::test]
async fn missing_required_parameters_are_telegram_style_400s() {
    let router = fake();
    let (code, description) = call_err(&router, "sendMessage", json!({"text": "hi"})).await;
    assert_eq!(
        (code, description.as_str()),
        (400, "Bad Request: chat_id is empty")
    );
    let (_, description) = call_err(&router, "sendMessage", json!({"chat_id": GROUP})).await;
    assert_eq!(description, "Bad Request: message text is empty");
    let (_, description) = call_err(
        &router,
        "sendMessage",
        json!({"chat_id": GROUP, "text": "hi"}),
    )
    .await;
    assert_eq!(description, "Bad Request: chat not found");
    let (_, description) = call_err(&router, "getFile", json!({})).await;
    assert_eq!(description, "Bad Request: file_id is empty");
}

#[tokio::test]
async fn get_updates_returns_injected_updates_in_order_and_drops_confirmed_ones() {
    let router = fake();
    user_says(&router, "one").await;
    user_says(&router, "two").await;
    let updates = call(&router, "getUpdates", json!({})).await;
    let texts: Vec<&str> = updates
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["message"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["one", "two"]);
    let second = updates[1]["update_id"].as_i64().unwrap();
    assert_eq!(updates[0]["update_id"].as_i64().unwrap() + 1, second);
    // Query-string parameters work too, as with GET.
    let (_, body) = get(&router, &format!("{BOT}/getUpdates?offset={second}")).await;
    assert_eq!(body["result"].as_array().unwrap().len(), 1);
    let again = call(&router, "getUpdates", json!({"offset": second + 1})).await;
    assert_eq!(again, json!([]));
    let after = call(&router, "getUpdates", json!({})).await;
    assert_eq!(
        after,
        json!([]),
        "confirmed updates are gone even without an offset"
    );
}

#[tokio::test]
async fn a_long_poll_wakes_up_when_an_update_arrives() {
    let router = fake();
    let poller = {
        let router = router.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let updates = call(&router, "getUpdates", json!({"timeout": 10})).await;
            (updates, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    user_says(&router, "wake").await;
    let (updates, waited) = poller.await.unwrap();
    assert_eq!(updates[0]["message"]["text"], "wake");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}

#[tokio::test]
async fn a_long_poll_times_out_empty_and_a_newer_poll_ends_an_older_one() {
    let router = fake();
    let started = Instant::now();
    assert_eq!(
        call(&router, "getUpdates", json!({"timeout": 1})).await,
        json!([])
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
    let older = {
        let router = router.clone();
        tokio::spawn(async move { call_err(&router, "getUpdates", json!({"timeout": 10})).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        call(&router, "getUpdates", json!({"timeout": 0})).await,
        json!([])
    );
    let (code, description) = older.await.unwrap();
    assert_eq!(code, 409);
    assert!(description.starts_with("Conflict: terminated by other getUpdates request"));
}

#[tokio::test]
async fn allowed_updates_filters_and_reactions_need_opting_in() {
    let router = fake();
    let id = user_says(&router, "hi").await;
    let reaction = json!({"message_reaction": {"chat": {"id": GROUP, "type": "supergroup"}, "message_id": id,
        "user": user(7, "Ann"), "date": 1, "old_reaction": [],
        "new_reaction": [{"type": "emoji", "emoji": "👍"}]}});
    post(&router, "/_fake/updates", reaction).await;
    assert_eq!(
        call(&router, "getUpdates", json!({}))
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let updates = call(
        &router,
        "getUpdates",
        json!({"allowed_updates": ["message_reaction"]}),
    )
    .await;
    assert_eq!(updates.as_array().unwrap().len(), 1);
    assert_eq!(
        updates[0]["message_reaction"]["new_reaction"][0]["emoji"],
        "👍"
    );
}

#[tokio::test]
async fn webhooks_block_get_updates_until_deleted() {
    let router = fake();
    assert_eq!(
        call(
            &router,
            "setWebhook",
            json!({"url": "https://example.org/hook"})
        )
        .await,
        true
    );
    let (code, description) = call_err(&router, "getUpdates", json!({})).await;
    assert_eq!(code, 409);
    assert!(description.contains("webhook is active"));
    assert_eq!(
        call(&router, "getWebhookInfo", json!({})).await["url"],
        "https://example.org/hook"
    );
    call(
        &router,
        "deleteWebhook",
        json!({"drop_pending_updates": true}),
    )
    .await;
    assert_eq!(call(&router, "getUpdates", json!({})).await, json!([]));
}

#[tokio::test]
async fn send_message_parses_html_replies_and_shows_up_in_sent() {
    let router = fake();
    let asked = user_says(&router, "question?").await;
    let message = call(
        &router,
        "sendMessage",
        json!({"chat_id": GROUP, "text": "<b>Bob</b>: answer 😀 <i>now</i>", "parse_mode": "HTML",
               "reply_parameters": {"message_id": asked}, "message_thread_id": 5}),
    )
    .await;
    assert_eq!(message["text"], "Bob: answer 😀 now");
    assert_eq!(
        message["entities"][0],
        json!({"type": "bold", "offset": 0, "length": 3})
    );
    // 😀 is two UTF-16 code units.
    assert_eq!(
        message["entities"][1],
        json!({"type": "italic", "offset": 15, "length": 3})
    );
    assert_eq!(message["reply_to_message"]["text"], "question?");
    assert_eq!(message["message_thread_id"], 5);
    assert_eq!(message["from"]["id"], 123_456);
    assert_eq!(message["message_id"].as_i64().unwrap(), asked + 1);
    let sent = sent(&router, GROUP).await;
    assert_eq!(sent.len(), 1, "the user's message is not the bot's");
    assert_eq!(sent[0]["text"], "Bob: answer 😀 now");
    assert_eq!(sent[0]["deleted"], false);
}

#[tokio::test]
async fn bad_html_and_missing_reply_targets_are_refused() {
    let router = fake();
    user_says(&router, "hello").await;
    let (_, description) = call_err(
        &router,
        "sendMessage",
        json!({"chat_id": GROUP, "text": "a<br>b", "parse_mode": "HTML"}),
    )
    .await;
    assert_eq!(
        description,
        "Bad Request: can't parse entities: Unsupported start tag \"br\" at byte offset 1"
    );
    let (_, description) = call_err(
        &router,
        "sendMessage",
        json!({"chat_id": GROUP, "text": "x", "reply_to_message_id": 99}),
    )
    .await;
    assert_eq!(description, "Bad Request: message to be replied not found");
    let ok = call(
        &router,
        "sendMessage",
        json!({"chat_id": GROUP, "text": "x", "reply_parameters": {"message_id": 99, "allow_sending_without_reply": true}}),
    )
    .await;
    assert!(ok.get("reply_to_message").is_none());
}

#[tokio::test]
async fn form_encoded_parameters_are_accepted() {
    let router = fake();
    user_says(&router, "hello").await;
    let request = Request::post(format!("{BOT}/sendMessage"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("chat_id={GROUP}&text=a%20%26%20b&entities=%5B%7B%22type%22%3A%22bold%22%2C%22offset%22%3A0%2C%22length%22%3A1%7D%5D")))
        .unwrap();
    let (status, body) = send(&router, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["text"], "a & b");
    assert_eq!(body["result"]["entities"][0]["type"], "bold");
}

#[tokio::test]
async fn edits_and_deletions_are_listed_in_sent_with_their_state() {
    let router = fake();
    let users_message = user_says(&router, "spam").await;
    let first = call(
        &router,
        "sendMessage",
        json!({"chat_id": GROUP, "text": "v1"}),
    )
    .await;
    let id = first["message_id"].clone();
    let edited = call(
        &router,
        "editMessageText",
        json!({"chat_id": GROUP, "message_id": id, "text": "v2"}),
    )
    .await;
    assert_eq!(edited["text"], "v2");
    assert!(edited["edit_date"].as_i64().is_some());
    let (_, description) = call_err(
        &router,
        "editMessageText",
        json!({"chat_id": GROUP, "message_id": id, "text": "v2"}),
    )
    .await;
    assert!(description.starts_with("Bad Request: message is not modified"));
    let (_, description) = call_err(
        &router,
        "editMessageText",
        json!({"chat_id": GROUP, "message_id": users_message, "text": "x"}),
    )
    .await;
    assert_eq!(description, "Bad Request: message can't be edited");
    let (_, description) = call_err(
        &router,
        "deleteMessage",
        json!({"chat_id": GROUP, "message_id": users_message}),
    )
    .await;
    assert_eq!(
        description, "Bad Request: message can't be deleted",
        "the bot is no admin"
    );
    assert_eq!(
        call(
            &router,
            "deleteMessage",
            json!({"chat_id": GROUP, "message_id": id})
        )
        .await,
        true
    );
    let (_, description) = call_err(
        &router,
        "deleteMessage",
        json!({"chat_id": GROUP, "message_id": id}),
    )
    .await;
    assert_eq!(description, "Bad Request: message to delete not found");
    let sent = sent(&router, GROUP).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["text"], "v2");
    assert_eq!(sent[0]["deleted"], true);
}

#[tokio::test]
async fn an_admin_bot_deletes_other_peoples_messages_and_they_are_listed() {
    let router = fake();
    let spam = user_says(&router, "spam").await;
    let promotion = json!({"my_chat_member": {"chat": {"id": GROUP, "type": "supergroup"}, "from": user(7, "Ann"),
        "date": 1, "old_chat_member": {"status": "member", "user": {"id": 123_456, "is_bot": true, "first_name": "B"}},
        "new_chat_member": {"status": "administrator", "user": {"id": 123_456, "is_bot": true, "first_name": "B"},
            "can_delete_messages": true}}});
    post(&router, "/_fake/updates", promotion).await;
    call(
        &router,
        "deleteMessage",
        json!({"chat_id": GROUP, "message_id": spam}),
    )
    .await;
    let sent = sent(&router, GROUP).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0]["text"].as_str(), sent[0]["deleted"].as_bool()),
        (Some("spam"), Some(true))
    );
    let admins = call(&router, "getChatAdministrators", json!({"chat_id": GROUP})).await;
    assert_eq!(admins[0]["user"]["id"], 123_456);
}

#[tokio::test]
async fn reactions_and_chat_actions_are_validated_and_recorded() {
    let router = fake();
    let id = user_says(&router, "nice").await;
    let thumbs = json!([{"type": "emoji", "emoji": "👍"}]);
    assert_eq!(
        call(
            &router,
            "setMessageReaction",
            json!({"chat_id": GROUP, "message_id": id, "reaction": thumbs})
        )
        .await,
        true
    );
    let (_, description) = call_err(
        &router,
        "setMessageReaction",
        json!({"chat_id": GROUP, "message_id": id, "reaction": [{"type": "emoji", "emoji": "🦀"}]}),
    )
    .await;
    assert_eq!(
        description, "Bad Request: REACTION_INVALID",
        "🦀 is not an allowed reaction"
    );
    let (_, description) = call_err(
        &router,
        "setMessageReaction",
        json!({"chat_id": GROUP, "message_id": 999, "reaction": thumbs}),
    )
    .await;
    assert_eq!(description, "Bad Request: message to react not found");
    let (_, reactions) = get(&router, &format!("/_fake/reactions?chat_id={GROUP}")).await;
    assert_eq!(reactions[0]["message_id"], id);
    assert_eq!(reactions[0]["reaction"], thumbs);
    call(
        &router,
        "sendChatAction",
        json!({"chat_id": GROUP, "action": "typing"}),
    )
    .await;
    let (_, description) = call_err(
        &router,
        "sendChatAction",
        json!({"chat_id": GROUP, "action": "dancing"}),
    )
    .await;
    assert_eq!(
        description,
        "Bad Request: wrong parameter action in request"
    );
    assert_eq!(
        get(&router, &format!("/_fake/actions?chat_id={GROUP}"))
            .await
            .1,
        json!(["typing"])
    );
}

#[tokio::test]
async fn uploaded_media_can_be_fetched_back_through_get_file() {
    let router = fake();
    user_says(&router, "send me a picture").await;
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend_from_slice(&[0, 0, 0, 3, 0, 0, 0, 2]);
    let chat = GROUP.to_string();
    let (status, body) = post_multipart(
        &router,
        &format!("{BOT}/sendPhoto"),
        &[
            ("chat_id", None, chat.as_bytes()),
            ("caption", None, b"<b>Bob</b>: look"),
            ("parse_mode", None, b"HTML"),
            ("photo", Some("cat.png"), &png),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let message = &body["result"];
    assert_eq!(message["caption"], "Bob: look");
    assert_eq!(message["caption_entities"][0]["type"], "bold");
    let photo = &message["photo"][0];
    assert_eq!(
        (photo["width"].as_i64(), photo["height"].as_i64()),
        (Some(3), Some(2))
    );
    let file = call(&router, "getFile", json!({"file_id": photo["file_id"]})).await;
    assert_eq!(file["file_size"], png.len());
    let path = file["file_path"].as_str().unwrap();
    assert!(
        path.starts_with("photos/") && path.ends_with(".png"),
        "{path}"
    );
    let response = router
        .clone()
        .oneshot(
            Request::get(format!("/file{BOT}/{path}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "image/png");
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        png
    );
    let (status, _) = get(&router, &format!("/file{BOT}/photos/nope.png")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn every_media_method_returns_its_message_field() {
    let router = fake();
    user_says(&router, "files please").await;
    let chat = GROUP.to_string();
    for (method, field, name) in [
        ("sendDocument", "document", "a.pdf"),
        ("sendVideo", "video", "v.mp4"),
        ("sendAudio", "audio", "s.mp3"),
        ("sendVoice", "voice", "n.ogg"),
        ("sendAnimation", "animation", "g.mp4"),
        ("sendSticker", "sticker", "s.webp"),
    ] {
        let (status, body) = post_multipart(
            &router,
            &format!("{BOT}/{method}"),
            &[
                ("chat_id", None, chat.as_bytes()),
                (field, Some(name), b"bytes"),
                ("duration", None, b"3"),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{method}: {body}");
        let object = &body["result"][field];
        assert!(object["file_id"].is_string(), "{method}: {body}");
        if field != "sticker" && field != "document" {
            assert_eq!(object["duration"], 3, "{method}");
        }
    }
    let document = &sent(&router, GROUP).await[0]["document"];
    assert_eq!(document["file_name"], "a.pdf");
    assert_eq!(document["mime_type"], "application/pdf");
    // Re-sending by file_id works; an unknown id does not.
    let again = call(
        &router,
        "sendDocument",
        json!({"chat_id": GROUP, "document": document["file_id"]}),
    )
    .await;
    assert_eq!(again["document"]["file_id"], document["file_id"]);
    let (_, description) = call_err(
        &router,
        "sendDocument",
        json!({"chat_id": GROUP, "document": "nope"}),
    )
    .await;
    assert_eq!(
        description,
        "Bad Request: wrong file identifier/HTTP URL specified"
    );
    let (_, description) = call_err(&router, "sendPhoto", json!({"chat_id": GROUP})).await;
    assert_eq!(description, "Bad Request: there is no photo in the request");
}

#[tokio::test]
async fn attach_references_in_multipart_are_resolved() {
    let router = fake();
    user_says(&router, "hi").await;
    let chat = GROUP.to_string();
    let (status, body) = post_multipart(
        &router,
        &format!("{BOT}/sendDocument"),
        &[
            ("chat_id", None, chat.as_bytes()),
            ("document", None, b"attach://part1"),
            ("part1", Some("r.txt"), b"hello"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["document"]["file_name"], "r.txt");
}

#[tokio::test]
async fn fail_makes_the_next_calls_fail_with_retry_after() {
    let router = fake();
    let (status, _) = post(
        &router,
        "/_fake/fail",
        json!({"count": 2, "error_code": 429, "retry_after": 3}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for _ in 0..2 {
        let (status, body) = get(&router, &format!("{BOT}/getMe")).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            body,
            json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 3",
                   "parameters": {"retry_after": 3}})
        );
    }
    call(&router, "getMe", json!({})).await;
    post(
        &router,
        "/_fake/fail",
        json!({"count": 1, "error_code": 502, "method": "sendMessage"}),
    )
    .await;
    call(&router, "getMe", json!({})).await;
    user_says(&router, "x").await;
    let (code, description) = call_err(
        &router,
        "sendMessage",
        json!({"chat_id": GROUP, "text": "y"}),
    )
    .await;
    assert_eq!((code, description.as_str()), (502, "Bad Gateway"));
    call(
        &router,
        "sendMessage",
        json!({"chat_id": GROUP, "text": "y"}),
    )
    .await;
}

#[tokio::test]
async fn stored_files_can_be_referenced_by_updates_and_downloaded() {
    let router = fake();
    let request = Request::post("/_fake/files?kind=photos&file_name=p.jpg")
        .header(header::CONTENT_TYPE, "image/jpeg")
        .body(Body::from(&b"\xFF\xD8jpeg"[..]))
        .unwrap();
    let (status, file) = send(&router, request).await;
    assert_eq!(status, StatusCode::OK, "{file}");
    assert!(file["file_path"].as_str().unwrap().starts_with("photos/"));
    let update = json!({"message": {"chat": {"id": GROUP, "type": "supergroup"}, "from": user(7, "Ann"),
        "photo": [{"file_id": file["file_id"], "file_unique_id": file["file_unique_id"], "width": 1, "height": 1}]}});
    post(&router, "/_fake/updates", update).await;
    let got = call(&router, "getFile", json!({"file_id": file["file_id"]})).await;
    assert_eq!(got["file_path"], file["file_path"]);
    let (_, body) =
        post_multipart(&router, "/_fake/files", &[("file", Some("n.txt"), b"note")]).await;
    assert!(body["file_path"].as_str().unwrap().ends_with(".txt"));
}

#[tokio::test]
async fn chats_members_and_profile_photos_come_from_updates() {
    let router = fake();
    user_says(&router, "hi").await;
    let chat = call(&router, "getChat", json!({"chat_id": GROUP})).await;
    assert_eq!(
        (chat["title"].as_str(), chat["type"].as_str()),
        (Some("Group"), Some("supergroup"))
    );
    assert_eq!(chat["accent_color_id"], 0);
    let member = call(
        &router,
        "getChatMember",
        json!({"chat_id": GROUP, "user_id": 7}),
    )
    .await;
    assert_eq!(member["status"], "member");
    assert_eq!(
        call(&router, "getChatMemberCount", json!({"chat_id": GROUP})).await,
        1
    );
    let (_, description) = call_err(
        &router,
        "getChatMember",
        json!({"chat_id": GROUP, "user_id": 8}),
    )
    .await;
    assert_eq!(description, "Bad Request: user not found");
    let request = Request::post("/_fake/files?kind=profile_photos")
        .body(Body::from(&b"GIF89a\x02\x00\x02\x00"[..]))
        .unwrap();
    let (_, file) = send(&router, request).await;
    post(
        &router,
        "/_fake/profile_photo",
        json!({"user_id": 7, "file_id": file["file_id"]}),
    )
    .await;
    let photos = call(&router, "getUserProfilePhotos", json!({"user_id": 7})).await;
    assert_eq!(photos["total_count"], 1);
    assert_eq!(photos["photos"][0][0]["file_id"], file["file_id"]);
    assert_eq!(photos["photos"][0][0]["width"], 2);
}

#[tokio::test]
async fn a_kicked_bot_is_forbidden_and_a_migrated_group_says_where_it_went() {
    let router = fake();
    let group = json!({"id": -5, "type": "group", "title": "Small"});
    post(
        &router,
        "/_fake/updates",
        json!({"message": {"chat": group, "from": user(7, "Ann"), "text": "hi"}}),
    )
    .await;
    post(
        &router,
        "/_fake/updates",
        json!({"message": {"chat": group, "migrate_to_chat_id": -1_005}}),
    )
    .await;
    let (status, body) = post(
        &router,
        &format!("{BOT}/sendMessage"),
        json!({"chat_id": -5, "text": "x"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["parameters"]["migrate_to_chat_id"], -1_005);
    call(
        &router,
        "sendMessage",
        json!({"chat_id": -1_005, "text": "x"}),
    )
    .await;
    let kick = json!({"my_chat_member": {"chat": {"id": -1_005, "type": "supergroup"}, "from": user(7, "Ann"),
        "date": 1, "old_chat_member": {"status": "member", "user": user(123_456, "B")},
        "new_chat_member": {"status": "kicked", "user": user(123_456, "B"), "until_date": 0}}});
    post(&router, "/_fake/updates", kick).await;
    let (code, description) = call_err(
        &router,
        "sendMessage",
        json!({"chat_id": -1_005, "text": "x"}),
    )
    .await;
    assert_eq!(
        (code, description.as_str()),
        (403, "Forbidden: bot was kicked from the group chat")
    );
}

#[tokio::test]
async fn an_update_with_an_update_id_is_renumbered_and_garbage_is_refused() {
    let router: Router = fake();
    let (_, body) = post(&router, "/_fake/updates", json!({"update_id": 77, "message": {"chat": {"id": 1, "type": "private", "first_name": "P"}, "text": "x"}})).await;
    assert_eq!(body["update_id"], 1);
    let (status, body) = post(
        &router,
        "/_fake/updates",
        json!({"message": {"text": "no chat"}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let _: Arc<FakeBotApi> = FakeBotApi::new(FakeConfig::default());
}

//! fake-bot-api over HTTP: sending, editing, deleting, reacting and media, as a bridge uses them.

#[path = "support/fake_http.rs"]
mod fake_http;

use fake_http::*;

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
async fn send_location_checks_coordinates_and_returns_a_location_message() {
    let router = fake();
    let asked = user_says(&router, "where are you?").await;
    let message = call(
        &router,
        "sendLocation",
        json!({"chat_id": GROUP, "latitude": 48.85837, "longitude": "2.294481",
               "horizontal_accuracy": 10.5, "reply_parameters": {"message_id": asked}}),
    )
    .await;
    assert_eq!(
        message["location"],
        json!({"latitude": 48.85837, "longitude": 2.294481, "horizontal_accuracy": 10.5})
    );
    assert_eq!(message["reply_to_message"]["text"], "where are you?");
    assert!(message.get("text").is_none());
    let sent = sent(&router, GROUP).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["location"]["longitude"], 2.294481);
    for (params, expected) in [
        (
            json!({"chat_id": GROUP, "longitude": 2.0}),
            "Bad Request: latitude is empty",
        ),
        (
            json!({"chat_id": GROUP, "latitude": "north", "longitude": 2.0}),
            "Bad Request: invalid latitude specified",
        ),
        (
            json!({"chat_id": GROUP, "latitude": 91.0, "longitude": 2.0}),
            "Bad Request: wrong location",
        ),
        (
            json!({"chat_id": GROUP, "latitude": 1.0, "longitude": -180.5}),
            "Bad Request: wrong location",
        ),
        (
            json!({"chat_id": GROUP, "latitude": 1.0, "longitude": 2.0, "live_period": 30}),
            "Bad Request: wrong live period specified",
        ),
    ] {
        let (code, description) = call_err(&router, "sendLocation", params.clone()).await;
        assert_eq!((code, description.as_str()), (400, expected), "{params}");
    }
}

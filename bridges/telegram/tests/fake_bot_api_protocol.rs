//! fake-bot-api over HTTP: the envelope, tokens, required parameters, getUpdates, webhooks, the world learnt
//! from updates, and the control routes.

#[path = "support/fake_http.rs"]
mod fake_http;

use fake_http::*;

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

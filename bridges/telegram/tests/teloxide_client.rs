//! teloxide, the client the bridge uses, talks to `fake-bot-api` over real HTTP and parses every answer.

use std::net::SocketAddr;

use serde_json::{Value, json};
use telegram_bridge::fake_bot_api::{self, FakeBotApi, FakeConfig};
use teloxide::net::Download;
use teloxide::payloads::setters::*;
use teloxide::prelude::*;
use teloxide::types::{
    AllowedUpdate, ChatAction, InputFile, MessageId, ParseMode, ReactionType, ReplyParameters,
    UpdateKind,
};
use teloxide::{ApiError, RequestError};

const GROUP: i64 = -100_300;

struct Fake {
    addr: SocketAddr,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Fake {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = FakeBotApi::new(FakeConfig::default());
        tokio::spawn(fake_bot_api::run(listener, state, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            http: reqwest::Client::new(),
            _stop: stop,
        }
    }

    fn bot(&self) -> Bot {
        Bot::new("4242:fake-secret").set_api_url(format!("http://{}/", self.addr).parse().unwrap())
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("http://{}{path}", self.addr))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{path}");
        response.json().await.unwrap()
    }

    async fn sent(&self) -> Vec<Value> {
        let url = format!("http://{}/_fake/sent?chat_id={GROUP}", self.addr);
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

fn group_message(text: &str) -> Value {
    json!({"message": {"chat": {"id": GROUP, "type": "supergroup", "title": "Teloxide"},
        "from": {"id": 7, "is_bot": false, "first_name": "Ann", "last_name": "Lee", "username": "ann"},
        "text": text, "entities": [{"type": "bold", "offset": 0, "length": 2}]}})
}

#[tokio::test]
async fn teloxide_reads_updates_and_sends_edits_deletes_and_reacts() {
    let fake = Fake::start().await;
    let bot = fake.bot();
    let me = bot.get_me().await.unwrap();
    assert_eq!(me.id, UserId(4242));
    assert!(me.can_read_all_group_messages);

    let injected = fake.control("/_fake/updates", group_message("😀 hi")).await;
    let updates = bot
        .get_updates()
        .timeout(1)
        .allowed_updates(vec![AllowedUpdate::Message, AllowedUpdate::MessageReaction])
        .await
        .unwrap();
    assert_eq!(updates.len(), 1);
    assert_eq!(
        i64::from(updates[0].id.0),
        injected["update_id"].as_i64().unwrap()
    );
    let UpdateKind::Message(incoming) = &updates[0].kind else {
        panic!("not a message: {:?}", updates[0].kind);
    };
    assert_eq!(incoming.text(), Some("😀 hi"));
    assert_eq!(incoming.from.as_ref().unwrap().first_name, "Ann");
    let entities = incoming.parse_entities().unwrap();
    assert_eq!(
        entities[0].text(),
        "😀",
        "UTF-16 offsets survive the round trip"
    );

    let reply = bot
        .send_message(ChatId(GROUP), "<b>Bob</b>: hello &amp; welcome")
        .parse_mode(ParseMode::Html)
        .reply_parameters(ReplyParameters::new(incoming.id))
        .await
        .unwrap();
    assert_eq!(reply.text(), Some("Bob: hello & welcome"));
    assert_eq!(reply.reply_to_message().unwrap().id, incoming.id);

    let edited = bot
        .edit_message_text(ChatId(GROUP), reply.id, "<b>Bob</b>: hello again")
        .parse_mode(ParseMode::Html)
        .await
        .unwrap();
    assert_eq!(edited.text(), Some("Bob: hello again"));
    assert!(edited.edit_date().is_some());

    bot.set_message_reaction(ChatId(GROUP), incoming.id)
        .reaction(vec![ReactionType::Emoji {
            emoji: "👍".to_owned(),
        }])
        .await
        .unwrap();
    bot.send_chat_action(ChatId(GROUP), ChatAction::Typing)
        .await
        .unwrap();
    bot.delete_message(ChatId(GROUP), reply.id).await.unwrap();

    let err = bot
        .delete_message(ChatId(GROUP), MessageId(999))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RequestError::Api(ApiError::MessageToDeleteNotFound)),
        "{err:?}"
    );

    let sent = fake.sent().await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["text"], "Bob: hello again");
    assert_eq!(sent[0]["deleted"], true);

    // The next poll, with the offset, confirms the first update.
    let next = bot
        .get_updates()
        .offset(updates[0].id.as_offset())
        .await
        .unwrap();
    assert!(next.is_empty());
}

#[tokio::test]
async fn teloxide_uploads_and_downloads_media_and_reads_chats() {
    let fake = Fake::start().await;
    let bot = fake.bot();
    fake.control("/_fake/updates", group_message("hi")).await;
    let photo = InputFile::memory(b"GIF89a\x04\x00\x03\x00rest".to_vec()).file_name("dot.gif");
    let message = bot
        .send_photo(ChatId(GROUP), photo)
        .caption("<i>dot</i>")
        .parse_mode(ParseMode::Html)
        .await
        .unwrap();
    assert_eq!(message.caption(), Some("dot"));
    let sizes = message.photo().unwrap();
    assert_eq!((sizes[0].width, sizes[0].height), (4, 3));
    let file = bot.get_file(sizes[0].file.id.clone()).await.unwrap();
    let mut downloaded = Vec::new();
    bot.download_file(&file.path, &mut downloaded)
        .await
        .unwrap();
    assert_eq!(downloaded, b"GIF89a\x04\x00\x03\x00rest");

    let document = InputFile::memory(b"%PDF-1.4".to_vec()).file_name("spec.pdf");
    let message = bot.send_document(ChatId(GROUP), document).await.unwrap();
    assert_eq!(
        message.document().unwrap().file_name.as_deref(),
        Some("spec.pdf")
    );
    let voice = InputFile::memory(b"OggS".to_vec()).file_name("v.ogg");
    let message = bot.send_voice(ChatId(GROUP), voice).await.unwrap();
    assert!(message.voice().is_some());

    let chat = bot.get_chat(ChatId(GROUP)).await.unwrap();
    assert_eq!(chat.title(), Some("Teloxide"));
    let member = bot.get_chat_member(ChatId(GROUP), UserId(7)).await.unwrap();
    assert_eq!(member.user.first_name, "Ann");
    assert_eq!(bot.get_chat_member_count(ChatId(GROUP)).await.unwrap(), 1);
    assert!(
        bot.get_chat_administrators(ChatId(GROUP))
            .await
            .unwrap()
            .is_empty()
    );
    let photos = bot.get_user_profile_photos(UserId(7)).await.unwrap();
    assert_eq!(photos.total_count, 0);
}

#[tokio::test]
async fn teloxide_sees_429_as_retry_after() {
    let fake = Fake::start().await;
    let bot = fake.bot();
    fake.control(
        "/_fake/fail",
        json!({"count": 1, "error_code": 429, "retry_after": 7}),
    )
    .await;
    let err = bot.get_me().await.unwrap_err();
    let RequestError::RetryAfter(seconds) = err else {
        panic!("expected RetryAfter, got {err:?}");
    };
    assert_eq!(seconds.seconds(), 7);
    bot.get_me().await.unwrap();
}

//! The Bot API through teloxide, with Telegram's flood control honoured and transient failures retried.
//!
//! Every call waits out `429 retry_after` and retries network errors and 5xx answers with backoff, so a
//! caller that awaits one call after the other keeps its sends in order.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use teloxide::net::Download;
use teloxide::prelude::*;
use teloxide::types::{
    ChatAction, ChatId, InputFile, Me, MessageId, ParseMode, ReactionType, ReplyParameters,
    ThreadId,
};
use teloxide::{ApiError, RequestError};

/// How hard to try before giving up on a call.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Retries after network errors and 5xx answers.
    pub network_retries: u32,
    /// Retries after `429 Too Many Requests` (each waits `retry_after`).
    pub rate_limit_retries: u32,
    /// First backoff after a network error; doubled each time, at most 30 s.
    pub first_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            network_retries: 8,
            rate_limit_retries: 50,
            first_backoff: Duration::from_millis(250),
        }
    }
}

/// A Bot API client.
#[derive(Debug, Clone)]
pub struct Api {
    bot: Bot,
    retry: RetryPolicy,
}

/// A call that failed for good; `description` is Telegram's (or the transport's) wording.
#[derive(Debug, Clone, thiserror::Error)]
#[error("Telegram {method}: {description}")]
pub struct CallError {
    pub method: &'static str,
    pub description: String,
    /// Telegram answered (4xx): retrying the same call would fail the same way.
    pub refused: bool,
}

impl From<CallError> for appservice_sdk::Error {
    fn from(e: CallError) -> Self {
        appservice_sdk::Error::Network(e.to_string())
    }
}

fn is_server_error(description: &str) -> bool {
    [
        "Internal Server Error",
        "Bad Gateway",
        "Service Unavailable",
        "Gateway Timeout",
    ]
    .iter()
    .any(|p| description.starts_with(p))
}

impl Api {
    /// A client for `token` at `api_url` (e.g. `https://api.telegram.org` or a fake-bot-api).
    pub fn new(token: &str, api_url: &str, retry: RetryPolicy) -> Result<Self, url::ParseError> {
        let mut url = url::Url::parse(api_url)?;
        if !url.path().ends_with('/') {
            url.set_path(&format!("{}/", url.path()));
        }
        Ok(Self {
            bot: Bot::new(token).set_api_url(url),
            retry,
        })
    }

    pub fn bot(&self) -> &Bot {
        &self.bot
    }

    /// Runs `call` until it succeeds or fails for good.
    pub async fn call<T, F, Fut>(&self, method: &'static str, call: F) -> Result<T, CallError>
    where
        F: Fn(Bot) -> Fut,
        Fut: Future<Output = Result<T, RequestError>>,
    {
        let mut network_failures = 0;
        let mut rate_limits = 0;
        let mut backoff = self.retry.first_backoff;
        loop {
            let error = match call(self.bot.clone()).await {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            let (retry_in, refused) = match &error {
                RequestError::RetryAfter(seconds)
                    if rate_limits < self.retry.rate_limit_retries =>
                {
                    rate_limits += 1;
                    tracing::warn!(
                        method,
                        retry_after = seconds.seconds(),
                        "Telegram flood control; waiting"
                    );
                    (Some(seconds.duration()), true)
                }
                RequestError::Network(_)
                | RequestError::InvalidJson { .. }
                | RequestError::Io(_)
                    if network_failures < self.retry.network_retries =>
                {
                    network_failures += 1;
                    (Some(backoff), false)
                }
                RequestError::Api(ApiError::Unknown(d))
                    if is_server_error(d) && network_failures < self.retry.network_retries =>
                {
                    network_failures += 1;
                    (Some(backoff), false)
                }
                RequestError::Api(_) | RequestError::MigrateToChatId(_) => (None, true),
                _ => (None, false),
            };
            let Some(wait) = retry_in else {
                return Err(CallError {
                    method,
                    description: describe(&error),
                    refused,
                });
            };
            if !matches!(error, RequestError::RetryAfter(_)) {
                tracing::warn!(method, error = %error, ?wait, "Telegram call failed; retrying");
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            tokio::time::sleep(wait).await;
        }
    }

    pub async fn get_me(&self) -> Result<Me, CallError> {
        self.call("getMe", |bot| async move { bot.get_me().await })
            .await
    }

    /// Sends Telegram HTML; `reply_to` does not fail the send when the message is gone.
    pub async fn send_html(
        &self,
        chat: i64,
        html: &str,
        reply_to: Option<i32>,
        thread: Option<i32>,
    ) -> Result<Message, CallError> {
        self.call("sendMessage", |bot| {
            let mut request = bot
                .send_message(ChatId(chat), html)
                .parse_mode(ParseMode::Html);
            if let Some(reply_to) = reply_to {
                request = request.reply_parameters(reply(reply_to));
            }
            if let Some(thread) = thread {
                request = request.message_thread_id(ThreadId(MessageId(thread)));
            }
            async move { request.await }
        })
        .await
    }

    /// A point on the map (`sendLocation`); `reply_to` does not fail the send when the message is gone.
    pub async fn send_location(
        &self,
        chat: i64,
        (latitude, longitude): (f64, f64),
        reply_to: Option<i32>,
        thread: Option<i32>,
    ) -> Result<Message, CallError> {
        self.call("sendLocation", |bot| {
            let mut request = bot.send_location(ChatId(chat), latitude, longitude);
            if let Some(reply_to) = reply_to {
                request = request.reply_parameters(reply(reply_to));
            }
            if let Some(thread) = thread {
                request = request.message_thread_id(ThreadId(MessageId(thread)));
            }
            async move { request.await }
        })
        .await
    }

    /// A chat's title (a private chat: the user's name), if the bot can see the chat (`getChat`).
    pub async fn chat_title(&self, chat: i64) -> Result<(String, bool), CallError> {
        let chat = self
            .call(
                "getChat",
                |bot| async move { bot.get_chat(ChatId(chat)).await },
            )
            .await?;
        let private = chat.is_private();
        let title = chat
            .title()
            .map(str::to_owned)
            .or_else(|| {
                let name = [chat.first_name(), chat.last_name()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ");
                (!name.is_empty()).then_some(name)
            })
            .unwrap_or_else(|| chat.id.to_string());
        Ok((title, private))
    }

    pub async fn edit_html(
        &self,
        chat: i64,
        message_id: i32,
        html: &str,
    ) -> Result<Message, CallError> {
        self.call("editMessageText", |bot| async move {
            bot.edit_message_text(ChatId(chat), MessageId(message_id), html)
                .parse_mode(ParseMode::Html)
                .await
        })
        .await
    }

    pub async fn delete(&self, chat: i64, message_id: i32) -> Result<(), CallError> {
        self.call("deleteMessage", |bot| async move {
            bot.delete_message(ChatId(chat), MessageId(message_id))
                .await
        })
        .await
        .map(|_| ())
    }

    /// Sets the bot's reaction (`None` removes it).
    pub async fn react(
        &self,
        chat: i64,
        message_id: i32,
        emoji: Option<&str>,
    ) -> Result<(), CallError> {
        let reaction: Vec<ReactionType> = emoji
            .map(|e| ReactionType::Emoji {
                emoji: e.to_owned(),
            })
            .into_iter()
            .collect();
        self.call("setMessageReaction", |bot| {
            let request = bot
                .set_message_reaction(ChatId(chat), MessageId(message_id))
                .reaction(reaction.clone());
            async move { request.await }
        })
        .await
        .map(|_| ())
    }

    pub async fn typing(&self, chat: i64) -> Result<(), CallError> {
        self.call("sendChatAction", |bot| async move {
            bot.send_chat_action(ChatId(chat), ChatAction::Typing).await
        })
        .await
        .map(|_| ())
    }

    /// Whether `user` is the creator or an administrator of `chat`.
    pub async fn is_admin(&self, chat: i64, user: i64) -> Result<bool, CallError> {
        let user = UserId(u64::try_from(user).unwrap_or_default());
        let member = self
            .call("getChatMember", |bot| async move {
                bot.get_chat_member(ChatId(chat), user).await
            })
            .await?;
        Ok(member.is_privileged())
    }

    /// Downloads a file by id (`getFile`, then the file route). Bots may download up to 20 MB.
    pub async fn download(&self, file_id: &str) -> Result<Bytes, CallError> {
        let file_id = teloxide::types::FileId(file_id.to_owned());
        let file = self
            .call("getFile", |bot| {
                let id = file_id.clone();
                async move { bot.get_file(id).await }
            })
            .await?;
        let mut data = Vec::with_capacity(usize::try_from(file.size).unwrap_or_default());
        let mut attempts = 0;
        loop {
            data.clear();
            match self.bot.download_file(&file.path, &mut data).await {
                Ok(()) => return Ok(Bytes::from(data)),
                Err(e) if attempts < self.retry.network_retries => {
                    attempts += 1;
                    tracing::warn!(error = %e, "file download failed; retrying");
                    tokio::time::sleep(self.retry.first_backoff * attempts).await;
                }
                Err(e) => {
                    return Err(CallError {
                        method: "file download",
                        description: e.to_string(),
                        refused: false,
                    });
                }
            }
        }
    }

    /// The newest profile photo of a user, largest size: `(file_id, file_unique_id)`.
    pub async fn profile_photo(&self, user: i64) -> Result<Option<(String, String)>, CallError> {
        let user = UserId(u64::try_from(user).unwrap_or_default());
        let photos = self
            .call("getUserProfilePhotos", |bot| async move {
                bot.get_user_profile_photos(user).limit(1).await
            })
            .await?;
        let newest = photos
            .photos
            .first()
            .and_then(|sizes| crate::convert::message::largest_photo(sizes));
        Ok(newest.map(|p| (p.file.id.0.clone(), p.file.unique_id.0.clone())))
    }

    /// Uploads a file with the send method that suits `kind`; `caption` is Telegram HTML.
    pub async fn send_file(&self, upload: Upload<'_>) -> Result<Message, CallError> {
        let Upload {
            chat,
            kind,
            data,
            file_name,
            caption,
            reply_to,
        } = upload;
        let file = || InputFile::memory(data.clone()).file_name(file_name.to_owned());
        macro_rules! send {
            ($method:literal, $call:ident) => {
                self.call($method, |bot| {
                    let mut request = bot
                        .$call(ChatId(chat), file())
                        .caption(caption)
                        .parse_mode(ParseMode::Html);
                    if let Some(reply_to) = reply_to {
                        request = request.reply_parameters(reply(reply_to));
                    }
                    async move { request.await }
                })
                .await
            };
        }
        match kind {
            FileKind::Photo => send!("sendPhoto", send_photo),
            FileKind::Animation => send!("sendAnimation", send_animation),
            FileKind::Video => send!("sendVideo", send_video),
            FileKind::Audio => send!("sendAudio", send_audio),
            FileKind::Voice => send!("sendVoice", send_voice),
            FileKind::Document => send!("sendDocument", send_document),
        }
    }

    pub async fn webhook_url(&self) -> Result<String, CallError> {
        let info = self
            .call("getWebhookInfo", |bot| async move {
                bot.get_webhook_info().await
            })
            .await?;
        Ok(info.url.map(|u| u.to_string()).unwrap_or_default())
    }

    pub async fn delete_webhook(&self) -> Result<(), CallError> {
        self.call(
            "deleteWebhook",
            |bot| async move { bot.delete_webhook().await },
        )
        .await
        .map(|_| ())
    }
}

/// Which send method a file goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Photo,
    Animation,
    Video,
    Audio,
    Voice,
    Document,
}

/// One file to send.
#[derive(Debug)]
pub struct Upload<'a> {
    pub chat: i64,
    pub kind: FileKind,
    pub data: Bytes,
    pub file_name: &'a str,
    pub caption: &'a str,
    pub reply_to: Option<i32>,
}

fn reply(message_id: i32) -> ReplyParameters {
    ReplyParameters {
        allow_sending_without_reply: Some(true),
        ..ReplyParameters::new(MessageId(message_id))
    }
}

fn describe(error: &RequestError) -> String {
    match error {
        // teloxide names known errors; the description Telegram sent is in the Display text.
        RequestError::Api(api) => api.to_string(),
        other => other.to_string(),
    }
}

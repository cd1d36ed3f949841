//! [`Intent`]: acting as one user of the appservice (a ghost, or the bot): registration,
//! membership, profile, and sending every kind of event, each with an optional `ts`.
//!
//! ```no_run
//! # async fn demo(appservice: appservice_sdk::Appservice, room: &ruma::RoomId) -> appservice_sdk::Result<()> {
//! use appservice_sdk::intent::SendOptions;
//! let ghost = appservice.intent(&appservice.user_id("echo_alice")?);
//! ghost.ensure_joined(room).await?; // registers, joins, has the bot invite if needed
//! ghost.set_displayname("Alice (Echo)").await?;
//! let first = ghost.send_text(room, "hello", SendOptions::default()).await?;
//! ghost.send_edit(room, &first, appservice_sdk::content::text("hello!"), SendOptions::at(1_700_000_000_000)).await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use ruma::api::client::account::register;
use ruma::api::client::media::create_content;
use ruma::api::client::membership::{invite_user, join_room_by_id, leave_room};
use ruma::api::client::message::send_message_event;
use ruma::api::client::profile::{ProfileFieldValue, set_profile_field};
use ruma::api::client::receipt::create_receipt;
use ruma::api::client::redact::redact_event;
use ruma::api::client::room::create_room;
use ruma::api::client::state::send_state_event;
use ruma::api::client::typing::create_typing_event::{self, v3::Typing, v3::TypingInfo};
use ruma::events::{MessageLikeEventType, StateEventType};
use ruma::serde::Raw;
use ruma::{
    EventId, MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedMxcUri, OwnedRoomId,
    OwnedTransactionId, OwnedUserId, RoomId, TransactionId, UInt, UserId,
};
use serde_json::Value;

use crate::appservice::Appservice;
use crate::content::{self, MediaKind};
use crate::error::Result;

/// Options of a send: the timestamp to massage in, and a transaction id.
///
/// A transaction id derived from the remote message (rather than a random one) makes the
/// send idempotent: the homeserver answers a repeated send with the first event id, so a
/// bridge that crashes between sending and recording cannot post twice.
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    /// `?ts=`: the event's `origin_server_ts`, ms since the epoch (appservices only).
    pub ts: Option<u64>,
    /// The transaction id; random if `None`.
    pub txn_id: Option<String>,
}

impl SendOptions {
    /// Options with a timestamp.
    pub fn at(ts_ms: u64) -> Self {
        Self {
            ts: Some(ts_ms),
            txn_id: None,
        }
    }

    /// Sets the transaction id.
    pub fn txn_id(mut self, txn_id: impl Into<String>) -> Self {
        self.txn_id = Some(txn_id.into());
        self
    }

    fn timestamp(&self) -> Option<MilliSecondsSinceUnixEpoch> {
        self.ts.and_then(UInt::new).map(MilliSecondsSinceUnixEpoch)
    }

    fn transaction_id(&self) -> OwnedTransactionId {
        match &self.txn_id {
            Some(id) => id.as_str().into(),
            None => TransactionId::new(),
        }
    }
}

/// A transaction id derived from a scope (e.g. the portal) and a remote event id (FNV-1a,
/// 64 bits): sending the same remote event twice uses the same id, and the homeserver
/// answers the repeat with the first event instead of posting it again.
///
/// ```
/// use appservice_sdk::intent::txn_id_for;
/// assert_eq!(txn_id_for("chat", "m1"), txn_id_for("chat", "m1"));
/// assert_ne!(txn_id_for("chat", "m1"), txn_id_for("chat", "m2"));
/// ```
pub fn txn_id_for(scope: &str, remote_id: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in scope.bytes().chain([0]).chain(remote_id.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("cw{hash:016x}{:x}", remote_id.len())
}

/// How [`Intent::create_room`] makes a room.
#[derive(Debug, Clone, Default)]
pub struct RoomOptions {
    /// Room name.
    pub name: Option<String>,
    /// Room topic.
    pub topic: Option<String>,
    /// Localpart of an alias to create with the room (e.g. `irc_libera_#rust`).
    pub alias_localpart: Option<String>,
    /// Users to invite.
    pub invite: Vec<OwnedUserId>,
    /// Whether it is a direct chat.
    pub is_direct: bool,
    /// Public (anyone may join) rather than invite-only.
    pub public: bool,
}

/// Acting as one appservice user; cheap to clone.
#[derive(Debug, Clone)]
pub struct Intent {
    appservice: Appservice,
    user_id: OwnedUserId,
}

impl Intent {
    pub(crate) fn new(appservice: Appservice, user_id: OwnedUserId) -> Self {
        Self {
            appservice,
            user_id,
        }
    }

    /// Whose intent this is.
    pub fn user_id(&self) -> &UserId {
        &self.user_id
    }

    fn is_bot(&self) -> bool {
        self.user_id == self.appservice.bot_user_id()
    }

    fn as_user(&self) -> Option<&UserId> {
        Some(&self.user_id)
    }

    /// Registers the user with `m.login.application_service` unless known to exist.
    ///
    /// `POST /_matrix/client/v3/register`
    pub async fn ensure_registered(&self) -> Result<()> {
        if self.appservice.is_registered(&self.user_id) {
            return Ok(());
        }
        let mut request = register::v3::Request::new();
        request.username = Some(self.user_id.localpart().to_owned());
        request.login_type = Some(register::LoginType::ApplicationService);
        request.inhibit_login = true;
        match self.appservice.client().send(request, None).await {
            Ok(_) => {}
            Err(e) if e.errcode() == Some("M_USER_IN_USE") => {}
            Err(e) => return Err(e),
        }
        self.appservice.mark_registered(&self.user_id);
        Ok(())
    }

    /// Joins the room unless known to be in it; if the room refuses, the bot joins and
    /// invites the user first.
    ///
    /// `POST /_matrix/client/v3/rooms/{roomId}/join`
    pub async fn ensure_joined(&self, room_id: &RoomId) -> Result<()> {
        if self.appservice.is_joined(room_id, &self.user_id) {
            return Ok(());
        }
        self.ensure_registered().await?;
        let join = || join_room_by_id::v3::Request::new(room_id.to_owned());
        match self.appservice.client().send(join(), self.as_user()).await {
            Ok(_) => {}
            Err(e) if e.errcode() == Some("M_FORBIDDEN") && !self.is_bot() => {
                let bot = self.appservice.bot();
                Box::pin(bot.ensure_joined(room_id)).await?;
                bot.invite(room_id, &self.user_id).await?;
                self.appservice
                    .client()
                    .send(join(), self.as_user())
                    .await?;
            }
            Err(e) => return Err(e),
        }
        self.appservice.set_joined(room_id, &self.user_id, true);
        Ok(())
    }

    /// Invites a user; an invitee already in the room is not an error.
    ///
    /// `POST /_matrix/client/v3/rooms/{roomId}/invite`
    pub async fn invite(&self, room_id: &RoomId, user_id: &UserId) -> Result<()> {
        let recipient = invite_user::v3::InvitationRecipient::UserId(
            invite_user::v3::InviteUserId::new(user_id.to_owned()),
        );
        let request = invite_user::v3::Request::new(room_id.to_owned(), recipient);
        match self.appservice.client().send(request, self.as_user()).await {
            Ok(_) => Ok(()),
            Err(e)
                if e.errcode() == Some("M_FORBIDDEN")
                    && e.to_string().contains("already in the room") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Leaves a room.
    ///
    /// `POST /_matrix/client/v3/rooms/{roomId}/leave`
    pub async fn leave(&self, room_id: &RoomId) -> Result<()> {
        let request = leave_room::v3::Request::new(room_id.to_owned());
        self.appservice
            .client()
            .send(request, self.as_user())
            .await?;
        self.appservice.set_joined(room_id, &self.user_id, false);
        Ok(())
    }

    /// Creates a room with this user as creator; returns its id.
    ///
    /// `POST /_matrix/client/v3/createRoom`
    pub async fn create_room(&self, options: &RoomOptions) -> Result<OwnedRoomId> {
        self.ensure_registered().await?;
        let mut request = create_room::v3::Request::new();
        request.name = options.name.clone();
        request.topic = options.topic.clone();
        request.room_alias_name = options.alias_localpart.clone();
        request.invite = options.invite.clone();
        request.is_direct = options.is_direct;
        request.preset = Some(if options.public {
            create_room::v3::RoomPreset::PublicChat
        } else {
            create_room::v3::RoomPreset::PrivateChat
        });
        let response = self
            .appservice
            .client()
            .send(request, self.as_user())
            .await?;
        self.appservice
            .set_joined(&response.room_id, &self.user_id, true);
        Ok(response.room_id)
    }

    /// Sets the displayname.
    ///
    /// `PUT /_matrix/client/v3/profile/{userId}/displayname`
    pub async fn set_displayname(&self, name: &str) -> Result<()> {
        self.ensure_registered().await?;
        let request = set_profile_field::v3::Request::new(
            self.user_id.clone(),
            ProfileFieldValue::DisplayName(name.to_owned()),
        );
        self.appservice
            .client()
            .send(request, self.as_user())
            .await?;
        Ok(())
    }

    /// Uploads `data` and makes it the avatar; returns its `mxc://` URI.
    ///
    /// `PUT /_matrix/client/v3/profile/{userId}/avatar_url`
    pub async fn set_avatar(&self, data: Vec<u8>, mime: &str) -> Result<OwnedMxcUri> {
        self.ensure_registered().await?;
        let mxc = self.upload(data, mime, "avatar").await?;
        self.set_avatar_url(&mxc).await?;
        Ok(mxc)
    }

    /// Sets the avatar to an already uploaded `mxc://` URI.
    pub async fn set_avatar_url(&self, mxc: &OwnedMxcUri) -> Result<()> {
        let request = set_profile_field::v3::Request::new(
            self.user_id.clone(),
            ProfileFieldValue::AvatarUrl(mxc.clone()),
        );
        self.appservice
            .client()
            .send(request, self.as_user())
            .await?;
        Ok(())
    }

    /// Uploads media; returns its `mxc://` URI.
    ///
    /// `POST /_matrix/media/v3/upload`
    pub async fn upload(&self, data: Vec<u8>, mime: &str, filename: &str) -> Result<OwnedMxcUri> {
        let mut request = create_content::v3::Request::new(data);
        request.content_type = Some(mime.to_owned());
        request.filename = Some(filename.to_owned());
        let response = self
            .appservice
            .client()
            .send(request, self.as_user())
            .await?;
        Ok(response.content_uri)
    }

    /// Sends any message-like event (joining first); returns the event id.
    ///
    /// `PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}`
    pub async fn send_event(
        &self,
        room_id: &RoomId,
        event_type: &str,
        content: &Value,
        options: SendOptions,
    ) -> Result<OwnedEventId> {
        self.ensure_joined(room_id).await?;
        let body = Raw::from_json(serde_json::value::to_raw_value(content)?);
        let mut request = send_message_event::v3::Request::new_raw(
            room_id.to_owned(),
            options.transaction_id(),
            MessageLikeEventType::from(event_type),
            body,
        );
        request.timestamp = options.timestamp();
        let response = self
            .appservice
            .client()
            .send(request, self.as_user())
            .await?;
        Ok(response.event_id)
    }

    /// Sends `m.room.message` content (see [`crate::content`]).
    pub async fn send_message(
        &self,
        room_id: &RoomId,
        content: &Value,
        options: SendOptions,
    ) -> Result<OwnedEventId> {
        self.send_event(room_id, "m.room.message", content, options)
            .await
    }

    /// Sends plain text.
    pub async fn send_text(
        &self,
        room_id: &RoomId,
        body: &str,
        options: SendOptions,
    ) -> Result<OwnedEventId> {
        self.send_message(room_id, &content::text(body), options)
            .await
    }

    /// Sends a notice.
    pub async fn send_notice(
        &self,
        room_id: &RoomId,
        body: &str,
        options: SendOptions,
    ) -> Result<OwnedEventId> {
        self.send_message(room_id, &content::notice(body), options)
            .await
    }

    /// Sends an emote.
    pub async fn send_emote(
        &self,
        room_id: &RoomId,
        body: &str,
        options: SendOptions,
    ) -> Result<OwnedEventId> {
        self.send_message(room_id, &content::emote(body), options)
            .await
    }

    /// Sends HTML with a plain-text fallback.
    pub async fn send_html(
        &self,
        room_id: &RoomId,
        body: &str,
        html: &str,
        options: SendOptions,
    ) -> Result<OwnedEventId> {
        self.send_message(room_id, &content::html(body, html), options)
            .await
    }

    /// Uploads a file and sends it as image, audio, video or file according to its MIME type.
    pub async fn send_media(
        &self,
        room_id: &RoomId,
        data: Vec<u8>,
        mime: &str,
        filename: &str,
        options: SendOptions,
    ) -> Result<OwnedEventId> {
        self.ensure_joined(room_id).await?;
        let size = data.len();
        let mxc = self.upload(data, mime, filename).await?;
        let content = content::media(
            MediaKind::from_mime(mime),
            mxc.as_str(),
            filename,
            mime,
            size,
        );
        self.send_message(room_id, &content, options).await
    }

    /// Sends `content` as a reply to `parent`.
    pub async fn send_reply(
        &self,
        room_id: &RoomId,
        parent: &EventId,
        content: Value,
        options: SendOptions,
    ) -> Result<OwnedEventId> {
        self.send_message(room_id, &content::reply(parent.as_str(), content), options)
            .await
    }

    /// Edits `target` so it reads `new_content`.
    pub async fn send_edit(
        &self,
        room_id: &RoomId,
        target: &EventId,
        new_content: Value,
        options: SendOptions,
    ) -> Result<OwnedEventId> {
        self.send_message(
            room_id,
            &content::edit(target.as_str(), new_content),
            options,
        )
        .await
    }

    /// Reacts to `target` with `key`.
    pub async fn react(
        &self,
        room_id: &RoomId,
        target: &EventId,
        key: &str,
        options: SendOptions,
    ) -> Result<OwnedEventId> {
        self.send_event(
            room_id,
            "m.reaction",
            &content::reaction(target.as_str(), key),
            options,
        )
        .await
    }

    /// Redacts an event.
    ///
    /// `PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}`
    pub async fn redact(
        &self,
        room_id: &RoomId,
        event_id: &EventId,
        reason: Option<&str>,
        options: SendOptions,
    ) -> Result<OwnedEventId> {
        self.ensure_joined(room_id).await?;
        let mut request = redact_event::v3::Request::new(
            room_id.to_owned(),
            event_id.to_owned(),
            options.transaction_id(),
        );
        request.reason = reason.map(str::to_owned);
        // ruma's redact request has no `ts`; the spec allows it on any appservice request.
        let query: Vec<_> = options
            .ts
            .map(|ts| ("ts", ts.to_string()))
            .into_iter()
            .collect();
        let response = self
            .appservice
            .client()
            .send_with_query(request, self.as_user(), &query)
            .await?;
        Ok(response.event_id)
    }

    /// Sends a state event (joining first).
    ///
    /// `PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}`
    pub async fn send_state(
        &self,
        room_id: &RoomId,
        event_type: &str,
        state_key: &str,
        content: &Value,
        options: SendOptions,
    ) -> Result<OwnedEventId> {
        self.ensure_joined(room_id).await?;
        let body = Raw::from_json(serde_json::value::to_raw_value(content)?);
        let mut request = send_state_event::v3::Request::new_raw(
            room_id.to_owned(),
            StateEventType::from(event_type),
            state_key.to_owned(),
            body,
        );
        request.timestamp = options.timestamp();
        let response = self
            .appservice
            .client()
            .send(request, self.as_user())
            .await?;
        Ok(response.event_id)
    }

    /// Starts (for `timeout`) or stops typing.
    ///
    /// `PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}`
    pub async fn typing(&self, room_id: &RoomId, timeout: Option<Duration>) -> Result<()> {
        self.ensure_joined(room_id).await?;
        let state = match timeout {
            Some(t) => Typing::Yes(TypingInfo::new(t)),
            None => Typing::No,
        };
        let request =
            create_typing_event::v3::Request::new(self.user_id.clone(), room_id.to_owned(), state);
        self.appservice
            .client()
            .send(request, self.as_user())
            .await?;
        Ok(())
    }

    /// Marks `event_id` read.
    ///
    /// `POST /_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}`
    pub async fn mark_read(&self, room_id: &RoomId, event_id: &EventId) -> Result<()> {
        self.ensure_joined(room_id).await?;
        let request = create_receipt::v3::Request::new(
            room_id.to_owned(),
            create_receipt::v3::ReceiptType::Read,
            event_id.to_owned(),
        );
        self.appservice
            .client()
            .send(request, self.as_user())
            .await?;
        Ok(())
    }
}

//! Portals: static mappings from the config, dynamic ones by alias (`#irc_<network>_<#channel>`),
//! and private chats between a Matrix user and an IRC user.

use std::sync::Arc;

use appservice_sdk::bridge::{Bridge, RemoteSender};
use appservice_sdk::intent::RoomOptions;
use appservice_sdk::store::PortalRecord;
use appservice_sdk::{Error, Result};
use ruma::{OwnedRoomId, RoomAliasId, RoomId, UserId};

use super::{Net, Shared};
use crate::convert::ids::{PortalId, alias_localpart, channel_of_alias};
use crate::convert::nick::{ghost_remote_id, nick_of_ghost};

/// At start: every portal's channel is joined; static mappings get their rooms.
pub(super) async fn start(shared: &Arc<Shared>, bridge: &Bridge) -> Result<()> {
    for portal in bridge.store().all_portals().await? {
        if let Some(PortalId::Channel { network, channel }) = PortalId::parse(&portal.remote_id)
            && let Ok(net) = shared.net(&network)
        {
            net.relay()?.join(&channel);
        }
    }
    for net in shared.nets.values() {
        for (channel, room) in &net.config.channels {
            if let Err(e) = static_mapping(bridge, net, channel, room).await {
                tracing::warn!(
                    network = %net.name, channel, room, error = %e,
                    "static mapping not set up; fix: create the room with that alias and invite the bridge bot \
                     (a homeserver may refuse the bridge an alias outside its namespace), or map the channel \
                     to an alias of the form #irc_<network>_<#channel>:<domain>"
                );
            }
        }
    }
    Ok(())
}

async fn static_mapping(bridge: &Bridge, net: &Net, channel: &str, room: &str) -> Result<()> {
    let remote_id = PortalId::channel(&net.name, channel);
    let room_id = resolve_room(bridge, channel, room).await?;
    let bot = bridge.appservice().bot();
    bot.ensure_joined(&room_id).await?;
    let existing = bridge.store().portal_by_remote_id(&remote_id).await?;
    if existing.as_ref().map(|p| &p.room_id) != Some(&room_id) {
        let portal = PortalRecord {
            remote_id,
            room_id,
            name: Some(channel.to_owned()),
            relay_enabled: false,
        };
        bridge.store().upsert_portal(&portal).await?;
        bridge.send_bridge_info(&portal).await;
    }
    net.relay()?.join(channel);
    Ok(())
}

/// The bot was invited to a room a static mapping names (by id, or by an alias that points at it):
/// typically a room the bot could not join at start, such as another bridge's portal. The room
/// becomes that channel's portal and the relay bot joins the channel.
pub(super) async fn for_invite(shared: &Shared, room_id: &RoomId) -> Result<Option<String>> {
    let bridge = shared.bridge()?;
    for net in shared.nets.values() {
        for (channel, room) in &net.config.channels {
            let named = if room.starts_with('!') {
                room == room_id.as_str()
            } else {
                lookup_alias(bridge, room).await.as_deref() == Some(room_id)
            };
            if named {
                net.relay()?.join(channel);
                return Ok(Some(PortalId::channel(&net.name, channel)));
            }
        }
    }
    Ok(None)
}

/// The room an alias points at, if it exists.
async fn lookup_alias(bridge: &Bridge, alias: &str) -> Option<OwnedRoomId> {
    let path = format!(
        "/_matrix/client/v3/directory/room/{}",
        url::form_urlencoded::byte_serialize(alias.as_bytes()).collect::<String>()
    );
    let client = bridge.appservice().client();
    let answer = client
        .send_json(reqwest::Method::GET, &path, None, None)
        .await
        .ok()?;
    RoomId::parse(answer["room_id"].as_str()?).ok()
}

/// A room id, or the room an alias points at; an alias of ours that does not exist yet is
/// created with a public room.
async fn resolve_room(bridge: &Bridge, channel: &str, room: &str) -> Result<OwnedRoomId> {
    if room.starts_with('!') {
        return RoomId::parse(room).map_err(|e| Error::Network(format!("{room}: {e}")));
    }
    let alias = RoomAliasId::parse(room).map_err(|e| Error::Network(format!("{room}: {e}")))?;
    let path = format!(
        "/_matrix/client/v3/directory/room/{}",
        url::form_urlencoded::byte_serialize(alias.as_str().as_bytes()).collect::<String>()
    );
    let client = bridge.appservice().client();
    match client
        .send_json(reqwest::Method::GET, &path, None, None)
        .await
    {
        Ok(answer) => {
            let id = answer["room_id"].as_str().unwrap_or_default();
            RoomId::parse(id)
                .map_err(|e| Error::Protocol(format!("directory answered {id:?}: {e}")))
        }
        Err(e)
            if e.errcode() == Some("M_NOT_FOUND")
                && alias.server_name() == bridge.appservice().domain() =>
        {
            let options = RoomOptions {
                name: Some(channel.to_owned()),
                alias_localpart: Some(alias.alias().to_owned()),
                public: true,
                ..RoomOptions::default()
            };
            bridge.appservice().bot().create_room(&options).await
        }
        Err(e) => Err(e),
    }
}

/// `#irc_<network>_<#channel>:domain` was looked up: the portal to create, and the relay bot
/// joins the channel (its first lines wait for the room).
pub(super) fn for_alias(
    shared: &Shared,
    alias: &RoomAliasId,
) -> Result<Option<(String, RoomOptions)>> {
    let Some((network, channel)) =
        channel_of_alias(alias.alias(), shared.nets.keys().map(String::as_str))
    else {
        return Ok(None);
    };
    let net = shared.net(&network)?;
    net.relay()?.join(&channel);
    let options = RoomOptions {
        name: Some(channel.clone()),
        topic: None,
        alias_localpart: Some(alias_localpart(&network, &channel)),
        public: true,
        ..RoomOptions::default()
    };
    Ok(Some((PortalId::channel(&network, &channel), options)))
}

/// A Matrix user invited `@irc_<network>_<nick>`: the room becomes their private chat with that nick.
pub(super) fn for_ghost_invite(
    shared: &Shared,
    _room_id: &RoomId,
    ghost: &UserId,
    inviter: &UserId,
) -> Result<Option<String>> {
    let Some((network, nick)) =
        nick_of_ghost(ghost.localpart(), shared.nets.keys().map(String::as_str))
    else {
        return Ok(None);
    };
    Ok(Some(PortalId::private(&network, &nick, inviter.as_str())))
}

/// The private chat of `user_id` with `nick`, created (by the IRC user's ghost, inviting the
/// Matrix user) when the IRC user writes first.
pub(super) async fn private_portal(
    _shared: &Shared,
    bridge: &Bridge,
    net: &Net,
    nick: &str,
    user_id: &UserId,
) -> Result<PortalRecord> {
    let remote_id = PortalId::private(&net.name, nick, user_id.as_str());
    if let Some(portal) = bridge.store().portal_by_remote_id(&remote_id).await? {
        return Ok(portal);
    }
    let sender = RemoteSender {
        id: ghost_remote_id(&net.name, nick),
        displayname: Some(nick.to_owned()),
    };
    let ghost = bridge.ghost(&sender).await?;
    let options = RoomOptions {
        name: None,
        invite: vec![user_id.to_owned()],
        is_direct: true,
        ..RoomOptions::default()
    };
    let room_id = ghost.create_room(&options).await?;
    let portal = PortalRecord {
        remote_id,
        room_id,
        name: Some(nick.to_owned()),
        relay_enabled: false,
    };
    bridge.store().upsert_portal(&portal).await?;
    tracing::info!(network = %net.name, nick, user = %user_id, room = %portal.room_id, "private chat created");
    Ok(portal)
}

//! Room membership: join, leave, invite, kick, ban, unban, forget, knock, and member lists.

use axum::{Json, Router, extract::State};
use ruma::api::client::knock::knock_room::v3 as knock;
use ruma::api::client::membership::invite_user::v3::InvitationRecipient;
use ruma::api::client::membership::{
    ban_user::v3 as ban, forget_room::v3 as forget, get_member_events::v3 as members,
    invite_user::v3 as invite, join_room_by_id::v3 as join_by_id,
    join_room_by_id_or_alias::v3 as join_by_alias, joined_members::v3 as joined_members,
    joined_rooms::v3 as joined_rooms, kick_user::v3 as kick, leave_room::v3 as leave,
    unban_user::v3 as unban,
};
use serde_json::{Map, Value, json};

use crate::{
    api::{RouteExt, Ruma},
    error::{Error, Result},
    service::{
        Services,
        client_event::{Viewing, client_event},
        rooms::membership::Change,
        sync::Token,
    },
};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .ruma::<join_by_id::Request, _, _>(post_join_by_id)
        .ruma::<join_by_alias::Request, _, _>(post_join)
        .ruma::<leave::Request, _, _>(post_leave)
        .ruma::<invite::Request, _, _>(post_invite)
        .ruma::<kick::Request, _, _>(post_kick)
        .ruma::<ban::Request, _, _>(post_ban)
        .ruma::<unban::Request, _, _>(post_unban)
        .ruma::<forget::Request, _, _>(post_forget)
        .ruma::<knock::Request, _, _>(post_knock)
        .ruma::<joined_rooms::Request, _, _>(get_joined_rooms)
        .ruma::<joined_members::Request, _, _>(get_joined_members)
        .ruma::<members::Request, _, _>(get_members)
}

/// `POST /_matrix/client/v3/rooms/{roomId}/join`
async fn post_join_by_id(
    State(s): State<Services>,
    req: Ruma<join_by_id::Request>,
) -> Result<Json<Value>> {
    let room_id = s
        .join(
            req.body.room_id.as_str(),
            &req.requester().user_id,
            req.body.reason.as_deref(),
            None,
        )
        .await?;
    Ok(Json(json!({"room_id": room_id})))
}

/// `POST /_matrix/client/v3/join/{roomIdOrAlias}`
async fn post_join(
    State(s): State<Services>,
    req: Ruma<join_by_alias::Request>,
) -> Result<Json<Value>> {
    let room_id = s
        .join(
            req.body.room_id_or_alias.as_str(),
            &req.requester().user_id,
            req.body.reason.as_deref(),
            None,
        )
        .await?;
    Ok(Json(json!({"room_id": room_id})))
}

/// `POST /_matrix/client/v3/rooms/{roomId}/leave`
async fn post_leave(State(s): State<Services>, req: Ruma<leave::Request>) -> Result<Json<Value>> {
    s.leave(
        req.body.room_id.as_str(),
        &req.requester().user_id,
        req.body.reason.as_deref(),
    )
    .await?;
    Ok(Json(json!({})))
}

/// `POST /_matrix/client/v3/rooms/{roomId}/invite`
async fn post_invite(State(s): State<Services>, req: Ruma<invite::Request>) -> Result<Json<Value>> {
    let InvitationRecipient::UserId(target) = &req.body.recipient else {
        return Err(Error::forbidden("Third-party invites are not supported"));
    };
    s.change_membership(
        req.body.room_id.as_str(),
        &req.requester().user_id,
        target.user_id.as_str(),
        Change::Invite,
        target.reason.as_deref(),
        false,
    )
    .await?;
    Ok(Json(json!({})))
}

/// `POST /_matrix/client/v3/rooms/{roomId}/kick`
async fn post_kick(State(s): State<Services>, req: Ruma<kick::Request>) -> Result<Json<Value>> {
    s.change_membership(
        req.body.room_id.as_str(),
        &req.requester().user_id,
        req.body.user_id.as_str(),
        Change::Kick,
        req.body.reason.as_deref(),
        false,
    )
    .await?;
    Ok(Json(json!({})))
}

/// `POST /_matrix/client/v3/rooms/{roomId}/ban`
async fn post_ban(State(s): State<Services>, req: Ruma<ban::Request>) -> Result<Json<Value>> {
    s.change_membership(
        req.body.room_id.as_str(),
        &req.requester().user_id,
        req.body.user_id.as_str(),
        Change::Ban,
        req.body.reason.as_deref(),
        false,
    )
    .await?;
    Ok(Json(json!({})))
}

/// `POST /_matrix/client/v3/rooms/{roomId}/unban`
async fn post_unban(State(s): State<Services>, req: Ruma<unban::Request>) -> Result<Json<Value>> {
    s.change_membership(
        req.body.room_id.as_str(),
        &req.requester().user_id,
        req.body.user_id.as_str(),
        Change::Unban,
        req.body.reason.as_deref(),
        false,
    )
    .await?;
    Ok(Json(json!({})))
}

/// `POST /_matrix/client/v3/rooms/{roomId}/forget`
async fn post_forget(State(s): State<Services>, req: Ruma<forget::Request>) -> Result<Json<Value>> {
    s.forget(req.body.room_id.as_str(), &req.requester().user_id)
        .await?;
    Ok(Json(json!({})))
}

/// `POST /_matrix/client/v3/knock/{roomIdOrAlias}`
async fn post_knock(State(s): State<Services>, req: Ruma<knock::Request>) -> Result<Json<Value>> {
    let room_id = s
        .knock(
            req.body.room_id_or_alias.as_str(),
            &req.requester().user_id,
            req.body.reason.as_deref(),
        )
        .await?;
    Ok(Json(json!({"room_id": room_id})))
}

/// `GET /_matrix/client/v3/joined_rooms`
async fn get_joined_rooms(
    State(s): State<Services>,
    req: Ruma<joined_rooms::Request>,
) -> Result<Json<Value>> {
    let rooms: Vec<String> = s
        .store
        .memberships_of_user(&req.requester().user_id)
        .await?
        .into_iter()
        .filter(|m| m.membership == "join")
        .map(|m| m.room_id)
        .collect();
    Ok(Json(json!({"joined_rooms": rooms})))
}

/// Members may read member lists; others get `M_FORBIDDEN`, unknown rooms too (we cannot tell a
/// room we do not know from one we may not see).
async fn require_member_or_reader(s: &Services, room_id: &str, user_id: &str) -> Result<()> {
    let viewer = s.viewer(room_id, user_id).await?;
    if viewer.current() == Some("join") || viewer.world_readable_now() {
        return Ok(());
    }
    Err(Error::forbidden("You are not in this room"))
}

/// `GET /_matrix/client/v3/rooms/{roomId}/joined_members`
async fn get_joined_members(
    State(s): State<Services>,
    req: Ruma<joined_members::Request>,
) -> Result<Json<Value>> {
    let room_id = req.body.room_id.as_str();
    require_member_or_reader(&s, room_id, &req.requester().user_id).await?;
    let mut joined = Map::new();
    for e in s.store.current_state(room_id).await? {
        if e.event_type != "m.room.member" {
            continue;
        }
        let v: Value = serde_json::from_str(&e.json).unwrap_or_default();
        if v["content"]["membership"] == "join" {
            joined.insert(
                e.state_key.clone().unwrap_or_default(),
                json!({"display_name": v["content"]["displayname"], "avatar_url": v["content"]["avatar_url"]}),
            );
        }
    }
    Ok(Json(json!({"joined": joined})))
}

/// `GET /_matrix/client/v3/rooms/{roomId}/members`
async fn get_members(
    State(s): State<Services>,
    req: Ruma<members::Request>,
) -> Result<Json<Value>> {
    let who = req.requester().clone();
    let room_id = req.body.room_id.as_str();
    let viewer = s.viewer(room_id, &who.user_id).await?;
    let current = viewer.current().map(str::to_owned);
    if current.is_none() && !viewer.world_readable_now() {
        return Err(Error::forbidden("You are not in this room"));
    }
    // A user who left sees the members as of their leave.
    let last_membership = s
        .store
        .membership_history(room_id, &who.user_id)
        .await?
        .last()
        .map(|m| m.stream_ordering);
    let mut at = match &req.body.at {
        Some(token) => Token::parse(token)?.stream,
        None => s.stream.safe(),
    };
    if current.as_deref() != Some("join")
        && let Some(left) = last_membership
    {
        at = at.min(left);
    }
    let state = s.store.state_at(room_id, at).await?;
    let viewing = Viewing {
        user_id: &who.user_id,
        device_id: &who.device_id,
    };
    let membership = req.body.membership.as_ref().map(|m| m.to_string());
    let not_membership = req.body.not_membership.as_ref().map(|m| m.to_string());
    let chunk: Vec<Value> = state
        .iter()
        .filter(|e| e.event_type == "m.room.member")
        .map(|e| client_event(e, viewing))
        .filter(|e| {
            let m = e["content"]["membership"].as_str().unwrap_or_default();
            membership.as_deref().is_none_or(|want| m == want)
                && not_membership.as_deref().is_none_or(|not| m != not)
        })
        .collect();
    Ok(Json(json!({"chunk": chunk})))
}

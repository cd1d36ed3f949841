//! Room aliases, the public room directory and the user directory.

use axum::{Json, Router, extract::State};
use ruma::api::client::{
    alias::{
        create_alias::v3 as create_alias, delete_alias::v3 as delete_alias,
        get_alias::v3 as get_alias,
    },
    directory::{
        get_public_rooms::v3 as public_rooms,
        get_public_rooms_filtered::v3 as public_rooms_filtered,
        get_room_visibility::v3 as get_visibility, set_room_visibility::v3 as set_visibility,
    },
    room::{Visibility, aliases::v3 as room_aliases},
    user_directory::search_users::v3 as search_users,
};
use serde_json::{Value, json};

use crate::{
    api::{RouteExt, Ruma},
    error::Result,
    service::Services,
};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .ruma::<create_alias::Request, _, _>(put_alias)
        .ruma::<get_alias::Request, _, _>(get_alias_room)
        .ruma::<delete_alias::Request, _, _>(delete_alias_room)
        .ruma::<room_aliases::Request, _, _>(get_room_aliases)
        .ruma::<public_rooms::Request, _, _>(get_public)
        .ruma::<public_rooms_filtered::Request, _, _>(post_public)
        .ruma::<get_visibility::Request, _, _>(get_room_visibility)
        .ruma::<set_visibility::Request, _, _>(put_room_visibility)
        .ruma::<search_users::Request, _, _>(post_user_search)
}

/// `PUT /_matrix/client/v3/directory/room/{roomAlias}`
async fn put_alias(
    State(s): State<Services>,
    req: Ruma<create_alias::Request>,
) -> Result<Json<Value>> {
    let who = req.requester();
    s.check_alias_creatable(req.body.room_alias.as_str(), who.appservice.as_deref())?;
    s.create_alias(
        req.body.room_alias.as_str(),
        req.body.room_id.as_str(),
        &req.requester().user_id,
    )
    .await?;
    Ok(Json(json!({})))
}

/// `GET /_matrix/client/v3/directory/room/{roomAlias}`
async fn get_alias_room(
    State(s): State<Services>,
    req: Ruma<get_alias::Request>,
) -> Result<Json<Value>> {
    let room_id = s.resolve_room(req.body.room_alias.as_str()).await?;
    Ok(Json(
        json!({"room_id": room_id, "servers": [s.config.server_name]}),
    ))
}

/// `DELETE /_matrix/client/v3/directory/room/{roomAlias}`
async fn delete_alias_room(
    State(s): State<Services>,
    req: Ruma<delete_alias::Request>,
) -> Result<Json<Value>> {
    s.delete_alias(req.body.room_alias.as_str(), &req.requester().user_id)
        .await?;
    Ok(Json(json!({})))
}

/// `GET /_matrix/client/v3/rooms/{roomId}/aliases`
async fn get_room_aliases(
    State(s): State<Services>,
    req: Ruma<room_aliases::Request>,
) -> Result<Json<Value>> {
    let aliases = s
        .room_aliases_for(req.body.room_id.as_str(), &req.requester().user_id)
        .await?;
    Ok(Json(json!({"aliases": aliases})))
}

/// `GET /_matrix/client/v3/publicRooms`
async fn get_public(
    State(s): State<Services>,
    req: Ruma<public_rooms::Request>,
) -> Result<Json<Value>> {
    let limit = req.body.limit.map(u64::from);
    Ok(Json(
        s.public_rooms(limit, req.body.since.as_deref(), None)
            .await?,
    ))
}

/// `POST /_matrix/client/v3/publicRooms`
async fn post_public(
    State(s): State<Services>,
    req: Ruma<public_rooms_filtered::Request>,
) -> Result<Json<Value>> {
    let limit = req.body.limit.map(u64::from);
    let term = req.body.filter.generic_search_term.clone();
    Ok(Json(
        s.public_rooms(limit, req.body.since.as_deref(), term.as_deref())
            .await?,
    ))
}

/// `GET /_matrix/client/v3/directory/list/room/{roomId}`
async fn get_room_visibility(
    State(s): State<Services>,
    req: Ruma<get_visibility::Request>,
) -> Result<Json<Value>> {
    let public = s.room_visibility(req.body.room_id.as_str()).await?;
    Ok(Json(
        json!({"visibility": if public { "public" } else { "private" }}),
    ))
}

/// `PUT /_matrix/client/v3/directory/list/room/{roomId}`
async fn put_room_visibility(
    State(s): State<Services>,
    req: Ruma<set_visibility::Request>,
) -> Result<Json<Value>> {
    let public = req.body.visibility == Visibility::Public;
    s.set_room_visibility(req.body.room_id.as_str(), &req.requester().user_id, public)
        .await?;
    Ok(Json(json!({})))
}

/// `POST /_matrix/client/v3/user_directory/search`
async fn post_user_search(
    State(s): State<Services>,
    req: Ruma<search_users::Request>,
) -> Result<Json<Value>> {
    let limit = u64::from(req.body.limit).clamp(1, 100) as usize;
    Ok(Json(
        s.search_users(&req.requester().user_id, &req.body.search_term, limit)
            .await?,
    ))
}

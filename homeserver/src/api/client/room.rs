//! Room creation: `POST /_matrix/client/v3/createRoom`.

use axum::{Json, Router, extract::State};
use ruma::api::client::room::{Visibility, create_room::v3 as create_room};
use serde_json::{Map, Value, json};

use crate::{
    api::{RouteExt, Ruma},
    error::{Error, Result},
    service::{Services, rooms::create::CreateRoom},
};

pub(super) fn router() -> Router<Services> {
    Router::new().ruma::<create_room::Request, _, _>(post_create_room)
}

fn object(raw: &serde_json::value::RawValue, field: &str) -> Result<Map<String, Value>> {
    match serde_json::from_str::<Value>(raw.get()) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(Error::bad_json(format!("{field} must be an object"))),
    }
}

/// `POST /_matrix/client/v3/createRoom`
async fn post_create_room(
    State(s): State<Services>,
    req: Ruma<create_room::Request>,
) -> Result<Json<Value>> {
    let who = req.requester().clone();
    let body = req.body;
    if let Some(localpart) = &body.room_alias_name {
        let alias = format!("#{localpart}:{}", s.config.server_name);
        s.check_alias_creatable(&alias, who.appservice.as_deref())?;
    }
    let mut initial_state = Vec::new();
    for raw in &body.initial_state {
        let event = object(raw.json(), "initial_state")?;
        let event_type = event
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::bad_json("initial_state events need a type"))?;
        let state_key = event.get("state_key").and_then(Value::as_str).unwrap_or("");
        let content = event.get("content").cloned().unwrap_or_else(|| json!({}));
        initial_state.push((event_type.to_owned(), state_key.to_owned(), content));
    }
    let request = CreateRoom {
        room_version: body.room_version.map(|v| v.to_string()),
        preset: body.preset.map(|p| p.to_string()),
        visibility_public: body.visibility == Visibility::Public,
        name: body.name,
        topic: body.topic,
        alias_localpart: body.room_alias_name,
        invite: body.invite.iter().map(ToString::to_string).collect(),
        is_direct: body.is_direct,
        creation_content: body
            .creation_content
            .as_ref()
            .map(|c| object(c.json(), "creation_content"))
            .transpose()?,
        initial_state,
        power_level_content_override: body
            .power_level_content_override
            .as_ref()
            .map(|c| object(c.json(), "power_level_content_override"))
            .transpose()?,
    };
    let room_id = s.create_room(&who.user_id, request).await?;
    Ok(Json(json!({"room_id": room_id})))
}

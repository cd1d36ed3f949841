//! `GET /_matrix/client/v3/sync` and filters.

use std::time::Duration;

use axum::{Json, Router, extract::State};
use ruma::api::client::{
    filter::{FilterDefinition, create_filter::v3 as create_filter, get_filter::v3 as get_filter},
    sync::sync_events::v3 as sync,
};
use serde_json::{Value, json};

use crate::{
    api::{RouteExt, Ruma},
    error::{Error, Result},
    service::{
        Services,
        sync::{SyncRequest, Token},
    },
};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .ruma::<sync::Request, _, _>(get_sync)
        .ruma::<create_filter::Request, _, _>(post_filter)
        .ruma::<get_filter::Request, _, _>(get_filter_by_id)
}

/// `GET /_matrix/client/v3/sync`
async fn get_sync(State(s): State<Services>, req: Ruma<sync::Request>) -> Result<Json<Value>> {
    let who = req.requester().clone();
    let body = req.body;
    let filter = match &body.filter {
        None => FilterDefinition::default(),
        Some(sync::Filter::FilterDefinition(f)) => f.clone(),
        Some(sync::Filter::FilterId(id)) => s.filter(&who.user_id, id).await?,
        Some(_) => return Err(Error::invalid_param("Unknown filter form")),
    };
    let since = body.since.as_deref().map(Token::parse).transpose()?;
    let request = SyncRequest {
        user_id: who.user_id.clone(),
        device_id: who.device_id.clone(),
        since,
        full_state: body.full_state,
        timeout: body.timeout.unwrap_or(Duration::ZERO),
        filter,
        set_presence: Some(body.set_presence.to_string()),
    };
    Ok(Json(s.sync(request).await?))
}

/// `POST /_matrix/client/v3/user/{userId}/filter`
async fn post_filter(
    State(s): State<Services>,
    req: Ruma<create_filter::Request>,
) -> Result<Json<Value>> {
    let who = req.requester();
    if req.body.user_id.as_str() != who.user_id {
        return Err(Error::forbidden("Cannot create filters for other users"));
    }
    let id = s.create_filter(&who.user_id, &req.body.filter).await?;
    Ok(Json(json!({"filter_id": id})))
}

/// `GET /_matrix/client/v3/user/{userId}/filter/{filterId}`
async fn get_filter_by_id(
    State(s): State<Services>,
    req: Ruma<get_filter::Request>,
) -> Result<Json<Value>> {
    let who = req.requester();
    if req.body.user_id.as_str() != who.user_id {
        return Err(Error::forbidden("Cannot read filters of other users"));
    }
    let filter = s.filter(&who.user_id, &req.body.filter_id).await?;
    Ok(Json(serde_json::to_value(filter).map_err(Error::internal)?))
}

//! `GET/PUT /_matrix/client/v3/presence/{userId}/status`

use axum::{Json, Router, extract::State};
use ruma::api::client::presence::{get_presence::v3 as get, set_presence::v3 as set};
use serde_json::{Value, json};

use crate::{
    api::{RouteExt, Ruma},
    error::{Error, Result},
    service::Services,
};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .ruma::<get::Request, _, _>(get_status)
        .ruma::<set::Request, _, _>(put_status)
}

async fn get_status(State(s): State<Services>, req: Ruma<get::Request>) -> Result<Json<Value>> {
    Ok(Json(s.get_presence(req.body.user_id.as_str()).await?))
}

async fn put_status(State(s): State<Services>, req: Ruma<set::Request>) -> Result<Json<Value>> {
    let who = req.requester();
    if req.body.user_id.as_str() != who.user_id {
        return Err(Error::forbidden("You may only set your own presence"));
    }
    s.set_presence(
        &who.user_id,
        req.body.presence.as_ref(),
        req.body.status_msg.as_deref(),
    )
    .await?;
    Ok(Json(json!({})))
}

//! Application service companion endpoints: `ping`, and the appservice-only batch send.

use axum::{
    Json, Router,
    extract::{Path, Request, State},
    routing::post,
};
use ruma::api::{client::appservice::request_ping::v1 as ping, error::ErrorKind};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    api::{
        RouteExt, Ruma, RumaResponse,
        ruma_extract::{access_token, read_body},
    },
    error::{Error, Result},
    service::{Services, appservice::batch_send::BatchEvent},
};

pub(super) fn router() -> Router<Services> {
    Router::new().ruma::<ping::Request, _, _>(post_ping).route(
        "/_matrix/client/unstable/fi.causeway.batch_send/rooms/{room_id}/batch_send",
        post(post_batch_send),
    )
}

/// `POST /_matrix/client/v1/appservice/{appserviceId}/ping`
/// (<https://spec.matrix.org/latest/client-server-api/#post_matrixclientv1appserviceappserviceidping>)
async fn post_ping(
    State(s): State<Services>,
    req: Ruma<ping::Request>,
) -> Result<RumaResponse<ping::Response>> {
    let who = req.requester();
    if who.appservice.as_deref() != Some(req.body.appservice_id.as_str()) {
        return Err(Error::forbidden(
            "Only the application service itself may ping it",
        ));
    }
    let txn = req.body.transaction_id.as_ref().map(|t| t.as_str());
    let duration = s.ping_appservice(&req.body.appservice_id, txn).await?;
    Ok(RumaResponse(ping::Response::new(duration)))
}

/// A batch of 10,000 ordinary messages is 1 to 3 MB, past the usual request limit; only
/// appservices reach this endpoint, so it takes up to this much.
const BATCH_BODY_LIMIT: usize = 32 * 1024 * 1024;

#[derive(Deserialize)]
struct BatchBody {
    events: Vec<BatchEvent>,
}

/// `POST /_matrix/client/unstable/fi.causeway.batch_send/rooms/{roomId}/batch_send`: see
/// [`crate::service::appservice::batch_send`] for the shape and guarantees.
async fn post_batch_send(
    State(s): State<Services>,
    Path(room_id): Path<String>,
    req: Request,
) -> Result<Json<Value>> {
    let (parts, body) = req.into_parts();
    let token = access_token(&parts)?
        .ok_or_else(|| Error::new(ErrorKind::MissingToken, "Missing access token"))?;
    let who = s.authenticate(&token).await?;
    let Some(as_id) = who.appservice else {
        return Err(Error::forbidden("Only application services may batch send"));
    };
    let limit = (s.config.max_request_body_size.0 as usize).max(BATCH_BODY_LIMIT);
    let bytes = read_body(body, limit).await?;
    let body: BatchBody = serde_json::from_slice(&bytes).map_err(|e| {
        if e.is_data() && e.to_string().contains("missing field") {
            Error::missing_param(e.to_string())
        } else {
            Error::bad_json(e.to_string())
        }
    })?;
    let ids = s.batch_send(&as_id, &room_id, body.events).await?;
    Ok(Json(json!({ "event_ids": ids })))
}

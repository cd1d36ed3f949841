//! `PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}`

use axum::{Json, Router, extract::State};
use ruma::api::client::redact::redact_event::v3 as redact;
use serde_json::{Value, json};

use crate::{
    api::{RouteExt, Ruma},
    error::Result,
    service::Services,
};

pub(super) fn router() -> Router<Services> {
    Router::new().ruma::<redact::Request, _, _>(put_redact)
}

async fn put_redact(State(s): State<Services>, req: Ruma<redact::Request>) -> Result<Json<Value>> {
    let who = req.requester().clone();
    s.check_message_rate(&who)?;
    let b = req.body;
    let txn = Some((who.device_id.clone(), format!("redact:{}", b.txn_id)));
    let sent = s
        .redact(
            b.room_id.as_str(),
            &who.user_id,
            b.event_id.as_str(),
            b.reason.as_deref(),
            txn,
        )
        .await?;
    Ok(Json(json!({"event_id": sent.event_id})))
}

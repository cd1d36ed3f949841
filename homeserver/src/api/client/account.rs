//! The caller's account: `whoami`, password change, deactivation, third-party ids.

use axum::{Router, extract::State};
use ruma::{
    OwnedDeviceId, OwnedUserId,
    api::client::account::{
        ThirdPartyIdRemovalStatus, change_password::v3 as change_password,
        deactivate::v3 as deactivate, get_3pids::v3 as get_3pids, whoami::v3 as whoami,
    },
};

use super::uiaa::require_password;
use crate::{
    api::{RouteExt, Ruma, RumaResponse},
    error::{Error, Result},
    service::{Services, accounts::Requester},
};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .ruma::<whoami::Request, _, _>(get_whoami)
        .ruma::<change_password::Request, _, _>(post_password)
        .ruma::<deactivate::Request, _, _>(post_deactivate)
        .ruma::<get_3pids::Request, _, _>(get_threepids)
}

/// `GET /_matrix/client/v3/account/whoami`
async fn get_whoami(
    State(s): State<Services>,
    req: Ruma<whoami::Request>,
) -> Result<RumaResponse<whoami::Response>> {
    let who = req.requester();
    let is_guest = s
        .store
        .user(&who.user_id)
        .await?
        .is_some_and(|u| u.is_guest);
    let user_id: OwnedUserId = who.user_id.clone().try_into().map_err(Error::internal)?;
    let mut response = whoami::Response::new(user_id, is_guest);
    response.device_id = Some(OwnedDeviceId::from(who.device_id.clone()));
    Ok(RumaResponse(response))
}

fn signed_in<T>(req: &Ruma<T>) -> Result<&Requester> {
    req.requester.as_ref().ok_or_else(|| {
        Error::new(
            ruma::api::error::ErrorKind::MissingToken,
            "Missing access token",
        )
    })
}

/// `POST /_matrix/client/v3/account/password`
async fn post_password(
    State(s): State<Services>,
    req: Ruma<change_password::Request>,
) -> Result<RumaResponse<change_password::Response>> {
    let who = signed_in(&req)?;
    require_password(&s, who, req.body.auth.as_ref(), "password").await?;
    s.change_password(who, &req.body.new_password, req.body.logout_devices)
        .await?;
    Ok(RumaResponse(change_password::Response::new()))
}

/// `POST /_matrix/client/v3/account/deactivate`
async fn post_deactivate(
    State(s): State<Services>,
    req: Ruma<deactivate::Request>,
) -> Result<RumaResponse<deactivate::Response>> {
    let who = signed_in(&req)?;
    require_password(&s, who, req.body.auth.as_ref(), "deactivate").await?;
    s.store.deactivate_user(&who.user_id).await?;
    s.device_list_changed(&who.user_id).await?;
    tracing::info!(user_id = who.user_id, "account deactivated");
    Ok(RumaResponse(deactivate::Response::new(
        ThirdPartyIdRemovalStatus::NoSupport,
    )))
}

/// `GET /_matrix/client/v3/account/3pid`: we keep no third-party ids. Written out by hand because
/// ruma omits an empty list, and clients expect the key.
async fn get_threepids(_req: Ruma<get_3pids::Request>) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "threepids": [] }))
}

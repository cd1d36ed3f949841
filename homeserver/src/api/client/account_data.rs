//! Client config: global and per-room account data.

use axum::{Router, extract::State};
use ruma::{
    api::client::config::{
        get_global_account_data::v3 as get_global, get_room_account_data::v3 as get_room,
        set_global_account_data::v3 as set_global, set_room_account_data::v3 as set_room,
    },
    serde::Raw,
};

use crate::{
    api::{RouteExt, Ruma, RumaResponse},
    error::{Error, Result},
    service::{Services, accounts::Requester},
};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .ruma::<get_global::Request, _, _>(get_global_data)
        .ruma::<set_global::Request, _, _>(put_global_data)
        .ruma::<get_room::Request, _, _>(get_room_data)
        .ruma::<set_room::Request, _, _>(put_room_data)
}

fn own(who: &Requester, user_id: &str) -> Result<()> {
    if who.user_id != user_id {
        return Err(Error::forbidden(
            "Cannot access account data of other users",
        ));
    }
    Ok(())
}

/// Types the server manages itself, which clients may not set directly.
fn check_settable(data_type: &str) -> Result<()> {
    if data_type == "m.fully_read" || data_type == "m.push_rules" {
        return Err(Error::bad_json(format!(
            "Cannot set {data_type} through this API"
        )));
    }
    Ok(())
}

fn to_raw<T>(json: String) -> Result<Raw<T>> {
    let raw = serde_json::value::RawValue::from_string(json).map_err(Error::internal)?;
    Ok(Raw::from_json(raw))
}

/// `GET /_matrix/client/v3/user/{userId}/account_data/{type}`
async fn get_global_data(
    State(s): State<Services>,
    req: Ruma<get_global::Request>,
) -> Result<RumaResponse<get_global::Response>> {
    own(req.requester(), req.body.user_id.as_str())?;
    let data_type = req.body.event_type.to_string();
    let content = s
        .store
        .account_data(&req.requester().user_id, "", &data_type)
        .await?;
    let content = content.ok_or_else(|| Error::not_found("Account data not found"))?;
    Ok(RumaResponse(get_global::Response::new(to_raw(content)?)))
}

/// `PUT /_matrix/client/v3/user/{userId}/account_data/{type}`
async fn put_global_data(
    State(s): State<Services>,
    req: Ruma<set_global::Request>,
) -> Result<RumaResponse<set_global::Response>> {
    own(req.requester(), req.body.user_id.as_str())?;
    let data_type = req.body.event_type.to_string();
    check_settable(&data_type)?;
    s.set_account_data(
        &req.requester().user_id,
        "",
        &data_type,
        req.body.data.json().get(),
    )
    .await?;
    Ok(RumaResponse(set_global::Response::new()))
}

/// `GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}`
async fn get_room_data(
    State(s): State<Services>,
    req: Ruma<get_room::Request>,
) -> Result<RumaResponse<get_room::Response>> {
    own(req.requester(), req.body.user_id.as_str())?;
    let data_type = req.body.event_type.to_string();
    let content = s
        .store
        .account_data(
            &req.requester().user_id,
            req.body.room_id.as_str(),
            &data_type,
        )
        .await?;
    let content = content.ok_or_else(|| Error::not_found("Account data not found"))?;
    Ok(RumaResponse(get_room::Response::new(to_raw(content)?)))
}

/// `PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}`
async fn put_room_data(
    State(s): State<Services>,
    req: Ruma<set_room::Request>,
) -> Result<RumaResponse<set_room::Response>> {
    own(req.requester(), req.body.user_id.as_str())?;
    let data_type = req.body.event_type.to_string();
    check_settable(&data_type)?;
    s.set_account_data(
        &req.requester().user_id,
        req.body.room_id.as_str(),
        &data_type,
        req.body.data.json().get(),
    )
    .await?;
    Ok(RumaResponse(set_room::Response::new()))
}

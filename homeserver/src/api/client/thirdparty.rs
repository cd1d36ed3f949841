//! Third-party lookups, proxied to the appservices that bridge each protocol: see
//! [`crate::service::appservice::thirdparty`].

use axum::{Json, Router, extract::State};
use ruma::api::client::thirdparty::{
    get_location_for_protocol::v3 as location_for_protocol,
    get_location_for_room_alias::v3 as location_for_alias, get_protocol::v3 as protocol,
    get_protocols::v3 as protocols, get_user_for_protocol::v3 as user_for_protocol,
    get_user_for_user_id::v3 as user_for_user_id,
};
use serde_json::Value;

use crate::{
    api::{RouteExt, Ruma},
    error::Result,
    service::{Services, appservice::thirdparty::Kind},
};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .ruma::<protocols::Request, _, _>(get_protocols)
        .ruma::<protocol::Request, _, _>(get_protocol)
        .ruma::<location_for_protocol::Request, _, _>(get_location_for_protocol)
        .ruma::<user_for_protocol::Request, _, _>(get_user_for_protocol)
        .ruma::<location_for_alias::Request, _, _>(get_location_for_alias)
        .ruma::<user_for_user_id::Request, _, _>(get_user_for_user_id)
}

/// `GET /_matrix/client/v3/thirdparty/protocols`
/// (<https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3thirdpartyprotocols>)
async fn get_protocols(
    State(s): State<Services>,
    _req: Ruma<protocols::Request>,
) -> Result<Json<Value>> {
    Ok(Json(Value::Object(s.thirdparty_protocols().await?)))
}

/// `GET /_matrix/client/v3/thirdparty/protocol/{protocol}`
/// (<https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3thirdpartyprotocolprotocol>)
async fn get_protocol(
    State(s): State<Services>,
    req: Ruma<protocol::Request>,
) -> Result<Json<Value>> {
    Ok(Json(s.thirdparty_protocol(&req.body.protocol).await?))
}

/// `GET /_matrix/client/v3/thirdparty/location/{protocol}`
/// (<https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3thirdpartylocationprotocol>)
async fn get_location_for_protocol(
    State(s): State<Services>,
    req: Ruma<location_for_protocol::Request>,
) -> Result<Json<Value>> {
    let found = s
        .thirdparty_lookup(Kind::Location, &req.body.protocol, &req.body.fields)
        .await?;
    Ok(Json(Value::Array(found)))
}

/// `GET /_matrix/client/v3/thirdparty/user/{protocol}`
/// (<https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3thirdpartyuserprotocol>)
async fn get_user_for_protocol(
    State(s): State<Services>,
    req: Ruma<user_for_protocol::Request>,
) -> Result<Json<Value>> {
    let found = s
        .thirdparty_lookup(Kind::User, &req.body.protocol, &req.body.fields)
        .await?;
    Ok(Json(Value::Array(found)))
}

/// `GET /_matrix/client/v3/thirdparty/location?alias=`
/// (<https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3thirdpartylocation>)
async fn get_location_for_alias(
    State(s): State<Services>,
    req: Ruma<location_for_alias::Request>,
) -> Result<Json<Value>> {
    let found = s
        .thirdparty_reverse_lookup(Kind::Location, req.body.alias.as_str())
        .await?;
    Ok(Json(Value::Array(found)))
}

/// `GET /_matrix/client/v3/thirdparty/user?userid=`
/// (<https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3thirdpartyuser>)
async fn get_user_for_user_id(
    State(s): State<Services>,
    req: Ruma<user_for_user_id::Request>,
) -> Result<Json<Value>> {
    let found = s
        .thirdparty_reverse_lookup(Kind::User, req.body.userid.as_str())
        .await?;
    Ok(Json(Value::Array(found)))
}

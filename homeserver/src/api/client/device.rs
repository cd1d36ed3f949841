//! Device management: list, get, rename, delete (with user-interactive auth, except for
//! application services, which also create their users' devices with `PUT`).

use axum::{Router, extract::State};
use ruma::{
    MilliSecondsSinceUnixEpoch, OwnedDeviceId, UInt,
    api::client::device::{
        Device, delete_device::v3 as delete_device, delete_devices::v3 as delete_devices,
        get_device::v3 as get_device, get_devices::v3 as get_devices,
        update_device::v3 as update_device,
    },
};

use super::uiaa::require_password;
use crate::{
    api::{RouteExt, Ruma, RumaResponse},
    error::{Error, Result},
    service::Services,
    store::DeviceRow,
};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .ruma::<get_devices::Request, _, _>(list)
        .ruma::<get_device::Request, _, _>(get)
        .ruma::<update_device::Request, _, _>(put)
        .ruma::<delete_device::Request, _, _>(delete)
        .ruma::<delete_devices::Request, _, _>(delete_many)
}

fn to_device(row: DeviceRow) -> Device {
    let mut d = Device::new(OwnedDeviceId::from(row.device_id));
    d.display_name = row.display_name;
    d.last_seen_ip = row.last_seen_ip;
    d.last_seen_ts = row
        .last_seen_ts
        .and_then(|t| UInt::try_from(t).ok())
        .map(MilliSecondsSinceUnixEpoch);
    d
}

/// `GET /_matrix/client/v3/devices`
async fn list(
    State(s): State<Services>,
    req: Ruma<get_devices::Request>,
) -> Result<RumaResponse<get_devices::Response>> {
    let rows = s.store.devices(&req.requester().user_id).await?;
    Ok(RumaResponse(get_devices::Response::new(
        rows.into_iter().map(to_device).collect(),
    )))
}

/// `GET /_matrix/client/v3/devices/{deviceId}`
async fn get(
    State(s): State<Services>,
    req: Ruma<get_device::Request>,
) -> Result<RumaResponse<get_device::Response>> {
    let row = s
        .store
        .device(&req.requester().user_id, req.body.device_id.as_str())
        .await?;
    let row = row.ok_or_else(|| Error::not_found("Device not found"))?;
    Ok(RumaResponse(get_device::Response::new(to_device(row))))
}

/// `PUT /_matrix/client/v3/devices/{deviceId}`
async fn put(
    State(s): State<Services>,
    req: Ruma<update_device::Request>,
) -> Result<RumaResponse<update_device::Response>> {
    let who = req.requester();
    let found = s
        .store
        .rename_device(
            &who.user_id,
            req.body.device_id.as_str(),
            req.body.display_name.as_deref(),
        )
        .await?;
    if !found {
        // MSC4190: an appservice creates its users' devices this way, without logging them in.
        if who.appservice.is_some() {
            s.create_device_for_appservice(
                who,
                req.body.device_id.as_str(),
                req.body.display_name.as_deref(),
            )
            .await?;
            return Ok(RumaResponse(update_device::Response::new()));
        }
        return Err(Error::not_found("Device not found"));
    }
    Ok(RumaResponse(update_device::Response::new()))
}

/// `DELETE /_matrix/client/v3/devices/{deviceId}`
async fn delete(
    State(s): State<Services>,
    req: Ruma<delete_device::Request>,
) -> Result<RumaResponse<delete_device::Response>> {
    let who = req.requester();
    if s.store
        .device(&who.user_id, req.body.device_id.as_str())
        .await?
        .is_none()
    {
        return Err(Error::not_found("Device not found"));
    }
    // The spec (device management, MSC4190): no user-interactive auth for appservices.
    if who.appservice.is_none() {
        require_password(&s, who, req.body.auth.as_ref(), "delete_device").await?;
    }
    s.store
        .delete_device(&who.user_id, req.body.device_id.as_str())
        .await?;
    s.device_list_changed(&who.user_id).await?;
    tracing::info!(user_id = who.user_id, device_id = %req.body.device_id, "device deleted");
    Ok(RumaResponse(delete_device::Response::new()))
}

/// `POST /_matrix/client/v3/delete_devices`
async fn delete_many(
    State(s): State<Services>,
    req: Ruma<delete_devices::Request>,
) -> Result<RumaResponse<delete_devices::Response>> {
    let who = req.requester();
    if who.appservice.is_none() {
        require_password(&s, who, req.body.auth.as_ref(), "delete_devices").await?;
    }
    let ids: Vec<String> = req
        .body
        .devices
        .iter()
        .map(|d| d.as_str().to_owned())
        .collect();
    s.store.delete_devices(&who.user_id, &ids).await?;
    s.device_list_changed(&who.user_id).await?;
    tracing::info!(user_id = who.user_id, count = ids.len(), "devices deleted");
    Ok(RumaResponse(delete_devices::Response::new()))
}

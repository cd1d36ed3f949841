//! Send-to-device messaging.
//! <https://spec.matrix.org/latest/client-server-api/#send-to-device-messaging>

use axum::{Router, extract::State};
use ruma::api::client::to_device::send_event_to_device::v3 as send_to_device;
use ruma::to_device::DeviceIdOrAllDevices;
use serde_json::Value;

use crate::{
    api::{RouteExt, Ruma, RumaResponse},
    error::{Error, Result},
    service::{Services, e2ee::to_device::Outgoing},
};

pub(super) fn router() -> Router<Services> {
    Router::new().ruma::<send_to_device::Request, _, _>(put)
}

/// `PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId}`
async fn put(
    State(s): State<Services>,
    req: Ruma<send_to_device::Request>,
) -> Result<RumaResponse<send_to_device::Response>> {
    let b = &req.body;
    let mut messages = Vec::new();
    for (user_id, devices) in &b.messages {
        for (device, raw) in devices {
            let content: Value = serde_json::from_str(raw.json().get())
                .map_err(|e| Error::bad_json(e.to_string()))?;
            if !content.is_object() {
                return Err(Error::bad_json("Message content must be an object"));
            }
            let device_id = match device {
                DeviceIdOrAllDevices::DeviceId(d) => d.to_string(),
                DeviceIdOrAllDevices::AllDevices => "*".to_owned(),
            };
            messages.push(Outgoing {
                user_id: user_id.to_string(),
                device_id,
                content,
            });
        }
    }
    s.send_to_device(
        req.requester(),
        &b.event_type.to_string(),
        b.txn_id.as_str(),
        messages,
    )
    .await?;
    Ok(RumaResponse(send_to_device::Response::new()))
}

//! Server discovery and capabilities: `/versions`, `/.well-known/matrix/*`, `/capabilities`.

use std::collections::BTreeMap;

use axum::{Json, Router, extract::State, routing::get};
use ruma::{
    RoomVersionId,
    api::client::discovery::{
        get_capabilities::v3 as capabilities,
        get_capabilities::v3::{Capabilities, RoomVersionStability, RoomVersionsCapability},
        get_supported_versions,
    },
};
use serde_json::{Value, json};

use crate::{
    api::{RouteExt, Ruma, RumaResponse},
    error::{Error, Result},
    service::Services,
};

/// Spec versions we serve.
const VERSIONS: &[&str] = &[
    "r0.5.0", "r0.6.0", "r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8",
    "v1.9", "v1.10", "v1.11", "v1.12",
];

/// Room versions we can create and join, with the default first.
pub(crate) const DEFAULT_ROOM_VERSION: RoomVersionId = RoomVersionId::V11;

pub(super) fn router() -> Router<Services> {
    Router::new()
        .ruma::<get_supported_versions::Request, _, _>(versions)
        .ruma::<capabilities::Request, _, _>(get_capabilities)
        .route("/.well-known/matrix/client", get(well_known_client))
        .route("/.well-known/matrix/server", get(well_known_server))
}

/// `GET /_matrix/client/versions`
async fn versions(
    _req: Ruma<get_supported_versions::Request>,
) -> RumaResponse<get_supported_versions::Response> {
    let mut response =
        get_supported_versions::Response::new(VERSIONS.iter().map(|v| (*v).to_owned()).collect());
    response.unstable_features = BTreeMap::from([
        ("org.matrix.msc2432".to_owned(), true),
        ("fi.causeway.batch_send".to_owned(), true),
    ]);
    RumaResponse(response)
}

/// `GET /_matrix/client/v3/capabilities`
async fn get_capabilities(
    _req: Ruma<capabilities::Request>,
) -> RumaResponse<capabilities::Response> {
    let available = (1..=12)
        .filter_map(|v| RoomVersionId::try_from(v.to_string().as_str()).ok())
        .map(|v| (v, RoomVersionStability::Stable))
        .collect();
    let mut caps = Capabilities::new();
    caps.room_versions = RoomVersionsCapability::new(DEFAULT_ROOM_VERSION, available);
    caps.thirdparty_id_changes.enabled = false;
    RumaResponse(capabilities::Response::new(caps))
}

/// `GET /.well-known/matrix/client`: only when `public_baseurl` is set.
async fn well_known_client(State(s): State<Services>) -> Result<Json<Value>> {
    let Some(base) = &s.config.public_baseurl else {
        return Err(Error::not_found(
            "No .well-known/matrix/client is configured (set public_baseurl)",
        ));
    };
    Ok(Json(json!({ "m.homeserver": { "base_url": base } })))
}

/// `GET /.well-known/matrix/server`: when `serve_server_wellknown` is on; delegates to
/// `public_baseurl`'s host on port 443, as Synapse does.
async fn well_known_server(State(s): State<Services>) -> Result<Json<Value>> {
    if !s.config.serve_server_wellknown {
        return Err(Error::not_found(
            "No .well-known/matrix/server is configured (set serve_server_wellknown)",
        ));
    }
    let server = s
        .config
        .public_baseurl
        .as_deref()
        .and_then(|b| url::Url::parse(b).ok())
        .and_then(|u| {
            u.host_str()
                .map(|h| format!("{h}:{}", u.port().unwrap_or(443)))
        })
        .unwrap_or_else(|| format!("{}:443", s.config.server_name));
    Ok(Json(json!({ "m.server": server })))
}

//! Synapse's shared-secret registration, so `register_new_matrix_user` works against us:
//! `GET/POST /_synapse/admin/v1/register`.

use axum::{Json, Router, extract::State, routing::get};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    error::{Error, Result},
    service::{
        Services,
        accounts::{Registration, SessionOptions},
        shared_secret::{self, MacInput},
    },
};

pub(super) fn router() -> Router<Services> {
    Router::new().route(
        "/_synapse/admin/v1/register",
        get(get_nonce).post(post_register),
    )
}

fn require_enabled(s: &Services) -> Result<&str> {
    s.config
        .registration_shared_secret
        .as_deref()
        .ok_or_else(|| Error::bad_json("Shared secret registration is not enabled").into_unknown())
}

impl Error {
    /// Synapse answers these with `M_UNKNOWN` and status 400.
    fn into_unknown(self) -> Error {
        match self {
            Error::Matrix { message, .. } => {
                Error::new(ruma::api::error::ErrorKind::Unknown, message)
            }
            other => other,
        }
    }
}

/// `GET /_synapse/admin/v1/register`: a nonce valid for 60 seconds.
async fn get_nonce(State(s): State<Services>) -> Result<Json<Value>> {
    require_enabled(&s)?;
    Ok(Json(json!({ "nonce": s.nonces.issue() })))
}

#[derive(Deserialize)]
struct SharedSecretRegistration {
    nonce: String,
    username: String,
    password: String,
    mac: String,
    #[serde(default)]
    admin: bool,
    user_type: Option<String>,
    displayname: Option<String>,
}

/// `POST /_synapse/admin/v1/register`
async fn post_register(State(s): State<Services>, body: axum::body::Bytes) -> Result<Json<Value>> {
    let secret = require_enabled(&s)?.to_owned();
    let value: Value = serde_json::from_slice(&body).map_err(|e| {
        Error::new(
            ruma::api::error::ErrorKind::NotJson,
            format!("Content not JSON: {e}"),
        )
    })?;
    let req: SharedSecretRegistration = serde_json::from_value(value).map_err(|e| {
        let text = e.to_string();
        if text.contains("missing field") {
            Error::missing_param(text)
        } else {
            Error::bad_json(text)
        }
    })?;
    if !s.nonces.consume(&req.nonce) {
        return Err(Error::bad_json("unrecognised nonce").into_unknown());
    }
    let input = MacInput {
        nonce: &req.nonce,
        user: &req.username,
        password: &req.password,
        admin: req.admin,
        user_type: req.user_type.as_deref(),
    };
    if !shared_secret::verify(&secret, &input, &req.mac) {
        tracing::warn!(
            username = req.username,
            "shared-secret registration with a wrong HMAC"
        );
        return Err(Error::forbidden("HMAC incorrect"));
    }
    let localpart = req.username.to_lowercase();
    let reg = Registration {
        localpart: &localpart,
        password: Some(&req.password),
        is_admin: req.admin,
        displayname: req.displayname.as_deref(),
        ..Default::default()
    };
    let user_id = s.register(&reg).await?;
    let login = s
        .create_session(
            &user_id,
            &SessionOptions {
                ip: "shared-secret",
                ..Default::default()
            },
        )
        .await?;
    Ok(Json(json!({
        "access_token": login.access_token,
        "user_id": login.user_id,
        "home_server": s.config.server_name,
        "device_id": login.device_id,
    })))
}

//! End-to-end encryption keys: upload, query, claim, changes, cross-signing keys and signatures.
//! <https://spec.matrix.org/latest/client-server-api/#key-management-api>

use std::collections::BTreeMap;

use axum::{Json, Router, extract::State};
use ruma::{
    UInt,
    api::client::keys::{
        claim_keys::v3 as claim_keys, get_key_changes::v3 as get_key_changes,
        get_keys::v3 as get_keys, upload_keys::v3 as upload_keys,
        upload_signatures::v3 as upload_signatures, upload_signing_keys::v3 as upload_signing_keys,
    },
    serde::Raw,
};
use serde_json::Value;

use super::uiaa::require_password;
use crate::{
    api::{RouteExt, Ruma, RumaResponse},
    error::{Error, Result},
    service::{
        Services,
        e2ee::{CrossSigningUpload, KeyUpload},
        sync::Token,
    },
    store::OneTimeKeyRow,
};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .ruma::<upload_keys::Request, _, _>(upload)
        .ruma::<get_keys::Request, _, _>(query)
        .ruma::<claim_keys::Request, _, _>(claim)
        .ruma::<get_key_changes::Request, _, _>(changes)
        .ruma::<upload_signing_keys::Request, _, _>(upload_signing)
        .ruma::<upload_signatures::Request, _, _>(upload_signatures_)
}

/// A raw JSON object from the request as a `Value`, checked against its ruma type first.
fn checked<T>(raw: &Raw<T>, what: &str) -> Result<Value>
where
    T: serde::de::DeserializeOwned,
{
    raw.deserialize()
        .map_err(|e| Error::bad_json(format!("Invalid {what}: {e}")))?;
    serde_json::from_str(raw.json().get()).map_err(|e| Error::bad_json(e.to_string()))
}

fn key_rows<K, V>(keys: &BTreeMap<K, Raw<V>>, what: &str) -> Result<Vec<OneTimeKeyRow>>
where
    K: AsRef<str>,
    V: serde::de::DeserializeOwned,
{
    keys.iter()
        .map(|(id, raw)| {
            let id = id.as_ref();
            let (algorithm, _) = id
                .split_once(':')
                .ok_or_else(|| Error::invalid_param(format!("Invalid key id {id:?}")))?;
            Ok(OneTimeKeyRow {
                algorithm: algorithm.to_owned(),
                key_id: id.to_owned(),
                key_json: checked(raw, what)?.to_string(),
            })
        })
        .collect()
}

/// `POST /_matrix/client/v3/keys/upload`
async fn upload(
    State(s): State<Services>,
    req: Ruma<upload_keys::Request>,
) -> Result<RumaResponse<upload_keys::Response>> {
    let b = &req.body;
    let upload = KeyUpload {
        device_keys: b
            .device_keys
            .as_ref()
            .map(|k| checked(k, "device_keys"))
            .transpose()?,
        one_time_keys: key_rows(&b.one_time_keys, "one-time key")?,
        fallback_keys: key_rows(&b.fallback_keys, "fallback key")?,
    };
    let counts = s.upload_keys(req.requester(), upload).await?;
    let counts = counts
        .into_iter()
        .map(|(algorithm, n)| (algorithm.into(), UInt::try_from(n).unwrap_or_default()))
        .collect();
    Ok(RumaResponse(upload_keys::Response::new(counts)))
}

/// `POST /_matrix/client/v3/keys/query`
async fn query(State(s): State<Services>, req: Ruma<get_keys::Request>) -> Result<Json<Value>> {
    let who = req.requester();
    let suffix = format!(":{}", s.config.server_name);
    let mut local = BTreeMap::new();
    let mut failures = serde_json::Map::new();
    for (user_id, devices) in &req.body.device_keys {
        if user_id.as_str().ends_with(&suffix) {
            local.insert(
                user_id.to_string(),
                devices.iter().map(|d| d.to_string()).collect(),
            );
        } else {
            failures.insert(
                user_id.server_name().to_string(),
                serde_json::json!({"errcode": "M_UNKNOWN", "error": "Federation is not supported"}),
            );
        }
    }
    let mut body = s.query_keys(&who.user_id, &local).await?;
    body["failures"] = Value::Object(failures);
    Ok(Json(body))
}

/// `POST /_matrix/client/v3/keys/claim`
async fn claim(State(s): State<Services>, req: Ruma<claim_keys::Request>) -> Result<Json<Value>> {
    let wanted = req
        .body
        .one_time_keys
        .iter()
        .map(|(user, devices)| {
            let devices = devices
                .iter()
                .map(|(d, algorithm)| (d.to_string(), algorithm.to_string()))
                .collect();
            (user.to_string(), devices)
        })
        .collect();
    Ok(Json(s.claim_keys(&wanted).await?))
}

/// `GET /_matrix/client/v3/keys/changes`
async fn changes(
    State(s): State<Services>,
    req: Ruma<get_key_changes::Request>,
) -> Result<RumaResponse<get_key_changes::Response>> {
    let from = Token::parse(&req.body.from)?;
    let to = Token::parse(&req.body.to)?;
    let upto = to.stream.min(s.stream.positions().stream);
    let (changed, left) = s
        .device_list_delta(&req.requester().user_id, from.stream, upto)
        .await?;
    let ids = |users: Vec<String>| {
        users
            .into_iter()
            .filter_map(|u| u.try_into().ok())
            .collect()
    };
    Ok(RumaResponse(get_key_changes::Response::new(
        ids(changed),
        ids(left),
    )))
}

/// `POST /_matrix/client/v3/keys/device_signing/upload`
async fn upload_signing(
    State(s): State<Services>,
    req: Ruma<upload_signing_keys::Request>,
) -> Result<RumaResponse<upload_signing_keys::Response>> {
    let who = req.requester();
    let b = &req.body;
    let mut keys: CrossSigningUpload = Vec::new();
    for (key_type, raw) in [
        ("master", &b.master_key),
        ("self_signing", &b.self_signing_key),
        ("user_signing", &b.user_signing_key),
    ] {
        if let Some(raw) = raw {
            keys.push((key_type.to_owned(), checked(raw, key_type)?));
        }
    }
    // The spec: no user-interactive auth for appservices, nor when no master key is stored yet
    // or the request repeats the stored keys.
    if who.appservice.is_none()
        && s.cross_signing_upload_needs_auth(&who.user_id, &keys)
            .await?
    {
        require_password(&s, who, b.auth.as_ref(), "device_signing_upload").await?;
    }
    s.upload_cross_signing_keys(who, keys).await?;
    Ok(RumaResponse(upload_signing_keys::Response::new()))
}

/// `POST /_matrix/client/v3/keys/signatures/upload`
async fn upload_signatures_(
    State(s): State<Services>,
    req: Ruma<upload_signatures::Request>,
) -> Result<Json<Value>> {
    let mut signed = BTreeMap::new();
    for (user_id, keys) in &req.body.signed_keys {
        let mut objects = Vec::new();
        for (key_id, raw) in keys {
            let object: Value = serde_json::from_str(raw.get())
                .map_err(|e| Error::bad_json(format!("Invalid signed key {key_id}: {e}")))?;
            if !object.is_object() {
                return Err(Error::bad_json(format!(
                    "Signed key {key_id} is not an object"
                )));
            }
            objects.push((key_id.to_owned(), object));
        }
        signed.insert(user_id.to_string(), objects);
    }
    Ok(Json(s.upload_signatures(req.requester(), signed).await?))
}

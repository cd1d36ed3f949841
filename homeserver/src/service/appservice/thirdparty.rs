//! Third-party lookups (`/_matrix/client/v3/thirdparty/*`), answered by the appservices whose
//! registrations declare the protocol in `protocols`.
//!
//! Every appservice that declares a protocol is asked at once, each within [`TIMEOUT`]; one that
//! fails, times out or answers something malformed is left out of the answer (and logged) rather
//! than failing it. Protocol metadata is taken from the first appservice (in registration order)
//! that answers, with the `instances` of all of them, each given the `instance_id`
//! `{appservice id}|{network_id}` (unique on this homeserver, as Synapse makes it). Lookups
//! concatenate every appservice's results. Nothing found is `M_NOT_FOUND` (404), as the spec lists
//! for each endpoint.

use std::{collections::BTreeMap, time::Duration};

use serde_json::{Map, Value};

use super::Registration;
use crate::{
    error::{Error, Result},
    service::Services,
};

/// How long one appservice may take to answer a third-party lookup.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// What a lookup is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    User,
    Location,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Location => "location",
        }
    }
}

/// Query parameters that are the homeserver's (authentication, masquerading), not lookup fields.
const NOT_FIELDS: &[&str] = &[
    "access_token",
    "user_id",
    "device_id",
    "org.matrix.msc3202.device_id",
];

impl Services {
    /// `GET /thirdparty/protocols`: every declared protocol that at least one appservice
    /// described.
    pub async fn thirdparty_protocols(&self) -> Result<Map<String, Value>> {
        let mut names: Vec<String> = self
            .appservices
            .all()
            .iter()
            .flat_map(|r| r.protocols.iter().cloned())
            .collect();
        names.sort();
        names.dedup();
        let lookups = names.iter().map(|p| self.protocol_metadata(p));
        let found = futures::future::join_all(lookups).await;
        Ok(names
            .into_iter()
            .zip(found)
            .filter_map(|(name, meta)| meta.map(|m| (name, m)))
            .collect())
    }

    /// `GET /thirdparty/protocol/{protocol}`.
    pub async fn thirdparty_protocol(&self, protocol: &str) -> Result<Value> {
        if self.declaring(protocol).is_empty() {
            return Err(no_protocol(protocol));
        }
        self.protocol_metadata(protocol)
            .await
            .ok_or_else(|| no_protocol(protocol))
    }

    /// `GET /thirdparty/{user,location}/{protocol}?fields...`.
    pub async fn thirdparty_lookup(
        &self,
        kind: Kind,
        protocol: &str,
        fields: &BTreeMap<String, String>,
    ) -> Result<Vec<Value>> {
        let services = self.declaring(protocol);
        if services.is_empty() {
            return Err(no_protocol(protocol));
        }
        let query: Vec<(&str, &str)> = fields
            .iter()
            .filter(|(k, _)| !NOT_FIELDS.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let path = format!(
            "/_matrix/app/v1/thirdparty/{}/{}",
            kind.path(),
            encode(protocol)
        );
        self.lookup_all(&services, &path, &query, kind).await
    }

    /// `GET /thirdparty/location?alias=` and `GET /thirdparty/user?userid=`: asked of every
    /// appservice that bridges any protocol.
    pub async fn thirdparty_reverse_lookup(&self, kind: Kind, key: &str) -> Result<Vec<Value>> {
        let services: Vec<Registration> = self
            .appservices
            .all()
            .iter()
            .filter(|r| r.url.is_some() && !r.protocols.is_empty())
            .cloned()
            .collect();
        let param = match kind {
            Kind::User => "userid",
            Kind::Location => "alias",
        };
        let path = format!("/_matrix/app/v1/thirdparty/{}", kind.path());
        self.lookup_all(&services, &path, &[(param, key)], kind)
            .await
    }

    /// The appservices (with a url) whose registration declares `protocol`.
    fn declaring(&self, protocol: &str) -> Vec<Registration> {
        self.appservices
            .all()
            .iter()
            .filter(|r| r.url.is_some() && r.protocols.iter().any(|p| p == protocol))
            .cloned()
            .collect()
    }

    /// The protocol as the declaring appservices describe it, merged; `None` if none answered.
    async fn protocol_metadata(&self, protocol: &str) -> Option<Value> {
        let services = self.declaring(protocol);
        let path = format!("/_matrix/app/v1/thirdparty/protocol/{}", encode(protocol));
        let answers =
            futures::future::join_all(services.iter().map(|r| self.get_json(r, &path, &[]))).await;
        let mut merged: Option<Map<String, Value>> = None;
        for (reg, answer) in services.iter().zip(answers) {
            let Some(Value::Object(mut meta)) = answer else {
                continue;
            };
            let mut instances = match meta.remove("instances") {
                Some(Value::Array(list)) => list,
                _ => Vec::new(),
            };
            for instance in instances.iter_mut() {
                if let Some(obj) = instance.as_object_mut()
                    && let Some(network) = obj.get("network_id").and_then(Value::as_str)
                {
                    let id = format!("{}|{network}", reg.id);
                    obj.insert("instance_id".to_owned(), Value::String(id));
                }
            }
            match &mut merged {
                None => {
                    meta.insert("instances".to_owned(), Value::Array(instances));
                    merged = Some(meta);
                }
                Some(first) => {
                    if let Some(Value::Array(all)) = first.get_mut("instances") {
                        all.extend(instances);
                    }
                }
            }
        }
        merged.map(Value::Object)
    }

    /// Asks every appservice in `services` at once and concatenates the arrays they answer.
    async fn lookup_all(
        &self,
        services: &[Registration],
        path: &str,
        query: &[(&str, &str)],
        kind: Kind,
    ) -> Result<Vec<Value>> {
        let answers =
            futures::future::join_all(services.iter().map(|r| self.get_json(r, path, query))).await;
        let mut out = Vec::new();
        for (reg, answer) in services.iter().zip(answers) {
            match answer {
                Some(Value::Array(items)) => out.extend(items.into_iter().filter(Value::is_object)),
                Some(_) => {
                    tracing::warn!(
                        appservice = reg.id,
                        path,
                        "third-party lookup: not an array"
                    )
                }
                None => {}
            }
        }
        if out.is_empty() {
            return Err(Error::not_found(match kind {
                Kind::User => "No third-party users were found",
                Kind::Location => "No third-party locations were found",
            }));
        }
        Ok(out)
    }

    /// `GET {url}{path}?{query}` with the `hs_token`, within [`TIMEOUT`]; the JSON of a 2xx answer.
    async fn get_json(
        &self,
        reg: &Registration,
        path: &str,
        query: &[(&str, &str)],
    ) -> Option<Value> {
        let url = reg.url.as_deref()?;
        let result = self
            .appservice_http
            .get(format!("{}{path}", url.trim_end_matches('/')))
            .query(query)
            .bearer_auth(&reg.hs_token)
            .timeout(TIMEOUT)
            .send()
            .await;
        let response = match result {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                tracing::debug!(appservice = reg.id, path, status = %r.status(), "third-party lookup: no answer");
                return None;
            }
            Err(e) => {
                tracing::warn!(appservice = reg.id, path, timeout = e.is_timeout(), error = %e, "third-party lookup failed");
                return None;
            }
        };
        match response.json::<Value>().await {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(appservice = reg.id, path, error = %e, "third-party lookup: bad JSON");
                None
            }
        }
    }
}

fn no_protocol(protocol: &str) -> Error {
    Error::not_found(format!(
        "No application service bridges the protocol {protocol}"
    ))
}

fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

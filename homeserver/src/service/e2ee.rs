//! End-to-end encryption, the server's part: device keys, one-time and fallback keys,
//! cross-signing keys and signatures, and which users' device lists changed. The server stores
//! and relays; it never sees a plaintext.

pub mod device_cache;
pub mod signatures;
pub mod to_device;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::{
    error::{Error, Result},
    service::{Services, accounts::Requester},
    store::{KeySignatureRow, OneTimeKeyRow},
};

use device_cache::KeyCounts;

/// The cross-signing key types, as stored and as named in `/keys/query`.
pub const CROSS_SIGNING_TYPES: [(&str, &str); 3] = [
    ("master", "master_keys"),
    ("self_signing", "self_signing_keys"),
    ("user_signing", "user_signing_keys"),
];

/// What `/keys/upload` carries, parsed.
#[derive(Debug, Default)]
pub struct KeyUpload {
    /// The device's `DeviceKeys` object.
    pub device_keys: Option<Value>,
    pub one_time_keys: Vec<OneTimeKeyRow>,
    pub fallback_keys: Vec<OneTimeKeyRow>,
}

/// New cross-signing keys, by stored type (`master`, `self_signing`, `user_signing`).
pub type CrossSigningUpload = Vec<(String, Value)>;

impl Services {
    /// Stores a device's keys; answers its one-time key counts per algorithm.
    pub async fn upload_keys(
        &self,
        who: &Requester,
        upload: KeyUpload,
    ) -> Result<BTreeMap<String, i64>> {
        if let Some(keys) = &upload.device_keys {
            if keys.get("user_id").and_then(Value::as_str) != Some(who.user_id.as_str())
                || keys.get("device_id").and_then(Value::as_str) != Some(who.device_id.as_str())
            {
                return Err(Error::invalid_param(
                    "device_keys must be for the uploading user and device",
                ));
            }
            let reservation = self.stream.reserve();
            let changed = self
                .store
                .set_device_keys(
                    &who.user_id,
                    &who.device_id,
                    &keys.to_string(),
                    reservation.position,
                )
                .await?;
            if changed {
                self.note_device_list_change(&who.user_id, reservation.position)
                    .await?;
            }
        }
        if !upload.one_time_keys.is_empty() {
            self.store
                .add_one_time_keys(&who.user_id, &who.device_id, &upload.one_time_keys)
                .await?;
        }
        for key in &upload.fallback_keys {
            self.store
                .set_fallback_key(&who.user_id, &who.device_id, key)
                .await?;
        }
        self.device_cache
            .forget_counts(&who.user_id, &who.device_id);
        self.one_time_key_counts(&who.user_id, &who.device_id).await
    }

    /// A device's one-time key counts and unused fallback key types, as `/sync` reports them;
    /// from memory while they have not changed.
    pub async fn device_key_counts(
        &self,
        user_id: &str,
        device_id: &str,
    ) -> Result<std::sync::Arc<KeyCounts>> {
        let (cached, generation) = self.device_cache.counts(user_id, device_id);
        if let Some(counts) = cached {
            return Ok(counts);
        }
        let counts = KeyCounts {
            one_time: self.one_time_key_counts(user_id, device_id).await?,
            unused_fallback: self
                .store
                .unused_fallback_key_types(user_id, device_id)
                .await?,
        };
        self.device_cache
            .set_counts(user_id, device_id, counts.clone(), generation);
        Ok(std::sync::Arc::new(counts))
    }

    /// Unclaimed one-time keys per algorithm, `signed_curve25519` always present.
    pub async fn one_time_key_counts(
        &self,
        user_id: &str,
        device_id: &str,
    ) -> Result<BTreeMap<String, i64>> {
        let mut counts: BTreeMap<String, i64> = self
            .store
            .one_time_key_counts(user_id, device_id)
            .await?
            .into_iter()
            .collect();
        counts.entry("signed_curve25519".to_owned()).or_insert(0);
        Ok(counts)
    }

    /// `/keys/query`: the device keys of the users asked for (all their devices when the list is
    /// empty), their master and self-signing keys, and the requester's own user-signing key;
    /// signatures uploaded by the key's owner or by the requester merged in.
    pub async fn query_keys(
        &self,
        requester: &str,
        users: &BTreeMap<String, Vec<String>>,
    ) -> Result<Value> {
        let mut device_keys = Map::new();
        let mut cross = [Map::new(), Map::new(), Map::new()];
        for (user_id, wanted) in users {
            let signatures = self.store.key_signatures(user_id).await?;
            let visible = |target: &str| {
                signatures
                    .iter()
                    .filter(move |s| {
                        s.target_key_id == target
                            && (s.signer_user_id == *user_id || s.signer_user_id == requester)
                    })
                    .collect::<Vec<_>>()
            };
            let mut devices = Map::new();
            for (device_id, key_json) in self.store.device_keys(user_id).await? {
                if !wanted.is_empty() && !wanted.contains(&device_id) {
                    continue;
                }
                let mut keys: Value = serde_json::from_str(&key_json).map_err(Error::internal)?;
                merge_signatures(&mut keys, &visible(&device_id));
                devices.insert(device_id, keys);
            }
            device_keys.insert(user_id.clone(), Value::Object(devices));
            for (key_type, key_json) in self.store.cross_signing_keys(user_id).await? {
                let Some(slot) = CROSS_SIGNING_TYPES.iter().position(|(t, _)| *t == key_type)
                else {
                    continue;
                };
                if key_type == "user_signing" && user_id != requester {
                    continue;
                }
                let mut key: Value = serde_json::from_str(&key_json).map_err(Error::internal)?;
                if let Some(public) = public_key(&key) {
                    merge_signatures(&mut key, &visible(&public));
                }
                cross[slot].insert(user_id.clone(), key);
            }
        }
        let mut body = json!({"device_keys": device_keys, "failures": {}});
        for ((_, field), keys) in CROSS_SIGNING_TYPES.iter().zip(cross) {
            if !keys.is_empty() {
                body[*field] = Value::Object(keys);
            }
        }
        Ok(body)
    }

    /// `/keys/claim`: one key per device asked for, a one-time key (removed) or else the device's
    /// fallback key (marked used). Devices with neither are left out.
    pub async fn claim_keys(
        &self,
        wanted: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> Result<Value> {
        let mut claimed = Map::new();
        for (user_id, devices) in wanted {
            let mut of_user = Map::new();
            for (device_id, algorithm) in devices {
                let key = self
                    .store
                    .claim_one_time_key(user_id, device_id, algorithm)
                    .await?;
                self.device_cache.forget_counts(user_id, device_id);
                if let Some(key) = key {
                    let value: Value =
                        serde_json::from_str(&key.key_json).map_err(Error::internal)?;
                    of_user.insert(device_id.clone(), json!({ key.key_id: value }));
                }
            }
            if !of_user.is_empty() {
                claimed.insert(user_id.clone(), Value::Object(of_user));
            }
        }
        Ok(json!({"one_time_keys": claimed, "failures": {}}))
    }

    /// Publishes cross-signing keys (user-interactive auth is the caller's business).
    pub async fn upload_cross_signing_keys(
        &self,
        who: &Requester,
        keys: CrossSigningUpload,
    ) -> Result<()> {
        let existing: BTreeMap<String, String> = self
            .store
            .cross_signing_keys(&who.user_id)
            .await?
            .into_iter()
            .collect();
        let has_master = existing.contains_key("master") || keys.iter().any(|(t, _)| t == "master");
        let mut rows = Vec::new();
        for (key_type, key) in keys {
            let usage_ok = key
                .get("usage")
                .and_then(Value::as_array)
                .is_some_and(|u| u.iter().any(|x| x.as_str() == Some(key_type.as_str())));
            if key.get("user_id").and_then(Value::as_str) != Some(who.user_id.as_str()) {
                return Err(Error::invalid_param(format!(
                    "The {key_type} key must be for the uploading user"
                )));
            }
            if !usage_ok || public_key(&key).is_none() {
                return Err(Error::invalid_param(format!(
                    "The {key_type} key needs usage [\"{key_type}\"] and one ed25519 key"
                )));
            }
            rows.push((key_type, key.to_string()));
        }
        if !has_master && !rows.is_empty() {
            return Err(Error::invalid_param(
                "Upload a master key before the keys it signs",
            ));
        }
        // The self-signing and user-signing keys must carry the master key's signature: the
        // master key of this request, else the stored one.
        let master = rows
            .iter()
            .find(|(t, _)| t == "master")
            .map(|(_, j)| j.clone())
            .or_else(|| existing.get("master").cloned());
        let master_public = master
            .and_then(|j| serde_json::from_str::<Value>(&j).ok())
            .and_then(|m| public_key(&m));
        for (key_type, key_json) in rows.iter().filter(|(t, _)| t != "master") {
            let key: Value = serde_json::from_str(key_json).map_err(Error::internal)?;
            let signed = master_public.as_deref().is_some_and(|public| {
                signatures::signature_by(&key, &who.user_id, &format!("ed25519:{public}"))
                    .is_some_and(|sig| signatures::is_valid(&key, public, sig))
            });
            if !signed {
                return Err(Error::invalid_param(format!(
                    "The {key_type} key is not signed by the master key"
                )));
            }
        }
        // Keys repeated as stored change nothing, and nobody needs to hear of them.
        rows.retain(|(t, j)| {
            let stored = existing
                .get(t)
                .and_then(|e| serde_json::from_str::<Value>(e).ok());
            stored != serde_json::from_str::<Value>(j).ok()
        });
        if rows.is_empty() {
            return Ok(());
        }
        let reservation = self.stream.reserve();
        self.store
            .set_cross_signing_keys(&who.user_id, &rows, reservation.position)
            .await?;
        self.note_device_list_change(&who.user_id, reservation.position)
            .await
    }

    /// Whether publishing `keys` needs user-interactive auth: the spec spares a user with no
    /// master key stored yet, and a request that repeats the stored keys exactly.
    pub async fn cross_signing_upload_needs_auth(
        &self,
        user_id: &str,
        keys: &CrossSigningUpload,
    ) -> Result<bool> {
        let existing: BTreeMap<String, Value> = self
            .store
            .cross_signing_keys(user_id)
            .await?
            .into_iter()
            .filter_map(|(t, j)| Some((t, serde_json::from_str(&j).ok()?)))
            .collect();
        if !existing.contains_key("master") {
            return Ok(false);
        }
        Ok(!keys.iter().all(|(t, k)| existing.get(t) == Some(k)))
    }

    /// `/keys/signatures/upload`: stores the requester's signatures over existing keys (devices
    /// of their own, or cross-signing keys of anyone). Answers the failures, by user and key.
    pub async fn upload_signatures(
        &self,
        who: &Requester,
        signed: BTreeMap<String, Vec<(String, Value)>>,
    ) -> Result<Value> {
        let mut failures = Map::new();
        let signing_keys = self.signing_keys_of(&who.user_id).await?;
        for (user_id, keys) in signed {
            // The target's keys as stored, by device id or cross-signing public key: signatures
            // are checked against these, not against what the request carries.
            let mut stored: BTreeMap<String, Value> = BTreeMap::new();
            if user_id == who.user_id {
                for (device_id, json) in self.store.device_keys(&user_id).await? {
                    stored.insert(
                        device_id,
                        serde_json::from_str(&json).map_err(Error::internal)?,
                    );
                }
            }
            for (_, json) in self.store.cross_signing_keys(&user_id).await? {
                let key: Value = serde_json::from_str(&json).map_err(Error::internal)?;
                if let Some(public) = public_key(&key) {
                    stored.insert(public, key);
                }
            }
            let mut rows = Vec::new();
            let mut failed = Map::new();
            for (key_id, object) in keys {
                let Some(target) = stored.get(&key_id) else {
                    failed.insert(
                        key_id,
                        json!({"errcode": "M_NOT_FOUND", "error": "No such key"}),
                    );
                    continue;
                };
                let mut signatures = object
                    .get("signatures")
                    .and_then(|s| s.get(&who.user_id))
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                if signatures.is_empty() {
                    failed.insert(
                        key_id,
                        json!({"errcode": "M_INVALID_SIGNATURE", "error": "No signature of yours"}),
                    );
                    continue;
                }
                // Clients send the key back whole: the signatures it already carries (the
                // device's own, say) are not new.
                signatures.retain(|signer_key_id, signature| {
                    signatures::signature_by(target, &who.user_id, signer_key_id)
                        != signature.as_str()
                });
                let valid: Vec<KeySignatureRow> = signatures
                    .iter()
                    .filter_map(|(signer_key_id, signature)| {
                        let signature = signature.as_str()?;
                        let public = signing_keys.get(signer_key_id)?;
                        signatures::is_valid(target, public, signature).then(|| KeySignatureRow {
                            target_key_id: key_id.clone(),
                            signer_user_id: who.user_id.clone(),
                            signer_key_id: signer_key_id.clone(),
                            signature: signature.to_owned(),
                        })
                    })
                    .collect();
                if valid.len() != signatures.len() {
                    failed.insert(
                        key_id,
                        json!({"errcode": "M_INVALID_SIGNATURE", "error": "Invalid signature"}),
                    );
                    continue;
                }
                rows.extend(valid);
            }
            if !rows.is_empty() {
                let reservation = self.stream.reserve();
                self.store
                    .add_key_signatures(&user_id, &rows, reservation.position)
                    .await?;
                self.note_device_list_change(&user_id, reservation.position)
                    .await?;
            }
            if !failed.is_empty() {
                failures.insert(user_id, Value::Object(failed));
            }
        }
        Ok(json!({ "failures": failures }))
    }

    /// The ed25519 keys `user_id` signs with, by key id: their devices' keys and their
    /// cross-signing keys.
    async fn signing_keys_of(&self, user_id: &str) -> Result<BTreeMap<String, String>> {
        let mut keys = BTreeMap::new();
        let device_keys = self.store.device_keys(user_id).await?;
        let cross = self.store.cross_signing_keys(user_id).await?;
        for (_, json) in device_keys.iter().chain(&cross) {
            let key: Value = serde_json::from_str(json).map_err(Error::internal)?;
            let Some(map) = key.get("keys").and_then(Value::as_object) else {
                continue;
            };
            for (id, public) in map {
                if let (true, Some(public)) = (id.starts_with("ed25519:"), public.as_str()) {
                    keys.insert(id.clone(), public.to_owned());
                }
            }
        }
        Ok(keys)
    }

    /// Records that `user_id`'s devices changed (devices deleted) and wakes who shares a room.
    pub async fn device_list_changed(&self, user_id: &str) -> Result<()> {
        let reservation = self.stream.reserve();
        self.store
            .record_device_list_change(user_id, reservation.position)
            .await?;
        self.note_device_list_change(user_id, reservation.position)
            .await
    }

    /// Wakes the syncs of `user_id` and of everyone sharing a room with them.
    async fn note_device_list_change(&self, user_id: &str, position: i64) -> Result<()> {
        let rooms = self.user_rooms(user_id).await?;
        self.activity
            .device_list_changed(user_id, &rooms.rooms, position);
        Ok(())
    }

    /// Users who share a joined room with `user_id` now, `user_id` included.
    pub async fn users_sharing_a_room(&self, user_id: &str) -> Result<BTreeSet<String>> {
        let rooms = self.user_rooms(user_id).await?;
        let mut users = BTreeSet::from([user_id.to_owned()]);
        for m in rooms.memberships.iter().filter(|m| m.membership == "join") {
            users.extend(self.store.room_members(&m.room_id, "join").await?);
        }
        Ok(users)
    }

    /// Device-list changes between two stream positions as `/sync` and `/keys/changes` report
    /// them: `changed` are users sharing a room with `user_id` whose devices or keys changed, or
    /// who newly share a room; `left` are users who no longer share any.
    pub async fn device_list_delta(
        &self,
        user_id: &str,
        after: i64,
        upto: i64,
    ) -> Result<(Vec<String>, Vec<String>)> {
        let rooms = self.user_rooms(user_id).await?;
        let members_moved = rooms
            .rooms
            .iter()
            .any(|r| self.activity.members_may_have_changed(r, after));
        if !members_moved && !self.activity.device_lists_may_have_changed(after) {
            return Ok((Vec::new(), Vec::new()));
        }
        // Who shares a room now is read only when a candidate needs checking against it.
        let mut sharing: Option<BTreeSet<String>> = None;
        let mut changed = BTreeSet::new();
        let mut left_candidates = BTreeSet::new();
        for m in &rooms.memberships {
            if !self.activity.members_may_have_changed(&m.room_id, after) {
                continue;
            }
            let newly_mine = m.stream_ordering > after && m.stream_ordering <= upto;
            match m.membership.as_str() {
                "join" if newly_mine => {
                    changed.extend(self.store.room_members(&m.room_id, "join").await?);
                }
                "join" => {
                    for c in self
                        .store
                        .membership_changes(&m.room_id, after, upto)
                        .await?
                    {
                        match c.membership.as_str() {
                            "join" => {
                                changed.insert(c.user_id);
                            }
                            "leave" | "ban" => {
                                left_candidates.insert(c.user_id);
                            }
                            _ => {}
                        }
                    }
                }
                "leave" | "ban" if newly_mine => {
                    left_candidates.extend(self.store.room_members(&m.room_id, "join").await?);
                }
                _ => {}
            }
        }
        changed.remove(user_id);
        left_candidates.remove(user_id);
        let mut left = BTreeSet::new();
        if !left_candidates.is_empty() {
            let now_sharing = self.users_sharing_a_room(user_id).await?;
            left.extend(
                left_candidates
                    .into_iter()
                    .filter(|u| !now_sharing.contains(u)),
            );
            sharing = Some(now_sharing);
        }
        if self.activity.device_lists_may_have_changed(after) {
            let keys_changed = self.store.device_list_changes(after, upto).await?;
            if !keys_changed.is_empty() {
                let sharing = match sharing {
                    Some(s) => s,
                    None => self.users_sharing_a_room(user_id).await?,
                };
                // `sharing` holds the user too: their other devices hear of their own changes.
                changed.extend(keys_changed.into_iter().filter(|u| sharing.contains(u)));
            }
        }
        Ok((changed.into_iter().collect(), left.into_iter().collect()))
    }
}

/// The public key of a cross-signing key: the one value of its `keys` map.
fn public_key(key: &Value) -> Option<String> {
    let keys = key.get("keys")?.as_object()?;
    let mut values = keys.values();
    let first = values.next()?.as_str()?.to_owned();
    values.next().is_none().then_some(first)
}

/// Adds uploaded signatures to a key object's `signatures`.
fn merge_signatures(key: &mut Value, signatures: &[&KeySignatureRow]) {
    if signatures.is_empty() {
        return;
    }
    let Some(object) = key.as_object_mut() else {
        return;
    };
    let all = object
        .entry("signatures")
        .or_insert_with(|| Value::Object(Map::new()));
    for s in signatures {
        if !all.is_object() {
            *all = Value::Object(Map::new());
        }
        all[&s.signer_user_id][&s.signer_key_id] = Value::String(s.signature.clone());
    }
}

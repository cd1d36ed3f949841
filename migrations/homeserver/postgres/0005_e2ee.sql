-- End-to-end encryption: device keys, one-time and fallback keys, cross-signing keys and
-- signatures, the log of device-list changes, and to-device messages.

-- The identity keys a device uploaded (its signed DeviceKeys JSON).
CREATE TABLE device_keys (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    key_json   TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

-- One-time keys not yet claimed; `key_id` is `algorithm:id`.
CREATE TABLE one_time_keys (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    algorithm  TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    key_json   TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, key_id)
);
CREATE INDEX one_time_keys_claim ON one_time_keys (user_id, device_id, algorithm, key_id);

-- The fallback key per device and algorithm, handed out when no one-time key is left.
CREATE TABLE fallback_keys (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    algorithm  TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    key_json   TEXT NOT NULL,
    used       BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, device_id, algorithm)
);

-- A user's cross-signing keys: `key_type` is master, self_signing or user_signing.
CREATE TABLE cross_signing_keys (
    user_id   TEXT NOT NULL,
    key_type  TEXT NOT NULL,
    key_json  TEXT NOT NULL,
    PRIMARY KEY (user_id, key_type)
);

-- Signatures uploaded through /keys/signatures/upload, merged into keys when queried:
-- `target_key_id` is a device id or a cross-signing public key (unpadded base64).
CREATE TABLE key_signatures (
    target_user_id  TEXT NOT NULL,
    target_key_id   TEXT NOT NULL,
    signer_user_id  TEXT NOT NULL,
    signer_key_id   TEXT NOT NULL,
    signature       TEXT NOT NULL,
    PRIMARY KEY (target_user_id, target_key_id, signer_user_id, signer_key_id)
);

-- Every change of a user's devices or keys, at a position on the shared stream, for
-- `device_lists.changed` and /keys/changes.
CREATE TABLE device_list_changes (
    stream_id  BIGINT NOT NULL,
    user_id    TEXT NOT NULL,
    PRIMARY KEY (stream_id, user_id)
);

-- To-device messages waiting for their device to sync past them.
CREATE TABLE to_device_messages (
    user_id     TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    stream_id   BIGINT NOT NULL,
    sender      TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    content     TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, stream_id)
);

-- Transaction ids of sendToDevice requests already handled, so a retry sends nothing twice.
CREATE TABLE to_device_txns (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    txn_id     TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
);

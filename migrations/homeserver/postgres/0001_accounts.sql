-- Accounts, devices, tokens and account data.
CREATE TABLE users (
    user_id        TEXT PRIMARY KEY NOT NULL,
    password_hash  TEXT,
    is_admin       BIGINT NOT NULL DEFAULT 0,
    is_guest       BIGINT NOT NULL DEFAULT 0,
    deactivated    BIGINT NOT NULL DEFAULT 0,
    displayname    TEXT,
    avatar_url     TEXT,
    appservice_id  TEXT,
    created_ts     BIGINT NOT NULL
);

CREATE TABLE devices (
    user_id       TEXT NOT NULL,
    device_id     TEXT NOT NULL,
    display_name  TEXT,
    last_seen_ts  BIGINT,
    last_seen_ip  TEXT,
    PRIMARY KEY (user_id, device_id)
);

CREATE TABLE access_tokens (
    token_hash  TEXT PRIMARY KEY NOT NULL,
    user_id     TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    expires_ts  BIGINT
);
CREATE INDEX access_tokens_device ON access_tokens (user_id, device_id);

CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY NOT NULL,
    user_id     TEXT NOT NULL,
    device_id   TEXT NOT NULL
);
CREATE INDEX refresh_tokens_device ON refresh_tokens (user_id, device_id);

CREATE TABLE account_data (
    user_id    TEXT NOT NULL,
    room_id    TEXT NOT NULL,
    data_type  TEXT NOT NULL,
    content    TEXT NOT NULL,
    stream_id  BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id, data_type)
);

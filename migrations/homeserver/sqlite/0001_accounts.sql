-- Accounts, devices, tokens and account data.
CREATE TABLE users (
    user_id        TEXT PRIMARY KEY NOT NULL,
    password_hash  TEXT,
    is_admin       INTEGER NOT NULL DEFAULT 0,
    is_guest       INTEGER NOT NULL DEFAULT 0,
    deactivated    INTEGER NOT NULL DEFAULT 0,
    displayname    TEXT,
    avatar_url     TEXT,
    appservice_id  TEXT,
    created_ts     INTEGER NOT NULL
);

CREATE TABLE devices (
    user_id       TEXT NOT NULL,
    device_id     TEXT NOT NULL,
    display_name  TEXT,
    last_seen_ts  INTEGER,
    last_seen_ip  TEXT,
    PRIMARY KEY (user_id, device_id)
);

CREATE TABLE access_tokens (
    token_hash  TEXT PRIMARY KEY NOT NULL,
    user_id     TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    expires_ts  INTEGER
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
    stream_id  INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id, data_type)
);

-- appservice-sdk: the bridge's own database (PostgreSQL).
CREATE TABLE portals (
    remote_id     TEXT PRIMARY KEY,
    room_id       TEXT NOT NULL UNIQUE,
    name          TEXT,
    relay_enabled BIGINT NOT NULL DEFAULT 0,
    created_ts    BIGINT NOT NULL
);

CREATE TABLE puppets (
    remote_id     TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL UNIQUE,
    displayname   TEXT,
    avatar_url    TEXT,
    avatar_source TEXT,
    registered    BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE messages (
    portal_id TEXT NOT NULL,
    remote_id TEXT NOT NULL,
    event_id  TEXT NOT NULL,
    sender    TEXT NOT NULL,
    ts        BIGINT NOT NULL,
    CONSTRAINT messages_pkey PRIMARY KEY (portal_id, remote_id),
    CONSTRAINT messages_event_id_key UNIQUE (event_id)
);

CREATE TABLE reactions (
    event_id         TEXT PRIMARY KEY,
    portal_id        TEXT NOT NULL,
    target_remote_id TEXT NOT NULL,
    sender           TEXT NOT NULL,
    reaction_key     TEXT NOT NULL,
    CONSTRAINT reactions_target_sender_key UNIQUE (portal_id, target_remote_id, sender, reaction_key)
);

CREATE TABLE user_settings (
    user_id         TEXT PRIMARY KEY,
    management_room TEXT,
    remote_login    TEXT
);

CREATE TABLE backfill_cursors (
    portal_id  TEXT PRIMARY KEY,
    cursor     TEXT NOT NULL,
    updated_ts BIGINT NOT NULL
);

CREATE TABLE processed_txns (
    txn_id       TEXT PRIMARY KEY,
    processed_ts BIGINT NOT NULL
);

CREATE TABLE processed_events (
    event_id     TEXT PRIMARY KEY,
    processed_ts BIGINT NOT NULL
);

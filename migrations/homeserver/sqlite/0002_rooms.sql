-- Rooms, their events, state and memberships.
CREATE TABLE rooms (
    room_id       TEXT PRIMARY KEY NOT NULL,
    room_version  TEXT NOT NULL,
    creator       TEXT NOT NULL,
    is_public     INTEGER NOT NULL DEFAULT 0,
    created_ts    INTEGER NOT NULL
);

-- Every event of every room, in the order this server accepted them. `json` is the full PDU as
-- canonical JSON (pruned when redacted).
CREATE TABLE events (
    stream_ordering   INTEGER PRIMARY KEY NOT NULL,
    event_id          TEXT NOT NULL UNIQUE,
    room_id           TEXT NOT NULL,
    sender            TEXT NOT NULL,
    event_type        TEXT NOT NULL,
    state_key         TEXT,
    depth             INTEGER NOT NULL,
    origin_server_ts  INTEGER NOT NULL,
    json              TEXT NOT NULL,
    redacted_by       TEXT,
    relates_to        TEXT,
    rel_type          TEXT,
    txn_user          TEXT,
    txn_device        TEXT,
    txn_id            TEXT
);
CREATE INDEX events_room_order ON events (room_id, stream_ordering);
CREATE INDEX events_room_state ON events (room_id, event_type, state_key, stream_ordering);
CREATE INDEX events_relations ON events (relates_to, rel_type);
CREATE INDEX events_room_ts ON events (room_id, origin_server_ts);
CREATE INDEX events_room_sender ON events (room_id, sender, stream_ordering);
CREATE UNIQUE INDEX events_txn ON events (txn_user, txn_device, txn_id);

CREATE TABLE current_state (
    room_id     TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    state_key   TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    PRIMARY KEY (room_id, event_type, state_key)
);

-- One row per membership event, so membership at any point can be looked up.
CREATE TABLE memberships (
    stream_ordering  INTEGER NOT NULL,
    room_id          TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    membership       TEXT NOT NULL,
    event_id         TEXT NOT NULL,
    PRIMARY KEY (room_id, user_id, stream_ordering)
);
CREATE INDEX memberships_user ON memberships (user_id, stream_ordering);

CREATE TABLE forward_extremities (
    room_id   TEXT NOT NULL,
    event_id  TEXT NOT NULL,
    PRIMARY KEY (room_id, event_id)
);

CREATE TABLE room_aliases (
    alias    TEXT PRIMARY KEY NOT NULL,
    room_id  TEXT NOT NULL,
    creator  TEXT NOT NULL
);
CREATE INDEX room_aliases_room ON room_aliases (room_id);

-- Rooms a user has forgotten.
CREATE TABLE forgotten_rooms (
    user_id  TEXT NOT NULL,
    room_id  TEXT NOT NULL,
    PRIMARY KEY (user_id, room_id)
);

CREATE TABLE receipts (
    room_id          TEXT NOT NULL,
    receipt_type     TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    thread_id        TEXT NOT NULL,
    event_id         TEXT NOT NULL,
    ts               INTEGER NOT NULL,
    stream_ordering  INTEGER NOT NULL,
    PRIMARY KEY (room_id, receipt_type, user_id, thread_id)
);
CREATE INDEX receipts_stream ON receipts (stream_ordering);

CREATE TABLE filters (
    user_id    TEXT NOT NULL,
    filter_id  INTEGER NOT NULL,
    json       TEXT NOT NULL,
    PRIMARY KEY (user_id, filter_id)
);

CREATE TABLE presence (
    user_id          TEXT PRIMARY KEY NOT NULL,
    state            TEXT NOT NULL,
    status_msg       TEXT,
    last_active_ts   INTEGER NOT NULL,
    stream_ordering  INTEGER NOT NULL
);

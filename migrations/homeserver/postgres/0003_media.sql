-- The media repository: uploads (local, and later cached remote media), thumbnails, URL previews.
-- File bytes live under `media_store_path`, named by their sha256, so identical content is stored once.

-- One row per mxc:// URI. `sha256` is NULL while an async upload (`/create`) awaits its bytes.
CREATE TABLE media (
    origin            TEXT NOT NULL,
    media_id          TEXT NOT NULL,
    user_id           TEXT,
    content_type      TEXT,
    file_name         TEXT,
    sha256            TEXT,
    size              BIGINT,
    created_ts        BIGINT NOT NULL,
    uploaded_ts       BIGINT,
    unused_expires_ts BIGINT,
    -- 1 when uploaded while authenticated media was on: then the legacy unauthenticated
    -- /_matrix/media/v3/download and thumbnail routes refuse it (the spec's "freeze").
    authenticated     BIGINT NOT NULL,
    PRIMARY KEY (origin, media_id)
);
CREATE INDEX media_pending_by_user ON media (user_id, unused_expires_ts);

-- Thumbnails are keyed by the source's content hash: identical uploads share their thumbnails.
CREATE TABLE media_thumbnails (
    source_sha256  TEXT NOT NULL,
    width          BIGINT NOT NULL,
    height         BIGINT NOT NULL,
    method         TEXT NOT NULL,
    content_type   TEXT NOT NULL,
    sha256         TEXT NOT NULL,
    size           BIGINT NOT NULL,
    PRIMARY KEY (source_sha256, width, height, method)
);

CREATE TABLE url_previews (
    url         TEXT PRIMARY KEY NOT NULL,
    og          TEXT NOT NULL,
    fetched_ts  BIGINT NOT NULL,
    expires_ts  BIGINT NOT NULL
);

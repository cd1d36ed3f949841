-- appservice-sdk: a key/value store the network owns (its own state: cursors, nicks, sessions).
CREATE TABLE network_kv (
    namespace  TEXT NOT NULL,
    kv_key     TEXT NOT NULL,
    kv_value   TEXT NOT NULL,
    updated_ts BIGINT NOT NULL,
    CONSTRAINT network_kv_pkey PRIMARY KEY (namespace, kv_key)
);

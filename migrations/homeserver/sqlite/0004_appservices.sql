-- Application services: the durable transaction queue.

-- Per appservice: how far through the event stream its transactions have been queued, and the
-- last transaction id handed out (ids only grow, so an appservice can drop duplicates).
CREATE TABLE appservice_state (
    appservice_id    TEXT PRIMARY KEY NOT NULL,
    stream_position  INTEGER NOT NULL,
    last_txn_id      INTEGER NOT NULL
);

-- Transactions built but not yet acknowledged, with their exact body: a retry after an outage or
-- a restart sends the same txnId with the same events.
CREATE TABLE appservice_txns (
    appservice_id  TEXT NOT NULL,
    txn_id         INTEGER NOT NULL,
    body           TEXT NOT NULL,
    event_count    INTEGER NOT NULL,
    created_ts     INTEGER NOT NULL,
    PRIMARY KEY (appservice_id, txn_id)
);

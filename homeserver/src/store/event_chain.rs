//! Tables `events`, `current_state`, `memberships`, `forward_extremities`: new events and their
//! effects (one event, a group commit across rooms, or an appservice's batch of thousands).
//!
//! What a sequence of single-row writes would leave behind is computed first (the last state
//! event per key, the extremities no later event cites), then written atomically: on PostgreSQL
//! as one statement whatever the number of rows, on SQLite as a few multi-row statements in one
//! transaction, in chunks under its 32,766 bound parameters per statement.

use std::collections::{HashMap, HashSet};

use sqlx::AssertSqlSafe;

use super::{NewEvent, Result, Store, StoreError};

/// Bound parameters per SQLite statement, under its limit of 32,766.
const MAX_PARAMS: usize = 32_000;

/// `(?, ?, ...), (?, ...)`: `rows` groups of `width` anonymous placeholders. SQLite looks each
/// named (`$N`) parameter up in a list of the statement's names, which makes preparing a
/// statement with tens of thousands of them quadratic (seconds for one chunk), while `?` is
/// simply the next number.
fn placeholders(rows: usize, width: usize) -> String {
    let row = format!("({})", vec!["?"; width].join(", "));
    vec![row; rows].join(", ")
}

/// What a sequence of single-row writes of `events` would leave behind.
struct Effects<'e> {
    /// The last state event per (room, type, state key).
    state: Vec<((&'e str, &'e str, &'e str), &'e str)>,
    /// Membership changes: (event, user, membership).
    members: Vec<(&'e NewEvent<'e>, &'e str, &'e str)>,
    /// Extremities cited by the events (and so no longer extremities).
    old: Vec<(&'e str, &'e str)>,
    /// Events no later event of the batch cites.
    new: Vec<(&'e str, &'e str)>,
}

impl<'e> Effects<'e> {
    fn of(events: &'e [NewEvent<'e>]) -> Self {
        let mut last_state: HashMap<(&str, &str, &str), &str> = HashMap::new();
        for e in events {
            if let Some(state_key) = e.state_key {
                last_state.insert((e.room_id, e.event_type, state_key), e.event_id);
            }
        }
        let members = events
            .iter()
            .filter_map(|e| Some((e, e.state_key?, e.membership?)))
            .collect();
        // Every event becomes an extremity and drops the ones it cites; what remains is the
        // events no later event cites, and the old extremities none of them cited.
        let cited: HashSet<(&str, &str)> = events
            .iter()
            .flat_map(|e| e.prev_events.iter().map(move |p| (e.room_id, p.as_str())))
            .collect();
        let ours: HashSet<(&str, &str)> = events.iter().map(|e| (e.room_id, e.event_id)).collect();
        let mut old: Vec<(&str, &str)> = cited.difference(&ours).copied().collect();
        old.sort_unstable();
        let new = events
            .iter()
            .map(|e| (e.room_id, e.event_id))
            .filter(|k| !cited.contains(k))
            .collect();
        Effects {
            state: last_state.into_iter().collect(),
            members,
            old,
            new,
        }
    }
}

/// One statement for PostgreSQL: each table's rows arrive as one JSON array, so the text never
/// changes (prepared once per connection) and a commit is a single round trip.
const POSTGRES_PERSIST: &str = "\
WITH ev AS (
    INSERT INTO events (stream_ordering, event_id, room_id, sender, event_type, state_key, depth,
        origin_server_ts, json, relates_to, rel_type, txn_user, txn_device, txn_id)
    SELECT * FROM json_to_recordset($1::json) AS r(stream_ordering BIGINT, event_id TEXT,
        room_id TEXT, sender TEXT, event_type TEXT, state_key TEXT, depth BIGINT,
        origin_server_ts BIGINT, json TEXT, relates_to TEXT, rel_type TEXT, txn_user TEXT,
        txn_device TEXT, txn_id TEXT)
    RETURNING 1
), st AS (
    INSERT INTO current_state (room_id, event_type, state_key, event_id)
    SELECT * FROM json_to_recordset($2::json)
        AS r(room_id TEXT, event_type TEXT, state_key TEXT, event_id TEXT)
    ON CONFLICT (room_id, event_type, state_key) DO UPDATE SET event_id = excluded.event_id
    RETURNING 1
), mem AS (
    INSERT INTO memberships (stream_ordering, room_id, user_id, membership, event_id)
    SELECT * FROM json_to_recordset($3::json)
        AS r(stream_ordering BIGINT, room_id TEXT, user_id TEXT, membership TEXT, event_id TEXT)
    RETURNING 1
), gone AS (
    DELETE FROM forward_extremities f USING json_to_recordset($4::json) AS r(room_id TEXT, event_id TEXT)
    WHERE f.room_id = r.room_id AND f.event_id = r.event_id
    RETURNING 1
)
INSERT INTO forward_extremities (room_id, event_id)
SELECT * FROM json_to_recordset($5::json) AS r(room_id TEXT, event_id TEXT)";

/// A row of `events` for [`POSTGRES_PERSIST`].
#[derive(serde::Serialize)]
struct EventJson<'a> {
    stream_ordering: i64,
    event_id: &'a str,
    room_id: &'a str,
    sender: &'a str,
    event_type: &'a str,
    state_key: Option<&'a str>,
    depth: i64,
    origin_server_ts: i64,
    json: &'a str,
    relates_to: Option<&'a str>,
    rel_type: Option<&'a str>,
    txn_user: Option<&'a str>,
    txn_device: Option<&'a str>,
    txn_id: Option<&'a str>,
}

/// The `txn_user`, `txn_device` and `txn_id` columns of an event (all null without a txn id).
fn txn_columns<'a>(e: &NewEvent<'a>) -> (Option<&'a str>, Option<&'a str>, Option<&'a str>) {
    match e.txn {
        Some((u, d, t)) => (Some(u), Some(d), Some(t)),
        None => (None, None, None),
    }
}

fn json_rows<T: serde::Serialize>(rows: impl Iterator<Item = T>) -> String {
    serde_json::to_string(&rows.collect::<Vec<T>>()).expect("rows serialise")
}

impl Store {
    /// Persists events (in stream order within each room) and their effects on current state,
    /// memberships and forward extremities, atomically. A repeated transaction id is
    /// [`StoreError::Conflict`].
    pub async fn persist_events(&self, events: &[NewEvent<'_>]) -> Result<()> {
        let effects = Effects::of(events);
        if self.is_sqlite() {
            self.persist_sqlite(events, effects).await
        } else {
            self.persist_postgres(events, effects).await
        }
    }

    async fn persist_postgres(&self, events: &[NewEvent<'_>], effects: Effects<'_>) -> Result<()> {
        let events = json_rows(events.iter().map(|e| {
            let (txn_user, txn_device, txn_id) = txn_columns(e);
            EventJson {
                stream_ordering: e.stream_ordering,
                event_id: e.event_id,
                room_id: e.room_id,
                sender: e.sender,
                event_type: e.event_type,
                state_key: e.state_key,
                depth: e.depth,
                origin_server_ts: e.origin_server_ts,
                json: e.json,
                relates_to: e.relates_to,
                rel_type: e.rel_type,
                txn_user,
                txn_device,
                txn_id,
            }
        }));
        let state = json_rows(effects.state.iter().map(|((room_id, event_type, state_key), event_id)| {
            serde_json::json!({"room_id": room_id, "event_type": event_type, "state_key": state_key, "event_id": event_id})
        }));
        let members = json_rows(effects.members.iter().map(|(e, user, membership)| {
            serde_json::json!({"stream_ordering": e.stream_ordering, "room_id": e.room_id, "user_id": user, "membership": membership, "event_id": e.event_id})
        }));
        let pairs = |pairs: &[(&str, &str)]| {
            json_rows(pairs.iter().map(
                |(room_id, event_id)| serde_json::json!({"room_id": room_id, "event_id": event_id}),
            ))
        };
        sqlx::query(POSTGRES_PERSIST)
            .bind(events)
            .bind(state)
            .bind(members)
            .bind(pairs(&effects.old))
            .bind(pairs(&effects.new))
            .execute(&self.writer)
            .await
            .map_err(StoreError::from_write)?;
        Ok(())
    }

    /// SQLite (no data-modifying `WITH`): a few multi-row statements per thousand rows in one
    /// transaction, in chunks under its bound-parameter limit.
    async fn persist_sqlite(&self, events: &[NewEvent<'_>], effects: Effects<'_>) -> Result<()> {
        let mut tx = self.writer.begin().await?;

        const EVENT_COLS: usize = 14;
        for chunk in events.chunks(MAX_PARAMS / EVENT_COLS) {
            let sql = format!(
                "INSERT INTO events (stream_ordering, event_id, room_id, sender, event_type, state_key, depth, \
                 origin_server_ts, json, relates_to, rel_type, txn_user, txn_device, txn_id) VALUES {}",
                placeholders(chunk.len(), EVENT_COLS)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for e in chunk {
                let (txn_user, txn_device, txn_id) = txn_columns(e);
                q = q
                    .bind(e.stream_ordering)
                    .bind(e.event_id)
                    .bind(e.room_id)
                    .bind(e.sender)
                    .bind(e.event_type)
                    .bind(e.state_key)
                    .bind(e.depth)
                    .bind(e.origin_server_ts)
                    .bind(e.json)
                    .bind(e.relates_to)
                    .bind(e.rel_type)
                    .bind(txn_user)
                    .bind(txn_device)
                    .bind(txn_id);
            }
            q.execute(&mut *tx).await.map_err(StoreError::from_write)?;
        }

        for chunk in effects.state.chunks(MAX_PARAMS / 4) {
            let sql = format!(
                "INSERT INTO current_state (room_id, event_type, state_key, event_id) VALUES {} \
                 ON CONFLICT (room_id, event_type, state_key) DO UPDATE SET event_id = excluded.event_id",
                placeholders(chunk.len(), 4)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for ((room, event_type, state_key), event_id) in chunk {
                q = q
                    .bind(*room)
                    .bind(*event_type)
                    .bind(*state_key)
                    .bind(*event_id);
            }
            q.execute(&mut *tx).await?;
        }

        for chunk in effects.members.chunks(MAX_PARAMS / 5) {
            let sql = format!(
                "INSERT INTO memberships (stream_ordering, room_id, user_id, membership, event_id) VALUES {}",
                placeholders(chunk.len(), 5)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (e, user, membership) in chunk {
                q = q
                    .bind(e.stream_ordering)
                    .bind(e.room_id)
                    .bind(*user)
                    .bind(*membership)
                    .bind(e.event_id);
            }
            q.execute(&mut *tx).await?;
        }

        for chunk in effects.old.chunks(MAX_PARAMS / 2) {
            let sql = format!(
                "DELETE FROM forward_extremities WHERE (room_id, event_id) IN (VALUES {})",
                placeholders(chunk.len(), 2)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (room, id) in chunk {
                q = q.bind(*room).bind(*id);
            }
            q.execute(&mut *tx).await?;
        }
        for chunk in effects.new.chunks(MAX_PARAMS / 2) {
            let sql = format!(
                "INSERT INTO forward_extremities (room_id, event_id) VALUES {}",
                placeholders(chunk.len(), 2)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (room, id) in chunk {
                q = q.bind(*room).bind(*id);
            }
            q.execute(&mut *tx).await?;
        }

        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::placeholders;

    #[test]
    fn placeholders_give_every_row_its_columns() {
        assert_eq!(placeholders(2, 2), "(?, ?), (?, ?)");
        assert_eq!(placeholders(1, 1), "(?)");
    }
}

//! Tables `events`, `current_state`, `memberships`, `forward_extremities`: the room timelines.

use sqlx::{AssertSqlSafe, Row, any::AnyRow};

use super::{Result, Store, StoreError};

/// One stored event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRow {
    pub stream_ordering: i64,
    pub event_id: String,
    pub room_id: String,
    pub sender: String,
    pub event_type: String,
    pub state_key: Option<String>,
    pub json: String,
    pub redacted_by: Option<String>,
    pub txn_user: Option<String>,
    pub txn_device: Option<String>,
    pub txn_id: Option<String>,
}

pub(super) const EVENT_COLUMNS: &str = "e.stream_ordering, e.event_id, e.room_id, e.sender, e.event_type, e.state_key, \
     e.json, e.redacted_by, e.txn_user, e.txn_device, e.txn_id";

pub(super) fn row_to_event(r: &AnyRow) -> Result<EventRow> {
    Ok(EventRow {
        stream_ordering: r.try_get(0)?,
        event_id: r.try_get(1)?,
        room_id: r.try_get(2)?,
        sender: r.try_get(3)?,
        event_type: r.try_get(4)?,
        state_key: r.try_get(5)?,
        json: r.try_get(6)?,
        redacted_by: r.try_get(7)?,
        txn_user: r.try_get(8)?,
        txn_device: r.try_get(9)?,
        txn_id: r.try_get(10)?,
    })
}

/// An event to persist, with what it changes.
#[derive(Clone, Debug)]
pub struct NewEvent<'a> {
    pub stream_ordering: i64,
    pub event_id: &'a str,
    pub room_id: &'a str,
    pub sender: &'a str,
    pub event_type: &'a str,
    pub state_key: Option<&'a str>,
    pub depth: i64,
    pub origin_server_ts: i64,
    pub json: &'a str,
    pub relates_to: Option<&'a str>,
    pub rel_type: Option<&'a str>,
    /// `(user, device, txn id)` for idempotent client sends.
    pub txn: Option<(&'a str, &'a str, &'a str)>,
    /// For `m.room.member`: the new membership of `state_key`.
    pub membership: Option<&'a str>,
    /// The extremities this event replaces.
    pub prev_events: &'a [String],
}

/// Which way to walk a timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Backward,
}

impl Store {
    /// Records a new room.
    pub async fn create_room(
        &self,
        room_id: &str,
        version: &str,
        creator: &str,
        ts: i64,
    ) -> Result<()> {
        sqlx::query("INSERT INTO rooms (room_id, room_version, creator, created_ts) VALUES ($1, $2, $3, $4)")
            .bind(room_id)
            .bind(version)
            .bind(creator)
            .bind(ts)
            .execute(&self.writer)
            .await
            .map_err(StoreError::from_write)?;
        Ok(())
    }

    pub async fn room_version(&self, room_id: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT room_version FROM rooms WHERE room_id = $1")
            .bind(room_id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    pub async fn event(&self, event_id: &str) -> Result<Option<EventRow>> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events e WHERE e.event_id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(event_id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(row_to_event).transpose()
    }

    /// The event a client transaction produced, if it was already sent.
    pub async fn event_id_for_txn(
        &self,
        user: &str,
        device: &str,
        txn_id: &str,
    ) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT event_id FROM events WHERE txn_user = $1 AND txn_device = $2 AND txn_id = $3",
        )
        .bind(user)
        .bind(device)
        .bind(txn_id)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Events of a room strictly after `after` and at most `upto`, oldest first, at most `limit`
    /// of them taken from the newest end.
    pub async fn room_events_latest(
        &self,
        room_id: &str,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> Result<Vec<EventRow>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events e WHERE e.room_id = $1 AND e.stream_ordering > $2 \
             AND e.stream_ordering <= $3 ORDER BY e.stream_ordering DESC LIMIT $4"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(room_id)
            .bind(after)
            .bind(upto)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        let mut events: Vec<EventRow> = rows.iter().map(row_to_event).collect::<Result<_>>()?;
        events.reverse();
        Ok(events)
    }

    /// Pages through a room from `from` (exclusive) in `dir`, stopping at `to` (inclusive bound
    /// on the far side) if given.
    pub async fn room_events_page(
        &self,
        room_id: &str,
        from: i64,
        to: Option<i64>,
        dir: Direction,
        limit: i64,
    ) -> Result<Vec<EventRow>> {
        let sql = match dir {
            Direction::Backward => format!(
                "SELECT {EVENT_COLUMNS} FROM events e WHERE e.room_id = $1 AND e.stream_ordering <= $2 \
                 AND e.stream_ordering > $3 ORDER BY e.stream_ordering DESC LIMIT $4"
            ),
            Direction::Forward => format!(
                "SELECT {EVENT_COLUMNS} FROM events e WHERE e.room_id = $1 AND e.stream_ordering > $2 \
                 AND e.stream_ordering <= $3 ORDER BY e.stream_ordering ASC LIMIT $4"
            ),
        };
        let bound = match dir {
            Direction::Backward => to.unwrap_or(0),
            Direction::Forward => to.unwrap_or(i64::MAX),
        };
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(room_id)
            .bind(from)
            .bind(bound)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(row_to_event).collect()
    }

    /// The current state of a room.
    pub async fn current_state(&self, room_id: &str) -> Result<Vec<EventRow>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM current_state s JOIN events e ON e.event_id = s.event_id \
             WHERE s.room_id = $1"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(room_id)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(row_to_event).collect()
    }

    /// The state of a room as of stream position `at` (inclusive): the latest state event per
    /// (type, state key) at or before it.
    pub async fn state_at(&self, room_id: &str, at: i64) -> Result<Vec<EventRow>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events e WHERE e.room_id = $1 AND e.state_key IS NOT NULL \
             AND e.stream_ordering <= $2 ORDER BY e.stream_ordering"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(room_id)
            .bind(at)
            .fetch_all(&self.reader)
            .await?;
        let mut latest: std::collections::HashMap<(String, String), EventRow> = Default::default();
        for row in rows.iter().map(row_to_event) {
            let row = row?;
            latest.insert(
                (
                    row.event_type.clone(),
                    row.state_key.clone().unwrap_or_default(),
                ),
                row,
            );
        }
        let mut state: Vec<EventRow> = latest.into_values().collect();
        state.sort_by_key(|e| e.stream_ordering);
        Ok(state)
    }

    /// State events of a room with stream positions in `(after, upto]`.
    pub async fn state_changes(
        &self,
        room_id: &str,
        after: i64,
        upto: i64,
    ) -> Result<Vec<EventRow>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events e WHERE e.room_id = $1 AND e.state_key IS NOT NULL \
             AND e.stream_ordering > $2 AND e.stream_ordering <= $3 ORDER BY e.stream_ordering"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(room_id)
            .bind(after)
            .bind(upto)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(row_to_event).collect()
    }

    pub async fn forward_extremities(&self, room_id: &str) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT event_id FROM forward_extremities WHERE room_id = $1")
            .bind(room_id)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// The highest depth in a room.
    pub async fn max_depth(&self, room_id: &str) -> Result<i64> {
        let row = sqlx::query("SELECT COALESCE(MAX(depth), 0) FROM events WHERE room_id = $1")
            .bind(room_id)
            .fetch_one(&self.reader)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// The highest stream position used by any stream table.
    pub async fn max_stream_position(&self) -> Result<i64> {
        let row = sqlx::query(
            "SELECT MAX(p) FROM (SELECT COALESCE(MAX(stream_ordering), 0) AS p FROM events \
             UNION ALL SELECT COALESCE(MAX(stream_id), 0) FROM account_data \
             UNION ALL SELECT COALESCE(MAX(stream_ordering), 0) FROM receipts \
             UNION ALL SELECT COALESCE(MAX(stream_ordering), 0) FROM presence \
             UNION ALL SELECT COALESCE(MAX(stream_id), 0) FROM device_list_changes \
             UNION ALL SELECT COALESCE(MAX(stream_id), 0) FROM to_device_messages) AS positions",
        )
        .fetch_one(&self.writer)
        .await?;
        Ok(row.try_get::<Option<i64>, _>(0)?.unwrap_or(0))
    }

    /// Replaces an event's JSON with its redacted form.
    pub async fn redact_event(
        &self,
        event_id: &str,
        pruned_json: &str,
        redacted_by: &str,
    ) -> Result<()> {
        sqlx::query("UPDATE events SET json = $2, redacted_by = $3 WHERE event_id = $1")
            .bind(event_id)
            .bind(pruned_json)
            .bind(redacted_by)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Events relating to `event_id`, oldest first, optionally of one relation type.
    pub async fn relations(&self, event_id: &str, rel_type: Option<&str>) -> Result<Vec<EventRow>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events e WHERE e.relates_to = $1 AND ($2 = '' OR e.rel_type = $2) \
             ORDER BY e.stream_ordering"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(event_id)
            .bind(rel_type.unwrap_or(""))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(row_to_event).collect()
    }

    /// Edits and thread replies of any of `event_ids`, oldest first (for bundled aggregations).
    pub async fn edits_and_threads_of(&self, event_ids: &[&str]) -> Result<Vec<EventRow>> {
        let mut out = Vec::new();
        for chunk in event_ids.chunks(500) {
            let list: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM events e WHERE e.relates_to IN ({}) \
                 AND e.rel_type IN ('m.replace', 'm.thread') ORDER BY e.stream_ordering",
                list.join(", ")
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(*id);
            }
            for row in q.fetch_all(&self.reader).await? {
                out.push(row_to_event(&row)?);
            }
        }
        out.sort_by_key(|e| e.stream_ordering);
        Ok(out)
    }

    /// Thread roots of a room (events with at least one `m.thread` reply), newest activity first.
    pub async fn thread_roots(
        &self,
        room_id: &str,
        before: i64,
        limit: i64,
    ) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT relates_to, MAX(stream_ordering) AS latest FROM events WHERE room_id = $1 AND rel_type = 'm.thread' \
             GROUP BY relates_to HAVING MAX(stream_ordering) < $2 ORDER BY latest DESC LIMIT $3",
        )
        .bind(room_id)
        .bind(before)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// The event closest to `ts` in a direction (`Forward`: first at or after; `Backward`: last
    /// at or before).
    pub async fn event_near_ts(
        &self,
        room_id: &str,
        ts: i64,
        dir: Direction,
    ) -> Result<Option<(String, i64)>> {
        let sql = match dir {
            Direction::Forward => {
                "SELECT event_id, origin_server_ts FROM events WHERE room_id = $1 AND origin_server_ts >= $2 \
                 ORDER BY origin_server_ts ASC, stream_ordering ASC LIMIT 1"
            }
            Direction::Backward => {
                "SELECT event_id, origin_server_ts FROM events WHERE room_id = $1 AND origin_server_ts <= $2 \
                 ORDER BY origin_server_ts DESC, stream_ordering DESC LIMIT 1"
            }
        };
        let row = sqlx::query(sql)
            .bind(room_id)
            .bind(ts)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }
}

impl Store {
    /// Every state event of one type in a room (e.g. the history of `m.room.history_visibility`),
    /// oldest first.
    pub async fn state_history(&self, room_id: &str, event_type: &str) -> Result<Vec<EventRow>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events e WHERE e.room_id = $1 AND e.event_type = $2 \
             AND e.state_key IS NOT NULL ORDER BY e.stream_ordering"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(room_id)
            .bind(event_type)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(row_to_event).collect()
    }
}

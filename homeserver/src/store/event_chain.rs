//! Tables `events`, `current_state`, `memberships`, `forward_extremities`: new events and their
//! effects, written with multi-row statements (one event, a group commit across rooms, or an
//! appservice's batch of thousands).
//!
//! One transaction, with a few statements per thousand rows instead of three or four per event:
//! what a sequence of single-row writes would leave behind is computed first (the last state
//! event per key, the extremities no later event cites), then written in chunks that stay under
//! SQLite's 32,766 bound parameters per statement.

use std::collections::{HashMap, HashSet};

use sqlx::AssertSqlSafe;

use super::{NewEvent, Result, Store, StoreError};

/// Bound parameters per statement, under SQLite's limit of 32,766 (PostgreSQL's is 65,535).
const MAX_PARAMS: usize = 32_000;

/// `($1, $2, ...), ($n+1, ...)`: `rows` groups of `width` numbered placeholders; or, for SQLite,
/// anonymous `?`s, bound in the same order: SQLite looks each named (`$N`) parameter up in a
/// list of the statement's names, which makes preparing a statement with tens of thousands of
/// them quadratic (seconds for one chunk), while `?` is simply the next number.
fn placeholders(rows: usize, width: usize, numbered: bool) -> String {
    let mut sql = String::with_capacity(rows * width * 5);
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..width {
            if c > 0 {
                sql.push_str(", ");
            }
            if numbered {
                sql.push('$');
                sql.push_str(&(r * width + c + 1).to_string());
            } else {
                sql.push('?');
            }
        }
        sql.push(')');
    }
    sql
}

impl Store {
    /// Persists events (in stream order within each room) and their effects on current state,
    /// memberships and forward extremities, atomically. A repeated transaction id is
    /// [`StoreError::Conflict`].
    pub async fn persist_events(&self, events: &[NewEvent<'_>]) -> Result<()> {
        let numbered = !self.is_sqlite();
        let placeholders = |rows, width| placeholders(rows, width, numbered);
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
                let (txn_user, txn_device, txn_id) = match e.txn {
                    Some((u, d, t)) => (Some(u), Some(d), Some(t)),
                    None => (None, None, None),
                };
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

        // The last state event per (room, type, state key) is what a row-by-row upsert leaves.
        let mut last_state: HashMap<(&str, &str, &str), &str> = HashMap::new();
        for e in events {
            if let Some(state_key) = e.state_key {
                last_state.insert((e.room_id, e.event_type, state_key), e.event_id);
            }
        }
        let state: Vec<_> = last_state.into_iter().collect();
        for chunk in state.chunks(MAX_PARAMS / 4) {
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

        let members: Vec<_> = events
            .iter()
            .filter_map(|e| Some((e, e.state_key?, e.membership?)))
            .collect();
        for chunk in members.chunks(MAX_PARAMS / 5) {
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

        // Every event becomes an extremity and drops the ones it cites; what remains is the
        // events no later event cites, and the old extremities none of them cited.
        let cited: HashSet<(&str, &str)> = events
            .iter()
            .flat_map(|e| e.prev_events.iter().map(move |p| (e.room_id, p.as_str())))
            .collect();
        let ours: HashSet<(&str, &str)> = events.iter().map(|e| (e.room_id, e.event_id)).collect();
        let mut old: Vec<(&str, &str)> = cited.difference(&ours).copied().collect();
        old.sort_unstable();
        let mut new: Vec<(&str, &str)> = events
            .iter()
            .map(|e| (e.room_id, e.event_id))
            .filter(|k| !cited.contains(k))
            .collect();
        // The usual single send, one extremity replaced by the new event: one statement.
        if let ([(room, old_id)], [(new_room, new_id)]) = (old.as_slice(), new.as_slice())
            && room == new_room
        {
            let replaced = sqlx::query(
                "UPDATE forward_extremities SET event_id = $3 WHERE room_id = $1 AND event_id = $2",
            )
            .bind(*room)
            .bind(*old_id)
            .bind(*new_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            old.clear();
            if replaced > 0 {
                new.clear();
            }
        }
        for chunk in old.chunks(MAX_PARAMS / 2) {
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
        for chunk in new.chunks(MAX_PARAMS / 2) {
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
    fn placeholders_number_every_row() {
        assert_eq!(placeholders(2, 3, true), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(placeholders(1, 1, true), "($1)");
        assert_eq!(placeholders(2, 2, false), "(?, ?), (?, ?)");
    }
}

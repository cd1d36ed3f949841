//! Table `memberships` (history of `m.room.member` per user) and `forgotten_rooms`.

use sqlx::Row;

use super::{Result, Store};

/// A user's membership in a room at some stream position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipRow {
    pub room_id: String,
    pub user_id: String,
    pub membership: String,
    pub event_id: String,
    pub stream_ordering: i64,
}

fn row(r: &sqlx::any::AnyRow) -> Result<MembershipRow> {
    Ok(MembershipRow {
        stream_ordering: r.try_get(0)?,
        room_id: r.try_get(1)?,
        user_id: r.try_get(2)?,
        membership: r.try_get(3)?,
        event_id: r.try_get(4)?,
    })
}

impl Store {
    /// The latest membership of `user_id` in every room they ever had one in.
    pub async fn memberships_of_user(&self, user_id: &str) -> Result<Vec<MembershipRow>> {
        let rows = sqlx::query(
            "SELECT m.stream_ordering, m.room_id, m.user_id, m.membership, m.event_id FROM memberships m \
             WHERE m.user_id = $1 AND m.stream_ordering = \
             (SELECT MAX(x.stream_ordering) FROM memberships x WHERE x.user_id = m.user_id AND x.room_id = m.room_id)",
        )
        .bind(user_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(row).collect()
    }

    /// Every membership change of a user in a room, oldest first.
    pub async fn membership_history(
        &self,
        room_id: &str,
        user_id: &str,
    ) -> Result<Vec<MembershipRow>> {
        let rows = sqlx::query(
            "SELECT stream_ordering, room_id, user_id, membership, event_id FROM memberships \
             WHERE room_id = $1 AND user_id = $2 ORDER BY stream_ordering",
        )
        .bind(room_id)
        .bind(user_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(row).collect()
    }

    /// Current members of a room with a given membership.
    pub async fn room_members(&self, room_id: &str, membership: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT m.user_id FROM current_state s JOIN memberships m ON m.event_id = s.event_id \
             WHERE s.room_id = $1 AND s.event_type = 'm.room.member' AND m.membership = $2",
        )
        .bind(room_id)
        .bind(membership)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// The latest membership of each user whose membership in a room changed after `after`, up to
    /// and including `upto`.
    pub async fn membership_changes(
        &self,
        room_id: &str,
        after: i64,
        upto: i64,
    ) -> Result<Vec<MembershipRow>> {
        let rows = sqlx::query(
            "SELECT stream_ordering, room_id, user_id, membership, event_id FROM memberships \
             WHERE room_id = $1 AND stream_ordering > $2 AND stream_ordering <= $3 \
             ORDER BY stream_ordering",
        )
        .bind(room_id)
        .bind(after)
        .bind(upto)
        .fetch_all(&self.reader)
        .await?;
        let mut latest: Vec<MembershipRow> = Vec::new();
        for r in rows.iter().map(row) {
            let r = r?;
            latest.retain(|m| m.user_id != r.user_id);
            latest.push(r);
        }
        Ok(latest)
    }

    pub async fn forget_room(&self, user_id: &str, room_id: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO forgotten_rooms (user_id, room_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(user_id)
        .bind(room_id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Clears a forget when the user rejoins or is invited again.
    pub async fn unforget_room(&self, user_id: &str, room_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM forgotten_rooms WHERE user_id = $1 AND room_id = $2")
            .bind(user_id)
            .bind(room_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn forgotten_rooms(&self, user_id: &str) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT room_id FROM forgotten_rooms WHERE user_id = $1")
            .bind(user_id)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }
}

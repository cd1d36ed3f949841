//! `messages` and `reactions`: remote message id <-> Matrix event id, so edits, replies,
//! redactions and reactions find their target on either side.

use ruma::{OwnedEventId, OwnedUserId};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::{Store, parse_id};
use crate::error::Result;

/// One bridged message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    /// The portal's remote id.
    pub portal_id: String,
    /// The network's id for the message.
    pub remote_id: String,
    /// The Matrix event.
    pub event_id: OwnedEventId,
    /// Who sent it on Matrix (a ghost or a real user).
    pub sender: OwnedUserId,
    /// When it was sent, ms since the epoch.
    pub ts: i64,
}

/// One bridged reaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReactionRecord {
    /// The `m.reaction` event.
    pub event_id: OwnedEventId,
    /// The portal's remote id.
    pub portal_id: String,
    /// Remote id of the message reacted to.
    pub target_remote_id: String,
    /// Who reacted on Matrix.
    pub sender: OwnedUserId,
    /// The reaction key, e.g. an emoji.
    pub key: String,
}

fn message_from_row(row: &AnyRow) -> Result<MessageRecord> {
    Ok(MessageRecord {
        portal_id: row.try_get("portal_id")?,
        remote_id: row.try_get("remote_id")?,
        event_id: parse_id("messages.event_id", row.try_get("event_id")?)?,
        sender: parse_id("messages.sender", row.try_get("sender")?)?,
        ts: row.try_get("ts")?,
    })
}

fn reaction_from_row(row: &AnyRow) -> Result<ReactionRecord> {
    Ok(ReactionRecord {
        event_id: parse_id("reactions.event_id", row.try_get("event_id")?)?,
        portal_id: row.try_get("portal_id")?,
        target_remote_id: row.try_get("target_remote_id")?,
        sender: parse_id("reactions.sender", row.try_get("sender")?)?,
        key: row.try_get("reaction_key")?,
    })
}

const MESSAGE_COLUMNS: &str = "portal_id, remote_id, event_id, sender, ts";
const REACTION_COLUMNS: &str = "event_id, portal_id, target_remote_id, sender, reaction_key";

impl Store {
    /// Records a bridged message; false (and nothing changed) if the remote id or the event
    /// was already recorded, which is how redelivered events are recognised.
    pub async fn insert_message(&self, message: &MessageRecord) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO messages (portal_id, remote_id, event_id, sender, ts) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(&message.portal_id)
        .bind(&message.remote_id)
        .bind(message.event_id.as_str())
        .bind(message.sender.as_str())
        .bind(message.ts)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The message with a remote id in a portal.
    pub async fn message_by_remote_id(
        &self,
        portal_id: &str,
        remote_id: &str,
    ) -> Result<Option<MessageRecord>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE portal_id = $1 AND remote_id = $2"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(portal_id)
            .bind(remote_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(message_from_row).transpose()
    }

    /// The message bridged as a Matrix event.
    pub async fn message_by_event_id(&self, event_id: &str) -> Result<Option<MessageRecord>> {
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE event_id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(event_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(message_from_row).transpose()
    }

    /// The newest messages of a portal, newest first.
    pub async fn latest_messages(&self, portal_id: &str, limit: i64) -> Result<Vec<MessageRecord>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE portal_id = $1 \
             ORDER BY ts DESC, remote_id DESC LIMIT $2"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(portal_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(message_from_row).collect()
    }

    /// Forgets a message (after it was redacted); false if absent.
    pub async fn delete_message(&self, event_id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM messages WHERE event_id = $1")
            .bind(event_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records a reaction; false if the same sender already reacted with the same key.
    pub async fn insert_reaction(&self, reaction: &ReactionRecord) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO reactions (event_id, portal_id, target_remote_id, sender, reaction_key) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(reaction.event_id.as_str())
        .bind(&reaction.portal_id)
        .bind(&reaction.target_remote_id)
        .bind(reaction.sender.as_str())
        .bind(&reaction.key)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The reaction bridged as a Matrix event.
    pub async fn reaction_by_event_id(&self, event_id: &str) -> Result<Option<ReactionRecord>> {
        let sql = format!("SELECT {REACTION_COLUMNS} FROM reactions WHERE event_id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(event_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(reaction_from_row).transpose()
    }

    /// The reaction of a sender with a key on a message.
    pub async fn find_reaction(
        &self,
        portal_id: &str,
        target_remote_id: &str,
        sender: &str,
        key: &str,
    ) -> Result<Option<ReactionRecord>> {
        let sql = format!(
            "SELECT {REACTION_COLUMNS} FROM reactions WHERE portal_id = $1 \
             AND target_remote_id = $2 AND sender = $3 AND reaction_key = $4"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(portal_id)
            .bind(target_remote_id)
            .bind(sender)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(reaction_from_row).transpose()
    }

    /// Forgets a reaction; false if absent.
    pub async fn delete_reaction(&self, event_id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM reactions WHERE event_id = $1")
            .bind(event_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;

    fn msg(remote: &str, event: &str, ts: i64) -> MessageRecord {
        MessageRecord {
            portal_id: "chat".to_owned(),
            remote_id: remote.to_owned(),
            event_id: event.try_into().unwrap(),
            sender: "@echo_a:x".try_into().unwrap(),
            ts,
        }
    }

    #[tokio::test]
    async fn a_message_is_found_from_either_side_and_recorded_once() {
        for t in testing::both().await {
            let s = &t.store;
            assert!(s.insert_message(&msg("r1", "$e1", 1)).await.unwrap());
            assert!(!s.insert_message(&msg("r1", "$e1", 1)).await.unwrap());
            assert!(!s.insert_message(&msg("r1", "$other", 1)).await.unwrap());
            assert_eq!(
                s.message_by_remote_id("chat", "r1").await.unwrap(),
                Some(msg("r1", "$e1", 1))
            );
            assert_eq!(
                s.message_by_event_id("$e1")
                    .await
                    .unwrap()
                    .unwrap()
                    .remote_id,
                "r1"
            );
            assert_eq!(s.message_by_remote_id("other", "r1").await.unwrap(), None);
            s.insert_message(&msg("r2", "$e2", 2)).await.unwrap();
            let latest = s.latest_messages("chat", 1).await.unwrap();
            assert_eq!(latest, vec![msg("r2", "$e2", 2)]);
            assert!(s.delete_message("$e1").await.unwrap());
            assert_eq!(s.message_by_event_id("$e1").await.unwrap(), None);
            t.cleanup().await;
        }
    }

    #[tokio::test]
    async fn a_reaction_is_unique_per_sender_and_key() {
        for t in testing::both().await {
            let s = &t.store;
            let r = ReactionRecord {
                event_id: "$react".try_into().unwrap(),
                portal_id: "chat".to_owned(),
                target_remote_id: "r1".to_owned(),
                sender: "@echo_a:x".try_into().unwrap(),
                key: "👍".to_owned(),
            };
            assert!(s.insert_reaction(&r).await.unwrap());
            let mut again = r.clone();
            again.event_id = "$react2".try_into().unwrap();
            assert!(!s.insert_reaction(&again).await.unwrap());
            assert_eq!(
                s.find_reaction("chat", "r1", "@echo_a:x", "👍")
                    .await
                    .unwrap(),
                Some(r.clone())
            );
            assert_eq!(s.reaction_by_event_id("$react").await.unwrap(), Some(r));
            assert!(s.delete_reaction("$react").await.unwrap());
            assert_eq!(
                s.find_reaction("chat", "r1", "@echo_a:x", "👍")
                    .await
                    .unwrap(),
                None
            );
            t.cleanup().await;
        }
    }
}

//! Event filters (the spec's `RoomEventFilter` and `Filter`) applied to stored events, and stored
//! filters for `/sync`.

use ruma::api::client::filter::{FilterDefinition, RoomEventFilter};
use serde_json::Value;

use crate::{
    error::{Error, Result},
    service::Services,
    store::EventRow,
};

/// `*` matches any run of characters, as the spec's type filters use it.
pub fn glob_match(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((prefix, rest)) => {
            value.starts_with(prefix) && {
                let tail = &value[prefix.len()..];
                (0..=tail.len())
                    .filter(|i| tail.is_char_boundary(*i))
                    .any(|i| glob_match(rest, &tail[i..]))
            }
        }
    }
}

/// Whether a stored event passes a room event filter.
pub fn matches(filter: &RoomEventFilter, e: &EventRow) -> bool {
    if filter
        .not_types
        .iter()
        .any(|t| glob_match(t, &e.event_type))
    {
        return false;
    }
    if let Some(types) = &filter.types
        && !types.iter().any(|t| glob_match(t, &e.event_type))
    {
        return false;
    }
    if filter.not_senders.iter().any(|s| s.as_str() == e.sender) {
        return false;
    }
    if let Some(senders) = &filter.senders
        && !senders.iter().any(|s| s.as_str() == e.sender)
    {
        return false;
    }
    if filter.not_rooms.iter().any(|r| r.as_str() == e.room_id) {
        return false;
    }
    if let Some(rooms) = &filter.rooms
        && !rooms.iter().any(|r| r.as_str() == e.room_id)
    {
        return false;
    }
    if let Some(url_filter) = &filter.url_filter {
        let has_url = serde_json::from_str::<Value>(&e.json)
            .ok()
            .is_some_and(|v| v["content"]["url"].is_string());
        let wants = matches!(
            url_filter,
            ruma::api::client::filter::UrlFilter::EventsWithUrl
        );
        if has_url != wants {
            return false;
        }
    }
    true
}

impl Services {
    /// Stores a filter and returns its id.
    pub async fn create_filter(&self, user_id: &str, filter: &FilterDefinition) -> Result<String> {
        let json = serde_json::to_string(filter).map_err(Error::internal)?;
        Ok(self.store.create_filter(user_id, &json).await?.to_string())
    }

    /// A stored filter; `M_NOT_FOUND` when unknown.
    pub async fn filter(&self, user_id: &str, filter_id: &str) -> Result<FilterDefinition> {
        let id: i64 = filter_id
            .parse()
            .map_err(|_| Error::not_found("No such filter"))?;
        let json = self
            .store
            .filter(user_id, id)
            .await?
            .ok_or_else(|| Error::not_found("No such filter"))?;
        serde_json::from_str(&json).map_err(Error::internal)
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs_match_like_the_spec_says() {
        assert!(glob_match("m.room.*", "m.room.message"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("m.*.member", "m.room.member"));
        assert!(!glob_match("m.room.*", "m.reaction"));
        assert!(glob_match("m.reaction", "m.reaction"));
    }
}

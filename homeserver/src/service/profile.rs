//! Profile changes, propagated to the member events of every room the user is joined to, as
//! clients expect from Synapse.

use serde_json::json;

use crate::{error::Result, service::Services, service::rooms::EventSpec};

impl Services {
    /// Sets (or clears) the displayname and updates the user's rooms.
    pub async fn set_displayname(&self, user_id: &str, name: Option<&str>) -> Result<()> {
        self.store.set_displayname(user_id, name).await?;
        self.propagate_profile(user_id).await
    }

    /// Sets (or clears) the avatar and updates the user's rooms.
    pub async fn set_avatar_url(&self, user_id: &str, url: Option<&str>) -> Result<()> {
        self.store.set_avatar_url(user_id, url).await?;
        self.propagate_profile(user_id).await
    }

    async fn propagate_profile(&self, user_id: &str) -> Result<()> {
        let Some(user) = self.store.user(user_id).await? else {
            return Ok(());
        };
        for m in self.store.memberships_of_user(user_id).await? {
            if m.membership != "join" {
                continue;
            }
            let Some(handle) = self.rooms.get(&self.store, &m.room_id).await? else {
                continue;
            };
            let mut room = handle.lock().await;
            let mut content = room
                .get("m.room.member", user_id)
                .map(|p| p.content_value())
                .unwrap_or_else(|| json!({}));
            content["membership"] = json!("join");
            content["displayname"] = json!(user.displayname);
            content["avatar_url"] = json!(user.avatar_url);
            if let Some(map) = content.as_object_mut() {
                map.retain(|_, v| !v.is_null());
            }
            let spec = EventSpec::state("m.room.member", user_id, content);
            if let Err(e) = self.build_and_send(&mut room, user_id, spec).await {
                tracing::warn!(user_id, room_id = m.room_id, error = %e, "could not update the member event");
            }
        }
        Ok(())
    }
}

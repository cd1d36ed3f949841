//! Account data on the shared stream, so `/sync` sees each change once.

use crate::{error::Result, service::Services};

impl Services {
    /// Stores global (`room_id = ""`) or per-room account data and wakes the user's syncs.
    pub async fn set_account_data(
        &self,
        user_id: &str,
        room_id: &str,
        data_type: &str,
        content: &str,
    ) -> Result<()> {
        let reservation = self.stream.reserve();
        self.store
            .set_account_data(user_id, room_id, data_type, content, reservation.position)
            .await?;
        self.activity
            .account_data_changed(user_id, room_id, reservation.position);
        Ok(())
    }
}

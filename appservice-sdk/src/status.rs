//! Bridge status: whether the bridge is connected to its network, as mautrix bridges report
//! it. Changes are pushed as notices to management rooms and exposed at `/_causeway/status`.

use std::sync::RwLock;

use serde::Serialize;

/// The bridge's connection to the remote network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BridgeState {
    /// Starting up.
    Starting,
    /// Connected and bridging.
    Connected,
    /// Lost the connection; retrying.
    TransientDisconnect,
    /// The network refused the credentials; a user must log in again.
    BadCredentials,
    /// Stopped.
    Stopped,
}

impl BridgeState {
    /// A short human description.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Connected => "connected",
            Self::TransientDisconnect => "disconnected, reconnecting",
            Self::BadCredentials => "credentials refused, please log in again",
            Self::Stopped => "stopped",
        }
    }
}

/// One status report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BridgeStatus {
    /// The state.
    pub state_event: BridgeState,
    /// Optional detail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When it was reported, ms since the epoch.
    pub timestamp: i64,
}

/// The current status, shared.
#[derive(Debug)]
pub struct StatusBoard {
    current: RwLock<BridgeStatus>,
}

impl Default for StatusBoard {
    fn default() -> Self {
        Self {
            current: RwLock::new(BridgeStatus {
                state_event: BridgeState::Starting,
                message: None,
                timestamp: crate::store::now_ms(),
            }),
        }
    }
}

impl StatusBoard {
    /// The current status.
    pub fn get(&self) -> BridgeStatus {
        self.current.read().expect("status lock").clone()
    }

    /// Sets the status; true if the state changed.
    pub fn set(&self, state: BridgeState, message: Option<String>) -> bool {
        let mut current = self.current.write().expect("status lock");
        let changed = current.state_event != state;
        *current = BridgeStatus {
            state_event: state,
            message,
            timestamp: crate::store::now_ms(),
        };
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_serializes_like_mautrix_and_reports_changes() {
        let board = StatusBoard::default();
        assert!(board.set(BridgeState::Connected, None));
        assert!(!board.set(BridgeState::Connected, Some("again".to_owned())));
        let json = serde_json::to_value(board.get()).unwrap();
        assert_eq!(json["state_event"], "CONNECTED");
        assert_eq!(json["message"], "again");
    }
}

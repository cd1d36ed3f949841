//! Events as clients see them (the spec's `ClientEvent`), from stored PDUs.

use serde_json::{Map, Value, json};

use crate::store::{EventRow, now_ms};

/// Who is looking, for `unsigned.transaction_id`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Viewing<'a> {
    pub user_id: &'a str,
    pub device_id: &'a str,
}

/// The client form of a stored event.
pub fn client_event(row: &EventRow, viewing: Viewing<'_>) -> Value {
    let pdu: Value = serde_json::from_str(&row.json).unwrap_or_default();
    let mut event = Map::new();
    for key in [
        "content",
        "origin_server_ts",
        "sender",
        "type",
        "state_key",
        "redacts",
    ] {
        if let Some(v) = pdu.get(key) {
            event.insert(key.to_owned(), v.clone());
        }
    }
    event.insert("event_id".to_owned(), json!(row.event_id));
    event.insert("room_id".to_owned(), json!(row.room_id));
    if row.event_type == "m.room.redaction"
        && !event.contains_key("redacts")
        && let Some(r) = pdu["content"].get("redacts")
    {
        event.insert("redacts".to_owned(), r.clone());
    }
    let mut unsigned = pdu
        .get("unsigned")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(ts) = pdu["origin_server_ts"].as_i64() {
        unsigned.insert("age".to_owned(), json!((now_ms() - ts).max(0)));
    }
    if row.txn_user.as_deref() == Some(viewing.user_id)
        && row.txn_device.as_deref() == Some(viewing.device_id)
        && let Some(txn) = &row.txn_id
    {
        unsigned.insert("transaction_id".to_owned(), json!(txn));
    }
    event.insert("unsigned".to_owned(), Value::Object(unsigned));
    Value::Object(event)
}

/// The stripped form used for invite and knock state.
pub fn stripped_event(row: &EventRow) -> Value {
    let pdu: Value = serde_json::from_str(&row.json).unwrap_or_default();
    json!({
        "type": row.event_type,
        "state_key": row.state_key,
        "sender": row.sender,
        "content": pdu["content"],
    })
}

//! Relations: edits, reactions, threads; bundled aggregations on the events they relate to.

use serde_json::{Value, json};

use crate::{
    error::Result,
    service::{
        Services,
        client_event::{Viewing, client_event},
    },
    store::EventRow,
};

impl Services {
    /// Adds `unsigned.m.relations` (latest edit by the original sender; thread summary).
    pub async fn bundle_relations(&self, event: &mut Value, row: &EventRow) -> Result<()> {
        let relations = self.store.relations(&row.event_id, None).await?;
        if relations.is_empty() {
            return Ok(());
        }
        let mut bundle = serde_json::Map::new();
        if let Some(edit) = relations
            .iter()
            .rev()
            .find(|r| r.sender == row.sender && rel_type(r) == Some("m.replace"))
        {
            bundle.insert(
                "m.replace".to_owned(),
                client_event(edit, Viewing::default()),
            );
        }
        let thread: Vec<&EventRow> = relations
            .iter()
            .filter(|r| rel_type(r) == Some("m.thread"))
            .collect();
        if let Some(latest) = thread.last() {
            bundle.insert(
                "m.thread".to_owned(),
                json!({
                    "latest_event": client_event(latest, Viewing::default()),
                    "count": thread.len(),
                    "current_user_participated": thread.iter().any(|r| r.sender == row.sender),
                }),
            );
        }
        if !bundle.is_empty() {
            event["unsigned"]["m.relations"] = Value::Object(bundle);
        }
        Ok(())
    }
}

fn rel_type(row: &EventRow) -> Option<&'static str> {
    let v: Value = serde_json::from_str(&row.json).ok()?;
    match v["content"]["m.relates_to"]["rel_type"].as_str()? {
        "m.replace" => Some("m.replace"),
        "m.thread" => Some("m.thread"),
        "m.annotation" => Some("m.annotation"),
        _ => None,
    }
}

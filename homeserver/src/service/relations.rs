//! Relations: edits, reactions, threads; bundled aggregations on the events they relate to.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::{
    error::Result,
    service::{
        Services,
        client_event::{Viewing, client_event},
        rooms::build::relation_of,
    },
    store::EventRow,
};

/// `unsigned.m.relations` by event id.
pub type Bundles = HashMap<String, Value>;

impl Services {
    /// Adds `unsigned.m.relations` (latest edit by the original sender; thread summary, as
    /// `viewer` sees it) to one event.
    pub async fn bundle_relations(
        &self,
        event: &mut Value,
        row: &EventRow,
        viewer: &str,
    ) -> Result<()> {
        let bundles = self.bundles_for(std::slice::from_ref(row), viewer).await?;
        add_bundles(
            std::slice::from_mut(event),
            std::slice::from_ref(row),
            &bundles,
        );
        Ok(())
    }

    /// Bundled aggregations of `rows` for `viewer`, read from the store in one query.
    pub async fn bundles_for(&self, rows: &[EventRow], viewer: &str) -> Result<Bundles> {
        if rows.is_empty() {
            return Ok(Bundles::new());
        }
        let ids: Vec<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
        let relations = self.store.edits_and_threads_of(&ids).await?;
        Ok(bundles_from(rows, &relations, viewer))
    }
}

/// Bundled aggregations of `targets` for `viewer` from `candidates` (any events, oldest first;
/// those relating to a target are used). A caller holding every event after the targets passes
/// those and needs no query.
pub fn bundles_from(targets: &[EventRow], candidates: &[EventRow], viewer: &str) -> Bundles {
    let wanted: HashMap<&str, &EventRow> =
        targets.iter().map(|t| (t.event_id.as_str(), t)).collect();
    let mut edits: HashMap<&str, &EventRow> = HashMap::new();
    let mut threads: HashMap<&str, Vec<&EventRow>> = HashMap::new();
    for c in candidates {
        let Some((target_id, rel_type)) = relation(c) else {
            continue;
        };
        let Some((&key, target)) = wanted.get_key_value(target_id.as_str()) else {
            continue;
        };
        match rel_type.as_str() {
            // Only the original sender's edits count; the newest wins.
            "m.replace" if c.sender == target.sender => {
                edits.insert(key, c);
            }
            "m.thread" => threads.entry(key).or_default().push(c),
            _ => {}
        }
    }
    let mut bundles = Bundles::new();
    for t in targets {
        let id = t.event_id.as_str();
        let mut bundle = serde_json::Map::new();
        if let Some(edit) = edits.get(id) {
            bundle.insert(
                "m.replace".to_owned(),
                client_event(edit, Viewing::default()),
            );
        }
        if let Some(thread) = threads.get(id)
            && let Some(latest) = thread.last()
        {
            bundle.insert(
                "m.thread".to_owned(),
                json!({
                    "latest_event": client_event(latest, Viewing::default()),
                    "count": thread.len(),
                    "current_user_participated": t.sender == viewer
                        || thread.iter().any(|r| r.sender == viewer),
                }),
            );
        }
        if !bundle.is_empty() {
            bundles.insert(id.to_owned(), Value::Object(bundle));
        }
    }
    bundles
}

/// Sets `unsigned.m.relations` on each client event from its row's bundle.
pub fn add_bundles(events: &mut [Value], rows: &[EventRow], bundles: &Bundles) {
    if bundles.is_empty() {
        return;
    }
    for (event, row) in events.iter_mut().zip(rows) {
        if let Some(bundle) = bundles.get(&row.event_id) {
            event["unsigned"]["m.relations"] = bundle.clone();
        }
    }
}

/// The target and relation type of a stored event, if it relates to one.
fn relation(row: &EventRow) -> Option<(String, String)> {
    if !row.json.contains("m.relates_to") {
        return None;
    }
    let v: Value = serde_json::from_str(&row.json).ok()?;
    relation_of(&v["content"])
}

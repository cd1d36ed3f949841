//! `relations`, `threads` and `timestamp_to_event`.

use axum::{Json, Router, extract::State};
use ruma::api::{
    Direction as RumaDirection,
    client::{
        relations::{
            get_relating_events, get_relating_events_with_rel_type,
            get_relating_events_with_rel_type_and_event_type,
        },
        room::get_event_by_timestamp::v1 as by_ts,
        threads::get_threads::v1 as threads,
    },
};
use serde_json::{Value, json};

use crate::{
    api::{RouteExt, Ruma},
    error::{Error, Result},
    service::{
        Services,
        accounts::Requester,
        client_event::{Viewing, client_event},
        sync::Token,
    },
    store::Direction,
};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .ruma::<get_relating_events::v1::Request, _, _>(relations_all)
        .ruma::<get_relating_events_with_rel_type::v1::Request, _, _>(relations_of_type)
        .ruma::<get_relating_events_with_rel_type_and_event_type::v1::Request, _, _>(
            relations_of_type_and_event,
        )
        .ruma::<threads::Request, _, _>(get_threads)
        .ruma::<by_ts::Request, _, _>(get_by_timestamp)
}

struct Query<'a> {
    room_id: &'a str,
    event_id: &'a str,
    rel_type: Option<String>,
    event_type: Option<String>,
    from: Option<&'a str>,
    limit: Option<u64>,
    dir: RumaDirection,
}

async fn relations(s: &Services, who: &Requester, q: Query<'_>) -> Result<Json<Value>> {
    let viewer = s.viewer(q.room_id, &who.user_id).await?;
    let parent = s
        .store
        .event(q.event_id)
        .await?
        .filter(|e| e.room_id == q.room_id);
    if !parent.is_some_and(|p| viewer.can_see(p.stream_ordering)) {
        return Err(Error::not_found("Event not found"));
    }
    let mut rows: Vec<_> = s
        .store
        .relations(q.event_id, q.rel_type.as_deref())
        .await?
        .into_iter()
        .filter(|e| {
            q.event_type.as_deref().is_none_or(|t| e.event_type == t)
                && viewer.can_see(e.stream_ordering)
        })
        .collect();
    if q.dir == RumaDirection::Backward {
        rows.reverse();
    }
    let from = q.from.map(Token::parse).transpose()?.map(|t| t.stream);
    if let Some(from) = from {
        rows.retain(|e| {
            if q.dir == RumaDirection::Backward {
                e.stream_ordering <= from
            } else {
                e.stream_ordering > from
            }
        });
    }
    let limit = q.limit.unwrap_or(50).clamp(1, 1000) as usize;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let viewing = Viewing {
        user_id: &who.user_id,
        device_id: &who.device_id,
    };
    let mut body =
        json!({"chunk": rows.iter().map(|e| client_event(e, viewing)).collect::<Vec<_>>()});
    if more && let Some(last) = rows.last() {
        let next = if q.dir == RumaDirection::Backward {
            last.stream_ordering - 1
        } else {
            last.stream_ordering
        };
        body["next_batch"] = json!(Token::at(next).to_string());
    }
    Ok(Json(body))
}

/// `GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}`
async fn relations_all(
    State(s): State<Services>,
    req: Ruma<get_relating_events::v1::Request>,
) -> Result<Json<Value>> {
    let b = &req.body;
    let q = Query {
        room_id: b.room_id.as_str(),
        event_id: b.event_id.as_str(),
        rel_type: None,
        event_type: None,
        from: b.from.as_deref(),
        limit: b.limit.map(u64::from),
        dir: b.dir,
    };
    relations(&s, req.requester(), q).await
}

/// `GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}`
async fn relations_of_type(
    State(s): State<Services>,
    req: Ruma<get_relating_events_with_rel_type::v1::Request>,
) -> Result<Json<Value>> {
    let b = &req.body;
    let q = Query {
        room_id: b.room_id.as_str(),
        event_id: b.event_id.as_str(),
        rel_type: Some(b.rel_type.to_string()),
        event_type: None,
        from: b.from.as_deref(),
        limit: b.limit.map(u64::from),
        dir: b.dir,
    };
    relations(&s, req.requester(), q).await
}

/// `GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}`
async fn relations_of_type_and_event(
    State(s): State<Services>,
    req: Ruma<get_relating_events_with_rel_type_and_event_type::v1::Request>,
) -> Result<Json<Value>> {
    let b = &req.body;
    let q = Query {
        room_id: b.room_id.as_str(),
        event_id: b.event_id.as_str(),
        rel_type: Some(b.rel_type.to_string()),
        event_type: Some(b.event_type.to_string()),
        from: b.from.as_deref(),
        limit: b.limit.map(u64::from),
        dir: b.dir,
    };
    relations(&s, req.requester(), q).await
}

/// `GET /_matrix/client/v1/rooms/{roomId}/threads`
async fn get_threads(
    State(s): State<Services>,
    req: Ruma<threads::Request>,
) -> Result<Json<Value>> {
    let who = req.requester().clone();
    let room_id = req.body.room_id.as_str();
    let viewer = s.viewer(room_id, &who.user_id).await?;
    if viewer.current().is_none() && !viewer.world_readable_now() {
        return Err(Error::forbidden("You are not in this room"));
    }
    let before = req
        .body
        .from
        .as_deref()
        .map(Token::parse)
        .transpose()?
        .map(|t| t.stream + 1)
        .unwrap_or(i64::MAX);
    let limit = req.body.limit.map(u64::from).unwrap_or(20).clamp(1, 100) as i64;
    let roots = s.store.thread_roots(room_id, before, limit + 1).await?;
    let viewing = Viewing {
        user_id: &who.user_id,
        device_id: &who.device_id,
    };
    let mut chunk = Vec::new();
    for (root_id, _) in roots.iter().take(limit as usize) {
        if let Some(row) = s.store.event(root_id).await?
            && viewer.can_see(row.stream_ordering)
        {
            let mut event = client_event(&row, viewing);
            s.bundle_relations(&mut event, &row, &who.user_id).await?;
            chunk.push(event);
        }
    }
    let mut body = json!({"chunk": chunk});
    if roots.len() as i64 > limit
        && let Some((_, latest)) = roots.get(limit as usize - 1)
    {
        body["next_batch"] = json!(Token::at(latest - 1).to_string());
    }
    Ok(Json(body))
}

/// `GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event`
async fn get_by_timestamp(
    State(s): State<Services>,
    req: Ruma<by_ts::Request>,
) -> Result<Json<Value>> {
    let who = req.requester();
    let room_id = req.body.room_id.as_str();
    let viewer = s.viewer(room_id, &who.user_id).await?;
    if viewer.current().is_none() && !viewer.world_readable_now() {
        return Err(Error::forbidden("You are not in this room"));
    }
    let dir = match req.body.dir {
        RumaDirection::Forward => Direction::Forward,
        RumaDirection::Backward => Direction::Backward,
    };
    let found = s
        .store
        .event_near_ts(room_id, i64::from(req.body.ts.0), dir)
        .await?;
    let (event_id, ts) =
        found.ok_or_else(|| Error::not_found("No event found in that direction"))?;
    Ok(Json(json!({"event_id": event_id, "origin_server_ts": ts})))
}

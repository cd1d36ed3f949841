//! Group commit: events built in different rooms at the same time are written in one database
//! transaction. Each room builds under its own lock and hands its events here; one task takes
//! whatever is waiting and persists it together, so under load a commit (and, on PostgreSQL,
//! its flush to disk) is shared by every room that sent meanwhile.
//!
//! When a shared transaction fails (a repeated transaction id, say), each room's events are
//! retried on their own, so only the offender sees the error.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use crate::store::{NewEvent, Store, StoreError};

/// Most events written in one shared transaction.
const MAX_GROUP_EVENTS: usize = 1_000;
/// Shared transactions in flight at once on PostgreSQL, whose commits wait for the disk but
/// run in parallel; SQLite has one writer, so one.
const POSTGRES_WRITERS: usize = 4;

/// An event waiting to be persisted (the owned form of [`NewEvent`]).
#[derive(Clone, Debug)]
pub struct PendingEvent {
    pub stream_ordering: i64,
    pub event_id: String,
    pub room_id: String,
    pub sender: String,
    pub event_type: String,
    pub state_key: Option<String>,
    pub depth: i64,
    pub origin_server_ts: i64,
    pub json: String,
    pub relates_to: Option<String>,
    pub rel_type: Option<String>,
    pub txn: Option<(String, String, String)>,
    pub membership: Option<String>,
    pub prev_events: Vec<String>,
}

impl PendingEvent {
    pub fn as_new(&self) -> NewEvent<'_> {
        NewEvent {
            stream_ordering: self.stream_ordering,
            event_id: &self.event_id,
            room_id: &self.room_id,
            sender: &self.sender,
            event_type: &self.event_type,
            state_key: self.state_key.as_deref(),
            depth: self.depth,
            origin_server_ts: self.origin_server_ts,
            json: &self.json,
            relates_to: self.relates_to.as_deref(),
            rel_type: self.rel_type.as_deref(),
            txn: self
                .txn
                .as_ref()
                .map(|(u, d, t)| (u.as_str(), d.as_str(), t.as_str())),
            membership: self.membership.as_deref(),
            prev_events: &self.prev_events,
        }
    }
}

struct Job {
    events: Vec<PendingEvent>,
    done: oneshot::Sender<(Vec<PendingEvent>, Result<(), StoreError>)>,
}

/// Handle to the group-commit task.
pub struct Committer {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Committer {
    /// Starts the tasks that write to `store`.
    pub fn spawn(store: Store) -> Self {
        let (jobs, rx) = mpsc::unbounded_channel();
        let rx = Arc::new(Mutex::new(rx));
        let writers = if store.is_sqlite() {
            1
        } else {
            POSTGRES_WRITERS
        };
        for _ in 0..writers {
            tokio::spawn(run(store.clone(), rx.clone()));
        }
        Self { jobs }
    }

    /// Persists one room's events (in stream order) atomically; returns them once committed.
    pub async fn commit(
        &self,
        events: Vec<PendingEvent>,
    ) -> (Vec<PendingEvent>, Result<(), StoreError>) {
        let (done, wait) = oneshot::channel();
        if let Err(mpsc::error::SendError(job)) = self.jobs.send(Job { events, done }) {
            return (job.events, Err(StoreError::Closed));
        }
        match wait.await {
            Ok(answer) => answer,
            Err(_) => (Vec::new(), Err(StoreError::Closed)),
        }
    }
}

/// Takes the next job and whatever else is waiting.
async fn next_group(rx: &Mutex<mpsc::UnboundedReceiver<Job>>) -> Option<Vec<Job>> {
    let mut rx = rx.lock().await;
    let first = rx.recv().await?;
    let mut size = first.events.len();
    let mut jobs = vec![first];
    while size < MAX_GROUP_EVENTS {
        match rx.try_recv() {
            Ok(job) => {
                size += job.events.len();
                jobs.push(job);
            }
            Err(_) => break,
        }
    }
    Some(jobs)
}

async fn run(store: Store, rx: Arc<Mutex<mpsc::UnboundedReceiver<Job>>>) {
    while let Some(jobs) = next_group(&rx).await {
        let shared = if jobs.len() > 1 {
            let all: Vec<NewEvent<'_>> = jobs
                .iter()
                .flat_map(|j| j.events.iter().map(PendingEvent::as_new))
                .collect();
            Some(store.persist_events(&all).await)
        } else {
            None
        };
        for job in jobs {
            let result = match &shared {
                Some(Ok(())) => Ok(()),
                // Alone, or the shared transaction failed: this room's events on their own.
                _ => {
                    let own: Vec<NewEvent<'_>> =
                        job.events.iter().map(PendingEvent::as_new).collect();
                    store.persist_events(&own).await
                }
            };
            // The sender may have gone (its request was cancelled); the events are written.
            let _ = job.done.send((job.events, result));
        }
        if let Some(Err(e)) = shared {
            tracing::debug!(error = %e, "shared commit failed; rooms retried on their own");
        }
    }
}

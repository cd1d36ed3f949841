//! Group commit: events built in different rooms at the same time are written in one database
//! transaction, by one writer, in the order they were queued.
//!
//! A room queues its events under its lock (with their effects already applied to its in-memory
//! state) and lets the lock go before the write, so the next event of the room is built while
//! this one is written, and a commit carries the events of every sender that is waiting. Because
//! jobs are written strictly in queue order, a room's events reach the database in the order they
//! were built, and the last state event per key wins as it did in memory.
//!
//! Once a job is written, the writer notes it where readers look (the recent-events buffer, room
//! and membership activity) and only then completes its stream positions, so a woken `/sync` sees
//! everything it is told about without waiting for the sender's task to run.
//!
//! When a shared transaction fails (a repeated transaction id, say), each job is retried on its
//! own, so only the offender sees the error. An event that cites an event that was not written is
//! not written either ([`CommitError::Superseded`]): its room's in-memory state ran ahead of the
//! database, and its sender reloads the room and builds the event again.

use std::{collections::HashSet, sync::Arc, time::Instant};

use tokio::sync::{mpsc, oneshot};

use crate::{
    service::{activity::Activity, metrics::Metrics, recent::RecentEvents, stream::Reservation},
    store::{NewEvent, Store, StoreError},
};

/// Most events written in one shared transaction.
const MAX_GROUP_EVENTS: usize = 1_000;
/// Ids of events that were not written, kept so that later events citing them are refused too.
/// Failures are rare (a repeated transaction id); the set is emptied if it ever fills.
const FAILED_KEPT: usize = 10_000;

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

/// Why queued events were not written.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An event they cite was not written: the room's in-memory state must be reloaded, and the
    /// events built again on top of it.
    #[error("an earlier event of the room was not written")]
    Superseded,
}

struct Job {
    events: Vec<PendingEvent>,
    /// The events' stream positions, completed once the events are written and noted.
    reservations: Vec<Reservation>,
    done: oneshot::Sender<Result<(), CommitError>>,
}

/// Events handed to the writer; [`Queued::outcome`] says whether they were written.
pub struct Queued(oneshot::Receiver<Result<(), CommitError>>);

impl Queued {
    pub async fn outcome(self) -> Result<(), CommitError> {
        self.0.await.unwrap_or(Err(StoreError::Closed.into()))
    }
}

/// Handle to the group-commit task.
pub struct Committer {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Committer {
    /// Starts the task that writes to `store` and notes what it wrote in `recent` and `activity`
    /// (and counts its commits in `metrics`).
    pub fn spawn(
        store: Store,
        recent: Arc<RecentEvents>,
        activity: Arc<Activity>,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        let (jobs, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(store, recent, activity, metrics, rx));
        Self { jobs }
    }

    /// Queues one room's events (in stream order, with their reserved positions). Jobs are
    /// written in the order they are queued.
    pub fn queue(&self, events: Vec<PendingEvent>, reservations: Vec<Reservation>) -> Queued {
        let (done, wait) = oneshot::channel();
        if let Err(mpsc::error::SendError(job)) = self.jobs.send(Job {
            events,
            reservations,
            done,
        }) {
            let _ = job.done.send(Err(StoreError::Closed.into()));
        }
        Queued(wait)
    }
}

/// Takes the next job and whatever else is waiting.
async fn next_group(rx: &mut mpsc::UnboundedReceiver<Job>) -> Option<Vec<Job>> {
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

/// Whether a job cites an event that was not written.
fn cites_failed(job: &Job, failed: &HashSet<String>) -> bool {
    !failed.is_empty()
        && job
            .events
            .iter()
            .any(|e| e.prev_events.iter().any(|p| failed.contains(p)))
}

async fn run(
    store: Store,
    recent: Arc<RecentEvents>,
    activity: Arc<Activity>,
    metrics: Option<Arc<Metrics>>,
    mut rx: mpsc::UnboundedReceiver<Job>,
) {
    let mut failed: HashSet<String> = HashSet::new();
    while let Some(jobs) = next_group(&mut rx).await {
        // In queue order, so that a job citing one refused here is refused too.
        let superseded: Vec<bool> = jobs
            .iter()
            .map(|job| {
                let refused = cites_failed(job, &failed);
                if refused {
                    remember_failed(&mut failed, job);
                }
                refused
            })
            .collect();
        let writable: Vec<&Job> = jobs
            .iter()
            .zip(&superseded)
            .filter(|(_, refused)| !**refused)
            .map(|(job, _)| job)
            .collect();
        let shared = if writable.len() > 1 {
            let all: Vec<NewEvent<'_>> = writable
                .iter()
                .flat_map(|j| j.events.iter().map(PendingEvent::as_new))
                .collect();
            Some(write(&store, metrics.as_deref(), &all).await)
        } else {
            None
        };
        if let Some(Err(e)) = &shared {
            tracing::debug!(error = %e, "shared commit failed; rooms retried on their own");
        }
        for (job, refused) in jobs.into_iter().zip(superseded) {
            let result = if refused {
                Err(CommitError::Superseded)
            } else if let Some(Ok(())) = &shared {
                Ok(())
            } else if cites_failed(&job, &failed) {
                // Its room's earlier job failed on its own just now.
                Err(CommitError::Superseded)
            } else {
                // Alone, or the shared transaction failed: this job on its own.
                let own: Vec<NewEvent<'_>> = job.events.iter().map(PendingEvent::as_new).collect();
                write(&store, metrics.as_deref(), &own)
                    .await
                    .map_err(CommitError::from)
            };
            match &result {
                Ok(()) => note_written(&recent, &activity, &job.events),
                Err(_) => remember_failed(&mut failed, &job),
            }
            // Positions complete (readers may look) only after the events are noted.
            drop(job.reservations);
            // The sender may have gone (its request was cancelled); the events are written.
            let _ = job.done.send(result);
        }
    }
}

/// Persists events in one transaction, timing it and counting the outcome in `metrics`.
async fn write(
    store: &Store,
    metrics: Option<&Metrics>,
    events: &[NewEvent<'_>],
) -> Result<(), StoreError> {
    let started = Instant::now();
    let result = store.persist_events(events).await;
    Metrics::observe_write(metrics, events.len(), started, result.is_ok());
    result
}

fn remember_failed(failed: &mut HashSet<String>, job: &Job) {
    if failed.len() + job.events.len() > FAILED_KEPT {
        failed.clear();
    }
    failed.extend(job.events.iter().map(|e| e.event_id.clone()));
}

/// Tells readers about written events: the recent-events buffer, and where rooms and
/// memberships changed.
fn note_written(recent: &RecentEvents, activity: &Activity, events: &[PendingEvent]) {
    for room in events.chunk_by(|a, b| a.room_id == b.room_id) {
        let new: Vec<NewEvent<'_>> = room.iter().map(PendingEvent::as_new).collect();
        recent.add(&room[0].room_id, &new);
        for e in room.iter().filter(|e| e.membership.is_some()) {
            let target = e.state_key.as_deref().unwrap_or_default();
            activity.membership_changed(&e.room_id, target, e.stream_ordering);
        }
        if let Some(last) = room.last() {
            activity.room_changed(&last.room_id, last.stream_ordering);
        }
    }
}

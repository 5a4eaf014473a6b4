//! Following a run's events from any sequence number: no gap, no repeat.
//!
//! The store is the source of truth: events are read from it in sequence order after the last
//! one delivered, so whatever happens between reads, nothing is skipped or sent twice. The
//! engine's live feed is subscribed to before the first read and serves only as a wake-up:
//! when a worker in this process stores an event, the follower reads at once instead of at its
//! next poll. Runs driven by another process publish only to the store, so a follower with no
//! live news reads it every poll interval anyway.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures::Stream;
use samokoder_core::api::events::RunEvent;
use samokoder_core::engine::{CancellationToken, PublishedEvent};
use samokoder_store::{Store, StoreError};
use tokio::sync::broadcast;
use uuid::Uuid;

use super::views;

/// Events read from the store at once.
const BATCH: u32 = 500;

/// Waits until the live feed carries news of `run` (or lost track and may have), and forever
/// once the feed is closed (the poll takes over).
pub async fn live_news(live: &mut broadcast::Receiver<PublishedEvent>, run: impl Fn(Uuid) -> bool) {
    loop {
        match live.recv().await {
            Ok(event) if run(event.run_id) => return,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}

/// The run's stored events after `after`, in order, as the API shows them.
pub async fn read_after(
    store: &Store,
    run_id: Uuid,
    after: i64,
) -> Result<Vec<RunEvent>, StoreError> {
    Ok(store
        .events
        .after(run_id, after, BATCH)
        .await?
        .into_iter()
        .map(views::event)
        .collect())
}

/// How a follower paces itself.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// How often to read the store when there is no live news.
    pub poll: Duration,
    /// How long a run may stay finished without its final event before the follower stops
    /// waiting for it (a worker in another process notices a cancel at its next heartbeat;
    /// with no worker, the server publishes the end a lease after the cancel).
    pub final_grace: Duration,
}

/// One run's events, from the store, in order.
struct Follower {
    store: Store,
    live: broadcast::Receiver<PublishedEvent>,
    shutdown: CancellationToken,
    run_id: Uuid,
    last: i64,
    buffer: VecDeque<RunEvent>,
    pace: Pace,
    /// Since when the run has been seen finished with nothing new to read.
    finished_since: Option<Instant>,
    done: bool,
}

impl Follower {
    async fn next(&mut self) -> Option<Result<RunEvent, StoreError>> {
        loop {
            if self.done {
                return None;
            }
            if let Some(event) = self.buffer.pop_front() {
                self.last = event.seq;
                self.done = event.ends_stream();
                return Some(Ok(event));
            }
            match read_after(&self.store, self.run_id, self.last).await {
                Ok(batch) if !batch.is_empty() => {
                    self.finished_since = None;
                    self.buffer.extend(batch);
                    continue;
                }
                Ok(_) => {}
                Err(error) => {
                    self.done = true;
                    return Some(Err(error));
                }
            }
            let run_id = self.run_id;
            tokio::select! {
                () = self.shutdown.cancelled() => return None,
                () = live_news(&mut self.live, |id| id == run_id) => {}
                () = tokio::time::sleep(self.pace.poll) => {
                    if let Err(error) = self.check_finished().await {
                        self.done = true;
                        return Some(Err(error));
                    }
                }
            }
        }
    }

    /// Ends the stream of a run that has been over for a while without a final event (which
    /// the normal path never leaves behind, but a store restored from a backup might).
    async fn check_finished(&mut self) -> Result<(), StoreError> {
        let run = self.store.runs.get(self.run_id).await?;
        if views::status(run.status).is_final() {
            let since = *self.finished_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= self.pace.final_grace {
                self.done = true;
            }
        } else {
            self.finished_since = None;
        }
        Ok(())
    }
}

/// Gauge bookkeeping of one subscriber: counted while it exists.
pub struct Subscriber {
    transport: &'static str,
}

impl Subscriber {
    /// Counts a new subscriber of `transport` (`sse` or `websocket`).
    pub fn new(transport: &'static str) -> Self {
        crate::observability::metrics::add_event_subscribers(transport, 1.0);
        Self { transport }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        crate::observability::metrics::add_event_subscribers(self.transport, -1.0);
    }
}

/// The run's events after `after`, then the ones that follow, until the run's final event (or
/// server shutdown, or a store failure, which is the last item).
///
/// `live` must be subscribed before this is called (it is, when the caller passes a fresh
/// [`Engine::subscribe`](samokoder_core::engine::Engine::subscribe)), so no news between the
/// first read and the first wait is lost.
pub fn follow(
    store: Store,
    live: broadcast::Receiver<PublishedEvent>,
    shutdown: CancellationToken,
    run_id: Uuid,
    after: i64,
    pace: Pace,
    subscriber: Subscriber,
) -> impl Stream<Item = Result<RunEvent, StoreError>> + Send + 'static {
    let follower = Follower {
        store,
        live,
        shutdown,
        run_id,
        last: after.max(0),
        buffer: VecDeque::new(),
        pace,
        finished_since: None,
        done: false,
    };
    futures::stream::unfold(
        (follower, subscriber),
        |(mut follower, subscriber)| async move {
            let item = follower.next().await?;
            Some((item, (follower, subscriber)))
        },
    )
}

//! Following the store's changes from a revision: the window of recent events first, then live
//! events from the broadcast channel; a watcher that falls behind the window gets 410 Gone.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use tokio::sync::broadcast;

use super::{Event, Store};
use crate::error::{Error, Result};

/// Where a watch begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchStart {
    /// Changes after the current revision.
    Now,
    /// Changes with a revision greater than this one.
    After(i64),
}

/// A stream of every committed event after a revision, across all resources; callers filter.
pub struct WatchSource {
    store: Store,
    live: broadcast::Receiver<Event>,
    backlog: VecDeque<Event>,
    last: i64,
    /// The store's reload count when this watch began; a reload ends it with 410 Gone.
    resets: u64,
}

fn too_old(rev: i64) -> Error {
    Error::Gone(format!("too old resource version: {rev}"))
}

impl WatchSource {
    pub(super) fn new(store: Store, start: WatchStart) -> Result<Self> {
        let (live, backlog, last, resets) = {
            let state = store.inner.state.read().expect("store lock");
            let resets = store.inner.resets.load(Ordering::Acquire);
            let after = match start {
                WatchStart::Now => state.rev,
                WatchStart::After(rev) => rev,
            };
            if after < state.compacted {
                return Err(too_old(after));
            }
            let live = store.inner.events.subscribe();
            let backlog: VecDeque<Event> = state.window.iter().filter(|e| e.rev() > after).cloned().collect();
            (live, backlog, after, resets)
        };
        Ok(Self { store, live, backlog, last, resets })
    }

    /// Whether memory was reloaded since this watch began (it cannot continue without a gap).
    fn reloaded(&self) -> bool {
        self.store.inner.resets.load(Ordering::Acquire) != self.resets
    }

    /// The revision of the last event delivered (or the start revision).
    pub fn revision(&self) -> i64 {
        self.last
    }

    /// An event that is already available, without waiting (lets a watcher send a burst in
    /// one write).
    pub fn try_next(&mut self) -> Option<Result<Event>> {
        loop {
            if let Some(event) = self.backlog.pop_front() {
                self.last = event.rev();
                return Some(Ok(event));
            }
            match self.live.try_recv() {
                Ok(event) if event.rev() <= self.last => continue,
                Ok(_) if self.reloaded() => return Some(Err(too_old(self.last))),
                Ok(event) => {
                    self.last = event.rev();
                    return Some(Ok(event));
                }
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    let state = self.store.inner.state.read().expect("store lock");
                    if self.last < state.compacted {
                        return Some(Err(too_old(self.last)));
                    }
                    self.backlog = state.window.iter().filter(|e| e.rev() > self.last).cloned().collect();
                }
                Err(_) => return None,
            }
        }
    }

    /// The next event; `Err(Gone)` if this watcher fell behind the window; `None` when the store
    /// shuts down.
    pub async fn next(&mut self) -> Option<Result<Event>> {
        loop {
            if let Some(event) = self.backlog.pop_front() {
                self.last = event.rev();
                return Some(Ok(event));
            }
            match self.live.recv().await {
                Ok(event) if event.rev() <= self.last => continue,
                Ok(_) if self.reloaded() => return Some(Err(too_old(self.last))),
                Ok(event) => {
                    self.last = event.rev();
                    return Some(Ok(event));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let state = self.store.inner.state.read().expect("store lock");
                    if self.last < state.compacted {
                        return Some(Err(too_old(self.last)));
                    }
                    self.backlog = state.window.iter().filter(|e| e.rev() > self.last).cloned().collect();
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

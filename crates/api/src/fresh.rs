//! The fresh-events cache: which users have events newer than the active model (polled from
//! the store, so events stored through another replica count), and per such user the events
//! last read, kept until one of their events changes. A recommendation for a user without
//! fresh events never touches the store.

use crate::error::ApiError;
use crate::state::AppState;
use marquee_domain::{Actor, Event, EventId, EventKind, UserId};
use std::collections::HashMap;
use std::sync::Arc;

/// Events of a user read to fold into their recommendations: the newest 50 since training
/// (reading more costs each such request a row per event; the soak measured 550 answers/s
/// at 200 and 1,320 at 50 when every user had hundreds of fresh events).
const RECENT_EVENTS: u32 = 50;

#[derive(Debug, Default)]
pub(crate) struct Fresh {
    version: String,
    seq: i64,
    users: std::collections::HashSet<String>,
    /// Per user with fresh events: what was last read of them from the store, and a
    /// generation that every new event of the user bumps (so a read that raced with a new
    /// event is not kept). Bounded by [`MAX_CACHED_USERS`]; `era` moves when it is emptied.
    cached: HashMap<String, Cached>,
    era: u64,
}

#[derive(Debug, Default)]
struct Cached {
    generation: u64,
    /// The sequence number of the user's newest event the poll has reported.
    polled: i64,
    events: Option<Arc<Vec<Event>>>,
}

/// Users whose fresh events are kept in memory at most (then the cache starts over).
const MAX_CACHED_USERS: usize = 100_000;

impl Fresh {
    /// A user has new events: what was read of them is out of date.
    fn invalidate(&mut self, user: &str) {
        self.entry(user).generation += 1;
        self.entry(user).events = None;
    }

    /// The poll reports the user's newest event number: out of date only if it moved (a
    /// backend that looks back reports users again with numbers already seen).
    fn polled(&mut self, user: &str, newest: i64) {
        let entry = self.entry(user);
        if newest > entry.polled {
            entry.polled = newest;
            entry.generation += 1;
            entry.events = None;
        }
    }

    fn entry(&mut self, user: &str) -> &mut Cached {
        if !self.cached.contains_key(user) && self.cached.len() >= MAX_CACHED_USERS {
            self.cached.clear();
            self.era += 1;
        }
        self.cached.entry(user.to_owned()).or_default()
    }
}

/// Where a read of a user's fresh events started: kept only if nothing moved meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ReadMark {
    version: String,
    era: u64,
    generation: u64,
}

impl AppState {
    /// Brings the set of users with events newer than the model up to date: everything after
    /// the last sequence number seen (all of it when the model changed). Call it regularly
    /// (`serve` does, every 250 ms) so events stored through another replica count too.
    pub async fn refresh_fresh_users(&self) -> Result<(), marquee_store::Error> {
        let version = self.engine.version();
        let after_seq = match self.fresh.read() {
            Ok(f) if f.version == version => f.seq,
            _ => 0,
        };
        let (users, seq) = self
            .store
            .users_with_events_after(after_seq, self.engine.trained_until())
            .await?;
        if let Ok(mut f) = self.fresh.write() {
            if f.version != version {
                *f = Fresh {
                    version,
                    ..Fresh::default()
                };
            }
            for (user, newest) in users {
                f.polled(&user, newest);
                f.users.insert(user);
            }
            f.seq = f.seq.max(seq);
        }
        Ok(())
    }

    /// The user's fresh events as last read, if nothing changed since; else where a new read
    /// starts from.
    fn cached_recent(&self, user: &str) -> Result<Arc<Vec<Event>>, Option<ReadMark>> {
        let Ok(f) = self.fresh.read() else {
            return Err(None);
        };
        let version = self.engine.version();
        if f.version != version {
            return Err(None);
        }
        let generation = match f.cached.get(user) {
            Some(Cached {
                events: Some(events),
                ..
            }) => return Ok(events.clone()),
            Some(c) => c.generation,
            None => 0,
        };
        Err(Some(ReadMark {
            version,
            era: f.era,
            generation,
        }))
    }

    /// Keeps what a read found, unless the model or the user's events moved since `mark`.
    fn keep_recent(&self, user: &str, mark: ReadMark, events: Arc<Vec<Event>>) {
        let Ok(mut f) = self.fresh.write() else {
            return;
        };
        if f.version != mark.version || f.era != mark.era {
            return;
        }
        let generation = f.cached.get(user).map_or(0, |c| c.generation);
        if generation != mark.generation {
            return;
        }
        if f.cached.len() >= MAX_CACHED_USERS && !f.cached.contains_key(user) {
            return;
        }
        f.cached.entry(user.to_owned()).or_default().events = Some(events);
    }

    /// Whether the user may have events newer than the model (true when unsure).
    fn may_have_fresh_events(&self, user: &str) -> bool {
        match self.fresh.read() {
            Ok(f) if f.version == self.engine.version() && f.seq > 0 => f.users.contains(user),
            _ => true,
        }
    }

    pub(crate) fn note_fresh_user(&self, user: &str) {
        if let Ok(mut f) = self.fresh.write() {
            f.invalidate(user);
            f.users.insert(user.to_owned());
        }
    }
}

/// The events of `user` newer than the active model, newest first: stored events and the
/// lines of orders placed since training (as purchases). Empty for no user.
pub(crate) async fn recent_events(
    state: &AppState,
    user: Option<&UserId>,
) -> Result<Vec<Event>, ApiError> {
    let Some(id) = user else {
        return Ok(Vec::new());
    };
    let user = id.as_str();
    if !state.may_have_fresh_events(user) {
        return Ok(Vec::new());
    }
    // Read once per change of the user's events, not once per request.
    let mark = match state.cached_recent(user) {
        Ok(events) => return Ok(events.as_ref().clone()),
        Err(mark) => mark,
    };
    let since = state.engine.trained_until();
    let mut events = state
        .store
        .events_of_user_after(id, since, RECENT_EVENTS)
        .await?;
    // Orders placed since training count as purchases of their items.
    let orders = state.store.orders_of_user_after(id, since, 20).await?;
    for o in orders.iter().filter(|o| !o.status.is_reversal()) {
        for (n, line) in o.lines.iter().enumerate() {
            let Ok(event_id) = EventId::new(format!("order:{}:{n}", o.id.as_str())) else {
                continue;
            };
            events.push(Event {
                id: event_id,
                actor: Actor::User(id.clone()),
                item: Some(line.item.clone()),
                kind: EventKind::Purchase,
                value: None,
                timestamp: o.created_at,
                context: None,
            });
        }
    }
    events.sort_by_key(|e| std::cmp::Reverse(e.timestamp));
    if let Some(mark) = mark {
        state.keep_recent(user, mark, Arc::new(events.clone()));
    }
    Ok(events)
}

//! Impressions off the request path, and the memory of recent answers attribution reads.
//!
//! - An answer hands its impression to a bounded queue without waiting
//!   ([`Impressions::record`]); a full queue drops it and counts it in `/metrics`
//!   (`marquee_impressions_dropped_total`): an answer is never slowed or failed by its record.
//! - One task wakes at the first impression, lets more queue for [`INTERVAL`] (200 ms), and
//!   stores what queued, up to [`BATCH`] at a time, as one row of text with its hourly
//!   counts (see `marquee_store::impressions`): far less work than serving the answers it
//!   records. A crash loses at most the impressions of the last interval. [`Impressions::flush`] waits until everything queued
//!   before it is stored; `serve` calls it on a graceful stop.
//! - The same task adds each answer to [`Recent`]: per visitor (user or session), the answers
//!   of the attribution window, newest last, which is where an event or order line finds the
//!   answer that showed its item. Answers stored by other replicas (and, at start, those of
//!   the window stored before) are added by [`Impressions::follow`], which reads the batches
//!   that appeared in the store since the last look.
//!
//! Recommendation ids are this process's random source and a counter (32 hex digits), so
//! replicas do not collide and a request costs no system call.

use crate::metrics::Metrics;
use marquee_domain::{ItemId, Timestamp};
use marquee_store::{Impression, ImpressionBatch, RecommendationId, Store};
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// Impressions waiting to be stored, at most: [`INTERVAL`] of 250,000 answers a second.
pub const QUEUE: usize = 50_000;
/// How long the writer lets impressions queue before it stores them (at most what a crash
/// loses of them).
const INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);
/// Impressions per stored batch, at most.
const BATCH: usize = 5_000;
/// Impressions handled between yields to the runtime.
const SLICE: usize = 256;
/// Answers kept per visitor for attribution.
const PER_VISITOR: usize = 64;
/// Answers kept in memory for attribution, at most (the oldest go first): about 400 bytes
/// each, so under 100 MB. An event naming its answer finds an older one in the store; one
/// without finds only what is kept.
const MAX_RECENT: usize = 200_000;
/// Group-and-visitor-days remembered as seen before the memory is cleared (the store ignores
/// a second sighting anyway; the memory only saves it the write).
const MAX_SIGHTINGS: usize = 1_000_000;

/// The default attribution window.
pub const DEFAULT_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(24);

enum Message {
    Record(Box<Impression>),
    Flush(oneshot::Sender<()>),
}

/// A visitor as a number: a hash of `kind` (`b'u'` user, `b's'` session) and the id.
/// Lookups compare the stored id too, so a collision costs nothing but a miss.
fn visitor_key(kind: u8, id: &str) -> u64 {
    crate::experiments::stable_hash([std::slice::from_ref(&kind), id.as_bytes()])
}

/// The kind and id of an impression's visitor, if it has one.
fn visitor_of(imp: &Impression) -> Option<(u8, &str)> {
    match (&imp.user, &imp.session) {
        (Some(u), _) => Some((b'u', u.as_str())),
        (None, Some(s)) => Some((b's', s.as_str())),
        (None, None) => None,
    }
}

/// Recent answers by visitor, within the attribution window.
#[derive(Default)]
pub(crate) struct Recent {
    by_visitor: HashMap<u64, VecDeque<Arc<Impression>>>,
    /// Every held answer's visitor and time, oldest first, for expiry.
    order: VecDeque<(Timestamp, u64)>,
}

impl Recent {
    fn add(&mut self, imp: Arc<Impression>, window: chrono::TimeDelta) {
        let Some((kind, id)) = visitor_of(&imp) else {
            return;
        };
        let key = visitor_key(kind, id);
        let at = imp.at;
        let list = self.by_visitor.entry(key).or_default();
        if list.len() == PER_VISITOR {
            list.pop_front();
        }
        // Answers from other replicas may arrive late: keep each list in time order.
        let pos = list.iter().rposition(|i| i.at <= at).map_or(0, |p| p + 1);
        list.insert(pos, imp);
        self.order.push_back((at, key));
        let horizon = chrono::Utc::now() - window;
        while let Some(&(t, v)) = self.order.front() {
            if t >= horizon && self.order.len() <= MAX_RECENT {
                break;
            }
            self.order.pop_front();
            if let Some(list) = self.by_visitor.get_mut(&v) {
                while list.front().is_some_and(|i| i.at <= t) {
                    list.pop_front();
                }
                if list.is_empty() {
                    self.by_visitor.remove(&v);
                }
            }
        }
    }

    /// Per item, how many answers since `since` showed it to `visitor` (`u:<user>` or
    /// `s:<session>`), as far as the memory reaches (the last [`PER_VISITOR`] answers).
    fn shown_since(&self, visitor: &str, since: Timestamp) -> Vec<(String, u32)> {
        let Some((kind, id)) = visitor.split_once(':') else {
            return Vec::new();
        };
        let Some(&kind) = kind.as_bytes().first() else {
            return Vec::new();
        };
        let Some(list) = self.by_visitor.get(&visitor_key(kind, id)) else {
            return Vec::new();
        };
        let mut counts: HashMap<&str, u32> = HashMap::new();
        for imp in list
            .iter()
            .filter(|i| i.at >= since && visitor_of(i) == Some((kind, id)))
        {
            for item in imp.items.iter() {
                *counts.entry(item).or_default() += 1;
            }
        }
        counts.into_iter().map(|(i, n)| (i.to_owned(), n)).collect()
    }

    /// The answer `item` is credited to: `explicit` when it showed the item to `visitor`
    /// (`u:<user>` or `s:<session>`) within the window before `at`, else the latest such
    /// answer.
    pub(crate) fn find(
        &self,
        visitor: &str,
        item: &ItemId,
        at: Timestamp,
        window: chrono::TimeDelta,
        explicit: Option<RecommendationId>,
    ) -> Option<Arc<Impression>> {
        let (kind, id) = visitor.split_once(':')?;
        let kind = *kind.as_bytes().first()?;
        let list = self.by_visitor.get(&visitor_key(kind, id))?;
        let fits = |i: &Arc<Impression>| {
            visitor_of(i) == Some((kind, id))
                && i.at <= at + chrono::TimeDelta::seconds(5)
                && i.at >= at - window
                && i.items.contains(item)
        };
        if let Some(rid) = explicit
            && let Some(hit) = list.iter().find(|i| i.id == rid && fits(i))
        {
            return Some(hit.clone());
        }
        list.iter().rev().find(|i| fits(i)).cloned()
    }
}

/// Whether an impression's visitor is new to its group that day, remembered as a hash.
#[derive(Default)]
struct Sightings {
    day: i64,
    seen: HashSet<u64>,
}

impl Sightings {
    fn first(&mut self, imp: &Impression) -> bool {
        let Some((kind, id)) = visitor_of(imp) else {
            return false;
        };
        let day = imp.at.timestamp_millis().div_euclid(86_400_000);
        if day != self.day || self.seen.len() >= MAX_SIGHTINGS {
            self.day = day;
            self.seen.clear();
        }
        let mut h = std::hash::DefaultHasher::new();
        (
            &imp.placement,
            &imp.model_version,
            &imp.experiment,
            &imp.variant,
        )
            .hash(&mut h);
        self.seen.insert(h.finish() ^ visitor_key(kind, id))
    }
}

/// The queue to the impression-writing task, and the memory of recent answers.
pub(crate) struct Impressions {
    tx: mpsc::Sender<Message>,
    /// Cuts the writer's wait short (a flush).
    hurry: Arc<tokio::sync::Notify>,
    metrics: Arc<Metrics>,
    pub(crate) recent: Arc<Mutex<Recent>>,
    pub(crate) window: chrono::TimeDelta,
    /// This process's source of recommendation ids.
    source: u64,
    next: AtomicU64,
    /// The last batch [`Impressions::follow`] read, and the batch numbers read near it.
    followed: tokio::sync::Mutex<(i64, HashSet<i64>)>,
}

impl Impressions {
    /// Starts the writing task on the current tokio runtime, with a queue of `capacity`.
    pub(crate) fn spawn(
        store: Store,
        metrics: Arc<Metrics>,
        capacity: usize,
        window: chrono::TimeDelta,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<Message>(capacity.max(1));
        let counters = metrics.clone();
        let recent: Arc<Mutex<Recent>> = Arc::default();
        let memory = recent.clone();
        let hurry = Arc::new(tokio::sync::Notify::new());
        let flushing = hurry.clone();
        tokio::spawn(async move {
            let mut batch = ImpressionBatch::default();
            let mut sightings = Sightings::default();
            let mut waiting = Vec::new();
            // Wait for the first impression, then let more queue for INTERVAL (a flush cuts
            // it short): storing every INTERVAL costs a commit per INTERVAL, and an answer's
            // `try_send` finds no task to wake while the writer sleeps.
            while let Some(first) = rx.recv().await {
                if matches!(first, Message::Record(_)) {
                    tokio::select! {
                        () = tokio::time::sleep(INTERVAL) => {}
                        () = flushing.notified() => {}
                    }
                }
                let mut next = Some(first);
                let mut taken = 0usize;
                loop {
                    let Some(message) = next.take().or_else(|| rx.try_recv().ok()) else {
                        break;
                    };
                    taken += 1;
                    if taken.is_multiple_of(SLICE) {
                        tokio::task::yield_now().await;
                    }
                    match message {
                        Message::Record(imp) => {
                            if sightings.first(&imp) {
                                batch.first_sightings.push(batch.impressions.len());
                            }
                            batch.impressions.push(*imp);
                        }
                        Message::Flush(done) => waiting.push(done),
                    }
                    if batch.impressions.len() >= BATCH {
                        write(&store, &counters, &memory, &mut batch, window).await;
                    }
                }
                write(&store, &counters, &memory, &mut batch, window).await;
                for done in waiting.drain(..) {
                    let _ = done.send(());
                }
            }
        });
        let mut bytes = [0u8; 8];
        if getrandom::fill(&mut bytes).is_err() {
            // No system randomness: the start time still keeps processes apart.
            let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
            bytes = nanos.to_le_bytes();
        }
        Self {
            tx,
            metrics,
            hurry,
            recent,
            window,
            source: u64::from_le_bytes(bytes),
            next: AtomicU64::new(0),
            followed: tokio::sync::Mutex::default(),
        }
    }

    /// Per item, how many answers since `since` showed it to `visitor` (`u:<user>` or
    /// `s:<session>`); answers still queued are not counted.
    pub(crate) fn shown_since(&self, visitor: &str, since: Timestamp) -> Vec<(String, u32)> {
        self.recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .shown_since(visitor, since)
    }

    /// A new recommendation id.
    pub(crate) fn next_id(&self) -> RecommendationId {
        RecommendationId {
            source: self.source,
            seq: self.next.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Queues `impression` without waiting; a full queue drops it (counted).
    pub(crate) fn record(&self, impression: Impression) {
        if self
            .tx
            .try_send(Message::Record(Box::new(impression)))
            .is_err()
        {
            self.metrics
                .impressions_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits until every impression queued before this call is stored (or dropped).
    pub(crate) async fn flush(&self) {
        let (done, stored) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            self.hurry.notify_one();
            let _ = stored.await;
        }
    }

    /// Adds the answers other processes stored since the last call (the first call: those of
    /// the attribution window) to the memory of recent answers. Batch numbers of PostgreSQL
    /// may become visible out of order, so each call looks 64 numbers back again (a page of
    /// 100 always reaches past those).
    pub(crate) async fn follow(&self, store: &Store) -> Result<usize, marquee_store::Error> {
        const BACK: i64 = 64;
        const PAGE: u32 = 100;
        let mut followed = self.followed.lock().await;
        let since = chrono::Utc::now() - self.window;
        // Read before the batches: everything up to it is looked at below, so the next call
        // starts there even when all of it was this process's own (else every call would
        // scan the whole table again).
        let newest = store.newest_impression_batch().await?;
        let mut added = 0;
        loop {
            let (last, seen) = &mut *followed;
            let batches = store
                .impression_batches_after((*last - BACK).max(0), since, Some(self.source), PAGE)
                .await?;
            let fresh: Vec<_> = batches
                .into_iter()
                .filter(|(id, _)| !seen.contains(id))
                .collect();
            if fresh.is_empty() {
                *last = (*last).max(newest);
                let floor = *last - BACK;
                seen.retain(|&id| id > floor);
                return Ok(added);
            }
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            for (id, imps) in fresh {
                *last = (*last).max(id);
                seen.insert(id);
                for imp in imps {
                    added += 1;
                    recent.add(Arc::new(imp), self.window);
                }
            }
            let floor = *last - BACK;
            seen.retain(|&id| id > floor);
        }
    }
}

/// An event or order line that may be credited to an answer.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// `e:<event id>` or `o:<order id>:<line>`.
    pub(crate) key: String,
    /// `u:<user>` or `s:<session>`.
    pub(crate) visitor: String,
    pub(crate) item: ItemId,
    pub(crate) at: Timestamp,
    pub(crate) kind: marquee_store::Outcome,
    pub(crate) explicit: Option<RecommendationId>,
    pub(crate) revenue_minor: i64,
}

impl Impressions {
    /// The attributions of `outcomes`: each is credited to its explicit answer when that
    /// showed its item to the same visitor within the window, else to the latest answer that
    /// did, else to none. An explicit answer this process does not remember is looked up in
    /// the store.
    pub(crate) async fn attribute(
        &self,
        store: &Store,
        outcomes: Vec<Outcome>,
    ) -> Vec<marquee_store::Attribution> {
        let mut out = Vec::new();
        let mut missed = self.credit_from_memory(outcomes, &mut out);
        // An answer of this process may still wait in the queue (it is remembered once
        // stored, at most INTERVAL later): when an event names one, store the queue first.
        if missed
            .iter()
            .any(|(o, _)| o.explicit.is_some_and(|id| id.source == self.source))
        {
            self.flush().await;
            missed =
                self.credit_from_memory(missed.into_iter().map(|(o, _)| o).collect(), &mut out);
        }
        let ask_store = missed;
        // One store query per distinct id named, however many events of the batch name it.
        let mut looked_up: HashMap<RecommendationId, Option<Impression>> = HashMap::new();
        for (o, fallback) in ask_store {
            let stored = match o.explicit {
                Some(id) => match looked_up.get(&id) {
                    Some(found) => found.clone(),
                    None => {
                        let found = store.impression(id).await.unwrap_or_else(|e| {
                            tracing::warn!("looking up recommendation {id}: {e}");
                            None
                        });
                        looked_up.insert(id, found.clone());
                        found
                    }
                },
                None => None,
            };
            let fits = |i: &Impression| {
                i.visitor().as_deref() == Some(o.visitor.as_str())
                    && i.items.contains(&o.item)
                    && i.at >= o.at - self.window
                    && i.at <= o.at + chrono::TimeDelta::seconds(5)
            };
            match (stored.filter(|i| fits(i)), fallback) {
                (Some(shown), _) => out.push(credit(&shown, o)),
                (None, Some(shown)) => out.push(credit(&shown, o)),
                (None, None) => {}
            }
        }
        out
    }
}

impl Impressions {
    /// Credits the outcomes the memory of recent answers can (into `out`); returns the others
    /// with the latest answer that showed their item, when an explicit one was not found.
    fn credit_from_memory(
        &self,
        outcomes: Vec<Outcome>,
        out: &mut Vec<marquee_store::Attribution>,
    ) -> Vec<(Outcome, Option<Arc<Impression>>)> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let mut missed = Vec::new();
        for o in outcomes {
            match recent.find(&o.visitor, &o.item, o.at, self.window, o.explicit) {
                Some(shown) if o.explicit.is_none_or(|id| id == shown.id) => {
                    out.push(credit(&shown, o));
                }
                other => missed.push((o, other)),
            }
        }
        missed
    }
}

fn credit(shown: &Impression, o: Outcome) -> marquee_store::Attribution {
    marquee_store::Attribution::to(shown, o.key, o.at, o.kind, o.item, o.revenue_minor)
}

/// Stores `batch` (if it holds anything), adds it to the memory of recent answers and empties it.
async fn write(
    store: &Store,
    metrics: &Metrics,
    memory: &Mutex<Recent>,
    batch: &mut ImpressionBatch,
    window: chrono::TimeDelta,
) {
    if batch.impressions.is_empty() {
        return;
    }
    store_batch(store, metrics, batch).await;
    // In slices, yielding between them, so that requests waiting on this worker thread are
    // not held up by a whole batch.
    let mut imps = batch.impressions.drain(..).peekable();
    while imps.peek().is_some() {
        {
            let mut recent = memory.lock().unwrap_or_else(|p| p.into_inner());
            for imp in imps.by_ref().take(SLICE) {
                recent.add(Arc::new(imp), window);
            }
        }
        tokio::task::yield_now().await;
    }
    drop(imps);
    batch.first_sightings.clear();
}

async fn store_batch(store: &Store, metrics: &Metrics, batch: &ImpressionBatch) {
    match store.write_impressions(batch).await {
        Ok(()) => {
            metrics
                .impressions_written
                .fetch_add(batch.impressions.len() as u64, Ordering::Relaxed);
        }
        Err(e) => {
            tracing::warn!(
                "storing {} impressions failed: {e}",
                batch.impressions.len()
            );
            metrics
                .impressions_dropped
                .fetch_add(batch.impressions.len() as u64, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use marquee_domain::UserId;

    fn impression(seq: u64, user: &str, items: &[&str], at: Timestamp) -> Impression {
        Impression {
            id: RecommendationId { source: 1, seq },
            at,
            placement: "recommendations".into(),
            user: Some(UserId::new(user).unwrap()),
            session: None,
            model_version: "v1".into(),
            experiment: None,
            variant: None,
            items: marquee_store::ShownItems::new(items.iter().copied()),
        }
    }

    /// A full queue drops what does not fit, counted, without waiting; what fitted is stored
    /// once flushed, and remembered for attribution.
    #[tokio::test(flavor = "current_thread")]
    async fn a_full_queue_drops_and_counts_and_a_flush_stores_the_rest() {
        let db = marquee_store::testing::TestDatabase::sqlite();
        let store = db.open().await;
        let metrics = Arc::new(Metrics::default());
        let writer = Impressions::spawn(store.clone(), metrics.clone(), 3, DEFAULT_WINDOW);
        let now = chrono::Utc::now();
        // No await between these: on this single-threaded runtime the writing task cannot
        // run, so the queue holds three and the other two are dropped.
        for n in 0..5 {
            writer.record(impression(n, "u1", &["a", &format!("i{n}")], now));
        }
        assert_eq!(metrics.impressions_dropped.load(Ordering::Relaxed), 2);
        writer.flush().await;
        assert_eq!(metrics.impressions_written.load(Ordering::Relaxed), 3);
        for n in 0..3 {
            let id = RecommendationId { source: 1, seq: n };
            let stored = store.impression(id).await.unwrap().unwrap();
            assert_eq!(stored.items.iter().nth(1), Some(format!("i{n}").as_str()));
        }
        assert!(
            store
                .impression(RecommendationId { source: 1, seq: 4 })
                .await
                .unwrap()
                .is_none()
        );
        let recent = writer.recent.lock().unwrap();
        let a = ItemId::new("a").unwrap();
        let hit = recent.find("u:u1", &a, now, DEFAULT_WINDOW, None).unwrap();
        assert_eq!(hit.id.seq, 2, "the latest answer showing the item");
        let text = metrics.render("v1", "ease");
        assert!(
            text.contains("marquee_impressions_dropped_total 2"),
            "{text}"
        );
    }

    #[test]
    fn attribution_prefers_the_explicit_answer_and_keeps_to_the_window_and_visitor() {
        let now = chrono::Utc::now();
        let hour = chrono::TimeDelta::hours(1);
        let mut recent = Recent::default();
        recent.add(
            Arc::new(impression(1, "u1", &["a", "b"], now - hour * 3)),
            DEFAULT_WINDOW,
        );
        recent.add(
            Arc::new(impression(2, "u1", &["a"], now - hour)),
            DEFAULT_WINDOW,
        );
        recent.add(Arc::new(impression(3, "u2", &["b"], now)), DEFAULT_WINDOW);
        let (a, b) = (ItemId::new("a").unwrap(), ItemId::new("b").unwrap());
        let found = |v: &str, item: &ItemId, window, explicit: Option<u64>| {
            recent
                .find(
                    v,
                    item,
                    now,
                    window,
                    explicit.map(|seq| RecommendationId { source: 1, seq }),
                )
                .map(|i| i.id.seq)
        };
        assert_eq!(found("u:u1", &a, DEFAULT_WINDOW, None), Some(2), "latest");
        assert_eq!(
            found("u:u1", &a, DEFAULT_WINDOW, Some(1)),
            Some(1),
            "explicit"
        );
        assert_eq!(
            found("u:u1", &a, DEFAULT_WINDOW, Some(3)),
            Some(2),
            "another visitor's answer is not credited, the latest of this one's is"
        );
        assert_eq!(found("u:u1", &b, DEFAULT_WINDOW, None), Some(1));
        assert_eq!(
            found("u:u1", &b, hour * 2, None),
            None,
            "outside the window"
        );
        assert_eq!(found("u:u3", &a, DEFAULT_WINDOW, None), None);
    }
}

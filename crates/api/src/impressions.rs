//! Impressions written off the request path: an answer hands its impression to a bounded
//! queue without waiting ([`ImpressionWriter::record`]); one task stores what has queued in
//! batches (one transaction each). A full queue drops the impression and counts it in
//! `/metrics` (`marquee_impressions_dropped_total`): an answer is never slowed or failed by
//! the record of it. [`ImpressionWriter::flush`] waits until everything queued before it is
//! stored; `serve` calls it on a graceful stop.
//!
//! Recommendation ids are a random per-process prefix and a counter (32 hex digits), so
//! replicas do not collide and a request costs no system call.

use crate::metrics::Metrics;
use marquee_store::{Impression, Store};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};

/// Impressions waiting to be stored, at most.
pub const QUEUE: usize = 20_000;
/// Impressions per transaction, at most.
const BATCH: usize = 500;

enum Message {
    Record(Box<Impression>),
    Flush(oneshot::Sender<()>),
}

/// The queue to the impression-writing task.
pub(crate) struct ImpressionWriter {
    tx: mpsc::Sender<Message>,
    metrics: Arc<Metrics>,
}

impl ImpressionWriter {
    /// Starts the writing task on the current tokio runtime, with a queue of `capacity`.
    pub(crate) fn spawn(store: Store, metrics: Arc<Metrics>, capacity: usize) -> Self {
        let (tx, mut rx) = mpsc::channel::<Message>(capacity.max(1));
        let counters = metrics.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            let mut waiting = Vec::new();
            while let Some(first) = rx.recv().await {
                let mut next = Some(first);
                while let Some(message) = next.take() {
                    match message {
                        Message::Record(imp) => batch.push(*imp),
                        Message::Flush(done) => waiting.push(done),
                    }
                    if batch.len() < BATCH {
                        next = rx.try_recv().ok();
                    }
                }
                if !batch.is_empty() {
                    store_batch(&store, &counters, &batch).await;
                    batch.clear();
                }
                for done in waiting.drain(..) {
                    let _ = done.send(());
                }
            }
        });
        Self { tx, metrics }
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
            let _ = stored.await;
        }
    }
}

async fn store_batch(store: &Store, metrics: &Metrics, batch: &[Impression]) {
    match store.insert_impressions(batch).await {
        Ok(written) => {
            metrics
                .impressions_written
                .fetch_add(written, Ordering::Relaxed);
        }
        Err(e) => {
            tracing::warn!("storing {} impressions failed: {e}", batch.len());
            metrics
                .impressions_dropped
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
    }
}

/// Hands out recommendation ids: this process's random prefix and a counter.
#[derive(Debug)]
pub(crate) struct RecommendationIds {
    prefix: u64,
    next: AtomicU64,
}

impl Default for RecommendationIds {
    fn default() -> Self {
        let mut bytes = [0u8; 8];
        if getrandom::fill(&mut bytes).is_err() {
            // No system randomness: the start time still keeps processes apart.
            let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
            bytes = nanos.to_le_bytes();
        }
        Self {
            prefix: u64::from_le_bytes(bytes),
            next: AtomicU64::new(0),
        }
    }
}

impl RecommendationIds {
    /// A new id: 32 lower-case hex digits.
    pub(crate) fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{:016x}{n:016x}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use marquee_domain::{ItemId, UserId};

    fn impression(n: usize) -> Impression {
        Impression {
            id: format!("r{n}"),
            at: chrono::Utc::now(),
            placement: "recommendations".into(),
            user: Some(UserId::new("u1").unwrap()),
            session: None,
            model_version: "v1".into(),
            experiment: None,
            variant: None,
            items: vec![
                ItemId::new("a").unwrap(),
                ItemId::new(format!("i{n}")).unwrap(),
            ],
        }
    }

    /// A full queue drops what does not fit, counted, without waiting; what fitted is stored
    /// with its items in order once flushed.
    #[tokio::test(flavor = "current_thread")]
    async fn a_full_queue_drops_and_counts_and_a_flush_stores_the_rest() {
        let db = marquee_store::testing::TestDatabase::sqlite();
        let store = db.open().await;
        let metrics = Arc::new(Metrics::default());
        let writer = ImpressionWriter::spawn(store.clone(), metrics.clone(), 3);
        // No await between these: on this single-threaded runtime the writing task cannot
        // run, so the queue holds three and the other two are dropped.
        for n in 0..5 {
            writer.record(impression(n));
        }
        assert_eq!(metrics.impressions_dropped.load(Ordering::Relaxed), 2);
        writer.flush().await;
        assert_eq!(metrics.impressions_written.load(Ordering::Relaxed), 3);
        let since = chrono::Utc::now() - chrono::TimeDelta::hours(1);
        let stored = store.impressions_since(since, 10).await.unwrap();
        let expected: Vec<Impression> = (0..3).map(impression).collect();
        assert_eq!(
            stored.iter().map(|i| (&i.id, &i.items)).collect::<Vec<_>>(),
            expected
                .iter()
                .map(|i| (&i.id, &i.items))
                .collect::<Vec<_>>()
        );
        let text = metrics.render("v1", "ease");
        assert!(
            text.contains("marquee_impressions_dropped_total 2"),
            "{text}"
        );
        assert!(
            text.contains("marquee_impressions_written_total 3"),
            "{text}"
        );
    }

    #[test]
    fn ids_are_unique_hex_of_fixed_length() {
        let ids = RecommendationIds::default();
        let (a, b) = (ids.next(), ids.next());
        assert_ne!(a, b);
        assert!(
            a.len() == 32 && a.bytes().all(|c| c.is_ascii_hexdigit()),
            "{a}"
        );
    }
}

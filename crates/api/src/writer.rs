//! Group commit of event batches: batches posted at about the same time are written in one
//! transaction, so many concurrent `POST /v1/events` cost one commit (one fsync) instead of
//! one each. Every batch is still durable before its request is answered: a request waits
//! until the transaction holding its batch has committed.
//!
//! One task writes. While it commits a group, new batches queue; the next group takes every
//! batch waiting, up to [`MAX_GROUP_EVENTS`] events. If a group's transaction fails, its
//! batches are written again one by one, so that one batch's failure is only its own. A
//! batch whose request has gone (timed out, client disconnected) is not stored: it is left
//! out of the group, and a group that loses a request while it is being written is rolled
//! back and written again without it. Only a request that gives up in the instant between
//! that check and the commit finds its batch stored, which a retry reports as duplicates
//! (events are idempotent on `event_id`).

use marquee_domain::{Event, SessionId, UserId};
use marquee_store::{Attribution, EventsInserted, Store};
use tokio::sync::{mpsc, oneshot};

/// The most events one transaction takes (batches are never split).
pub(crate) const MAX_GROUP_EVENTS: usize = 20_000;
/// Batches that may wait for the writer; more make their requests wait to queue.
const QUEUE: usize = 1_024;

type Done = oneshot::Sender<Result<EventsInserted, marquee_store::Error>>;

struct Pending {
    events: Vec<Event>,
    /// Anonymous sessions that identified as users, linked in the same transaction.
    links: Vec<(SessionId, UserId)>,
    /// What the events are credited to, written in the same transaction.
    attributions: Vec<Attribution>,
    done: Done,
}

/// The handle requests send their batches to.
#[derive(Clone)]
pub(crate) struct EventWriter {
    tx: mpsc::Sender<Pending>,
}

impl EventWriter {
    /// Starts the writer task on the current tokio runtime.
    pub(crate) fn spawn(store: Store) -> Self {
        let (tx, mut rx) = mpsc::channel::<Pending>(QUEUE);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut total = first.events.len();
                let mut group = vec![first];
                while total < MAX_GROUP_EVENTS {
                    match rx.try_recv() {
                        Ok(p) => {
                            total += p.events.len();
                            group.push(p);
                        }
                        Err(_) => break,
                    }
                }
                group.retain(|p| !p.done.is_closed());
                write_group(&store, group).await;
            }
        });
        Self { tx }
    }

    /// Writes `events` and their `attributions` (with the batches queued meanwhile) and
    /// answers once committed.
    pub(crate) async fn write(
        &self,
        events: Vec<Event>,
        links: Vec<(SessionId, UserId)>,
        attributions: Vec<Attribution>,
    ) -> Result<EventsInserted, marquee_store::Error> {
        let (done, answer) = oneshot::channel();
        let gone = || marquee_store::Error::Conflict("the event writer has stopped".into());
        self.tx
            .send(Pending {
                events,
                links,
                attributions,
                done,
            })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn write_group(store: &Store, mut group: Vec<Pending>) {
    loop {
        group.retain(|p| !p.done.is_closed());
        if group.is_empty() {
            return;
        }
        let written = async {
            let mut import = store.begin_import().await?;
            let mut counts = Vec::with_capacity(group.len());
            for p in &group {
                if !p.links.is_empty() {
                    import.link_sessions(&p.links).await?;
                }
                counts.push(import.insert_events(&p.events).await?);
                if !p.attributions.is_empty() {
                    import.insert_attributions(&p.attributions).await?;
                }
            }
            Ok::<_, marquee_store::Error>((import, counts))
        }
        .await;
        let failure = match written {
            // A request gave up while its batch was being written (it was answered 503):
            // write the group again without it, so that its batch is not stored.
            Ok((import, _)) if group.iter().any(|p| p.done.is_closed()) => {
                let _ = import.rollback().await;
                continue;
            }
            Ok((import, counts)) => match import.commit().await {
                Ok(()) => {
                    for (p, c) in group.into_iter().zip(counts) {
                        let _ = p.done.send(Ok(c));
                    }
                    return;
                }
                Err(e) => e,
            },
            Err(e) => e,
        };
        if group.len() == 1 {
            if let Some(p) = group.pop() {
                let _ = p.done.send(Err(failure));
            }
            return;
        }
        tracing::warn!(
            batches = group.len(),
            "a group of event batches failed ({failure}); writing them one by one"
        );
        for p in group {
            Box::pin(write_group(store, vec![p])).await;
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use marquee_domain::{Actor, EventId, EventKind, ItemId, UserId};

    fn event(id: &str, user: &str, at: chrono::DateTime<chrono::Utc>) -> Event {
        Event {
            id: EventId::new(id).unwrap(),
            actor: Actor::User(UserId::new(user).unwrap()),
            item: Some(ItemId::new("i1").unwrap()),
            kind: EventKind::View,
            value: None,
            timestamp: at,
            context: None,
        }
    }

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("w.db").display());
        let store = Store::open(&url).await.unwrap();
        (dir, store)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_batches_are_all_stored_once_with_their_own_counts() {
        let (_dir, store) = store().await;
        let writer = EventWriter::spawn(store.clone());
        let now = chrono::Utc::now();
        let mut tasks = Vec::new();
        for b in 0..40 {
            let writer = writer.clone();
            // Every batch repeats the previous batch's last event: one duplicate each.
            let events: Vec<Event> = (0..10)
                .map(|k| {
                    let n = b * 9 + k;
                    event(&format!("e{n}"), "u1", now)
                })
                .collect();
            tasks.push(tokio::spawn(async move {
                writer.write(events, Vec::new(), Vec::new()).await
            }));
        }
        let mut inserted = 0;
        let mut duplicates = 0;
        for t in tasks {
            let c = t.await.unwrap().unwrap();
            assert_eq!(c.inserted + c.duplicates, 10);
            inserted += c.inserted;
            duplicates += c.duplicates;
        }
        assert_eq!((inserted, duplicates), (40 * 9 + 1, 39));
        assert_eq!(store.counts().await.unwrap().events, 40 * 9 + 1);
    }

    #[tokio::test]
    async fn a_bad_batch_in_a_group_fails_alone() {
        let (_dir, store) = store().await;
        let now = chrono::Utc::now();
        let future = now + chrono::TimeDelta::days(2);
        let mut answers = Vec::new();
        let mut group = Vec::new();
        for (n, at) in [now, future, now].into_iter().enumerate() {
            let (done, answer) = oneshot::channel();
            group.push(Pending {
                events: vec![event(&format!("g{n}"), "u2", at)],
                links: Vec::new(),
                attributions: Vec::new(),
                done,
            });
            answers.push(answer);
        }
        write_group(&store, group).await;
        let results: Vec<_> = futures_results(answers).await;
        assert!(results[0].as_ref().is_ok_and(|c| c.inserted == 1));
        assert!(results[1].is_err(), "the batch from the future is refused");
        assert!(results[2].as_ref().is_ok_and(|c| c.inserted == 1));
        assert_eq!(store.counts().await.unwrap().events, 2);
    }

    async fn futures_results(
        answers: Vec<oneshot::Receiver<Result<EventsInserted, marquee_store::Error>>>,
    ) -> Vec<Result<EventsInserted, marquee_store::Error>> {
        let mut out = Vec::new();
        for a in answers {
            out.push(a.await.unwrap());
        }
        out
    }
}

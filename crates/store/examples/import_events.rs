//! Times storing generated events: one all-or-nothing import (the `data import` path), then
//! acknowledged batches (the `POST /v1/events` path), on the store `DATABASE_URL` names.
//!
//! ```sh
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench cargo run --release -p marquee-store --example import_events -- 1000000 500
//! ```
//!
//! Arguments: events for the import (default 1,000,000) and the batch size of the second part
//! (default 500; it stores 100,000 events in such batches). Use an empty store: the event ids
//! are fixed, so a second run finds them all as duplicates.

use marquee_domain::{Actor, Event, EventId, EventKind, ItemId, UserId};
use std::time::Instant;

fn events(prefix: &str, n: usize) -> Vec<Event> {
    let t0 = chrono::Utc::now() - chrono::TimeDelta::days(60);
    (0..n)
        .map(|i| Event {
            id: EventId::new(format!("{prefix}-{i}")).unwrap(),
            actor: Actor::User(UserId::new(format!("u{}", i % 50_000)).unwrap()),
            item: Some(ItemId::new(format!("i{}", (i * 7919) % 20_000)).unwrap()),
            kind: if i % 10 == 0 {
                EventKind::AddToCart
            } else {
                EventKind::View
            },
            value: None,
            timestamp: t0 + chrono::TimeDelta::milliseconds(i as i64 * 3),
            context: None,
        })
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://bench.db".into());
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let batch: usize = args.next().map_or(Ok(500), |a| a.parse())?;
    let store = marquee_store::Store::open(&url).await?;

    let bulk = events("bulk", n);
    let start = Instant::now();
    let mut import = store.begin_import().await?;
    let done = import.insert_events(&bulk).await?;
    import.commit().await?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "import: {} events in {secs:.2} s = {:.0} events/s (duplicates {})",
        done.inserted,
        done.inserted as f64 / secs,
        done.duplicates
    );

    let acked = events("acked", 100_000);
    let start = Instant::now();
    for chunk in acked.chunks(batch) {
        store.insert_events(chunk).await?;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "batches of {batch}: {} events in {secs:.2} s = {:.0} events/s (one after another)",
        acked.len(),
        acked.len() as f64 / secs
    );
    Ok(())
}

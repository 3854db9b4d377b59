//! Readers for outside data formats and the seeded synthetic store generator.
//!
//! Every reader turns a file or folder into a [`Bundle`] of domain values (items, users,
//! orders, events), validated row by row. A malformed row stops the read with an [`Error`]
//! naming the file, the line (or Parquet row) and the field, so that the caller can refuse the
//! whole import. Readers never touch the store: the `data` binary writes a bundle in one
//! transaction.
//!
//! Formats: MovieLens (`ratings.csv`/`movies.csv`, `u.data`/`u.item`, `ratings.dat`/
//! `movies.dat`), OTTO sessions (jsonl or flattened CSV), and this project's own store folder
//! (one CSV per table, see `notebooks-data/README.md`). The readers of files that need Polars
//! (generic interactions and UCI Online Retail, CSV or Parquet) are in `marquee-tabular`, so
//! that this crate, which `serve` uses to seed an empty store, links no Polars.
//!
//! Threading: all functions are synchronous and single-threaded; run them on a blocking
//! thread from async code. Event ids are derived from the source rows, so importing the same
//! file twice stores every event once.

mod error;
pub mod generator;
pub mod movielens;
pub mod otto;
pub mod store_dir;
pub mod text;

pub use error::{Error, Location, Result};
pub use marquee_domain::rng;

use marquee_domain::{Event, Item, Order, User};

/// What a reader produced, ready to be written to the store in one transaction.
#[derive(Debug, Default, Clone)]
pub struct Bundle {
    /// Catalog items. See [`Bundle::items_are_placeholders`].
    pub items: Vec<Item>,
    /// True when the items were made up from ids alone (interaction files, OTTO): they must
    /// not overwrite a real catalog already in the store.
    pub items_are_placeholders: bool,
    pub users: Vec<User>,
    /// True when users were made up from ids alone and must not overwrite stored profiles.
    pub users_are_placeholders: bool,
    pub orders: Vec<Order>,
    pub events: Vec<Event>,
    /// What the reader noticed and did about the source's quirks (rows skipped, values
    /// mapped), for the import report.
    pub notes: Vec<String>,
}

impl Bundle {
    /// Number of order lines over all orders.
    pub fn order_lines(&self) -> usize {
        self.orders.iter().map(|o| o.lines.len()).sum()
    }
}

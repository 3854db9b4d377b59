//! What the engine answers: [`Answer`] (items, basis, model version), [`HomeRow`], the
//! business [`Filters`] of a request, and the explanation of each item ("because you watched").

use crate::loaded::Loaded;
use crate::{Error, MAX_K, Result};
pub use compact_str::CompactString;
use marquee_models::Row;
use std::cell::RefCell;

/// Business filters of a request. The default leaves out hidden and out-of-stock items and
/// what the user already has.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    /// Only items of this category.
    pub category: Option<String>,
    /// Lowest and highest price in minor units (items without a price pass).
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    /// Items never to return.
    pub exclude: Vec<marquee_domain::ItemId>,
    /// Also return items the user already interacted with.
    pub include_seen: bool,
    /// Also return out-of-stock items (hidden items are never returned).
    pub include_out_of_stock: bool,
}

/// One recommended item. Ids are compact strings: up to 24 bytes (most item ids) they sit in
/// place, so an answer of ten items costs no allocation per id.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Recommendation {
    pub item: CompactString,
    pub score: f32,
    /// The item of the user's history this one is most similar to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub because: Option<CompactString>,
    /// Why it is in the answer.
    pub reason: Reason,
    /// Buy-again answers: the median days between one customer's purchases of the item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub typical_interval_days: Option<f32>,
}

/// Why an item is in an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The model's personal ranking.
    Personal,
    /// The model's personal ranking, nearest to an item of the user's history (`because`).
    BecauseYouWatched,
    Similar,
    BoughtTogether,
    AlsoViewed,
    BuyAgain,
    RecentlyViewed,
    Trending,
    Popular,
    /// From an anonymous session's recent items.
    Session,
    /// A promotion of the placement put it at its position.
    Promoted,
    /// Nothing better was known: trending items.
    TrendingFallback,
    NewInCategory,
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// The user's own history (and events since training).
    Personal,
    /// Nothing known of the user: trending items.
    ColdStart,
    /// An anonymous session's recent items.
    Session,
    /// Items similar to one item.
    Similar,
    /// Placements' other strategies.
    BoughtTogether,
    AlsoViewed,
    BuyAgain,
    RecentlyViewed,
    Trending,
    Popular,
}

/// An answer: the items, best first, and the model version that produced them.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Answer {
    pub model_version: String,
    pub basis: Basis,
    pub items: Vec<Recommendation>,
}

/// One row of the home page.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HomeRow {
    /// `top_picks` (`up_next` with a sequence model), `because_you_watched`, `new_in_category`
    /// or `trending`.
    pub id: &'static str,
    pub title: String,
    /// What the row is about: the watched item (`because_you_watched`) or the category
    /// (`new_in_category`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub about: Option<String>,
    pub items: Vec<Recommendation>,
}

pub(crate) fn check_k(k: usize) -> Result<()> {
    if k == 0 || k > MAX_K {
        return Err(Error::BadK(k));
    }
    Ok(())
}

pub(crate) fn answer(m: &Loaded, basis: Basis, mut items: Vec<Recommendation>) -> Answer {
    for r in &mut items {
        r.reason = match basis {
            Basis::Personal if r.because.is_some() => Reason::BecauseYouWatched,
            Basis::Personal => Reason::Personal,
            Basis::ColdStart => Reason::TrendingFallback,
            Basis::Session => Reason::Session,
            Basis::Similar => Reason::Similar,
            _ => r.reason,
        };
    }
    Answer {
        model_version: m.artifact.manifest.version.clone(),
        basis,
        items,
    }
}

/// For each item of `top`, the history item most similar to it: the first of its item-kNN
/// neighbours (most similar first) that is in the history, if any.
pub(crate) fn explain(m: &Loaded, history: Row<'_>, top: &[(u32, f32)]) -> Vec<Option<u32>> {
    MARKS.with_borrow_mut(|marks| {
        marks.resize(m.n_items(), false);
        for &h in history.items {
            marks[h as usize] = true;
        }
        let because = top
            .iter()
            .map(|&(i, _)| {
                m.knn
                    .neighbors_of(i as usize)
                    .find(|&(j, _)| marks.get(j).copied().unwrap_or(false))
                    .map(|(j, _)| j as u32)
            })
            .collect();
        for &h in history.items {
            marks[h as usize] = false;
        }
        because
    })
}

thread_local! {
    /// Per item, whether it is in the history being explained; all false between requests.
    static MARKS: RefCell<Vec<bool>> = const { RefCell::new(Vec::new()) };
}

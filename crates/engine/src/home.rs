//! The home page's rows: top picks (with a sequence model, "Up next": what follows the latest
//! items), "because you watched X", "New in <category>" (the newest
//! catalog items of the category of the user's latest item), trending.

use crate::answer::{Basis, Filters, HomeRow, Reason, Recommendation, check_k};
use crate::loaded::State;
use crate::rank::{SCRATCH, rank};
use crate::{Engine, Result};
use marquee_domain::{Event, ItemId, UserId};

impl Engine {
    /// The home page: top picks, "because you watched" the user's latest item, and trending.
    pub fn home(&self, user: Option<&UserId>, recent: &[Event], k: usize) -> Result<Vec<HomeRow>> {
        check_k(k)?;
        let user_id = user;
        let user = user.map(UserId::as_str);
        let filters = Filters::default();
        let mut rows = Vec::new();
        let picks = self.recommend(user_id, recent, k, &filters)?;
        if picks.basis == Basis::Personal {
            // A sequence model's picks are what comes next after the latest items.
            let sequential = matches!(
                self.state.load().model.artifact.model,
                marquee_models::Model::Sasrec(_)
            );
            let (id, title) = if sequential {
                ("up_next", "Up next for you")
            } else {
                ("top_picks", "Top picks for you")
            };
            rows.push(HomeRow {
                id,
                title: title.into(),
                about: None,
                items: picks.items,
            });
        }
        let latest = self.latest_item(user, recent);
        if let Some(latest) = &latest {
            let mut exclude: Vec<ItemId> = self
                .seen_items(user, recent)
                .into_iter()
                .filter_map(|i| ItemId::new(i).ok())
                .collect();
            exclude.extend(ItemId::new(latest.as_str()).ok());
            let similar = self.similar_to(
                latest,
                k,
                &Filters {
                    exclude,
                    ..Filters::default()
                },
            )?;
            if !similar.items.is_empty() {
                rows.push(HomeRow {
                    id: "because_you_watched",
                    title: format!("Because you watched {latest}"),
                    about: Some(latest.clone()),
                    items: similar.items,
                });
            }
        }
        let state = self.state.load();
        let m = &state.model;
        if let Some(row) = latest.and_then(|l| new_in_category(&state, &l, user, recent, k, self)) {
            rows.push(row);
        }
        let trending = SCRATCH.with_borrow_mut(|s| {
            s.scores.clone_from(&m.trending);
            rank(
                &state,
                &mut s.scores,
                &[],
                k,
                &filters,
                None,
                &mut s.blocked,
            )
        })?;
        let mut trending = trending;
        for r in &mut trending {
            r.reason = crate::answer::Reason::Trending;
        }
        rows.push(HomeRow {
            id: "trending",
            title: "Trending now".into(),
            about: None,
            items: trending,
        });
        Ok(rows)
    }

    /// The user's most recent item: from events since training, else their training history.
    pub(crate) fn latest_item(&self, user: Option<&str>, recent: &[Event]) -> Option<String> {
        let state = self.state.load();
        let m = &state.model;
        let history = &m.artifact.history;
        if let Some(e) = recent
            .iter()
            .filter(|e| {
                e.item
                    .as_ref()
                    .is_some_and(|i| history.items.get(i.as_str()).is_some())
            })
            .max_by_key(|e| e.timestamp)
        {
            return e.item.as_ref().map(|i| i.as_str().to_owned());
        }
        let u = history.users.get(user?)? as usize;
        let row = history.row(u);
        let times = history.row_times(u);
        let at = (0..row.len()).max_by_key(|&j| (times[j], row.items[j]))?;
        Some(history.items.id(row.items[at] as usize).to_owned())
    }

    pub(crate) fn seen_items(&self, user: Option<&str>, recent: &[Event]) -> Vec<String> {
        let state = self.state.load();
        let history = &state.model.artifact.history;
        let mut out: Vec<String> = recent
            .iter()
            .filter_map(|e| e.item.as_ref().map(|i| i.as_str().to_owned()))
            .collect();
        if let Some(u) = user.and_then(|u| history.users.get(u)) {
            out.extend(
                history
                    .row(u as usize)
                    .items
                    .iter()
                    .map(|&i| history.items.id(i as usize).to_owned()),
            );
        }
        out
    }
}

/// "New in <category>": the newest catalog items of the category of `latest` (the user's
/// latest item) that the user has not seen yet; `None` when there are none.
pub(crate) fn new_in_category(
    state: &State,
    latest: &str,
    user: Option<&str>,
    recent: &[Event],
    k: usize,
    engine: &Engine,
) -> Option<HomeRow> {
    let i = state.model.artifact.history.items.get(latest)?;
    let c = state.meta[i as usize].category;
    let category = state.category_names.get(c as usize)?;
    let seen: std::collections::HashSet<String> =
        engine.seen_items(user, recent).into_iter().collect();
    let items: Vec<Recommendation> = state
        .newest
        .get(category)?
        .iter()
        .filter(|id| !seen.contains(*id))
        .take(k)
        .map(|id| Recommendation {
            item: id.as_str().into(),
            score: 0.0,
            because: None,
            reason: Reason::NewInCategory,
            typical_interval_days: None,
        })
        .collect();
    (!items.is_empty()).then(|| HomeRow {
        id: "new_in_category",
        title: format!("New in {category}"),
        about: Some(category.clone()),
        items,
    })
}

//! Ranking: the user's history combined with events since training, scored by the model (a
//! fold-in for factor models, dense rows for small item-item models, two passes for large
//! factor catalogs), then the top k that pass the filters. Also the session and similar-item
//! answers. Per-thread scratch buffers keep a request to one allocation: its answer.

use crate::answer::{Answer, Basis, Filters, Reason, Recommendation, answer, check_k, explain};
use crate::fold;
use crate::loaded::{Loaded, NO_CATEGORY, State, fold_space};
use crate::{Engine, Error, Result};
use marquee_domain::{Event, ItemId, UserId};
use marquee_models::{Model, Row, Scorer, top_k};
use std::cell::RefCell;

/// Per-thread buffers reused by every request, so that a request allocates only its answer
/// (and, for an ALS fold-in, the solve).
#[derive(Default)]
pub(crate) struct Scratch {
    pub(crate) scores: Vec<f32>,
    pub(crate) pairs: Vec<(u32, f32)>,
    pub(crate) items: Vec<u32>,
    pub(crate) values: Vec<f32>,
    pub(crate) blocked: Vec<u32>,
    /// The int8 first pass of a two-pass request.
    pub(crate) quant: marquee_models::QuantScratch,
}

thread_local! {
    pub(crate) static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl Engine {
    /// Recommendations for a user (`None`: an anonymous visitor), with the events the store
    /// holds for them (those newer than the training data count; older ones are already in
    /// the model).
    pub fn recommend(
        &self,
        user: Option<&UserId>,
        recent: &[Event],
        k: usize,
        filters: &Filters,
    ) -> Result<Answer> {
        self.recommend_explained(user, recent, k, filters, true)
    }

    /// [`Engine::recommend`], with the explanations (`because`) only when `explain`: a
    /// placement ranks a pool of candidates and explains the few it keeps.
    pub(crate) fn recommend_explained(
        &self,
        user: Option<&UserId>,
        recent: &[Event],
        k: usize,
        filters: &Filters,
        explain: bool,
    ) -> Result<Answer> {
        check_k(k)?;
        let state = self.state.load();
        let m = &state.model;
        let history = &m.artifact.history;
        let row = user
            .and_then(|u| history.users.get(u.as_str()))
            .map(|u| u as usize);
        let is_fresh = |e: &&Event| e.timestamp.timestamp_millis() > m.trained_until;
        let any_fresh = recent.iter().any(|e| is_fresh(&e));
        SCRATCH.with_borrow_mut(|s| {
            let Scratch {
                scores,
                pairs,
                items,
                values,
                blocked,
                quant,
            } = s;
            combine_history(m, row, recent.iter().filter(is_fresh), pairs, items, values);
            if items.is_empty() {
                scores.clone_from(&m.trending);
                let out = rank(&state, scores, &[], k, filters, None, blocked)?;
                return Ok(answer(m, Basis::ColdStart, out));
            }
            let now = Row { items, values };
            scores.resize(m.n_items(), 0.0);
            let seen: &[u32] = if filters.include_seen { &[] } else { items };
            let model = &m.artifact.model;
            if let Some((factors, width)) = model.item_factors() {
                let stored = row
                    .filter(|_| !any_fresh)
                    .and_then(|u| model.user_vector(u));
                let x = match stored {
                    Some(x) => std::borrow::Cow::Borrowed(x),
                    None => std::borrow::Cow::Owned(fresh_user_vector(m, now)),
                };
                let ask = Ask {
                    k,
                    filters,
                    seen,
                    history: now,
                    explain,
                };
                let two_pass = rank_two_pass(&state, &x, &ask, pairs, blocked, quant);
                let out = match two_pass {
                    Some(out) => out,
                    None => {
                        marquee_models::factor_scores(factors, width, &x, scores);
                        rank(
                            &state,
                            scores,
                            seen,
                            k,
                            filters,
                            explain.then_some(now),
                            blocked,
                        )?
                    }
                };
                let out = with_cold_items(&state, &x, out, k, filters, recent);
                return Ok(answer(m, Basis::Personal, out));
            }
            match &m.dense {
                Some((dense, weighted)) => {
                    marquee_models::ItemItem::score_dense(dense, now, *weighted, scores);
                }
                None => match model {
                    // A sequence model reads the order: the training sequence, then what
                    // happened since, oldest first.
                    Model::Sasrec(sasrec) => {
                        let fresh = recent.iter().filter(is_fresh);
                        let sequence = ordered_history(m, sasrec, row, fresh, now);
                        sasrec.score_sequence(&sequence, scores);
                    }
                    _ => model.score(row.unwrap_or(0), now, scores),
                },
            }
            let out = rank(
                &state,
                scores,
                seen,
                k,
                filters,
                explain.then_some(now),
                blocked,
            )?;
            Ok(answer(m, Basis::Personal, out))
        })
    }

    /// Recommendations for an anonymous session from the items it just viewed, newest first.
    /// A sequence model (SASRec) reads them in that order once the session is long enough
    /// ([`SASREC_SESSION_MIN`] known items); otherwise the item-kNN neighbours of the set
    /// answer.
    pub fn session(&self, recent_items: &[ItemId], k: usize, filters: &Filters) -> Result<Answer> {
        check_k(k)?;
        let state = self.state.load();
        let m = &state.model;
        let known: Vec<u32> = {
            let mut v: Vec<u32> = recent_items
                .iter()
                .filter_map(|i| m.artifact.history.items.get(i.as_str()))
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        SCRATCH.with_borrow_mut(|s| {
            let Scratch {
                scores,
                values,
                blocked,
                ..
            } = s;
            if known.is_empty() {
                scores.clone_from(&m.trending);
                let items = rank(&state, scores, &[], k, filters, None, blocked)?;
                return Ok(answer(m, Basis::ColdStart, items));
            }
            values.clear();
            values.resize(known.len(), 1.0);
            let now = Row {
                items: &known,
                values,
            };
            scores.resize(m.n_items(), 0.0);
            if let Model::Sasrec(sasrec) = &m.artifact.model
                && known.len() >= SASREC_SESSION_MIN
            {
                sasrec.score_sequence(&session_sequence(m, sasrec, recent_items), scores);
            } else {
                m.knn.score(0, now, scores);
                // Break ties (and fill empty neighbourhoods) by popularity, a little.
                let top = m.popular.iter().copied().fold(1.0, f32::max);
                for (s, p) in scores.iter_mut().zip(&m.popular) {
                    *s += 1e-3 * p / top;
                }
            }
            let seen: &[u32] = if filters.include_seen { &[] } else { &known };
            let items = rank(&state, scores, seen, k, filters, Some(now), blocked)?;
            Ok(answer(m, Basis::Session, items))
        })
    }

    /// The items most similar to `item`.
    pub fn similar(&self, item: &ItemId, k: usize, filters: &Filters) -> Result<Answer> {
        self.similar_to(item.as_str(), k, filters)
    }

    /// [`Engine::similar`] by the model's own item id.
    pub(crate) fn similar_to(&self, item: &str, k: usize, filters: &Filters) -> Result<Answer> {
        check_k(k)?;
        let state = self.state.load();
        let m = &state.model;
        let i = m
            .artifact
            .history
            .items
            .get(item)
            .ok_or_else(|| Error::UnknownItem(item.to_owned()))?;
        SCRATCH.with_borrow_mut(|s| {
            let Scratch {
                scores, blocked, ..
            } = s;
            scores.resize(m.n_items(), 0.0);
            scores.fill(f32::NAN);
            for (j, s) in m.knn.neighbors_of(i as usize) {
                scores[j] = s;
            }
            let items = rank(&state, scores, &[i], k, filters, None, blocked)?;
            Ok(answer(m, Basis::Similar, items))
        })
    }
}

impl Engine {
    /// Explains personal recommendations from the user's history (training row plus events
    /// since training): `because` and the reason `because_you_watched` where an item of the
    /// history is among an item's nearest.
    pub(crate) fn explain_items(
        &self,
        user: Option<&UserId>,
        recent: &[Event],
        items: &mut [Recommendation],
    ) {
        let state = self.state.load();
        let m = &state.model;
        let history = &m.artifact.history;
        let row = user
            .and_then(|u| history.users.get(u.as_str()))
            .map(|u| u as usize);
        let is_fresh = |e: &&Event| e.timestamp.timestamp_millis() > m.trained_until;
        SCRATCH.with_borrow_mut(|s| {
            let Scratch {
                pairs,
                items: hist,
                values,
                ..
            } = s;
            combine_history(m, row, recent.iter().filter(is_fresh), pairs, hist, values);
            let top: Vec<(u32, f32)> = items
                .iter()
                .map(|r| {
                    (
                        history.items.get(r.item.as_str()).unwrap_or(u32::MAX),
                        r.score,
                    )
                })
                .collect();
            let known: Vec<(u32, f32)> = top
                .iter()
                .copied()
                .filter(|(i, _)| *i != u32::MAX)
                .collect();
            let because = explain(
                m,
                Row {
                    items: hist,
                    values,
                },
                &known,
            );
            let mut because = because.into_iter();
            for (r, (i, _)) in items.iter_mut().zip(&top) {
                if *i == u32::MAX {
                    continue;
                }
                if let Some(Some(h)) = because.next() {
                    r.because = Some(history.items.id(h as usize).into());
                    if r.reason == Reason::Personal {
                        r.reason = Reason::BecauseYouWatched;
                    }
                }
            }
        });
    }
}

/// The fewest known items an anonymous session needs before a SASRec model answers it; shorter
/// sessions get the item-kNN answer. Measured on MovieLens small (61 users held out of
/// training, the newest item of each the target, a session their items before it), nDCG@10
/// SASRec against item-kNN: newest 3 items 0.008 / 0.010, 5: 0.006 / 0.031, 10: 0.030 /
/// 0.028, 20: 0.035 / 0.008, 50: 0.048 / 0.012.
pub(crate) const SASREC_SESSION_MIN: usize = 10;

/// The sequence a sequence model reads for a user, oldest first: their training sequence,
/// then the items of `fresh` events in time order, an item seen again moved to its newest
/// place. Only items of `kept` (the combined history, whose weights stayed positive) count.
fn ordered_history<'e>(
    m: &Loaded,
    sasrec: &marquee_models::Sasrec,
    row: Option<usize>,
    fresh: impl Iterator<Item = &'e Event>,
    kept: Row<'_>,
) -> Vec<u32> {
    let history = &m.artifact.history;
    let mut later: Vec<(i64, u32)> = fresh
        .filter_map(|e| {
            let i = history.items.get(e.item.as_ref()?.as_str())?;
            Some((e.timestamp.timestamp_millis(), i))
        })
        .collect();
    later.sort_by_key(|&(t, _)| t);
    let trained = row.map_or(&[][..], |u| sasrec.sequence_of(u));
    let newest_first = later
        .into_iter()
        .rev()
        .map(|(_, i)| i)
        .chain(trained.iter().rev().copied())
        .filter(|i| kept.items.binary_search(i).is_ok());
    newest_window(newest_first, sasrec.params.max_len)
}

/// The newest `max_len` distinct items of `newest_first`, each at its newest place, oldest
/// first: what the model's window holds. Stops reading once the window is full.
fn newest_window(newest_first: impl Iterator<Item = u32>, max_len: usize) -> Vec<u32> {
    let mut window: Vec<u32> = Vec::with_capacity(max_len);
    for i in newest_first {
        if window.len() == max_len {
            break;
        }
        if !window.contains(&i) {
            window.push(i);
        }
    }
    window.reverse();
    window
}

/// An anonymous session's known items (given newest first) as the model's window, oldest
/// first.
fn session_sequence(
    m: &Loaded,
    sasrec: &marquee_models::Sasrec,
    newest_first: &[ItemId],
) -> Vec<u32> {
    let items = &m.artifact.history.items;
    newest_window(
        newest_first.iter().filter_map(|i| items.get(i.as_str())),
        sasrec.params.max_len,
    )
}

/// The user's training row plus the weights of new events, summed per item, pairs at or
/// below zero dropped, sorted by item, into `items` and `values`.
pub(crate) fn combine_history<'e>(
    m: &Loaded,
    row: Option<usize>,
    fresh: impl Iterator<Item = &'e Event>,
    pairs: &mut Vec<(u32, f32)>,
    items: &mut Vec<u32>,
    values: &mut Vec<f32>,
) {
    let history = &m.artifact.history;
    pairs.clear();
    if let Some(u) = row {
        pairs.extend(history.row(u).iter().map(|(i, w)| (i as u32, w)));
    }
    for e in fresh {
        let Some(i) = e.item.as_ref().and_then(|i| history.items.get(i.as_str())) else {
            continue;
        };
        pairs.push((i, m.weights.weight(e.kind, e.value)));
    }
    // A training row is sorted already; only new events need the sort.
    if !pairs.is_sorted_by_key(|&(i, _)| i) {
        pairs.sort_unstable_by_key(|&(i, _)| i);
    }
    items.clear();
    values.clear();
    for &(i, w) in pairs.iter() {
        if items.last() == Some(&i) {
            if let Some(v) = values.last_mut() {
                *v += w;
            }
        } else {
            items.push(i);
            values.push(w);
        }
    }
    let mut keep = 0;
    for n in 0..items.len() {
        if values[n] > 0.0 && values[n].is_finite() {
            items[keep] = items[n];
            values[keep] = values[n];
            keep += 1;
        }
    }
    items.truncate(keep);
    values.truncate(keep);
}

/// Applies the filters to `scores` (a copy when the scores are shared), takes the top k and
/// explains them from `history`.
pub(crate) fn rank(
    state: &State,
    scores: &mut [f32],
    seen: &[u32],
    k: usize,
    filters: &Filters,
    history: Option<Row<'_>>,
    blocked: &mut Vec<u32>,
) -> Result<Vec<Recommendation>> {
    blocked_items(state, seen, filters, blocked);
    // Left out by score (−∞ never ranks), so the top k runs over one unbroken slice and the
    // list needs no sorting.
    for &b in blocked.iter() {
        if let Some(s) = scores.get_mut(b as usize) {
            *s = f32::NEG_INFINITY;
        }
    }
    let top = top_k(scores, k, &[]);
    Ok(recommendations(&state.model, &top, history))
}

/// Into `blocked` (in no order, maybe repeated): the items an answer must leave out — `seen`, hidden
/// items, out-of-stock items unless allowed, the explicit exclusions, and items the category
/// and price filters rule out.
pub(crate) fn blocked_items(
    state: &State,
    seen: &[u32],
    filters: &Filters,
    blocked: &mut Vec<u32>,
) {
    let items = &state.model.artifact.history.items;
    blocked.clear();
    blocked.extend_from_slice(seen);
    blocked.extend_from_slice(&state.hidden);
    if !filters.include_out_of_stock {
        blocked.extend_from_slice(&state.out_of_stock);
    }
    blocked.extend(
        filters
            .exclude
            .iter()
            .filter_map(|id| items.get(id.as_str())),
    );
    // An unknown category matches no item (NO_CATEGORY − 1 is never assigned).
    let category = filters
        .category
        .as_ref()
        .map(|c| state.categories.get(c).copied().unwrap_or(NO_CATEGORY - 1));
    if category.is_some() || filters.min_price.is_some() || filters.max_price.is_some() {
        for (i, meta) in state.meta.iter().enumerate() {
            let wrong_category = category.is_some_and(|c| meta.category != c);
            let price = meta.price_minor;
            let too_cheap = matches!((filters.min_price, price), (Some(lo), Some(p)) if p < lo);
            let too_dear = matches!((filters.max_price, price), (Some(hi), Some(p)) if p > hi);
            if wrong_category || too_cheap || too_dear {
                blocked.push(i as u32);
            }
        }
    }
}

/// The answer for `top` (model indices and scores, best first), explained from `history`.
pub(crate) fn recommendations(
    m: &Loaded,
    top: &[(u32, f32)],
    history: Option<Row<'_>>,
) -> Vec<Recommendation> {
    let items = &m.artifact.history.items;
    let because = match history {
        Some(h) => explain(m, h, top),
        None => vec![None; top.len()],
    };
    top.iter()
        .zip(because)
        .map(|(&(i, score), because)| Recommendation {
            item: items.id(i as usize).into(),
            score,
            because: because.map(|h| items.id(h as usize).into()),
            reason: Reason::Personal,
            typical_interval_days: None,
        })
        .collect()
}

/// The user vector of a factor model for a history it has no stored vector for (a user with
/// events since training, or unknown to the model): ALS and BPR fold it in by least squares,
/// the two-tower model runs its user tower.
pub(crate) fn fresh_user_vector(m: &Loaded, history: Row<'_>) -> Vec<f32> {
    match (&m.artifact.model, fold_space(&m.artifact.model)) {
        (Model::TwoTower(tower), _) => {
            tower.user_vector_from(history.items.iter().map(|&i| i as usize))
        }
        (_, Some(space)) => fold::fold_in(&space, m.gram.as_deref().unwrap_or(&[]), history),
        _ => Vec::new(),
    }
}

/// Merges the catalog items the model was not trained on (two-tower only: placed by their
/// content features) into a personal answer, by the same dot-product score.
pub(crate) fn with_cold_items(
    state: &State,
    x: &[f32],
    mut out: Vec<Recommendation>,
    k: usize,
    filters: &Filters,
    recent: &[Event],
) -> Vec<Recommendation> {
    if state.cold.is_empty() {
        return out;
    }
    let floor = if out.len() < k {
        f32::NEG_INFINITY
    } else {
        out.last().map_or(f32::NEG_INFINITY, |r| r.score)
    };
    let recent_items: std::collections::HashSet<&str> = if filters.include_seen {
        std::collections::HashSet::new()
    } else {
        recent
            .iter()
            .filter_map(|e| e.item.as_ref().map(|i| i.as_str()))
            .collect()
    };
    let seen = |id: &str| recent_items.contains(id);
    let mut added = false;
    for c in &state.cold {
        let score: f32 = c.vector.iter().zip(x).map(|(a, b)| a * b).sum();
        if score > floor && score.is_finite() && c.passes(filters) && !seen(&c.id) {
            out.push(Recommendation {
                item: c.id.as_str().into(),
                score,
                because: None,
                reason: Reason::Personal,
                typical_interval_days: None,
            });
            added = true;
        }
    }
    if added {
        out.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.item.cmp(&b.item))
        });
        out.truncate(k);
    }
    out
}

/// What a personal request asks for.
pub(crate) struct Ask<'a> {
    pub(crate) k: usize,
    pub(crate) filters: &'a Filters,
    pub(crate) seen: &'a [u32],
    pub(crate) history: Row<'a>,
    /// Whether to explain the answer from `history`.
    pub(crate) explain: bool,
}

/// Factor-model top-k in two passes: integer scores for every item from 7-bit factors, then
/// exact f32 scores for the items that could still be in the top k given the integer
/// scores' error bound ([`marquee_models::QuantizedFactors::candidates`]). The answer is the
/// exact top k. `None` (score every item exactly instead) when the user vector is not
/// finite.
pub(crate) fn rank_two_pass(
    state: &State,
    x: &[f32],
    ask: &Ask<'_>,
    pairs: &mut Vec<(u32, f32)>,
    blocked: &mut Vec<u32>,
    scratch: &mut marquee_models::QuantScratch,
) -> Option<Vec<Recommendation>> {
    let q = state.model.quant.as_ref()?;
    let (factors, f) = state.model.artifact.model.item_factors()?;
    blocked_items(state, ask.seen, ask.filters, blocked);
    let exact = |i: u32| marquee_models::dot(&factors[i as usize * f..(i as usize + 1) * f], x);
    q.candidates(x, ask.k, blocked, scratch, &mut { exact }, pairs)?;
    // Non-finite exact scores never answer (as in the one-pass top k).
    pairs.retain(|(_, s)| s.is_finite());
    let by_score = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if pairs.len() > ask.k {
        pairs.select_nth_unstable_by(ask.k - 1, by_score);
        pairs.truncate(ask.k);
    }
    pairs.sort_unstable_by(by_score);
    Some(recommendations(
        &state.model,
        pairs,
        ask.explain.then_some(ask.history),
    ))
}

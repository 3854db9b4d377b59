//! Placements: named serving configurations a merchant edits without a deploy. A placement
//! takes candidates from a strategy, keeps those its `filter` passes, multiplies the scores
//! of those a boost's `when` matches (and of items the visitor saw often without clicking,
//! `rotation`), caps how many items share an attribute value (`diversity`) and puts the best
//! items a promotion filter matches at fixed positions.
//!
//! Specs are checked when saved ([`Engine::check_placement`]: rules parsed and type-checked
//! against the catalog's facts) and compiled once per catalog and model
//! ([`Engine::set_placements`]; recompiled when either changes). Serving a placement
//! ([`Engine::place`]) evaluates the compiled rules per candidate.

use crate::answer::{Answer, Basis, Filters, Reason, Recommendation, check_k};
use crate::facts::{Attr, Facts, Type};
use crate::loaded::State;
use crate::rules::{Rule, Slot, SlotValue, compile};
use crate::{Engine, Error, MAX_K, Result};
use compact_str::CompactString;
use marquee_domain::{Event, ItemId, UserId};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// Where a placement's candidates come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The model's personal ranking (trending for a visitor it knows nothing of).
    Personal,
    /// Items similar to `item_id`.
    Similar,
    /// Items bought in the same orders as `item_id` or the cart's `items`.
    FrequentlyBoughtTogether,
    /// Items the users of `item_id` also interacted with, by how many did.
    AlsoViewed,
    /// What the user bought before that is due again by its typical interval.
    BuyAgain,
    /// The user's latest items, newest first.
    RecentlyViewed,
    Trending,
    /// The most interacted-with items, in `context.category` (or `item_id`'s category) if given.
    Popular,
    /// An anonymous session's recent `items`.
    Session,
}

impl Strategy {
    /// Strategies whose answers are about the user's own items: not filled up with trending
    /// items when short.
    fn own_items(self) -> bool {
        matches!(self, Strategy::BuyAgain | Strategy::RecentlyViewed)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Boost {
    pub when: String,
    pub factor: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Diversity {
    /// `category`, `genres` (the first genre) or `attributes.<key>`.
    pub attribute: String,
    pub max_per_value: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Promotion {
    pub filter: String,
    /// 1-based positions.
    pub positions: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    pub after_impressions: u32,
    pub within_hours: f64,
    pub factor: f32,
}

/// A placement as stored and edited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementSpec {
    pub strategy: Strategy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boosts: Vec<Boost>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diversity: Option<Diversity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion: Option<Promotion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
}

/// Why a placement spec was refused: the field (`filter`, `boosts[1].when`, ...), the
/// position in its rule when it is one, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {}{message}", position.map(|p| format!("at position {p}: ")).unwrap_or_default())]
pub struct SpecError {
    pub field: String,
    pub position: Option<usize>,
    pub message: String,
}

fn spec_error(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError {
        field: field.into(),
        position: None,
        message: message.into(),
    }
}

/// What the diversity cap groups by.
#[derive(Debug, Clone)]
enum GroupBy {
    Category,
    FirstGenre,
    Attribute(String),
}

/// A placement compiled against one catalog and model.
#[derive(Debug)]
pub(crate) struct Compiled {
    spec: PlacementSpec,
    filter: Option<Rule>,
    boosts: Vec<(Rule, f32)>,
    promotion: Option<(Rule, Vec<usize>)>,
    diversity: Option<(GroupBy, usize)>,
}

fn rule(field: &str, src: &str, facts: &Facts) -> Result<Rule, SpecError> {
    compile(src, facts).map_err(|e| SpecError {
        field: field.to_owned(),
        position: Some(e.position),
        message: e.message,
    })
}

fn compile_spec(spec: &PlacementSpec, facts: &Facts) -> Result<Compiled, SpecError> {
    if let Some(k) = spec.k
        && !(1..=MAX_K).contains(&k)
    {
        return Err(spec_error(
            "k",
            format!("must be between 1 and {MAX_K}, not {k}"),
        ));
    }
    let filter = spec
        .filter
        .as_deref()
        .map(|f| rule("filter", f, facts))
        .transpose()?;
    let mut boosts = Vec::new();
    for (n, b) in spec.boosts.iter().enumerate() {
        if !(b.factor.is_finite() && b.factor > 0.0) {
            return Err(spec_error(
                format!("boosts[{n}].factor"),
                format!("must be a positive number, not {}", b.factor),
            ));
        }
        boosts.push((
            rule(&format!("boosts[{n}].when"), &b.when, facts)?,
            b.factor,
        ));
    }
    let promotion = match &spec.promotion {
        None => None,
        Some(p) => {
            let k = spec.k.unwrap_or(10);
            let mut positions = p.positions.clone();
            positions.sort_unstable();
            if positions.is_empty() {
                return Err(spec_error(
                    "promotion.positions",
                    "name at least one position",
                ));
            }
            if positions.windows(2).any(|w| w[0] == w[1]) {
                return Err(spec_error("promotion.positions", "a position is repeated"));
            }
            if let Some(&bad) = positions.iter().find(|&&p| p == 0 || p > MAX_K) {
                return Err(spec_error(
                    "promotion.positions",
                    format!("positions count from 1 (up to k, {k}); {bad} is not one"),
                ));
            }
            Some((rule("promotion.filter", &p.filter, facts)?, positions))
        }
    };
    let diversity = match &spec.diversity {
        None => None,
        Some(d) => {
            if d.max_per_value == 0 {
                return Err(spec_error("diversity.max_per_value", "must be at least 1"));
            }
            let by = match d.attribute.as_str() {
                "category" => GroupBy::Category,
                "genres" => GroupBy::FirstGenre,
                other => match other.strip_prefix("attributes.") {
                    Some(key) if !key.is_empty() => match facts.attribute_type(key) {
                        Ok(Type::Str | Type::Num | Type::Bool) => {
                            GroupBy::Attribute(key.to_owned())
                        }
                        Ok(Type::List) => {
                            return Err(spec_error(
                                "diversity.attribute",
                                format!("{other} is a list; pick a single-valued attribute"),
                            ));
                        }
                        Err(e) => {
                            return Err(spec_error("diversity.attribute", format!("{other}: {e}")));
                        }
                    },
                    _ => {
                        return Err(spec_error(
                            "diversity.attribute",
                            format!(
                                "{other:?} is not an attribute; use category, genres or attributes.<key>"
                            ),
                        ));
                    }
                },
            };
            Some((by, d.max_per_value))
        }
    };
    if let Some(r) = &spec.rotation {
        if r.after_impressions == 0 {
            return Err(spec_error(
                "rotation.after_impressions",
                "must be at least 1",
            ));
        }
        if !(r.within_hours.is_finite() && r.within_hours > 0.0 && r.within_hours <= 24.0 * 90.0) {
            return Err(spec_error(
                "rotation.within_hours",
                "must be above 0 and at most 2160 (90 days)",
            ));
        }
        if !(r.factor.is_finite() && r.factor >= 0.0) {
            return Err(spec_error(
                "rotation.factor",
                "must be a number of at least 0",
            ));
        }
    }
    Ok(Compiled {
        spec: spec.clone(),
        filter,
        boosts,
        promotion,
        diversity,
    })
}

/// The placements and their compiled forms for one state of the engine.
#[derive(Default)]
pub(crate) struct Placements {
    specs: Arc<HashMap<String, PlacementSpec>>,
    /// The state generation they were compiled for.
    generation: u64,
    compiled: HashMap<String, Result<Arc<Compiled>, SpecError>>,
}

impl Placements {
    fn build(specs: Arc<HashMap<String, PlacementSpec>>, state: &State) -> Self {
        let compiled = specs
            .iter()
            .map(|(name, spec)| (name.clone(), compile_spec(spec, &state.facts).map(Arc::new)))
            .collect();
        Self {
            specs,
            generation: state.generation,
            compiled,
        }
    }
}

/// A request to a placement.
#[derive(Debug, Default)]
pub struct PlaceRequest<'a> {
    pub user: Option<&'a UserId>,
    /// The user's events since training (as for [`Engine::recommend`]).
    pub recent: &'a [Event],
    /// The item of an item page (`similar`, `frequently_bought_together`, `also_viewed`).
    pub item: Option<&'a ItemId>,
    /// A cart's or session's items.
    pub items: &'a [ItemId],
    /// Overrides the placement's k.
    pub k: Option<usize>,
    /// The request's context values (`context.<key>` in rules).
    pub context: &'a [(String, String)],
    /// Per item, how often the visitor was shown it without clicking within the rotation's
    /// window (see [`Engine::placement_rotation`]).
    pub shown_unclicked: &'a [(String, u32)],
    /// Now, in Unix ms (rules' `age_days`, buy-again intervals).
    pub now_ms: i64,
}

/// One candidate of a placement answer.
#[derive(Debug, Clone)]
struct Candidate {
    /// Fact index (`None`: neither the model nor the catalog knows it).
    fact: Option<usize>,
    /// A trending item filling a short answer: after every other candidate, never boosted.
    fallback: bool,
    rec: Recommendation,
}

impl Engine {
    /// Checks a placement against the current catalog: numbers in range, every rule parsed and
    /// type-checked, the diversity attribute single-valued.
    pub fn check_placement(&self, spec: &PlacementSpec) -> Result<(), SpecError> {
        compile_spec(spec, &self.state.load().facts).map(|_| ())
    }

    /// Replaces the placements served (compiled now, and again when the catalog or model
    /// changes).
    pub fn set_placements(&self, specs: HashMap<String, PlacementSpec>) {
        let state = self.state.load();
        self.placements
            .store(Arc::new(Placements::build(Arc::new(specs), &state)));
    }

    /// The placements served.
    pub fn placements(&self) -> Arc<HashMap<String, PlacementSpec>> {
        self.placements.load().specs.clone()
    }

    /// Whether a placement of this name is served.
    pub fn has_placement(&self, name: &str) -> bool {
        self.placements.load().specs.contains_key(name)
    }

    /// The rotation of placement `name`, if it has one (the caller counts what the visitor
    /// was shown within its window).
    pub fn placement_rotation(&self, name: &str) -> Option<Rotation> {
        self.placements.load().specs.get(name)?.rotation.clone()
    }

    fn compiled(&self, name: &str, state: &State) -> Result<Arc<Compiled>> {
        let mut set = self.placements.load_full();
        if set.generation != state.generation {
            let rebuilt = Arc::new(Placements::build(set.specs.clone(), state));
            // Only if nobody replaced the placements meanwhile (a save must never be undone
            // by a request that compiled the specs it had read before).
            self.placements.compare_and_swap(&set, rebuilt.clone());
            set = rebuilt;
        }
        match set.compiled.get(name) {
            None => Err(Error::UnknownPlacement(name.to_owned())),
            Some(Err(e)) => Err(Error::BrokenPlacement {
                name: name.to_owned(),
                error: e.clone(),
            }),
            Some(Ok(c)) => Ok(c.clone()),
        }
    }

    /// The answer of placement `name` for `req`.
    pub fn place(&self, name: &str, req: &PlaceRequest<'_>) -> Result<Answer> {
        let state = self.state.load_full();
        let placement = self.compiled(name, &state)?;
        let k = req.k.or(placement.spec.k).unwrap_or(10);
        check_k(k)?;
        let strategy = placement.spec.strategy;
        match strategy {
            Strategy::Similar | Strategy::AlsoViewed if req.item.is_none() => {
                return Err(Error::MissingInput {
                    strategy: strategy_name(strategy),
                    needs: "item_id",
                });
            }
            Strategy::FrequentlyBoughtTogether if req.item.is_none() && req.items.is_empty() => {
                return Err(Error::MissingInput {
                    strategy: strategy_name(strategy),
                    needs: "item_id or items",
                });
            }
            Strategy::Session if req.items.is_empty() => {
                return Err(Error::MissingInput {
                    strategy: strategy_name(strategy),
                    needs: "items",
                });
            }
            _ => {}
        }
        let values = self.slot_values(&state, &placement, req);
        // A pool a little larger than k first; when the rules leave too few, one four times
        // larger, then the largest.
        let mut pool = (2 * k + 12).min(MAX_K);
        loop {
            let (basis, mut candidates) = self.candidates(&state, strategy, req, pool)?;
            let full = candidates.len() >= pool;
            let (mut items, short) = arrange(&state, &placement, &candidates, k, req, &values);
            if short && full && pool < MAX_K {
                pool = (4 * pool).min(MAX_K);
                continue;
            }
            if short && !strategy.own_items() {
                candidates.extend(self.trending_filler(&state, &candidates, k, req));
                items = arrange(&state, &placement, &candidates, k, req, &values).0;
            }
            if basis == Basis::Personal {
                self.explain_items(req.user, req.recent, &mut items);
            }
            return Ok(Answer {
                model_version: state.model.artifact.manifest.version.clone(),
                basis,
                items,
            });
        }
    }

    fn slot_values<'a>(
        &self,
        state: &'a State,
        placement: &Compiled,
        req: &'a PlaceRequest<'a>,
    ) -> Vec<(Slot, Option<String>)> {
        let mut slots: Vec<Slot> = Vec::new();
        let rules = placement
            .filter
            .iter()
            .chain(placement.boosts.iter().map(|(r, _)| r))
            .chain(placement.promotion.iter().map(|(r, _)| r));
        for r in rules {
            for s in &r.slots {
                if !slots.contains(s) {
                    slots.push(s.clone());
                }
            }
        }
        slots
            .into_iter()
            .map(|s| {
                let v = match &s {
                    Slot::Context(k) => req
                        .context
                        .iter()
                        .find(|(key, _)| key == k)
                        .map(|(_, v)| v.clone()),
                    Slot::LastCategory => self
                        .latest_item(req.user.map(UserId::as_str), req.recent)
                        .and_then(|i| state.fact_index(&i))
                        .map(|i| state.facts.category[i])
                        .filter(|&c| c != crate::facts::NO_SYMBOL)
                        .map(|c| state.facts.name(c).to_owned()),
                };
                (s, v)
            })
            .collect()
    }

    /// The strategy's best `pool` candidates (hidden and out-of-stock items left out),
    /// scored and with their reasons.
    fn candidates(
        &self,
        state: &State,
        strategy: Strategy,
        req: &PlaceRequest<'_>,
        pool: usize,
    ) -> Result<(Basis, Vec<Candidate>)> {
        let from_answer = |a: Answer| {
            let basis = a.basis;
            let c = a
                .items
                .into_iter()
                .map(|rec| Candidate {
                    fact: state.fact_index(&rec.item),
                    fallback: false,
                    rec,
                })
                .collect();
            (basis, c)
        };
        let plain = Filters::default();
        Ok(match strategy {
            Strategy::Personal => {
                from_answer(self.recommend_explained(req.user, req.recent, pool, &plain, false)?)
            }
            Strategy::Similar => {
                from_answer(self.similar(req.item.expect("checked"), pool, &plain)?)
            }
            Strategy::Session => from_answer(self.session(req.items, pool, &plain)?),
            Strategy::Trending | Strategy::Popular => {
                let mut filters = Filters::default();
                if strategy == Strategy::Popular {
                    filters.category = req
                        .context
                        .iter()
                        .find(|(k, _)| k == "category")
                        .map(|(_, v)| v.clone())
                        .or_else(|| {
                            let i = state.fact_index(req.item?.as_str())?;
                            let c = state.facts.category[i];
                            (c != crate::facts::NO_SYMBOL).then(|| state.facts.name(c).to_owned())
                        });
                }
                let (basis, reason) = if strategy == Strategy::Trending {
                    (Basis::Trending, Reason::Trending)
                } else {
                    (Basis::Popular, Reason::Popular)
                };
                let scores = if strategy == Strategy::Trending {
                    &state.model.trending
                } else {
                    &state.model.popular
                };
                let mut items = crate::rank::SCRATCH.with_borrow_mut(|s| {
                    s.scores.clone_from(scores);
                    crate::rank::rank(
                        state,
                        &mut s.scores,
                        &[],
                        pool,
                        &filters,
                        None,
                        &mut s.blocked,
                    )
                })?;
                for r in &mut items {
                    r.reason = reason;
                }
                from_answer(Answer {
                    model_version: String::new(),
                    basis,
                    items,
                })
            }
            Strategy::FrequentlyBoughtTogether => {
                let shared = self.purchases.load();
                let p = shared
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let of: Vec<u32> = req
                    .item
                    .into_iter()
                    .chain(req.items)
                    .filter_map(|i| p.index(i.as_str()))
                    .collect();
                let mut counts = HashMap::new();
                p.together(&of, &mut counts);
                let scored = counts
                    .into_iter()
                    .map(|(i, n)| (p.names[i as usize].as_str(), n as f32, None));
                (
                    Basis::BoughtTogether,
                    best(state, scored, pool, Reason::BoughtTogether),
                )
            }
            Strategy::AlsoViewed => {
                let item = req.item.expect("checked");
                let m = &state.model;
                let history = &m.artifact.history;
                let i = history
                    .items
                    .get(item.as_str())
                    .ok_or_else(|| Error::UnknownItem(item.as_str().to_owned()))?;
                let counts = m.co_counts(i as usize);
                let scored = counts
                    .into_iter()
                    .map(|(j, n)| (history.items.id(j as usize), n as f32, None));
                (
                    Basis::AlsoViewed,
                    best(state, scored, pool, Reason::AlsoViewed),
                )
            }
            Strategy::BuyAgain => {
                let shared = self.purchases.load();
                let p = shared
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let bought = req
                    .user
                    .map(|u| p.bought_by(u.as_str()))
                    .unwrap_or_default();
                let scored = bought.into_iter().filter_map(|(i, (times, last))| {
                    let interval = p.typical_interval(i)?;
                    let since = (req.now_ms - last) as f32 / 86_400_000.0;
                    // Due-ness: 1 when the typical interval has passed; overdue items
                    // first, then those bought most often.
                    let due = (since / interval.max(1.0 / 24.0)).min(3.0);
                    let score = due + 0.01 * (times as f32).ln_1p();
                    Some((p.names[i as usize].as_str(), score, Some(interval)))
                });
                (Basis::BuyAgain, best(state, scored, pool, Reason::BuyAgain))
            }
            Strategy::RecentlyViewed => {
                let latest = self.latest_items(req.user.map(UserId::as_str), req.recent, pool);
                let n = latest.len() as f32;
                let scored = latest
                    .iter()
                    .enumerate()
                    .map(|(rank, id)| (id.as_str(), n - rank as f32, None));
                (
                    Basis::RecentlyViewed,
                    best(state, scored, pool, Reason::RecentlyViewed),
                )
            }
        })
    }

    /// Trending items to fill a short answer with (after every candidate of the strategy):
    /// not the user's training items, the request's items or a candidate already.
    fn trending_filler(
        &self,
        state: &State,
        candidates: &[Candidate],
        k: usize,
        req: &PlaceRequest<'_>,
    ) -> Vec<Candidate> {
        let mut seen: Vec<u32> = Vec::new();
        if let Some(u) = req.user {
            let history = &state.model.artifact.history;
            if let Some(row) = history.users.get(u.as_str()) {
                seen.extend_from_slice(history.row(row as usize).items);
            }
        }
        let Ok(trending) = crate::rank::SCRATCH.with_borrow_mut(|s| {
            s.scores.clone_from(&state.model.trending);
            crate::rank::rank(
                state,
                &mut s.scores,
                &seen,
                (4 * k + 32).min(MAX_K),
                &Filters::default(),
                None,
                &mut s.blocked,
            )
        }) else {
            return Vec::new();
        };
        trending
            .into_iter()
            .filter(|r| {
                !candidates.iter().any(|c| c.rec.item == r.item)
                    && req.item.is_none_or(|i| i.as_str() != r.item)
                    && !req.items.iter().any(|i| i.as_str() == r.item)
            })
            .map(|mut rec| {
                rec.reason = Reason::TrendingFallback;
                Candidate {
                    fact: state.fact_index(&rec.item),
                    fallback: true,
                    rec,
                }
            })
            .collect()
    }

    /// The user's items, newest first (events since training, then the training history by
    /// time), at most `n`, each once.
    pub(crate) fn latest_items(
        &self,
        user: Option<&str>,
        recent: &[Event],
        n: usize,
    ) -> Vec<String> {
        let state = self.state.load();
        let history = &state.model.artifact.history;
        let mut out: Vec<String> = Vec::new();
        let mut fresh: Vec<&Event> = recent.iter().filter(|e| e.item.is_some()).collect();
        fresh.sort_by_key(|e| std::cmp::Reverse(e.timestamp));
        for e in fresh {
            if let Some(i) = &e.item
                && !out.iter().any(|o| o == i.as_str())
            {
                out.push(i.as_str().to_owned());
            }
        }
        if let Some(u) = user.and_then(|u| history.users.get(u)) {
            let row = history.row(u as usize);
            let times = history.row_times(u as usize);
            let mut order: Vec<usize> = (0..row.len()).collect();
            order.sort_by(|&a, &b| (times[b], row.items[b]).cmp(&(times[a], row.items[a])));
            for j in order {
                let id = history.items.id(row.items[j] as usize);
                if !out.iter().any(|o| o == id) {
                    out.push(id.to_owned());
                }
            }
        }
        out.truncate(n);
        out
    }
}

fn strategy_name(s: Strategy) -> &'static str {
    match s {
        Strategy::Personal => "personal",
        Strategy::Similar => "similar",
        Strategy::FrequentlyBoughtTogether => "frequently_bought_together",
        Strategy::AlsoViewed => "also_viewed",
        Strategy::BuyAgain => "buy_again",
        Strategy::RecentlyViewed => "recently_viewed",
        Strategy::Trending => "trending",
        Strategy::Popular => "popular",
        Strategy::Session => "session",
    }
}

/// The best `pool` of scored ids (hidden and out-of-stock ones left out), best first, ties by
/// id.
fn best<'a>(
    state: &State,
    scored: impl Iterator<Item = (&'a str, f32, Option<f32>)>,
    pool: usize,
    reason: Reason,
) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = scored
        .filter_map(|(id, score, interval)| {
            let fact = state.fact_index(id);
            if let Some(f) = fact
                && (state.facts.hidden[f] || !state.facts.in_stock[f])
            {
                return None;
            }
            Some(Candidate {
                fact,
                fallback: false,
                rec: Recommendation {
                    item: CompactString::from(id),
                    score,
                    because: None,
                    reason,
                    typical_interval_days: interval,
                },
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.rec
            .score
            .total_cmp(&a.rec.score)
            .then_with(|| a.rec.item.cmp(&b.rec.item))
    });
    out.truncate(pool);
    out
}

/// A relative score (see `arrange`) multiplied by a boost factor.
fn boosted(score: f32, factor: f32) -> f32 {
    score * factor
}

/// The diversity group of an item (`None`: uncapped).
fn group_of(facts: &Facts, by: &GroupBy, column: Option<&[Attr]>, i: usize) -> Option<u64> {
    match by {
        GroupBy::Category => facts
            .category
            .get(i)
            .filter(|&&c| c != crate::facts::NO_SYMBOL)
            .map(|&c| u64::from(c)),
        GroupBy::FirstGenre => facts
            .genres
            .get(i)
            .filter(|(_, n)| *n > 0)
            .map(|&(s, _)| u64::from(facts.lists[s as usize])),
        GroupBy::Attribute(_) => match column?.get(i)? {
            Attr::Sym(s) => Some(u64::from(*s)),
            Attr::Num(n) => Some(n.to_bits()),
            Attr::Bool(b) => Some(u64::from(*b) + (1 << 40)),
            Attr::List(..) | Attr::Missing => None,
        },
    }
}

/// A rule's request values, resolved once per request.
fn resolve<'a>(
    facts: &'a Facts,
    rule: &Rule,
    values: &'a [(Slot, Option<String>)],
) -> Vec<SlotValue<'a>> {
    rule.slots
        .iter()
        .map(|s| {
            let text = values
                .iter()
                .find(|(x, _)| x == s)
                .and_then(|(_, v)| v.as_deref());
            SlotValue::new(facts, text)
        })
        .collect()
}

/// Applies the placement to the candidates: filter, boosts, rotation, then diversity and
/// promotions while taking the best k. Returns the answer and whether the candidates fell
/// short of k items or of the promotion's positions (more candidates could help).
fn arrange(
    state: &State,
    placement: &Compiled,
    candidates: &[Candidate],
    k: usize,
    req: &PlaceRequest<'_>,
    values: &[(Slot, Option<String>)],
) -> (Vec<Recommendation>, bool) {
    let facts = &state.facts;
    let filter_values = placement
        .filter
        .as_ref()
        .map(|r| resolve(facts, r, values))
        .unwrap_or_default();
    let filter_env = placement
        .filter
        .as_ref()
        .map(|r| (r, r.env(facts, req.now_ms, &filter_values)));
    let boost_values: Vec<Vec<SlotValue<'_>>> = placement
        .boosts
        .iter()
        .map(|(r, _)| resolve(facts, r, values))
        .collect();
    let boost_envs: Vec<_> = placement
        .boosts
        .iter()
        .zip(&boost_values)
        .map(|((r, f), v)| (r, *f, r.env(facts, req.now_ms, v)))
        .collect();
    let promo_values = placement
        .promotion
        .as_ref()
        .map(|(r, _)| resolve(facts, r, values))
        .unwrap_or_default();
    let promo = placement
        .promotion
        .as_ref()
        .map(|(r, p)| (r, p, r.env(facts, req.now_ms, &promo_values)));
    let rotation = placement.spec.rotation.as_ref();
    // The items rotation demotes, looked up once rather than per candidate.
    let rotated: std::collections::HashSet<&str> = rotation
        .map(|rot| {
            req.shown_unclicked
                .iter()
                .filter(|(_, n)| *n >= rot.after_impressions)
                .map(|(id, _)| id.as_str())
                .collect()
        })
        .unwrap_or_default();

    // With boosts or rotation, scores become relative first (the pool's best 1, its worst
    // 0.01), so that a factor means the same for every model: a factor above 1 moves an
    // item up, 0 puts it below every other candidate.
    let relative = !placement.boosts.is_empty() || rotation.is_some();
    let (lo, hi) = candidates
        .iter()
        .filter(|c| !c.fallback && c.rec.score.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), c| {
            (lo.min(c.rec.score), hi.max(c.rec.score))
        });
    let rescale = |s: f32| {
        if !relative {
            s
        } else if hi > lo {
            0.01 + 0.99 * (s - lo) / (hi - lo)
        } else {
            1.0
        }
    };
    let mut kept: Vec<(Candidate, bool)> = Vec::with_capacity(candidates.len());
    for c in candidates {
        let mut c = c.clone();
        if !c.fallback {
            c.rec.score = rescale(c.rec.score);
        }
        let Some(i) = c.fact else {
            // Neither the model nor the catalog knows it: only an unfiltered placement shows it.
            if placement.filter.is_none() {
                kept.push((c, false));
            }
            continue;
        };
        if let Some((r, env)) = &filter_env
            && !r.matches(env, i)
        {
            continue;
        }
        for (r, factor, env) in boost_envs.iter().filter(|_| !c.fallback) {
            if r.matches(env, i) {
                c.rec.score = boosted(c.rec.score, *factor);
            }
        }
        if let Some(rot) = rotation
            && !c.fallback
            && rotated.contains(c.rec.item.as_str())
        {
            c.rec.score = boosted(c.rec.score, rot.factor);
        }
        let promoted = promo.as_ref().is_some_and(|(r, _, env)| r.matches(env, i));
        kept.push((c, promoted));
    }
    kept.sort_by(|a, b| {
        (a.0.fallback.cmp(&b.0.fallback))
            .then_with(|| b.0.rec.score.total_cmp(&a.0.rec.score))
            .then_with(|| a.0.rec.item.cmp(&b.0.rec.item))
    });
    let column = match &placement.diversity {
        Some((GroupBy::Attribute(key), _)) => facts.attributes.get(key).map(|c| &c.values[..]),
        _ => None,
    };
    let mut groups: Vec<(u64, usize)> = Vec::new();
    let mut admit = |c: &Candidate, force: bool| -> bool {
        let Some((by, max)) = &placement.diversity else {
            return true;
        };
        let Some(g) = c.fact.and_then(|i| group_of(facts, by, column, i)) else {
            return true;
        };
        match groups.iter_mut().find(|(x, _)| *x == g) {
            Some((_, n)) if *n >= *max && !force => false,
            Some((_, n)) => {
                *n += 1;
                true
            }
            None => {
                groups.push((g, 1));
                true
            }
        }
    };
    // Promotions first: the best promoted items take their positions.
    let mut slots: Vec<Option<Recommendation>> = vec![None; k];
    let mut short = false;
    let mut used = vec![false; kept.len()];
    if let Some((_, positions, _)) = &promo {
        let mut wanted = positions.iter().filter(|&&p| p <= k).peekable();
        for (n, (c, promoted)) in kept.iter().enumerate() {
            if wanted.peek().is_none() {
                break;
            }
            if *promoted && admit(c, true) {
                let p = *wanted.next().expect("peeked");
                let mut rec = c.rec.clone();
                rec.reason = Reason::Promoted;
                slots[p - 1] = Some(rec);
                used[n] = true;
            }
        }
        short |= wanted.peek().is_some();
    }
    let mut next = 0;
    for slot in slots.iter_mut().filter(|s| s.is_none()) {
        while next < kept.len() && (used[next] || !admit(&kept[next].0, false)) {
            next += 1;
        }
        if next == kept.len() {
            short = true;
            break;
        }
        *slot = Some(kept[next].0.rec.clone());
        used[next] = true;
    }
    (slots.into_iter().flatten().collect(), short)
}

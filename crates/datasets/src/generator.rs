//! A seeded synthetic store: users with latent tastes, a catalog with categories and prices,
//! and browsing sessions of views, carts, wishlists, purchases (with orders) and ratings drawn
//! from those tastes, so that a model has something real to learn.
//!
//! The model behind the data: every item has a latent vector near its category's centre and a
//! long-tailed popularity; every user belongs to one of a few taste groups with a latent
//! vector. A user picks items with probability proportional to popularity^0.5 ×
//! exp(5 · taste·item), now and then (10%) just by popularity. Within a session a viewed item
//! is carted with a probability that grows with affinity, carted items are bought or removed,
//! and bought items are sometimes rated with stars that follow affinity.
//!
//! The same [`GeneratorConfig`] (seed included) gives the same store on every machine: the
//! random source is this crate's own [`SeededRng`], not a dependency whose stream may change.

use crate::rng::{SeededRng, WeightedIndex};
use crate::{Bundle, Result};
use chrono::{TimeDelta, TimeZone, Utc};
use marquee_domain::{
    Actor, Currency, Event, EventId, EventKind, Item, ItemId, Money, Order, OrderId, OrderLine,
    OrderStatus, Timestamp, User, UserId,
};

/// Latent dimensions of the planted tastes.
const DIM: usize = 8;
/// Events per chunk handed to the sink.
const CHUNK: usize = 100_000;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    pub seed: u64,
    pub users: usize,
    pub items: usize,
    /// Exact number of events to generate.
    pub events: usize,
    /// Number of taste groups users are drawn from.
    pub taste_groups: usize,
    /// The time of the last event; sessions spread over `days` before it.
    pub end: Timestamp,
    pub days: u32,
    pub currency: Currency,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            users: 1_000,
            items: 2_000,
            events: 100_000,
            taste_groups: 12,
            end: Utc
                .with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
                .single()
                .unwrap_or_default(),
            days: 180,
            currency: Currency::new("EUR").unwrap_or_else(|_| unreachable!("EUR is valid")),
        }
    }
}

/// Categories: name, title nouns, median price in major units.
const CATEGORIES: [(&str, [&str; 6], f64); 12] = [
    (
        "books",
        ["Novel", "Cookbook", "Atlas", "Memoir", "Anthology", "Guide"],
        18.0,
    ),
    (
        "music",
        [
            "Vinyl",
            "Album",
            "Songbook",
            "Box Set",
            "Single",
            "Live Record",
        ],
        22.0,
    ),
    (
        "films",
        [
            "Blu-ray",
            "Documentary",
            "Box Set",
            "Classic",
            "Thriller",
            "Comedy",
        ],
        15.0,
    ),
    (
        "electronics",
        [
            "Headphones",
            "Speaker",
            "Charger",
            "Keyboard",
            "Camera",
            "Tablet",
        ],
        89.0,
    ),
    (
        "home",
        ["Lamp", "Cushion", "Vase", "Rug", "Clock", "Mirror"],
        35.0,
    ),
    (
        "kitchen",
        ["Pan", "Knife", "Teapot", "Mug", "Grinder", "Bowl"],
        28.0,
    ),
    (
        "garden",
        [
            "Planter",
            "Hose",
            "Trowel",
            "Bird Feeder",
            "Lantern",
            "Bench",
        ],
        40.0,
    ),
    (
        "toys",
        [
            "Puzzle",
            "Board Game",
            "Plush Bear",
            "Kite",
            "Train Set",
            "Blocks",
        ],
        25.0,
    ),
    (
        "fashion",
        ["Scarf", "Jacket", "Sneakers", "Hat", "Belt", "Sweater"],
        55.0,
    ),
    (
        "beauty",
        [
            "Serum",
            "Perfume",
            "Lipstick",
            "Soap",
            "Face Mask",
            "Lotion",
        ],
        24.0,
    ),
    (
        "sports",
        [
            "Yoga Mat",
            "Bottle",
            "Running Shoes",
            "Racket",
            "Dumbbell",
            "Backpack",
        ],
        45.0,
    ),
    (
        "games",
        [
            "Strategy Game",
            "Card Game",
            "Controller",
            "Adventure Game",
            "Racing Game",
            "Dice Set",
        ],
        39.0,
    ),
];

const ADJECTIVES: [&str; 24] = [
    "Amber", "Bold", "Calm", "Classic", "Cosy", "Crimson", "Daring", "Elegant", "Golden",
    "Handmade", "Indigo", "Lunar", "Modern", "Nordic", "Olive", "Pocket", "Quiet", "Rustic",
    "Silver", "Sunny", "Urban", "Velvet", "Wild", "Zen",
];

const COUNTRIES: [(&str, f64); 8] = [
    ("Germany", 0.25),
    ("France", 0.18),
    ("United Kingdom", 0.17),
    ("South Korea", 0.12),
    ("Netherlands", 0.08),
    ("Spain", 0.08),
    ("Italy", 0.07),
    ("Poland", 0.05),
];

/// What was generated in total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GeneratedCounts {
    pub items: usize,
    pub users: usize,
    pub orders: usize,
    pub events: usize,
}

struct World {
    item_vectors: Vec<[f32; DIM]>,
    prices: Vec<i64>,
    user_vectors: Vec<[f32; DIM]>,
    user_group: Vec<usize>,
    group_choice: Vec<WeightedIndex>,
    popular_choice: WeightedIndex,
    activity: WeightedIndex,
}

fn dot(a: &[f32; DIM], b: &[f32; DIM]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn random_vector(rng: &mut SeededRng, scale: f64) -> [f32; DIM] {
    let mut v = [0f32; DIM];
    for x in &mut v {
        *x = (rng.normal() * scale) as f32;
    }
    v
}

fn normalise(mut v: [f32; DIM]) -> [f32; DIM] {
    let n = dot(&v, &v).sqrt().max(1e-6);
    for x in &mut v {
        *x /= n;
    }
    v
}

/// Generates a store and hands it to `sink` in chunks: first the catalog and the users, then
/// events and orders, [`CHUNK`] events at a time. Stops at the first error of the sink.
pub fn generate(
    config: &GeneratorConfig,
    mut sink: impl FnMut(Bundle) -> Result<()>,
) -> Result<GeneratedCounts> {
    let mut root = SeededRng::new(config.seed);
    let mut rng_catalog = root.fork(1);
    let mut rng_users = root.fork(2);
    let mut rng_sessions = root.fork(3);
    let n_items = config.items.max(1);
    let n_users = config.users.max(1);
    let groups = config.taste_groups.max(1);
    let start = config.end - TimeDelta::days(i64::from(config.days.max(1)));

    // Catalog.
    let centres: Vec<[f32; DIM]> = (0..CATEGORIES.len())
        .map(|_| normalise(random_vector(&mut rng_catalog, 1.0)))
        .collect();
    let mut popularity_rank: Vec<usize> = (0..n_items).collect();
    rng_catalog.shuffle(&mut popularity_rank);
    let mut items = Vec::with_capacity(n_items);
    let mut item_vectors = Vec::with_capacity(n_items);
    let mut prices = Vec::with_capacity(n_items);
    let mut popularity = Vec::with_capacity(n_items);
    for (i, rank) in popularity_rank.iter().enumerate() {
        let c = rng_catalog.index(CATEGORIES.len());
        let (category, nouns, median) = CATEGORIES[c];
        let mut v = centres[c];
        let noise = random_vector(&mut rng_catalog, 0.3);
        for (x, n) in v.iter_mut().zip(noise) {
            *x += n;
        }
        item_vectors.push(normalise(v));
        let price_major = (median * (rng_catalog.normal() * 0.5).exp()).max(0.5);
        let minor = Money::from_major((price_major * 10.0).round() / 10.0 - 0.01, config.currency)
            .map_or(99, |m| m.minor.max(1));
        prices.push(minor);
        popularity.push(1.0 / ((rank + 1) as f64).powf(0.9));
        let title = format!(
            "{} {}",
            ADJECTIVES[rng_catalog.index(ADJECTIVES.len())],
            nouns[rng_catalog.index(nouns.len())]
        );
        let created = start - TimeDelta::days(rng_catalog.below(365) as i64);
        let mut item = Item::new(
            ItemId::new(format!("i{i}"))
                .unwrap_or_else(|_| unreachable!("generated ids are valid")),
            title,
            category,
            created,
        );
        item.price = Some(Money::new(minor, config.currency));
        item.in_stock = !rng_catalog.chance(0.05);
        item.hidden = rng_catalog.chance(0.01);
        items.push(item);
    }

    // Users and their planted tastes.
    let group_vectors: Vec<[f32; DIM]> = (0..groups)
        .map(|_| normalise(random_vector(&mut rng_users, 1.0)))
        .collect();
    let country_choice = WeightedIndex::new(COUNTRIES.iter().map(|c| c.1))
        .unwrap_or_else(|| unreachable!("weights are positive"));
    let mut users = Vec::with_capacity(n_users);
    let mut user_vectors = Vec::with_capacity(n_users);
    let mut user_group = Vec::with_capacity(n_users);
    let mut activity = Vec::with_capacity(n_users);
    for u in 0..n_users {
        let g = rng_users.index(groups);
        let mut v = group_vectors[g];
        let noise = random_vector(&mut rng_users, 0.3);
        for (x, n) in v.iter_mut().zip(noise) {
            *x += n;
        }
        user_vectors.push(normalise(v));
        user_group.push(g);
        activity.push((rng_users.normal() * 0.9).exp());
        let created = start - TimeDelta::days(rng_users.below(730) as i64);
        let mut user = User::new(
            UserId::new(format!("u{u}"))
                .unwrap_or_else(|_| unreachable!("generated ids are valid")),
            created,
        );
        user.country = Some(
            COUNTRIES[country_choice.sample(&mut rng_users)]
                .0
                .to_owned(),
        );
        user.marketing_consent = rng_users.chance(0.65);
        user.email = Some(format!("u{u}@example.com"));
        users.push(user);
    }
    let group_choice = group_vectors
        .iter()
        .map(|g| {
            WeightedIndex::new(
                item_vectors
                    .iter()
                    .zip(&popularity)
                    .map(|(v, p)| p.powf(0.5) * f64::from(5.0 * dot(g, v)).exp()),
            )
            .unwrap_or_else(|| unreachable!("weights are positive"))
        })
        .collect();
    let world = World {
        item_vectors,
        prices,
        user_vectors,
        user_group,
        group_choice,
        popular_choice: WeightedIndex::new(popularity.iter().copied())
            .unwrap_or_else(|| unreachable!("weights are positive")),
        activity: WeightedIndex::new(activity)
            .unwrap_or_else(|| unreachable!("weights are positive")),
    };
    let mut counts = GeneratedCounts {
        items: items.len(),
        users: users.len(),
        ..GeneratedCounts::default()
    };
    sink(Bundle {
        items,
        users,
        ..Bundle::default()
    })?;

    // Sessions.
    let span_ms = (config.end - start).num_milliseconds().max(1) as u64;
    let mut chunk = Bundle::default();
    let mut session_no = 0u64;
    while counts.events < config.events {
        let u = world.activity.sample(&mut rng_sessions);
        let mut t = start + TimeDelta::milliseconds(rng_sessions.below(span_ms) as i64);
        let views = 1 + rng_sessions.exponential(4.0) as usize;
        let mut session_events = Vec::new();
        let mut bought: Vec<(usize, u32)> = Vec::new();
        let push = |events: &mut Vec<(EventKind, usize, Option<f32>, Timestamp)>,
                    kind,
                    item,
                    value,
                    at: &mut Timestamp,
                    rng: &mut SeededRng| {
            events.push((kind, item, value, *at));
            *at += TimeDelta::seconds(5 + rng.below(120) as i64);
        };
        for _ in 0..views {
            let item = if rng_sessions.chance(0.10) {
                world.popular_choice.sample(&mut rng_sessions)
            } else {
                world.group_choice[world.user_group[u]].sample(&mut rng_sessions)
            };
            let affinity = dot(&world.user_vectors[u], &world.item_vectors[item]);
            push(
                &mut session_events,
                EventKind::View,
                item,
                None,
                &mut t,
                &mut rng_sessions,
            );
            if rng_sessions.chance(0.3) {
                let seconds = (rng_sessions.exponential(40.0 * f64::from(1.0 + affinity.max(0.0))))
                    .min(3_600.0);
                push(
                    &mut session_events,
                    EventKind::Dwell,
                    item,
                    Some(seconds.round() as f32),
                    &mut t,
                    &mut rng_sessions,
                );
            }
            if rng_sessions.chance(0.04) {
                push(
                    &mut session_events,
                    EventKind::Wishlist,
                    item,
                    None,
                    &mut t,
                    &mut rng_sessions,
                );
            }
            let cart_p = (0.12 + 0.25 * f64::from(affinity)).clamp(0.02, 0.5);
            if rng_sessions.chance(cart_p) {
                push(
                    &mut session_events,
                    EventKind::AddToCart,
                    item,
                    None,
                    &mut t,
                    &mut rng_sessions,
                );
                if rng_sessions.chance(0.55) {
                    let qty = if rng_sessions.chance(0.8) {
                        1
                    } else {
                        2 + rng_sessions.below(3) as u32
                    };
                    bought.push((item, qty));
                } else if rng_sessions.chance(0.3) {
                    push(
                        &mut session_events,
                        EventKind::RemoveFromCart,
                        item,
                        None,
                        &mut t,
                        &mut rng_sessions,
                    );
                }
            }
        }
        let order_id = format!("o{session_no}");
        for &(item, _) in &bought {
            push(
                &mut session_events,
                EventKind::Purchase,
                item,
                None,
                &mut t,
                &mut rng_sessions,
            );
        }
        for &(item, _) in &bought {
            if rng_sessions.chance(0.3) {
                let affinity = f64::from(dot(&world.user_vectors[u], &world.item_vectors[item]));
                let stars = (3.2 + 2.2 * affinity + 0.6 * rng_sessions.normal()).clamp(0.5, 5.0);
                let stars = ((stars * 2.0).round() / 2.0) as f32;
                let mut later = t + TimeDelta::days(1 + rng_sessions.below(10) as i64);
                later = later.min(config.end);
                push(
                    &mut session_events,
                    EventKind::Rating,
                    item,
                    Some(stars),
                    &mut later,
                    &mut rng_sessions,
                );
            }
        }
        // Stop exactly at the requested number of events.
        session_events.truncate(config.events - counts.events);
        let purchased: Vec<usize> = session_events
            .iter()
            .filter(|e| e.0 == EventKind::Purchase)
            .map(|e| e.1)
            .collect();
        let user_id = &users_id(u);
        for (n, (kind, item, value, at)) in session_events.iter().enumerate() {
            let context =
                (*kind == EventKind::Purchase).then(|| serde_json::json!({ "order_id": order_id }));
            chunk.events.push(Event {
                id: EventId::new(format!("g{}:{session_no}:{n}", config.seed))
                    .unwrap_or_else(|_| unreachable!("generated ids are valid")),
                actor: Actor::User(user_id.clone()),
                item: Some(
                    ItemId::new(format!("i{item}")).unwrap_or_else(|_| unreachable!("valid")),
                ),
                kind: *kind,
                value: *value,
                timestamp: (*at).min(config.end),
                context,
            });
        }
        counts.events += session_events.len();
        if !purchased.is_empty() {
            let lines = bought
                .iter()
                .filter(|(item, _)| purchased.contains(item))
                .map(|&(item, qty)| OrderLine {
                    item: ItemId::new(format!("i{item}")).unwrap_or_else(|_| unreachable!("valid")),
                    quantity: qty,
                    unit_price: Money::new(world.prices[item], config.currency),
                })
                .collect();
            let roll = rng_sessions.f64();
            let status = match roll {
                r if r < 0.06 => OrderStatus::Cancelled,
                r if r < 0.10 => OrderStatus::Refunded,
                r if r < 0.15 => OrderStatus::Placed,
                r if r < 0.40 => OrderStatus::Paid,
                _ => OrderStatus::Shipped,
            };
            let first_purchase = session_events
                .iter()
                .find(|e| e.0 == EventKind::Purchase)
                .map_or(t, |e| e.3);
            chunk.orders.push(Order {
                id: OrderId::new(order_id).unwrap_or_else(|_| unreachable!("valid")),
                user: Some(user_id.clone()),
                created_at: first_purchase.min(config.end),
                status,
                lines,
            });
            counts.orders += 1;
        }
        session_no += 1;
        if chunk.events.len() >= CHUNK {
            sink(std::mem::take(&mut chunk))?;
        }
    }
    if !chunk.events.is_empty() || !chunk.orders.is_empty() {
        sink(chunk)?;
    }
    Ok(counts)
}

fn users_id(u: usize) -> UserId {
    UserId::new(format!("u{u}")).unwrap_or_else(|_| unreachable!("generated ids are valid"))
}

/// Generates everything into one bundle (for small stores and tests).
pub fn generate_bundle(config: &GeneratorConfig) -> Result<Bundle> {
    let mut all = Bundle::default();
    generate(config, |mut chunk| {
        all.items.append(&mut chunk.items);
        all.users.append(&mut chunk.users);
        all.orders.append(&mut chunk.orders);
        all.events.append(&mut chunk.events);
        Ok(())
    })?;
    Ok(all)
}

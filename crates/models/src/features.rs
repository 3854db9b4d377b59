//! Content features of a catalog item for the two-tower model's item tower, by the hashing
//! trick: every feature is a bucket of one shared table, so a brand-new item (or a category
//! never seen in training) maps to buckets with no vocabulary to store or keep in sync.
//!
//! Fields, each summing to weight 1 so that no field drowns the others: the category; the
//! genres/tags (1/n each); the price band (`none`, or ⌊log₂(price in major units)⌋ + 1, so
//! 1–2, 2–4, 4–8, …); the words of the title, lower-cased, split on anything not alphanumeric
//! (1/n each, at most [`MAX_TITLE_WORDS`]; a film's year is a word too). Bucket of a feature:
//! FNV-1a 64 of `field:value` modulo the number of buckets — stable across runs, platforms and
//! releases, as the exported weights require.

use marquee_domain::{Item, Money};

/// Title words beyond this many are ignored.
pub const MAX_TITLE_WORDS: usize = 16;

/// The hashed features of one item: (bucket, weight) pairs, sorted by bucket, repeats summed.
pub type FeatureList = Vec<(u32, f32)>;

fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

fn bucket(field: &str, value: &str, buckets: u32) -> u32 {
    (fnv1a(&[field.as_bytes(), b":", value.as_bytes()]) % u64::from(buckets.max(1))) as u32
}

/// The price band of a price: 0 for no price, 1 below one major unit, then one band per
/// doubling (1–2, 2–4, 4–8, … major units).
pub fn price_band(price: Option<&Money>) -> u32 {
    match price {
        None => 0,
        Some(p) => match p.minor / p.currency.minor_per_major().max(1) {
            ..1 => 1,
            major => 2 + major.ilog2().min(30),
        },
    }
}

/// The hashed features of `item` over `buckets` buckets.
pub fn item_features(item: &Item, buckets: u32) -> FeatureList {
    let mut out: FeatureList = Vec::new();
    let category = item.category.trim().to_lowercase();
    out.push((bucket("c", &category, buckets), 1.0));
    let genres: Vec<String> = item
        .genres
        .iter()
        .map(|g| g.trim().to_lowercase())
        .filter(|g| !g.is_empty())
        .collect();
    for g in &genres {
        out.push((bucket("g", g, buckets), 1.0 / genres.len() as f32));
    }
    let band = price_band(item.price.as_ref());
    out.push((bucket("p", &band.to_string(), buckets), 1.0));
    let title = item.title.to_lowercase();
    let words: Vec<&str> = title
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(MAX_TITLE_WORDS)
        .collect();
    for w in &words {
        out.push((bucket("w", w, buckets), 1.0 / words.len() as f32));
    }
    out.sort_unstable_by_key(|&(b, _)| b);
    let mut merged: FeatureList = Vec::with_capacity(out.len());
    for (b, w) in out {
        match merged.last_mut() {
            Some((lb, lw)) if *lb == b => *lw += w,
            _ => merged.push((b, w)),
        }
    }
    merged
}

/// The features of an item the catalog does not describe: those of an empty entry (no
/// category, genres, price or title words).
pub fn features_of_unknown(buckets: u32) -> FeatureList {
    let mut out = vec![
        (bucket("c", "", buckets), 1.0),
        (bucket("p", "0", buckets), 1.0),
    ];
    out.sort_unstable_by_key(|&(b, _)| b);
    if out[0].0 == out[1].0 {
        out[0].1 += 1.0;
        out.truncate(1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use marquee_domain::{Currency, ItemId};

    fn item(title: &str, category: &str, genres: &[&str], price: Option<i64>) -> Item {
        Item {
            id: ItemId::new("x").expect("id"),
            title: title.into(),
            category: category.into(),
            genres: genres.iter().map(|g| (*g).to_owned()).collect(),
            price: price.map(|minor| Money {
                minor,
                currency: Currency::new("EUR").expect("currency"),
            }),
            in_stock: true,
            hidden: false,
            created_at: chrono::DateTime::UNIX_EPOCH,
            attributes: serde_json::json!({}),
        }
    }

    #[test]
    fn the_same_item_always_gets_the_same_features() {
        let make = || {
            item(
                "Toy Story (1995)",
                "Animation",
                &["Children", "Comedy"],
                None,
            )
        };
        let f = item_features(&make(), 4096);
        assert_eq!(f, item_features(&make(), 4096));
        // Category, two genres, the price band, three title words.
        assert_eq!(f.len(), 7);
        let total: f32 = f.iter().map(|&(_, w)| w).sum();
        assert!((total - 4.0).abs() < 1e-5, "each field sums to 1: {total}");
        assert!(f.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(f.iter().all(|&(b, _)| b < 4096));
    }

    #[test]
    fn features_follow_the_catalog_fields_not_the_id() {
        let a = item("Heat (1995)", "Action", &["Crime"], Some(999));
        let b = item("Heat (1995)", "Action", &["Crime"], Some(1_099));
        assert_eq!(item_features(&a, 512), item_features(&b, 512));
        let c = item("Heat (1995)", "Drama", &["Crime"], Some(999));
        assert_ne!(item_features(&a, 512), item_features(&c, 512));
        let band = |minor| price_band(item("", "", &[], Some(minor)).price.as_ref());
        assert_eq!(price_band(None), 0);
        assert_eq!(band(50), 1);
        assert_eq!(band(150), 2);
        assert_eq!(band(250), 3);
        assert_eq!(band(i64::MAX), 32);
    }
}

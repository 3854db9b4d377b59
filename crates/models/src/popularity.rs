//! Non-personalised baselines: every user gets the same ranking.
//!
//! - [`Popularity`]: items by how many users interacted with them in training.
//! - [`Trending`]: items by recent growth. With `t` the newest interaction time in training
//!   and `W` the window, `recent` counts users whose latest interaction with the item falls in
//!   `(t − W, t]`, `previous` those in `(t − 2W, t − W]`, and the score is
//!   `recent × (recent + 1) / (previous + 1)`: many recent users, more than before.

use crate::{Error, Interactions, Result, Row, Scorer};

/// Items scored by how many users interacted with them in training.
#[derive(Debug, Clone, PartialEq)]
pub struct Popularity {
    pub scores: Vec<f32>,
}

impl Popularity {
    pub fn fit(train: &Interactions) -> Self {
        Self {
            scores: train.item_counts().into_iter().map(|c| c as f32).collect(),
        }
    }
}

impl Scorer for Popularity {
    fn name(&self) -> &'static str {
        "popularity"
    }

    fn n_items(&self) -> usize {
        self.scores.len()
    }

    fn score(&self, _user: usize, _history: Row<'_>, out: &mut [f32]) {
        out.copy_from_slice(&self.scores);
    }
}

/// Trending hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrendingParams {
    /// Length of the recent window, in days.
    pub window_days: f64,
}

impl Default for TrendingParams {
    fn default() -> Self {
        Self { window_days: 7.0 }
    }
}

/// Items scored by recent growth.
#[derive(Debug, Clone, PartialEq)]
pub struct Trending {
    pub params: TrendingParams,
    pub scores: Vec<f32>,
}

impl Trending {
    /// Fits on the pairs' times; refuses data without times.
    pub fn fit(train: &Interactions, params: TrendingParams) -> Result<Self> {
        if params.window_days.is_nan() || params.window_days <= 0.0 {
            return Err(Error::Parameter {
                name: "trending.window_days",
                message: "must be positive".into(),
            });
        }
        if !train.has_times() {
            return Err(Error::NoTimes);
        }
        let (_, indices, _, times) = train.parts();
        let newest = times.iter().copied().max().unwrap_or(0);
        let window = (params.window_days * 86_400_000.0) as i64;
        let mut recent = vec![0u32; train.n_items()];
        let mut previous = vec![0u32; train.n_items()];
        for (&i, &t) in indices.iter().zip(times) {
            let age = newest - t;
            if age < window {
                recent[i as usize] += 1;
            } else if age < 2 * window {
                previous[i as usize] += 1;
            }
        }
        let scores = recent
            .iter()
            .zip(&previous)
            .map(|(&r, &p)| {
                let r = f64::from(r);
                (r * (r + 1.0) / (f64::from(p) + 1.0)) as f32
            })
            .collect();
        Ok(Self { params, scores })
    }
}

impl Scorer for Trending {
    fn name(&self) -> &'static str {
        "trending"
    }

    fn n_items(&self) -> usize {
        self.scores.len()
    }

    fn score(&self, _user: usize, _history: Row<'_>, out: &mut [f32]) {
        out.copy_from_slice(&self.scores);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trending_rewards_recent_growth() {
        const DAY: i64 = 86_400_000;
        let now = 100 * DAY;
        let mut rows = Vec::new();
        // "steady": 3 users last week and 3 the week before; "rising": 3 last week, none
        // before; "old": 5 users a month ago.
        let users: Vec<String> = (0..10).map(|u| format!("u{u}")).collect();
        for u in &users[..3] {
            rows.push((u.as_str(), "steady", 1.0, now - DAY));
            rows.push((u.as_str(), "rising", 1.0, now - 2 * DAY));
        }
        for u in &users[3..6] {
            rows.push((u.as_str(), "steady", 1.0, now - 9 * DAY));
        }
        for u in &users[5..10] {
            rows.push((u.as_str(), "old", 1.0, now - 30 * DAY));
        }
        rows.push(("u9", "clock", 1.0, now));
        let x = Interactions::from_timed_triplets(rows);
        let t = Trending::fit(&x, TrendingParams::default()).unwrap();
        let score = |id: &str| t.scores[x.items.get(id).unwrap() as usize];
        assert_eq!(score("rising"), 12.0); // 3 · 4 / 1
        assert_eq!(score("steady"), 3.0); // 3 · 4 / 4
        assert_eq!(score("old"), 0.0);
        assert!(
            Trending::fit(
                &Interactions::from_triplets([("u", "i", 1.0)]),
                TrendingParams::default()
            )
            .is_err()
        );
    }
}

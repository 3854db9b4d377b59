//! Closing the loop: impressions (what a recommendation answer showed, to whom, where and from
//! which model), attributions (a click, add to cart, purchase or order line credited to one
//! answer), the recommendation KPIs computed from both, and A/B experiments.
//!
//! Impressions are stored a batch per row: the batch's answers as lines of tab-separated
//! fields (ids never hold control characters, placements and experiment names are checked by
//! the caller), the items of an answer separated by `\x1f`. Recording an answer therefore
//! costs a line of text, not a row with indexes. Beside each batch the writer adds the answers
//! per hour and group (`impression_counts`) and the visitors it saw first per day and group
//! (`impression_visitors`), which is all the KPIs read of impressions.

use crate::{Error, Result};
use marquee_domain::{ItemId, SessionId, Timestamp, UserId};
use std::fmt::Write as _;

/// One recommendation answer as served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Impression {
    /// The answer's `recommendation_id`: [`RecommendationId`] as text.
    pub id: RecommendationId,
    pub at: Timestamp,
    /// Where it was shown (`recommendations`, `home:top_picks`, `similar`, `session`, or the
    /// caller's own name).
    pub placement: String,
    pub user: Option<UserId>,
    pub session: Option<SessionId>,
    pub model_version: String,
    pub experiment: Option<String>,
    pub variant: Option<String>,
    /// The items shown, in order.
    pub items: ShownItems,
}

/// The ids of the items an answer showed, in order, kept as one string (ids separated by
/// `\x1f`, which no id holds): recording an answer costs one allocation for its items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShownItems(String);

impl ShownItems {
    /// The ids in order; an id holding a control character is left out (valid ids hold none).
    pub fn new<'a>(ids: impl IntoIterator<Item = &'a str>) -> Self {
        let mut joined = String::new();
        for id in ids {
            if id.is_empty() || id.chars().any(char::is_control) {
                continue;
            }
            if !joined.is_empty() {
                joined.push(ITEM);
            }
            joined.push_str(id);
        }
        Self(joined)
    }

    /// The ids, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.split(ITEM).filter(|s| !s.is_empty())
    }

    pub fn contains(&self, item: &ItemId) -> bool {
        self.iter().any(|i| i == item.as_str())
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The ids as validated [`ItemId`]s.
    pub fn to_ids(&self) -> Vec<ItemId> {
        self.iter().filter_map(|i| ItemId::new(i).ok()).collect()
    }
}

impl Impression {
    /// Who saw it, as the KPIs count visitors: `u:<user id>`, `s:<session id>`, or `None`
    /// for an anonymous answer.
    pub fn visitor(&self) -> Option<String> {
        match (&self.user, &self.session) {
            (Some(u), _) => Some(format!("u:{}", u.as_str())),
            (None, Some(s)) => Some(format!("s:{}", s.as_str())),
            (None, None) => None,
        }
    }
}

/// A recommendation id: the serving process's random `source` and its sequence number,
/// written as 32 lower-case hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecommendationId {
    pub source: u64,
    pub seq: u64,
}

impl RecommendationId {
    /// The id as text in `buf`, without allocating.
    pub fn write_hex<'a>(&self, buf: &'a mut [u8; 32]) -> &'a str {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (n, b) in buf.iter_mut().enumerate() {
            let word = if n < 16 { self.source } else { self.seq };
            let shift = 60 - 4 * (n % 16);
            *b = HEX[((word >> shift) & 0xf) as usize];
        }
        std::str::from_utf8(buf).unwrap_or_default()
    }
}

impl std::fmt::Display for RecommendationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}{:016x}", self.source, self.seq)
    }
}

impl std::str::FromStr for RecommendationId {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("{s:?} is not a recommendation id (32 hex digits)");
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let source = u64::from_str_radix(&s[..16], 16).map_err(|_| bad())?;
        let seq = u64::from_str_radix(&s[16..], 16).map_err(|_| bad())?;
        Ok(Self { source, seq })
    }
}

/// A batch of impressions of one source, and which of them show a visitor the writer had not
/// yet seen that day in that group (only those add a row to `impression_visitors`).
#[derive(Debug, Clone, Default)]
pub struct ImpressionBatch {
    pub impressions: Vec<Impression>,
    /// Indexes into `impressions`.
    pub first_sightings: Vec<usize>,
}

const FIELD: char = '\t';
const ITEM: char = '\x1f';

/// The text of a batch: a line per impression.
pub(crate) fn encode(batch: &[Impression]) -> String {
    let mut out = String::with_capacity(batch.len() * 160);
    for imp in batch {
        let (kind, who) = match (&imp.user, &imp.session) {
            (Some(u), _) => ('u', u.as_str()),
            (None, Some(s)) => ('s', s.as_str()),
            (None, None) => ('-', ""),
        };
        let _ = write!(
            out,
            "{:x}{FIELD}{}{FIELD}{}{FIELD}{kind}{who}{FIELD}{}{FIELD}{}{FIELD}{}{FIELD}",
            imp.id.seq,
            imp.at.timestamp_millis(),
            imp.placement,
            imp.model_version,
            imp.experiment.as_deref().unwrap_or(""),
            imp.variant.as_deref().unwrap_or(""),
        );
        out.push_str(&imp.items.0);
        out.push('\n');
    }
    out
}

/// The impressions of a batch's text, written by `source`.
pub(crate) fn decode(source: &str, body: &str) -> Result<Vec<Impression>> {
    let corrupt = |line: &str, what: &str| {
        Error::Corrupt(format!(
            "impression batch of {source}: {what} in line {line:?}"
        ))
    };
    let source = u64::from_str_radix(source, 16).map_err(|_| corrupt("", "bad source"))?;
    let mut out = Vec::new();
    for line in body.lines() {
        let f: Vec<&str> = line.split(FIELD).collect();
        let [seq, at, placement, who, model, experiment, variant, items] = f[..] else {
            return Err(corrupt(line, "not 8 fields"));
        };
        let seq = u64::from_str_radix(seq, 16).map_err(|_| corrupt(line, "bad number"))?;
        let at = at
            .parse::<i64>()
            .ok()
            .and_then(Timestamp::from_timestamp_millis)
            .ok_or_else(|| corrupt(line, "bad time"))?;
        let (user, session) = match who.split_at_checked(1) {
            Some(("u", id)) => (
                Some(UserId::new(id).map_err(|_| corrupt(line, "bad user"))?),
                None,
            ),
            Some(("s", id)) => (
                None,
                Some(SessionId::new(id).map_err(|_| corrupt(line, "bad session"))?),
            ),
            _ => (None, None),
        };
        if items.split(ITEM).any(|i| ItemId::new(i).is_err()) && !items.is_empty() {
            return Err(corrupt(line, "bad item"));
        }
        let items = ShownItems(items.to_owned());
        let name = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        out.push(Impression {
            id: RecommendationId { source, seq },
            at,
            placement: placement.to_owned(),
            user,
            session,
            model_version: model.to_owned(),
            experiment: name(experiment),
            variant: name(variant),
            items,
        });
    }
    Ok(out)
}

/// What a visitor did with an item an answer showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A click or view.
    Click,
    AddToCart,
    /// A purchase event.
    Purchase,
    /// An order line (a purchase with its revenue).
    Order,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Click => "click",
            Self::AddToCart => "add_to_cart",
            Self::Purchase => "purchase",
            Self::Order => "order",
        }
    }
}

/// An event or order line credited to the answer that showed its item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    /// `e:<event id>` or `o:<order id>:<line number>`: an event or line is credited once.
    pub key: String,
    pub recommendation_id: RecommendationId,
    pub at: Timestamp,
    pub outcome: Outcome,
    pub item: ItemId,
    /// As [`Impression::visitor`].
    pub visitor: String,
    pub placement: String,
    pub model_version: String,
    pub experiment: Option<String>,
    pub variant: Option<String>,
    /// Quantity × unit price of an order line; 0 otherwise.
    pub revenue_minor: i64,
}

impl Attribution {
    /// `outcome` of `item` credited to `shown`.
    pub fn to(
        shown: &Impression,
        key: String,
        at: Timestamp,
        outcome: Outcome,
        item: ItemId,
        revenue_minor: i64,
    ) -> Self {
        Self {
            key,
            recommendation_id: shown.id,
            at,
            outcome,
            item,
            visitor: shown.visitor().unwrap_or_default(),
            placement: shown.placement.clone(),
            model_version: shown.model_version.clone(),
            experiment: shown.experiment.clone(),
            variant: shown.variant.clone(),
            revenue_minor,
        }
    }
}

/// How recommendation KPIs are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Placement,
    ModelVersion,
    /// Experiment and variant (answers outside experiments form the group `("", "")`).
    Variant,
    /// UTC day, `YYYY-MM-DD`.
    Day,
}

impl std::str::FromStr for GroupBy {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "placement" => Ok(Self::Placement),
            "model_version" => Ok(Self::ModelVersion),
            "variant" => Ok(Self::Variant),
            "day" => Ok(Self::Day),
            other => Err(format!(
                "unknown group_by {other:?}: use placement, model_version, variant or day"
            )),
        }
    }
}

/// The KPIs of one group. Clicks, add-to-carts and purchases count distinct (answer, item)
/// pairs, so a purchase event and the order line of the same sale count once.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RecommendationKpis {
    /// The group: a placement, a model version, `experiment/variant` (empty outside
    /// experiments) or a day.
    pub key: String,
    pub impressions: u64,
    /// Distinct visitors (users or sessions) shown an answer; anonymous answers count none.
    pub users: u64,
    pub clicks: u64,
    pub ctr: f64,
    pub add_to_carts: u64,
    pub purchases: u64,
    pub conversion: f64,
    pub revenue: i64,
    pub revenue_per_1k_impressions: f64,
}

impl RecommendationKpis {
    pub(crate) fn new(key: String, counts: [u64; 5], revenue: i64) -> Self {
        let [impressions, users, clicks, add_to_carts, purchases] = counts;
        let per = |a: f64| {
            if impressions == 0 {
                0.0
            } else {
                a / impressions as f64
            }
        };
        Self {
            key,
            impressions,
            users,
            clicks,
            ctr: per(clicks as f64),
            add_to_carts,
            purchases,
            conversion: per(purchases as f64),
            revenue,
            revenue_per_1k_impressions: per(revenue as f64 * 1000.0),
        }
    }
}

/// An experiment as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Experiment {
    pub name: String,
    pub placement: String,
    /// `ctr`, `conversion` or `revenue_per_user`.
    pub metric: String,
    /// `running` or `stopped`.
    pub state: String,
    pub variants: Vec<Variant>,
    pub created_at: Timestamp,
    pub stopped_at: Option<Timestamp>,
}

/// A placement as stored: its name, its spec (JSON, as the engine reads it) and when it was
/// last saved.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredPlacement {
    pub name: String,
    pub spec: serde_json::Value,
    pub updated_at: Timestamp,
}

/// One arm of an experiment.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Variant {
    pub name: String,
    pub model_version: String,
    pub share: f64,
}

/// What one variant of an experiment measured so far.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct VariantCounts {
    pub variant: String,
    /// Distinct visitors shown an answer of the variant.
    pub users: u64,
    pub impressions: u64,
    pub clicks: u64,
    pub purchases: u64,
    /// Σ over answers of (items clicked in the answer)², and of (items bought)²: with
    /// `clicks` and `impressions`, the variance of clicks per answer.
    pub click_squares: f64,
    pub purchase_squares: f64,
    /// Attributed revenue, and the sum of its squares per visitor (for the variance of
    /// revenue per user).
    pub revenue: i64,
    pub revenue_squares: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_reads_back_as_written() {
        let at = Timestamp::from_timestamp_millis(1_700_000_000_123).unwrap();
        let batch = vec![
            Impression {
                id: RecommendationId { source: 7, seq: 41 },
                at,
                placement: "home:top_picks".into(),
                user: Some(UserId::new("user one").unwrap()),
                session: None,
                model_version: "ease-1".into(),
                experiment: Some("spring".into()),
                variant: Some("b".into()),
                items: ShownItems::new(["c", "a b"]),
            },
            Impression {
                id: RecommendationId { source: 7, seq: 42 },
                at,
                placement: "session".into(),
                user: None,
                session: Some(SessionId::new("s9").unwrap()),
                model_version: "ease-1".into(),
                experiment: None,
                variant: None,
                items: ShownItems::default(),
            },
        ];
        let back = decode(&format!("{:016x}", 7), &encode(&batch)).unwrap();
        assert_eq!(back, batch);
    }

    #[test]
    fn recommendation_ids_round_trip_and_refuse_other_text() {
        let id = RecommendationId {
            source: 0xfeed,
            seq: 3,
        };
        let text = id.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(id.write_hex(&mut [0; 32]), text);
        assert_eq!(text.parse::<RecommendationId>().unwrap(), id);
        assert!("abc".parse::<RecommendationId>().is_err());
        assert!(
            "zz00000000000000000000000000000g"
                .parse::<RecommendationId>()
                .is_err()
        );
    }
}

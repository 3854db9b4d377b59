//! Impressions: what a recommendation answer showed, to whom, where and from which model, so
//! that later events and orders can be attributed to it.

use marquee_domain::{ItemId, SessionId, Timestamp, UserId};

/// One recommendation answer as served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Impression {
    /// The answer's `recommendation_id` (unique; a second write of one id is ignored).
    pub id: String,
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
    pub items: Vec<ItemId>,
}

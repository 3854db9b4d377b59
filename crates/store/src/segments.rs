//! Stored customer segments: runs and their members.

use marquee_domain::Timestamp;

/// One segmentation run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SegmentRun {
    pub version: String,
    pub computed_at: Timestamp,
    /// The RFM reference time.
    pub reference: Timestamp,
    /// Number of k-means clusters.
    pub k: u32,
    pub silhouette: f64,
    /// A plain-words description of each cluster, by cluster number.
    pub clusters: Vec<String>,
}

/// One customer of a run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SegmentMember {
    pub user_id: String,
    pub segment: String,
    pub cluster: u32,
    pub recency_days: i64,
    pub frequency: u32,
    pub monetary_minor: i64,
    pub tenure_days: i64,
    pub avg_basket_minor: f64,
    pub favourite_category: String,
    pub r_score: u8,
    pub f_score: u8,
    pub m_score: u8,
}

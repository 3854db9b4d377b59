//! What `segments` does: compute RFM segments and clusters from the store's orders, list them,
//! and export members for a CRM (consenting customers only unless asked).

use anyhow::{Context, Result, bail};
use marquee_models::Artifact;
use marquee_segments::{CustomerFeatures, SEGMENTS, cluster, rfm_segment};
use marquee_store::{SegmentMember, SegmentRun, Store};
use polars::prelude::*;
use std::collections::HashMap;
use std::path::Path;

/// Seconds spent in each step of [`compute`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    pub read: f64,
    pub rfm: f64,
    pub cluster: f64,
    pub save: f64,
}

/// Computes a new segmentation run from the store and saves it.
pub async fn compute(
    store: &Store,
    reference: Option<marquee_domain::Timestamp>,
    k: Option<usize>,
) -> Result<(SegmentRun, Vec<SegmentMember>, Timings)> {
    let mut timings = Timings::default();
    let clock = std::time::Instant::now();
    let mut orders = Vec::new();
    store
        .for_each_order(|o| {
            orders.push(o);
            Ok(())
        })
        .await
        .context("reading orders")?;
    let items = store.all_items().await.context("reading the catalog")?;
    let reference = reference
        .or_else(|| marquee_pipelines::default_reference(&orders))
        .context(
            "the store holds no orders; import some first, e.g. `data import online-retail FILE`",
        )?;
    timings.read = clock.elapsed().as_secs_f64();
    let clock = std::time::Instant::now();
    let rows = marquee_pipelines::rfm(&orders, &items, Some(reference))?;
    timings.rfm = clock.elapsed().as_secs_f64();
    if rows.len() < 2 {
        bail!(
            "segments need at least two customers with an order that is not cancelled or refunded; the store has {}",
            rows.len()
        );
    }
    let features: Vec<CustomerFeatures> = rows
        .iter()
        .map(|r| CustomerFeatures {
            recency_days: r.recency_days as f64,
            frequency: f64::from(r.frequency),
            monetary: r.monetary as f64,
            tenure_days: r.tenure_days as f64,
            avg_basket: r.avg_basket,
        })
        .collect();
    let clock = std::time::Instant::now();
    let clusters = cluster(&features, k)?;
    let run = SegmentRun {
        version: crate::train::new_version(),
        computed_at: chrono::Utc::now(),
        reference,
        k: clusters.k as u32,
        silhouette: clusters.silhouette,
        clusters: clusters.descriptions.clone(),
    };
    let members: Vec<SegmentMember> = rows
        .iter()
        .zip(&clusters.labels)
        .map(|(r, &label)| SegmentMember {
            user_id: r.user_id.clone(),
            segment: rfm_segment(r.r_score, r.f_score, r.m_score).to_owned(),
            cluster: label as u32,
            recency_days: r.recency_days,
            frequency: r.frequency,
            monetary_minor: r.monetary,
            tenure_days: r.tenure_days,
            avg_basket_minor: r.avg_basket,
            favourite_category: r.favourite_category.clone(),
            r_score: r.r_score,
            f_score: r.f_score,
            m_score: r.m_score,
        })
        .collect();
    timings.cluster = clock.elapsed().as_secs_f64();
    let clock = std::time::Instant::now();
    store.save_segments(&run, &members).await?;
    timings.save = clock.elapsed().as_secs_f64();
    Ok((run, members, timings))
}

/// One line of `segments list`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SegmentSize {
    pub segment: String,
    pub customers: usize,
    /// This segment's share of all customers' net revenue.
    pub revenue_share: f64,
}

/// Sizes and revenue shares of every rule segment (empty ones included), in rule order.
pub fn sizes(members: &[SegmentMember]) -> Vec<SegmentSize> {
    let total: i64 = members.iter().map(|m| m.monetary_minor).sum();
    SEGMENTS
        .iter()
        .map(|&s| {
            let of: Vec<&SegmentMember> = members.iter().filter(|m| m.segment == s).collect();
            let revenue: i64 = of.iter().map(|m| m.monetary_minor).sum();
            SegmentSize {
                segment: s.to_owned(),
                customers: of.len(),
                revenue_share: if total != 0 {
                    revenue as f64 / total as f64
                } else {
                    0.0
                },
            }
        })
        .collect()
}

/// Export file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Parquet,
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exported {
    pub rows: usize,
    /// Members left out for lack of marketing consent.
    pub left_out: usize,
    /// Whether the top-3 recommendations were filled in from a model.
    pub with_recommendations: bool,
}

/// The columns of an export, in order.
pub const EXPORT_COLUMNS: [&str; 16] = [
    "user_id",
    "email",
    "segment",
    "recency_days",
    "frequency",
    "monetary",
    "monetary_minor",
    "r_score",
    "f_score",
    "m_score",
    "cluster",
    "cluster_description",
    "favourite_category",
    "tenure_days",
    "avg_basket",
    "top_items",
];

/// Exports the members of the latest run (`segment` None: all of them) to `out`.
pub async fn export(
    store: &Store,
    segment: Option<&str>,
    format: Format,
    out: &Path,
    include_non_consenting: bool,
    model: Option<&Path>,
) -> Result<Exported> {
    if let Some(s) = segment
        && !SEGMENTS.contains(&s)
    {
        bail!(
            "unknown segment {s:?}; segments are {}",
            SEGMENTS.join(", ")
        );
    }
    let run = store
        .latest_segment_run()
        .await?
        .context("no segments computed yet; run `segments compute` first")?;
    let members = store.segment_members(&run.version, segment).await?;
    let users: HashMap<String, (bool, Option<String>)> = store
        .all_users()
        .await?
        .into_iter()
        .map(|u| (u.id.as_str().to_owned(), (u.marketing_consent, u.email)))
        .collect();
    let artifact = match model {
        Some(path) => match Artifact::resolve(path).and_then(|dir| Artifact::load(&dir)) {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::warn!("no recommendations in the export: {e}");
                None
            }
        },
        None => None,
    };
    let mut kept: Vec<(&SegmentMember, Option<&String>)> = Vec::new();
    let mut left_out = 0;
    for m in &members {
        let (consent, email) = users
            .get(&m.user_id)
            .map_or((false, None), |(c, e)| (*c, e.as_ref()));
        if consent || include_non_consenting {
            kept.push((m, email));
        } else {
            left_out += 1;
        }
    }
    let mut scratch = Vec::new();
    let top_items: Vec<String> = kept
        .iter()
        .map(|(m, _)| {
            let Some(a) = &artifact else {
                return String::new();
            };
            let Some(u) = a.history.users.get(&m.user_id) else {
                return String::new();
            };
            a.recommend(u as usize, 3, true, &mut scratch)
                .into_iter()
                .map(|(i, _)| a.history.items.id(i as usize).to_owned())
                .collect::<Vec<_>>()
                .join(";")
        })
        .collect();
    let describe = |c: u32| run.clusters.get(c as usize).cloned().unwrap_or_default();
    let mut df = df!(
        "user_id" => kept.iter().map(|(m, _)| m.user_id.clone()).collect::<Vec<_>>(),
        "email" => kept.iter().map(|(_, e)| e.cloned()).collect::<Vec<Option<String>>>(),
        "segment" => kept.iter().map(|(m, _)| m.segment.clone()).collect::<Vec<_>>(),
        "recency_days" => kept.iter().map(|(m, _)| m.recency_days).collect::<Vec<_>>(),
        "frequency" => kept.iter().map(|(m, _)| m.frequency).collect::<Vec<_>>(),
        "monetary" => kept.iter().map(|(m, _)| m.monetary_minor as f64 / 100.0).collect::<Vec<_>>(),
        "monetary_minor" => kept.iter().map(|(m, _)| m.monetary_minor).collect::<Vec<_>>(),
        "r_score" => kept.iter().map(|(m, _)| u32::from(m.r_score)).collect::<Vec<_>>(),
        "f_score" => kept.iter().map(|(m, _)| u32::from(m.f_score)).collect::<Vec<_>>(),
        "m_score" => kept.iter().map(|(m, _)| u32::from(m.m_score)).collect::<Vec<_>>(),
        "cluster" => kept.iter().map(|(m, _)| m.cluster).collect::<Vec<_>>(),
        "cluster_description" => kept.iter().map(|(m, _)| describe(m.cluster)).collect::<Vec<_>>(),
        "favourite_category" => kept.iter().map(|(m, _)| m.favourite_category.clone()).collect::<Vec<_>>(),
        "tenure_days" => kept.iter().map(|(m, _)| m.tenure_days).collect::<Vec<_>>(),
        "avg_basket" => kept.iter().map(|(m, _)| m.avg_basket_minor / 100.0).collect::<Vec<_>>(),
        "top_items" => top_items,
    )?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(parent)
        .with_context(|| format!("creating a temporary file in {}", parent.display()))?;
    match format {
        Format::Csv => {
            CsvWriter::new(tmp.as_file_mut()).finish(&mut df)?;
        }
        Format::Parquet => {
            ParquetWriter::new(tmp.as_file_mut()).finish(&mut df)?;
        }
    }
    tmp.as_file().sync_all()?;
    tmp.persist(out)
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(Exported {
        rows: kept.len(),
        left_out,
        with_recommendations: artifact.is_some(),
    })
}

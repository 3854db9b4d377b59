//! SASRec (Kang & McAuley 2018), trained with gSASRec's calibrated loss (Petrov & Macdonald
//! 2023) by `marquee-neural`, here as plain vectors and a plain-Rust forward pass: serving
//! and evaluation never use burn.
//!
//! The network reads a user's last `max_len` items in time order (left-padded with the pad
//! index `n_items`): `x = E[item] + P[position]`, pads zeroed; then `blocks` pre-norm blocks
//! `x += MHA(LN1(x))` (causal, `heads` heads, pad keys masked with −1e9) and
//! `x += W2·relu(W1·LN2(x) + b1) + b2`, pads zeroed after each; a final layer norm; the last
//! position's vector dotted with every item embedding gives the next-item scores.

use crate::{Interactions, Row, Scorer};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

/// SASRec hyper-parameters (config `sasrec.*`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SasrecParams {
    pub dim: usize,
    pub blocks: usize,
    pub heads: usize,
    /// Items of history read (the newest).
    pub max_len: usize,
    pub epochs: usize,
    pub learning_rate: f32,
    pub batch_size: usize,
    /// Negatives sampled per sequence (shared by its positions); 0: a full softmax over the
    /// catalog instead (exact, and slower on large catalogs).
    pub negatives: usize,
    /// gSASRec's calibration t in [0, 1] (0: plain BCE; 1: fully calibrated).
    pub calibration: f32,
    /// The loss over the sampled negatives: `gbce` (gSASRec, per-sequence negatives) or
    /// `softmax` (a sampled softmax: each position's item against `negatives` drawn for the
    /// whole batch).
    pub loss: SasrecLoss,
    pub dropout: f32,
    pub seed: u64,
}

impl Default for SasrecParams {
    fn default() -> Self {
        Self {
            dim: 64,
            blocks: 2,
            heads: 1,
            max_len: 50,
            // The best measured on MovieLens small (issue 25's note): a full softmax, 40
            // epochs (each over every item of every sequence) in batches of 32 windows.
            epochs: 40,
            learning_rate: 0.001,
            batch_size: 32,
            negatives: 0,
            calibration: 0.75,
            loss: SasrecLoss::Gbce,
            dropout: 0.2,
            seed: 42,
        }
    }
}

/// The training loss of [`SasrecParams`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SasrecLoss {
    #[default]
    Gbce,
    Softmax,
}

/// The weights of one block, row-major `in × out` matrices.
#[derive(Debug, Clone, PartialEq)]
pub struct SasrecBlock {
    pub ln1_gamma: Vec<f32>,
    pub ln1_beta: Vec<f32>,
    pub wq: Vec<f32>,
    pub bq: Vec<f32>,
    pub wk: Vec<f32>,
    pub bk: Vec<f32>,
    pub wv: Vec<f32>,
    pub bv: Vec<f32>,
    pub wo: Vec<f32>,
    pub bo: Vec<f32>,
    pub ln2_gamma: Vec<f32>,
    pub ln2_beta: Vec<f32>,
    pub w1: Vec<f32>,
    pub b1: Vec<f32>,
    pub w2: Vec<f32>,
    pub b2: Vec<f32>,
}

impl SasrecBlock {
    /// The block's tensors by name suffix, with their shapes, in a fixed order.
    pub fn parts(&self, d: usize) -> Vec<(&'static str, Vec<usize>, &Vec<f32>)> {
        vec![
            ("ln1.gamma", vec![d], &self.ln1_gamma),
            ("ln1.beta", vec![d], &self.ln1_beta),
            ("wq", vec![d, d], &self.wq),
            ("bq", vec![d], &self.bq),
            ("wk", vec![d, d], &self.wk),
            ("bk", vec![d], &self.bk),
            ("wv", vec![d, d], &self.wv),
            ("bv", vec![d], &self.bv),
            ("wo", vec![d, d], &self.wo),
            ("bo", vec![d], &self.bo),
            ("ln2.gamma", vec![d], &self.ln2_gamma),
            ("ln2.beta", vec![d], &self.ln2_beta),
            ("w1", vec![d, d], &self.w1),
            ("b1", vec![d], &self.b1),
            ("w2", vec![d, d], &self.w2),
            ("b2", vec![d], &self.b2),
        ]
    }

    /// The tensor names and lengths of a block, in [`SasrecBlock::parts`] order.
    pub fn shapes(d: usize) -> [(&'static str, usize); 16] {
        [
            ("ln1.gamma", d),
            ("ln1.beta", d),
            ("wq", d * d),
            ("bq", d),
            ("wk", d * d),
            ("bk", d),
            ("wv", d * d),
            ("bv", d),
            ("wo", d * d),
            ("bo", d),
            ("ln2.gamma", d),
            ("ln2.beta", d),
            ("w1", d * d),
            ("b1", d),
            ("w2", d * d),
            ("b2", d),
        ]
    }

    /// A block from tensors in [`SasrecBlock::parts`] order.
    pub fn from_parts(mut parts: Vec<Vec<f32>>) -> Self {
        let mut next = || parts.remove(0);
        Self {
            ln1_gamma: next(),
            ln1_beta: next(),
            wq: next(),
            bq: next(),
            wk: next(),
            bk: next(),
            wv: next(),
            bv: next(),
            wo: next(),
            bo: next(),
            ln2_gamma: next(),
            ln2_beta: next(),
            w1: next(),
            b1: next(),
            w2: next(),
            b2: next(),
        }
    }
}

/// The layer-norm epsilon (the same in training).
pub const LN_EPS: f32 = 1e-5;
/// The attention logit of a masked key.
pub const MASKED: f32 = -1e9;

/// A fitted SASRec model.
#[derive(Debug, Clone, PartialEq)]
pub struct Sasrec {
    pub params: SasrecParams,
    pub n_users: usize,
    pub n_items: usize,
    /// Row-major `(n_items + 1) × dim`; the last row is the pad.
    pub item_emb: Vec<f32>,
    /// Row-major `max_len × dim`.
    pub pos_emb: Vec<f32>,
    pub blocks: Vec<SasrecBlock>,
    pub ln_gamma: Vec<f32>,
    pub ln_beta: Vec<f32>,
    /// Every training user's items in time order: user `u`'s are
    /// `seq_items[seq_indptr[u]..seq_indptr[u + 1]]` (built from the training matrix, not
    /// stored).
    pub seq_indptr: Vec<usize>,
    pub seq_items: Vec<u32>,
}

/// Every user's items of `data` in time order (ties: lower item index first), as
/// `(indptr, items)`.
pub fn sequences(data: &Interactions) -> (Vec<usize>, Vec<u32>) {
    let mut indptr = Vec::with_capacity(data.n_users() + 1);
    let mut items = Vec::with_capacity(data.nnz());
    indptr.push(0);
    let mut order: Vec<usize> = Vec::new();
    for u in 0..data.n_users() {
        let row = data.row(u);
        let times = data.row_times(u);
        order.clear();
        order.extend(0..row.len());
        order.sort_by(|&a, &b| {
            times[a]
                .cmp(&times[b])
                .then(row.items[a].cmp(&row.items[b]))
        });
        items.extend(order.iter().map(|&j| row.items[j]));
        indptr.push(items.len());
    }
    (indptr, items)
}

fn layer_norm(x: &[f32], gamma: &[f32], beta: &[f32], out: &mut [f32]) {
    let d = x.len() as f32;
    let mean = x.iter().sum::<f32>() / d;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d;
    let inv = 1.0 / (var + LN_EPS).sqrt();
    for k in 0..x.len() {
        out[k] = (x[k] - mean) * inv * gamma[k] + beta[k];
    }
}

/// `out = x · w + b` for the `rows` rows of `x` (row-major, `w.len() / d_out` wide) at once:
/// one matrix product.
fn affine_rows(x: &[f32], rows: usize, w: &[f32], b: &[f32], out: &mut [f32]) {
    let (d_out, d_in) = (b.len(), w.len() / b.len());
    let out = &mut out[..rows * d_out];
    for row in out.chunks_exact_mut(d_out) {
        row.copy_from_slice(b);
    }
    matmul(
        MatMut::from_row_major_slice_mut(out, rows, d_out),
        Accum::Add,
        MatRef::from_row_major_slice(&x[..rows * d_in], rows, d_in),
        MatRef::from_row_major_slice(w, d_in, d_out),
        1.0,
        Par::Seq,
    );
}

impl Sasrec {
    /// The sequence window of `items` (oldest first): the newest `max_len`, left-padded.
    pub fn window(&self, items: &[u32]) -> Vec<u32> {
        let n = self.params.max_len;
        let pad = self.n_items as u32;
        let take = &items[items.len().saturating_sub(n)..];
        let mut w = vec![pad; n - take.len()];
        w.extend_from_slice(take);
        w
    }

    /// The last position's output vector for a padded window of `max_len` item indices.
    ///
    /// Pads come first and are masked as keys, so only the valid suffix of the window is
    /// computed; the last block computes keys and values for every valid position but the
    /// query, attention and feed-forward layer of the last position only (the others no
    /// longer matter). The result equals the full pass's.
    pub fn last_hidden(&self, window: &[u32]) -> Vec<f32> {
        let (n, d) = (self.params.max_len, self.params.dim);
        let heads = self.params.heads.max(1);
        let dh = d / heads;
        let pad = self.n_items as u32;
        // The valid positions are `first..n` (a window is left-padded).
        let first = window.iter().position(|&i| i != pad).unwrap_or(n);
        let mut last = vec![0f32; d];
        if first == n {
            // Nothing read: the final norm of a zero vector.
            layer_norm(&vec![0f32; d], &self.ln_gamma, &self.ln_beta, &mut last);
            return last;
        }
        let len = n - first;
        let mut x = vec![0f32; len * d];
        for (p, &item) in window[first..].iter().enumerate() {
            let e = &self.item_emb[item as usize * d..(item as usize + 1) * d];
            let pe = &self.pos_emb[(first + p) * d..(first + p + 1) * d];
            for k in 0..d {
                x[p * d + k] = e[k] + pe[k];
            }
        }
        let mut h = vec![0f32; len * d];
        let (mut q, mut k, mut v) = (
            vec![0f32; len * d],
            vec![0f32; len * d],
            vec![0f32; len * d],
        );
        let mut ctx = vec![0f32; len * d];
        let (mut tmp, mut hid) = (vec![0f32; len * d], vec![0f32; len * d]);
        let mut att = vec![0f32; len];
        let scale = 1.0 / (dh as f32).sqrt();
        for (bi, b) in self.blocks.iter().enumerate() {
            // The last block's outputs matter at the last position only: its rows are
            // `from..len`.
            let from = if bi + 1 == self.blocks.len() {
                len - 1
            } else {
                0
            };
            let rows = len - from;
            for p in 0..len {
                layer_norm(
                    &x[p * d..(p + 1) * d],
                    &b.ln1_gamma,
                    &b.ln1_beta,
                    &mut h[p * d..(p + 1) * d],
                );
            }
            affine_rows(&h, len, &b.wk, &b.bk, &mut k);
            affine_rows(&h, len, &b.wv, &b.bv, &mut v);
            affine_rows(&h[from * d..], rows, &b.wq, &b.bq, &mut q);
            for hd in 0..heads {
                let off = hd * dh;
                for p in from..len {
                    let qp = &q[(p - from) * d + off..(p - from) * d + off + dh];
                    // Causal: position p attends to 0..=p.
                    let mut max = f32::NEG_INFINITY;
                    for j in 0..=p {
                        let kj = &k[j * d + off..j * d + off + dh];
                        let s = qp.iter().zip(kj).map(|(a, b)| a * b).sum::<f32>() * scale;
                        att[j] = s;
                        max = max.max(s);
                    }
                    let mut sum = 0f32;
                    for a in att[..=p].iter_mut() {
                        *a = (*a - max).exp();
                        sum += *a;
                    }
                    let out = &mut ctx[(p - from) * d + off..(p - from) * d + off + dh];
                    out.fill(0.0);
                    for j in 0..=p {
                        let w = att[j] / sum;
                        let vj = &v[j * d + off..j * d + off + dh];
                        for (o, &vv) in out.iter_mut().zip(vj) {
                            *o += w * vv;
                        }
                    }
                }
            }
            affine_rows(&ctx, rows, &b.wo, &b.bo, &mut tmp);
            for (xv, t) in x[from * d..].iter_mut().zip(&tmp[..rows * d]) {
                *xv += t;
            }
            for p in 0..rows {
                layer_norm(
                    &x[(from + p) * d..(from + p + 1) * d],
                    &b.ln2_gamma,
                    &b.ln2_beta,
                    &mut h[p * d..(p + 1) * d],
                );
            }
            affine_rows(&h, rows, &b.w1, &b.b1, &mut hid);
            for hv in hid[..rows * d].iter_mut() {
                *hv = hv.max(0.0);
            }
            affine_rows(&hid, rows, &b.w2, &b.b2, &mut tmp);
            for (xv, t) in x[from * d..].iter_mut().zip(&tmp[..rows * d]) {
                *xv += t;
            }
        }
        layer_norm(
            &x[(len - 1) * d..len * d],
            &self.ln_gamma,
            &self.ln_beta,
            &mut last,
        );
        last
    }

    /// Next-item scores for `items` (oldest first) over every item.
    pub fn score_sequence(&self, items: &[u32], out: &mut [f32]) {
        let d = self.params.dim;
        let hidden = self.last_hidden(&self.window(items));
        let n = self.n_items.min(out.len());
        crate::factor_scores(&self.item_emb[..n * d], d, &hidden, &mut out[..n]);
    }

    /// The training sequence of `user`, oldest first (empty for users not in training).
    pub fn sequence_of(&self, user: usize) -> &[u32] {
        if user + 1 >= self.seq_indptr.len() {
            return &[];
        }
        &self.seq_items[self.seq_indptr[user]..self.seq_indptr[user + 1]]
    }
}

impl Scorer for Sasrec {
    fn name(&self) -> &'static str {
        "sasrec"
    }

    fn n_items(&self) -> usize {
        self.n_items
    }

    /// The user's training sequence, then the items of `history` it does not hold (what was
    /// folded in since training: the newest), in index order.
    fn score(&self, user: usize, history: Row<'_>, out: &mut [f32]) {
        let mut items = self.sequence_of(user).to_vec();
        let known: std::collections::HashSet<u32> = items.iter().copied().collect();
        items.extend(history.items.iter().filter(|i| !known.contains(i)));
        self.score_sequence(&items, out);
    }
}

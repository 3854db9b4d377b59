//! SASRec training with gSASRec's loss. An epoch covers every target once: each user's
//! sequence is cut into windows of `max_len` targets back from the newest item (the older
//! windows shifted by a seeded offset each epoch), shuffled into batches; every position
//! predicts the next item against `negatives` uniformly drawn items of its sequence (shared by the sequence's
//! positions, as one draw per position would cost `max_len` times more). The loss is gBCE:
//! `−β·log σ(s⁺) − Σ log σ(−s⁻)` with `β = α(t(1 − 1/α) + 1/α)`, `α = negatives / (items − 1)`
//! and `t = calibration`; with `negatives = 0`, the cross-entropy of a full softmax over the
//! catalog instead. Dropout (seeded) is applied to the input embeddings only.
//!
//! The network is exactly [`marquee_models::Sasrec`]'s forward pass, so the exported vectors
//! score the same in plain Rust.

use super::heap::KeepHeap;
use super::{Epoch, check, device, end_epoch, indices, matrix, normal, values_of, vector};
use burn::module::Param;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::{log_sigmoid, log_softmax, relu, softmax};
use marquee_domain::rng::SeededRng;
use marquee_models::sasrec::{LN_EPS, MASKED, sequences};
use marquee_models::{Error, Interactions, Result, Sasrec, SasrecBlock, SasrecLoss, SasrecParams};
use std::time::Instant;

#[derive(Module, Debug)]
struct BlockNet {
    ln1_g: Param<Tensor<1>>,
    ln1_b: Param<Tensor<1>>,
    wq: Param<Tensor<2>>,
    bq: Param<Tensor<1>>,
    wk: Param<Tensor<2>>,
    bk: Param<Tensor<1>>,
    wv: Param<Tensor<2>>,
    bv: Param<Tensor<1>>,
    wo: Param<Tensor<2>>,
    bo: Param<Tensor<1>>,
    ln2_g: Param<Tensor<1>>,
    ln2_b: Param<Tensor<1>>,
    w1: Param<Tensor<2>>,
    b1: Param<Tensor<1>>,
    w2: Param<Tensor<2>>,
    b2: Param<Tensor<1>>,
}

#[derive(Module, Debug)]
struct SasNet {
    items: Param<Tensor<2>>,
    positions: Param<Tensor<2>>,
    blocks: Vec<BlockNet>,
    ln_g: Param<Tensor<1>>,
    ln_b: Param<Tensor<1>>,
}

/// Layer norm over the last dimension of `[rows, d]`.
fn layer_norm(x: Tensor<2>, g: &Param<Tensor<1>>, b: &Param<Tensor<1>>) -> Tensor<2> {
    let mean = x.clone().mean_dim(1);
    let centred = x - mean;
    let var = centred.clone().powi_scalar(2).mean_dim(1);
    let normed = centred / (var + LN_EPS).sqrt();
    normed * g.val().unsqueeze_dim(0) + b.val().unsqueeze_dim(0)
}

fn affine(x: Tensor<2>, w: &Param<Tensor<2>>, b: &Param<Tensor<1>>) -> Tensor<2> {
    x.matmul(w.val()) + b.val().unsqueeze_dim(0)
}

/// One batch of windows: `rows × n` input items (pad = n_items), targets (pad where none).
struct Batch {
    rows: usize,
    inputs: Vec<usize>,
    targets: Vec<usize>,
}

impl SasNet {
    /// The output vectors of every position, `[rows × n, d]`, for `inputs` (`rows × n`).
    /// `keep` is the input dropout mask (`rows × n × d`, already scaled), or `None`.
    fn forward(
        &self,
        inputs: &[usize],
        rows: usize,
        p: &SasrecParams,
        pad: usize,
        keep: Option<Vec<f32>>,
        dev: &Device,
    ) -> Tensor<2> {
        let (n, d, heads) = (p.max_len, p.dim, p.heads);
        let dh = d / heads;
        let valid: Vec<f32> = inputs
            .iter()
            .map(|&i| if i == pad { 0.0 } else { 1.0 })
            .collect();
        let valid_rows = matrix(valid.clone(), rows * n, 1, dev);
        let emb = self.items.val().select(0, indices(inputs, dev));
        let pos = self
            .positions
            .val()
            .unsqueeze_dim::<3>(0)
            .repeat_dim(0, rows)
            .reshape([rows * n, d]);
        let mut x = (emb + pos) * valid_rows.clone();
        if let Some(k) = keep {
            x = x * matrix(k, rows * n, d, dev);
        }
        // Attention logits' mask: a later position or a pad key.
        let mut mask = vec![0f32; rows * n * n];
        for r in 0..rows {
            for q in 0..n {
                for k in 0..n {
                    if k > q || valid[r * n + k] == 0.0 {
                        mask[(r * n + q) * n + k] = MASKED;
                    }
                }
            }
        }
        let mask: Tensor<4> = Tensor::<1>::from_data(TensorData::new(mask, [rows * n * n]), dev)
            .reshape([rows, 1, n, n]);
        let scale = 1.0 / (dh as f32).sqrt();
        for b in &self.blocks {
            let h = layer_norm(x.clone(), &b.ln1_g, &b.ln1_b);
            let split =
                |t: Tensor<2>| -> Tensor<4> { t.reshape([rows, n, heads, dh]).swap_dims(1, 2) };
            let q = split(affine(h.clone(), &b.wq, &b.bq));
            let k = split(affine(h.clone(), &b.wk, &b.bk));
            let v = split(affine(h, &b.wv, &b.bv));
            let logits = q.matmul(k.swap_dims(2, 3)).mul_scalar(scale) + mask.clone();
            let att = softmax(logits, 3);
            let ctx = att.matmul(v).swap_dims(1, 2).reshape([rows * n, d]);
            x = x + affine(ctx, &b.wo, &b.bo);
            let h2 = layer_norm(x.clone(), &b.ln2_g, &b.ln2_b);
            let ffn = affine(relu(affine(h2, &b.w1, &b.b1)), &b.w2, &b.b2);
            x = (x + ffn) * valid_rows.clone();
        }
        layer_norm(x, &self.ln_g, &self.ln_b)
    }

    #[allow(clippy::too_many_arguments)]
    fn loss(
        &self,
        batch: &Batch,
        negatives: &[usize],
        beta: f32,
        p: &SasrecParams,
        pad: usize,
        keep: Option<Vec<f32>>,
        dev: &Device,
    ) -> Tensor<1> {
        let out = self.forward(&batch.inputs, batch.rows, p, pad, keep, dev);
        let (rows_n, d) = (batch.rows * p.max_len, p.dim);
        let targets: Vec<usize> = batch
            .targets
            .iter()
            .map(|&t| if t == pad { 0 } else { t })
            .collect();
        let weight: Vec<f32> = batch
            .targets
            .iter()
            .map(|&t| if t == pad { 0.0 } else { 1.0 })
            .collect();
        let count = weight.iter().sum::<f32>().max(1.0);
        let weight = vector(weight, dev);
        if negatives.is_empty() {
            // Full softmax over the catalog (the pad row left out).
            let catalog = self.items.val().slice([0..pad, 0..d]);
            let logp = log_softmax(out.matmul(catalog.transpose()), 1);
            let picked = logp
                .gather(1, indices(&targets, dev).reshape([rows_n, 1]))
                .reshape([rows_n]);
            return (picked * weight).sum().neg().div_scalar(count);
        }
        let pos_emb = self.items.val().select(0, indices(&targets, dev));
        let pos = (out.clone() * pos_emb).sum_dim(1).reshape([rows_n]);
        if p.loss == SasrecLoss::Softmax {
            // Sampled softmax: the target against the batch's negatives (uniform, so the
            // log-probability correction is a constant and left out).
            let neg_emb = self.items.val().select(0, indices(negatives, dev));
            let neg = out.matmul(neg_emb.transpose());
            let logits = Tensor::cat(vec![pos.reshape([rows_n, 1]), neg], 1);
            let first = log_softmax(logits, 1)
                .slice([0..rows_n, 0..1])
                .reshape([rows_n]);
            return (first * weight).sum().neg().div_scalar(count);
        }
        // Each sequence (row) has its own negatives, shared by its positions.
        let (rows, n) = (batch.rows, p.max_len);
        let k = negatives.len() / rows;
        let neg_emb = self
            .items
            .val()
            .select(0, indices(negatives, dev))
            .reshape([rows, k, d]);
        let neg = out
            .reshape([rows, n, d])
            .matmul(neg_emb.swap_dims(1, 2))
            .reshape([rows_n, k]);
        let pos_term = log_sigmoid(pos).mul_scalar(beta);
        let neg_term = log_sigmoid(neg.neg()).sum_dim(1).reshape([rows_n]);
        ((pos_term + neg_term) * weight)
            .sum()
            .neg()
            .div_scalar(count)
    }
}

fn block(rng: &mut SeededRng, d: usize, dev: &Device) -> BlockNet {
    let w = |rng: &mut SeededRng| {
        Param::from_tensor(matrix(
            normal(rng, d * d, (1.0 / d as f32).sqrt()),
            d,
            d,
            dev,
        ))
    };
    let zeros = || Param::from_tensor(vector(vec![0.0; d], dev));
    let ones = || Param::from_tensor(vector(vec![1.0; d], dev));
    BlockNet {
        ln1_g: ones(),
        ln1_b: zeros(),
        wq: w(rng),
        bq: zeros(),
        wk: w(rng),
        bk: zeros(),
        wv: w(rng),
        bv: zeros(),
        wo: w(rng),
        bo: zeros(),
        ln2_g: ones(),
        ln2_b: zeros(),
        w1: w(rng),
        b1: zeros(),
        w2: w(rng),
        b2: zeros(),
    }
}

/// The plain vectors of a network.
fn export(
    net: &SasNet,
    p: SasrecParams,
    n_users: usize,
    n_items: usize,
    seq_indptr: Vec<usize>,
    seq_items: Vec<u32>,
) -> Result<Sasrec> {
    let v1 = |t: &Param<Tensor<1>>| values_of(t.val());
    let v2 = |t: &Param<Tensor<2>>| values_of(t.val());
    let mut blocks = Vec::with_capacity(net.blocks.len());
    for b in &net.blocks {
        blocks.push(SasrecBlock {
            ln1_gamma: v1(&b.ln1_g)?,
            ln1_beta: v1(&b.ln1_b)?,
            wq: v2(&b.wq)?,
            bq: v1(&b.bq)?,
            wk: v2(&b.wk)?,
            bk: v1(&b.bk)?,
            wv: v2(&b.wv)?,
            bv: v1(&b.bv)?,
            wo: v2(&b.wo)?,
            bo: v1(&b.bo)?,
            ln2_gamma: v1(&b.ln2_g)?,
            ln2_beta: v1(&b.ln2_b)?,
            w1: v2(&b.w1)?,
            b1: v1(&b.b1)?,
            w2: v2(&b.w2)?,
            b2: v1(&b.b2)?,
        });
    }
    Ok(Sasrec {
        params: p,
        n_users,
        n_items,
        item_emb: v2(&net.items)?,
        pos_emb: v2(&net.positions)?,
        blocks,
        ln_gamma: v1(&net.ln_g)?,
        ln_beta: v1(&net.ln_b)?,
        seq_indptr,
        seq_items,
    })
}

/// The network holding `model`'s weights (the inverse of [`export`]).
fn import(model: &Sasrec, dev: &Device) -> SasNet {
    let d = model.params.dim;
    let v = |x: &Vec<f32>| Param::from_tensor(vector(x.clone(), dev));
    let m = |x: &Vec<f32>| Param::from_tensor(matrix(x.clone(), d, d, dev));
    SasNet {
        items: Param::from_tensor(matrix(
            model.item_emb.clone(),
            model.item_emb.len() / d,
            d,
            dev,
        )),
        positions: Param::from_tensor(matrix(model.pos_emb.clone(), model.params.max_len, d, dev)),
        blocks: model
            .blocks
            .iter()
            .map(|b| BlockNet {
                ln1_g: v(&b.ln1_gamma),
                ln1_b: v(&b.ln1_beta),
                wq: m(&b.wq),
                bq: v(&b.bq),
                wk: m(&b.wk),
                bk: v(&b.bk),
                wv: m(&b.wv),
                bv: v(&b.bv),
                wo: m(&b.wo),
                bo: v(&b.bo),
                ln2_g: v(&b.ln2_gamma),
                ln2_b: v(&b.ln2_beta),
                w1: m(&b.w1),
                b1: v(&b.b1),
                w2: m(&b.w2),
                b2: v(&b.b2),
            })
            .collect(),
        ln_g: v(&model.ln_gamma),
        ln_b: v(&model.ln_beta),
    }
}

/// The next-item scores of every item after `items` (oldest first), computed by burn's
/// forward pass with `model`'s weights: the reference the plain-Rust pass that serves
/// ([`Sasrec::score_sequence`]) is checked against.
pub fn burn_next_scores(model: &Sasrec, items: &[u32]) -> Result<Vec<f32>> {
    let dev = device();
    let (p, n_items) = (model.params, model.n_items);
    let net = import(model, &dev);
    let window: Vec<usize> = model.window(items).iter().map(|&i| i as usize).collect();
    let out = net.forward(&window, 1, &p, n_items, None, &dev);
    let last = out.slice([p.max_len - 1..p.max_len, 0..p.dim]);
    let catalog = net.items.val().slice([0..n_items, 0..p.dim]);
    values_of(last.matmul(catalog.transpose()).reshape([n_items]))
}

/// A training window of `seq` cut after position `end` (inclusive target): inputs are the up
/// to `n` items before each target, left-padded.
fn window(seq: &[u32], end: usize, n: usize, pad: usize) -> (Vec<usize>, Vec<usize>) {
    let start = end.saturating_sub(n);
    let inputs: Vec<usize> = seq[start..end].iter().map(|&i| i as usize).collect();
    let targets: Vec<usize> = seq[start + 1..=end].iter().map(|&i| i as usize).collect();
    let fill = n - inputs.len();
    let mut i = vec![pad; fill];
    i.extend(inputs);
    let mut t = vec![pad; fill];
    t.extend(targets);
    (i, t)
}

/// Fits SASRec on `train` (its times give each user's order); `on_epoch` hears of every epoch
/// and may return false to stop (then [`Error::Interrupted`]).
pub fn fit_sasrec(
    train: &Interactions,
    params: SasrecParams,
    mut on_epoch: impl FnMut(&Epoch) -> bool,
) -> Result<(Sasrec, Vec<Epoch>)> {
    let p = params;
    check(&[
        ("sasrec.dim", p.dim as f64, (1..=1024).contains(&p.dim)),
        (
            "sasrec.heads",
            p.heads as f64,
            p.heads >= 1 && p.dim.is_multiple_of(p.heads.max(1)),
        ),
        (
            "sasrec.blocks",
            p.blocks as f64,
            (1..=16).contains(&p.blocks),
        ),
        (
            "sasrec.max_len",
            p.max_len as f64,
            (2..=1024).contains(&p.max_len),
        ),
        (
            "sasrec.epochs",
            p.epochs as f64,
            (1..=10_000).contains(&p.epochs),
        ),
        (
            "sasrec.learning_rate",
            p.learning_rate.into(),
            p.learning_rate > 0.0,
        ),
        ("sasrec.batch_size", p.batch_size as f64, p.batch_size >= 1),
        ("sasrec.negatives", p.negatives as f64, true),
        (
            "sasrec.calibration",
            p.calibration.into(),
            (0.0..=1.0).contains(&p.calibration),
        ),
        (
            "sasrec.dropout",
            p.dropout.into(),
            (0.0..1.0).contains(&p.dropout),
        ),
    ])?;
    let (n_users, n_items, d, n) = (train.n_users(), train.n_items(), p.dim, p.max_len);
    let (seq_indptr, seq_items) = sequences(train);
    let users: Vec<usize> = (0..n_users)
        .filter(|&u| seq_indptr[u + 1] - seq_indptr[u] >= 2)
        .collect();
    if users.is_empty() || n_items < 2 {
        return Err(Error::Empty);
    }
    let pad = n_items;
    let alpha = p.negatives as f32 / (n_items as f32 - 1.0);
    let beta = alpha * (p.calibration * (1.0 - 1.0 / alpha) + 1.0 / alpha);
    let dev = device();
    let mut rng = SeededRng::new(p.seed);
    let mut net = SasNet {
        items: Param::from_tensor(matrix(
            normal(&mut rng, (n_items + 1) * d, (1.0 / d as f32).sqrt()),
            n_items + 1,
            d,
            &dev,
        )),
        positions: Param::from_tensor(matrix(normal(&mut rng, n * d, 0.02), n, d, &dev)),
        blocks: (0..p.blocks).map(|_| block(&mut rng, d, &dev)).collect(),
        ln_g: Param::from_tensor(vector(vec![1.0; d], &dev)),
        ln_b: Param::from_tensor(vector(vec![0.0; d], &dev)),
    };
    let mut optim = AdamConfig::new().init();
    let mut curve = Vec::with_capacity(p.epochs);
    let mut windows: Vec<(usize, usize)> = Vec::new();
    let _heap = KeepHeap::new();
    for epoch in 1..=p.epochs {
        let start = Instant::now();
        // Every target of every sequence once: windows of `max_len` targets back from the
        // last item, those before the newest shifted by a seeded offset each epoch.
        windows.clear();
        for &u in &users {
            let last = seq_indptr[u + 1] - seq_indptr[u] - 1;
            windows.push((u, last));
            let mut end = last.saturating_sub(n + rng.index(n));
            while end >= 1 {
                windows.push((u, end));
                end = end.saturating_sub(n);
            }
        }
        rng.shuffle(&mut windows);
        let (mut total, mut batches) = (0f64, 0usize);
        for chunk in windows.chunks(p.batch_size) {
            let mut batch = Batch {
                rows: chunk.len(),
                inputs: Vec::with_capacity(chunk.len() * n),
                targets: Vec::with_capacity(chunk.len() * n),
            };
            for &(u, end) in chunk {
                let seq = &seq_items[seq_indptr[u]..seq_indptr[u + 1]];
                let (i, t) = window(seq, end, n, pad);
                batch.inputs.extend(i);
                batch.targets.extend(t);
            }
            // `negatives` per sequence for gBCE, per batch for the sampled softmax (none: a
            // full softmax over the catalog).
            let draws = match p.loss {
                SasrecLoss::Gbce => p.negatives * batch.rows,
                SasrecLoss::Softmax => p.negatives,
            };
            let negatives: Vec<usize> = (0..draws).map(|_| rng.index(n_items)).collect();
            let keep = (p.dropout > 0.0).then(|| {
                let scale = 1.0 / (1.0 - p.dropout);
                (0..batch.rows * n * d)
                    .map(|_| {
                        if rng.chance(f64::from(p.dropout)) {
                            0.0
                        } else {
                            scale
                        }
                    })
                    .collect()
            });
            let loss = net.loss(&batch, &negatives, beta, &p, pad, keep, &dev);
            total += f64::from(loss.clone().into_scalar::<f32>());
            batches += 1;
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(f64::from(p.learning_rate), net, grads);
        }
        end_epoch(
            &mut curve,
            epoch,
            total / batches.max(1) as f64,
            start,
            &mut on_epoch,
        )?;
    }
    let model = export(&net, p, n_users, n_items, seq_indptr, seq_items)?;
    if model.item_emb.iter().any(|v| !v.is_finite()) {
        return Err(Error::Numeric(
            "SASRec training diverged (non-finite weights): lower sasrec.learning_rate".into(),
        ));
    }
    Ok((model, curve))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random weights (biases and norms too), exported: the plain forward pass equals burn's
    /// for the last position of windows with and without padding.
    #[test]
    fn the_plain_forward_pass_equals_burns() {
        let p = SasrecParams {
            dim: 8,
            blocks: 2,
            heads: 2,
            max_len: 6,
            ..SasrecParams::default()
        };
        let (n_items, d, n) = (11, p.dim, p.max_len);
        let dev = device();
        let mut rng = SeededRng::new(3);
        let rand1 = |rng: &mut SeededRng| Param::from_tensor(vector(normal(rng, d, 0.5), &dev));
        let mut blocks = Vec::new();
        for _ in 0..p.blocks {
            let mut b = block(&mut rng, d, &dev);
            b.ln1_g = rand1(&mut rng);
            b.ln1_b = rand1(&mut rng);
            b.bq = rand1(&mut rng);
            b.bv = rand1(&mut rng);
            b.b1 = rand1(&mut rng);
            b.ln2_b = rand1(&mut rng);
            blocks.push(b);
        }
        let net = SasNet {
            items: Param::from_tensor(matrix(
                normal(&mut rng, (n_items + 1) * d, 1.0),
                n_items + 1,
                d,
                &dev,
            )),
            positions: Param::from_tensor(matrix(normal(&mut rng, n * d, 0.3), n, d, &dev)),
            blocks,
            ln_g: rand1(&mut rng),
            ln_b: rand1(&mut rng),
        };
        let model = export(&net, p, 0, n_items, vec![0], Vec::new()).unwrap();
        let windows: Vec<Vec<u32>> = vec![vec![3, 1, 4, 1, 5, 9], vec![2, 6, 5], vec![7]];
        let padded: Vec<usize> = windows
            .iter()
            .flat_map(|w| model.window(w).into_iter().map(|i| i as usize))
            .collect();
        let out = values_of(net.forward(&padded, windows.len(), &p, n_items, None, &dev)).unwrap();
        for (r, w) in windows.iter().enumerate() {
            let plain = model.last_hidden(&model.window(w));
            let burn = &out[((r + 1) * n - 1) * d..(r + 1) * n * d];
            for (a, b) in plain.iter().zip(burn) {
                assert!((a - b).abs() < 1e-4, "window {w:?}: {plain:?} vs {burn:?}");
            }
        }
    }
}

//! Training of the neural and pairwise models with burn, on the pure-Rust
//! `flex` CPU backend with autodiff and Adam. What comes out is plain vectors ([`Bpr`],
//! [`TwoTower`]); nothing of burn is needed to serve them.
//!
//! - BPR: for every training pair (u, i) of an epoch (shuffled, seeded) a negative item j the
//!   user has not interacted with is drawn uniformly; the loss is
//!   `−log σ(x_ui − x_uj) + λ(‖p_u‖² + ‖q_i‖² + ‖q_j‖²)` with `x_ui = p_u·q_i + b_i`.
//! - Two-tower: a batch is one (user, held-out item) pair per row: the user tower sees up to
//!   `history` of the user's other training items, the item tower the held-out item. The loss
//!   is a sampled softmax over the batch's positives plus `negatives` uniformly drawn items
//!   (mixed negative sampling), with a row's own item masked where it recurs as another row's
//!   candidate. Id embeddings are dropped for a share of the candidates, so content features
//!   must place items on their own — what a brand-new item has.
//!
//! Initial weights come from the crate's seeded generator, so a fit is reproducible for a
//! seed on one machine.

mod heap;
mod sasrec;
pub use sasrec::{burn_next_scores, fit_sasrec};

use burn::module::Param;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::{log_sigmoid, log_softmax, relu};
use marquee_domain::rng::SeededRng;
use marquee_models::features::FeatureList;
use marquee_models::{Bpr, BprParams, Error, Interactions, Result, TwoTower, TwoTowerParams};
use std::time::Instant;

/// One finished epoch: its mean training loss and how long it took.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Epoch {
    pub epoch: usize,
    pub loss: f32,
    pub seconds: f64,
}

fn device() -> Device {
    Device::flex().autodiff()
}

fn normal(rng: &mut SeededRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.normal() as f32 * scale).collect()
}

fn matrix(values: Vec<f32>, rows: usize, cols: usize, dev: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values, [rows, cols]), dev)
}

fn vector(values: Vec<f32>, dev: &Device) -> Tensor<1> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), dev)
}

fn indices(values: &[usize], dev: &Device) -> Tensor<1, Int> {
    let v: Vec<i32> = values.iter().map(|&i| i as i32).collect();
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [n]), dev)
}

fn values_of<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data()
        .try_into_vec::<f32>()
        .map_err(|e| Error::Numeric(format!("reading a tensor back: {e:?}")))
}

fn check(params: &[(&'static str, f64, bool)]) -> Result<()> {
    for &(name, value, ok) in params {
        if !ok || !value.is_finite() {
            return Err(Error::Parameter {
                name,
                message: format!("{value} is out of range"),
            });
        }
    }
    Ok(())
}

/// Records a finished epoch (its mean batch loss) and asks `on_epoch` whether to go on.
fn end_epoch(
    curve: &mut Vec<Epoch>,
    epoch: usize,
    loss: f64,
    start: Instant,
    on_epoch: &mut impl FnMut(&Epoch) -> bool,
) -> Result<()> {
    let e = Epoch {
        epoch,
        loss: loss as f32,
        seconds: start.elapsed().as_secs_f64(),
    };
    curve.push(e);
    if on_epoch(&e) {
        Ok(())
    } else {
        Err(Error::Interrupted)
    }
}

/// Training pairs (user, item) of a matrix, one per stored interaction.
fn pairs(train: &Interactions) -> Vec<(usize, usize)> {
    (0..train.n_users())
        .flat_map(|u| train.row(u).items.iter().map(move |&i| (u, i as usize)))
        .collect()
}

#[derive(Module, Debug)]
struct BprNet {
    users: Param<Tensor<2>>,
    items: Param<Tensor<2>>,
    bias: Param<Tensor<1>>,
}

impl BprNet {
    fn loss(&self, u: &[usize], i: &[usize], j: &[usize], reg: f32, dev: &Device) -> Tensor<1> {
        let b = u.len() as f32;
        let pu = self.users.val().select(0, indices(u, dev));
        let qi = self.items.val().select(0, indices(i, dev));
        let qj = self.items.val().select(0, indices(j, dev));
        let bi = self.bias.val().select(0, indices(i, dev));
        let bj = self.bias.val().select(0, indices(j, dev));
        let x = (pu.clone() * (qi.clone() - qj.clone()))
            .sum_dim(1)
            .squeeze_dim::<1>(1)
            + bi
            - bj;
        let penalty = (pu.powi_scalar(2) + qi.powi_scalar(2) + qj.powi_scalar(2)).sum();
        log_sigmoid(x).sum().neg().div_scalar(b) + penalty.mul_scalar(reg / b)
    }
}

/// Fits BPR; `on_epoch` hears of every epoch and may return false to stop (then
/// [`Error::Interrupted`]).
pub fn fit_bpr(
    train: &Interactions,
    params: BprParams,
    mut on_epoch: impl FnMut(&Epoch) -> bool,
) -> Result<(Bpr, Vec<Epoch>)> {
    let BprParams {
        factors: f,
        epochs,
        learning_rate,
        regularization,
        batch_size,
        seed,
    } = params;
    check(&[
        ("bpr.factors", f as f64, (1..=1024).contains(&f)),
        ("bpr.epochs", epochs as f64, (1..=10_000).contains(&epochs)),
        (
            "bpr.learning_rate",
            learning_rate.into(),
            learning_rate > 0.0,
        ),
        (
            "bpr.regularization",
            regularization.into(),
            regularization >= 0.0,
        ),
        ("bpr.batch_size", batch_size as f64, batch_size >= 1),
    ])?;
    let (n_users, n_items) = (train.n_users(), train.n_items());
    let mut all = pairs(train);
    if all.is_empty() || n_items < 2 {
        return Err(Error::Empty);
    }
    let dev = device();
    let mut rng = SeededRng::new(seed);
    let scale = 0.1;
    let mut net = BprNet {
        users: Param::from_tensor(matrix(
            normal(&mut rng, n_users * f, scale),
            n_users,
            f,
            &dev,
        )),
        items: Param::from_tensor(matrix(
            normal(&mut rng, n_items * f, scale),
            n_items,
            f,
            &dev,
        )),
        bias: Param::from_tensor(vector(vec![0.0; n_items], &dev)),
    };
    let mut optim = AdamConfig::new().init();
    let _heap = heap::KeepHeap::new();
    let mut curve = Vec::with_capacity(epochs);
    for epoch in 1..=epochs {
        let start = Instant::now();
        rng.shuffle(&mut all);
        let (mut total, mut batches) = (0f64, 0usize);
        for batch in all.chunks(batch_size) {
            let u: Vec<usize> = batch.iter().map(|p| p.0).collect();
            let i: Vec<usize> = batch.iter().map(|p| p.1).collect();
            let j: Vec<usize> = u
                .iter()
                .map(|&u| negative(train, u, n_items, &mut rng))
                .collect();
            let loss = net.loss(&u, &i, &j, regularization, &dev);
            total += f64::from(loss.clone().into_scalar::<f32>());
            batches += 1;
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(f64::from(learning_rate), net, grads);
        }
        end_epoch(
            &mut curve,
            epoch,
            total / batches.max(1) as f64,
            start,
            &mut on_epoch,
        )?;
    }
    let users = values_of(net.users.val())?;
    let items = values_of(net.items.val())?;
    let bias = values_of(net.bias.val())?;
    let w = f + 1;
    let mut user_factors = vec![1f32; n_users * w];
    for (dst, src) in user_factors.chunks_exact_mut(w).zip(users.chunks_exact(f)) {
        dst[..f].copy_from_slice(src);
    }
    let mut item_factors = vec![0f32; n_items * w];
    for ((dst, src), b) in item_factors
        .chunks_exact_mut(w)
        .zip(items.chunks_exact(f))
        .zip(&bias)
    {
        dst[..f].copy_from_slice(src);
        dst[f] = *b;
    }
    let model = Bpr {
        params,
        n_users,
        n_items,
        user_factors,
        item_factors,
    };
    Ok((model, curve))
}

/// A uniformly drawn item `user` has not interacted with (after a few tries, any item).
fn negative(train: &Interactions, user: usize, n_items: usize, rng: &mut SeededRng) -> usize {
    let row = train.row(user).items;
    let mut j = rng.index(n_items);
    for _ in 0..16 {
        if row.binary_search(&(j as u32)).is_err() {
            break;
        }
        j = rng.index(n_items);
    }
    j
}

#[derive(Module, Debug)]
struct TowerNet {
    ids: Param<Tensor<2>>,
    context: Param<Tensor<2>>,
    w1: Param<Tensor<2>>,
    b1: Param<Tensor<1>>,
    w2: Param<Tensor<2>>,
    b2: Param<Tensor<1>>,
    features: Param<Tensor<2>>,
}

/// A batch's inputs, as flat index lists with weights.
struct TowerBatch {
    rows: usize,
    /// `rows × slots` context item indices and weights (1/n, 0 on padding).
    context: Vec<usize>,
    context_weights: Vec<f32>,
    slots: usize,
    /// The candidates: each row's positive, then the shared negatives.
    candidates: Vec<usize>,
    /// 1 where a candidate's id embedding is kept.
    keep_id: Vec<f32>,
}

impl TowerNet {
    fn user_tower(&self, b: &TowerBatch, dim: usize, dev: &Device) -> Tensor<2> {
        let gathered = self.context.val().select(0, indices(&b.context, dev));
        let weights = matrix(b.context_weights.clone(), b.rows * b.slots, 1, dev);
        let m = (gathered * weights)
            .reshape([b.rows, b.slots, dim])
            .sum_dim(1)
            .reshape([b.rows, dim]);
        let h = relu(m.clone().matmul(self.w1.val()) + self.b1.val().unsqueeze_dim(0));
        m + h.matmul(self.w2.val()) + self.b2.val().unsqueeze_dim(0)
    }

    fn item_tower(
        &self,
        items: &[usize],
        keep_id: &[f32],
        table: &FeatureTable,
        dim: usize,
        dev: &Device,
    ) -> Tensor<2> {
        let n = items.len();
        let ids =
            self.ids.val().select(0, indices(items, dev)) * matrix(keep_id.to_vec(), n, 1, dev);
        let (slots, weights) = table.gather(items);
        let content = (self.features.val().select(0, indices(&slots, dev))
            * matrix(weights, n * table.width, 1, dev))
        .reshape([n, table.width, dim])
        .sum_dim(1)
        .reshape([n, dim]);
        ids + content
    }
}

/// Every item's features padded to one width, as the item tower's gather input.
struct FeatureTable {
    width: usize,
    buckets: Vec<usize>,
    weights: Vec<f32>,
}

impl FeatureTable {
    fn new(features: &[FeatureList]) -> Self {
        let width = features.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut buckets = vec![0usize; features.len() * width];
        let mut weights = vec![0f32; features.len() * width];
        for (i, list) in features.iter().enumerate() {
            for (s, &(b, w)) in list.iter().enumerate() {
                buckets[i * width + s] = b as usize;
                weights[i * width + s] = w;
            }
        }
        Self {
            width,
            buckets,
            weights,
        }
    }

    fn gather(&self, items: &[usize]) -> (Vec<usize>, Vec<f32>) {
        let w = self.width;
        let mut b = Vec::with_capacity(items.len() * w);
        let mut x = Vec::with_capacity(items.len() * w);
        for &i in items {
            b.extend_from_slice(&self.buckets[i * w..(i + 1) * w]);
            x.extend_from_slice(&self.weights[i * w..(i + 1) * w]);
        }
        (b, x)
    }
}

/// Fits the two-tower model. `features[i]` are the hashed content features of item `i` of
/// `train` (see [`marquee_models::features::item_features`], with `params.buckets` buckets).
pub fn fit_two_tower(
    train: &Interactions,
    features: &[FeatureList],
    params: TwoTowerParams,
    mut on_epoch: impl FnMut(&Epoch) -> bool,
) -> Result<(TwoTower, Vec<Epoch>)> {
    let p = params;
    check(&[
        ("two_tower.dim", p.dim as f64, (1..=1024).contains(&p.dim)),
        (
            "two_tower.hidden",
            p.hidden as f64,
            (1..=4096).contains(&p.hidden),
        ),
        (
            "two_tower.epochs",
            p.epochs as f64,
            (1..=10_000).contains(&p.epochs),
        ),
        (
            "two_tower.learning_rate",
            p.learning_rate.into(),
            p.learning_rate > 0.0,
        ),
        (
            "two_tower.batch_size",
            p.batch_size as f64,
            p.batch_size >= 1,
        ),
        ("two_tower.history", p.history as f64, p.history >= 1),
        (
            "two_tower.id_dropout",
            p.id_dropout.into(),
            (0.0..=1.0).contains(&p.id_dropout),
        ),
        (
            "two_tower.buckets",
            p.buckets.into(),
            (1..=1 << 22).contains(&p.buckets),
        ),
        (
            "two_tower.temperature",
            p.temperature.into(),
            p.temperature > 0.0,
        ),
    ])?;
    let (n_items, d, h) = (train.n_items(), p.dim, p.hidden);
    if features.len() != n_items {
        return Err(Error::Parameter {
            name: "features",
            message: format!("{} feature lists for {n_items} items", features.len()),
        });
    }
    if let Some(&(b, _)) = features.iter().flatten().find(|&&(b, _)| b >= p.buckets) {
        return Err(Error::Parameter {
            name: "features",
            message: format!("bucket {b} is not below two_tower.buckets = {}", p.buckets),
        });
    }
    let mut all = pairs(train);
    // A pair is only useful when the user has another item for the tower to see.
    all.retain(|&(u, _)| train.row(u).len() >= 2);
    if all.is_empty() || n_items < 2 {
        return Err(Error::Empty);
    }
    let table = FeatureTable::new(features);
    // Sampled-softmax correction: a candidate is drawn as another row's positive in
    // proportion to its popularity, or uniformly as a shared negative; subtracting the log of
    // its expected count keeps popular items from being pushed down for being drawn often.
    let counts = train.item_counts();
    let pairs_total = all.len().max(1) as f64;
    let log_q: Vec<f32> = counts
        .iter()
        .map(|&c| {
            let q = p.batch_size as f64 * f64::from(c) / pairs_total
                + p.negatives as f64 / n_items as f64;
            q.max(1e-9).ln() as f32
        })
        .collect();
    let dev = device();
    let mut rng = SeededRng::new(p.seed);
    let emb = 0.05;
    let mut net = TowerNet {
        ids: Param::from_tensor(matrix(normal(&mut rng, n_items * d, emb), n_items, d, &dev)),
        context: Param::from_tensor(matrix(normal(&mut rng, n_items * d, emb), n_items, d, &dev)),
        w1: Param::from_tensor(matrix(
            normal(&mut rng, d * h, (2.0 / d as f32).sqrt()),
            d,
            h,
            &dev,
        )),
        b1: Param::from_tensor(vector(vec![0.0; h], &dev)),
        w2: Param::from_tensor(matrix(vec![0.0; h * d], h, d, &dev)),
        b2: Param::from_tensor(vector(vec![0.0; d], &dev)),
        features: Param::from_tensor(matrix(
            normal(&mut rng, p.buckets as usize * d, emb),
            p.buckets as usize,
            d,
            &dev,
        )),
    };
    let mut optim = AdamConfig::new().init();
    let _heap = heap::KeepHeap::new();
    let mut curve = Vec::with_capacity(p.epochs);
    let inv_t = 1.0 / p.temperature;
    for epoch in 1..=p.epochs {
        let start = Instant::now();
        rng.shuffle(&mut all);
        let (mut total, mut batches) = (0f64, 0usize);
        for chunk in all.chunks(p.batch_size) {
            let batch = tower_batch(train, chunk, &p, n_items, &mut rng);
            let users = net.user_tower(&batch, d, &dev);
            let items = net.item_tower(&batch.candidates, &batch.keep_id, &table, d, &dev);
            let logits = users.matmul(items.transpose()).mul_scalar(inv_t);
            let (target, mask) = targets(&batch, &log_q);
            let c = batch.candidates.len();
            let logits = logits + matrix(mask, batch.rows, c, &dev);
            let picked = log_softmax(logits, 1) * matrix(target, batch.rows, c, &dev);
            let loss = picked.sum().neg().div_scalar(batch.rows as f32);
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
    let model = export(&net, train, features, p)?;
    Ok((model, curve))
}

/// One batch: for each pair, the user's other items (up to `history`, drawn at random) and
/// the pair's item; then the shared negatives.
fn tower_batch(
    train: &Interactions,
    chunk: &[(usize, usize)],
    p: &TwoTowerParams,
    n_items: usize,
    rng: &mut SeededRng,
) -> TowerBatch {
    let slots = p.history;
    let rows = chunk.len();
    let mut context = vec![0usize; rows * slots];
    let mut context_weights = vec![0f32; rows * slots];
    let mut others = Vec::new();
    for (r, &(u, i)) in chunk.iter().enumerate() {
        others.clear();
        others.extend(
            train
                .row(u)
                .items
                .iter()
                .map(|&j| j as usize)
                .filter(|&j| j != i),
        );
        if others.len() > slots {
            // A partial Fisher-Yates shuffle: the first `slots` are a uniform sample.
            for s in 0..slots {
                let t = s + rng.index(others.len() - s);
                others.swap(s, t);
            }
            others.truncate(slots);
        }
        let w = 1.0 / others.len().max(1) as f32;
        for (s, &j) in others.iter().enumerate() {
            context[r * slots + s] = j;
            context_weights[r * slots + s] = w;
        }
    }
    let mut candidates: Vec<usize> = chunk.iter().map(|p| p.1).collect();
    candidates.extend((0..p.negatives).map(|_| rng.index(n_items)));
    let keep_id = candidates
        .iter()
        .map(|_| {
            if rng.chance(f64::from(p.id_dropout)) {
                0.0
            } else {
                1.0
            }
        })
        .collect();
    TowerBatch {
        rows,
        context,
        context_weights,
        slots,
        candidates,
        keep_id,
    }
}

/// The one-hot targets (row r's positive is candidate r) and the additive logit correction:
/// minus each candidate's log sampling rate (`log_q`, per item), and a large negative that
/// hides a row's own item where it recurs among the other candidates.
fn targets(b: &TowerBatch, log_q: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let c = b.candidates.len();
    let correction: Vec<f32> = b.candidates.iter().map(|&i| -log_q[i]).collect();
    let mut target = vec![0f32; b.rows * c];
    let mut mask = Vec::with_capacity(b.rows * c);
    for _ in 0..b.rows {
        mask.extend_from_slice(&correction);
    }
    for r in 0..b.rows {
        target[r * c + r] = 1.0;
        let own = b.candidates[r];
        for (k, &cand) in b.candidates.iter().enumerate() {
            if k != r && cand == own {
                mask[r * c + k] = -1e4;
            }
        }
    }
    (target, mask)
}

/// The fitted weights as a [`TwoTower`], with every training item's vector and every training
/// user's vector (the tower over all their training items) computed in plain Rust.
fn export(
    net: &TowerNet,
    train: &Interactions,
    features: &[FeatureList],
    params: TwoTowerParams,
) -> Result<TwoTower> {
    let d = params.dim;
    let ids = values_of(net.ids.val())?;
    let mut model = TwoTower {
        params,
        n_users: train.n_users(),
        n_items: train.n_items(),
        user_factors: Vec::new(),
        item_factors: Vec::new(),
        context: values_of(net.context.val())?,
        w1: values_of(net.w1.val())?,
        b1: values_of(net.b1.val())?,
        w2: values_of(net.w2.val())?,
        b2: values_of(net.b2.val())?,
        features: values_of(net.features.val())?,
    };
    let mut items = Vec::with_capacity(train.n_items() * d);
    for (list, id) in features.iter().zip(ids.chunks_exact(d)) {
        let v = model.item_vector_from_features(list);
        items.extend(v.iter().zip(id).map(|(a, b)| a + b));
    }
    let mut users = Vec::with_capacity(train.n_users() * d);
    for u in 0..train.n_users() {
        users.extend(model.user_vector_from(train.row(u).items.iter().map(|&i| i as usize)));
    }
    model.item_factors = items;
    model.user_factors = users;
    Ok(model)
}

#[cfg(test)]
mod tests;

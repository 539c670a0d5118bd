//! Centroid initialisation for the DEC stage: k-means on the latent codes (k-means++ seeding,
//! several restarts, Lloyd iterations), and the map from clusters to sentiment classes.

use tch::{Kind, Tensor};

/// Lowest-inertia k-means of `z [N, L]` over `restarts` k-means++ initialisations, using torch's
/// global generator (seed it first for determinism). Returns the centroids `[k, L]` and each
/// row's cluster.
pub fn kmeans(z: &Tensor, k: i64, restarts: usize, max_iter: usize) -> (Tensor, Vec<i64>) {
    let z = z.to_kind(Kind::Float);
    let mut best: Option<(f64, Tensor, Tensor)> = None;
    for _ in 0..restarts.max(1) {
        let mut centroids = kmeans_plus_plus(&z, k);
        let mut assign = nearest(&z, &centroids).0;
        for _ in 0..max_iter {
            centroids = update(&z, &assign, &centroids, k);
            let next = nearest(&z, &centroids).0;
            let changed = next.ne_tensor(&assign).any().int64_value(&[]) != 0;
            assign = next;
            if !changed {
                break;
            }
        }
        let inertia = nearest(&z, &centroids).1.sum(Kind::Double).double_value(&[]);
        if best.as_ref().is_none_or(|(b, _, _)| inertia < *b) {
            best = Some((inertia, centroids, assign));
        }
    }
    let (_, centroids, assign) = best.expect("at least one restart");
    let assign = Vec::<i64>::try_from(assign.to_device(tch::Device::Cpu)).expect("int64 assignments");
    (centroids, assign)
}

/// Index of the nearest centroid of every row and the squared distance to it.
fn nearest(z: &Tensor, centroids: &Tensor) -> (Tensor, Tensor) {
    let d2 = (z.unsqueeze(1) - centroids.unsqueeze(0)).square().sum_dim_intlist(2, false, Kind::Float);
    let (min, idx) = d2.min_dim(1, false);
    (idx, min)
}

/// k-means++: the first centroid uniformly, each next one with probability ∝ squared distance
/// to the nearest chosen centroid.
fn kmeans_plus_plus(z: &Tensor, k: i64) -> Tensor {
    let n = z.size()[0];
    let first = Tensor::randint(n, [1], (Kind::Int64, z.device()));
    let mut chosen = vec![z.index_select(0, &first)];
    for _ in 1..k {
        let centroids = Tensor::cat(&chosen, 0);
        let d2 = nearest(z, &centroids).1;
        // All points identical to a centroid: any point will do.
        let weights = if d2.sum(Kind::Double).double_value(&[]) > 0.0 { d2 } else { d2.ones_like() };
        let next = weights.multinomial(1, false);
        chosen.push(z.index_select(0, &next));
    }
    Tensor::cat(&chosen, 0)
}

/// Lloyd update; an emptied cluster keeps its previous centroid.
fn update(z: &Tensor, assign: &Tensor, previous: &Tensor, k: i64) -> Tensor {
    let one_hot = assign.one_hot(k).to_kind(Kind::Float); // [N, k]
    let counts = one_hot.sum_dim_intlist(0, false, Kind::Float); // [k]
    let sums = one_hot.transpose(0, 1).matmul(z); // [k, L]
    let means = sums / counts.clamp_min(1.0).unsqueeze(1);
    let empty = counts.eq(0.0).unsqueeze(1);
    means.where_self(&empty.logical_not(), previous)
}

/// Assigns every cluster the class that is the majority among its labeled members, while making
/// sure each class keeps at least one cluster: the cluster with the lowest positive rate stands
/// for class 0 and the one with the highest for class 1. Returns a `[k, 2]` one-hot map.
pub fn clusters_to_classes(assign: &[i64], labels: &[f32], labeled: &[bool], k: usize) -> Vec<[f32; 2]> {
    let mut positives = vec![0usize; k];
    let mut members = vec![0usize; k];
    for ((&c, &y), &is_labeled) in assign.iter().zip(labels).zip(labeled) {
        if is_labeled {
            members[c as usize] += 1;
            positives[c as usize] += (y > 0.5) as usize;
        }
    }
    // A cluster without labeled members counts as undecided (rate 0.5).
    let rate: Vec<f64> =
        (0..k).map(|c| if members[c] == 0 { 0.5 } else { positives[c] as f64 / members[c] as f64 }).collect();
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&a, &b| rate[a].total_cmp(&rate[b]).then(a.cmp(&b)));
    let mut class: Vec<usize> = rate.iter().map(|&r| (r > 0.5) as usize).collect();
    class[order[0]] = 0;
    class[order[k - 1]] = 1;
    class.iter().map(|&c| if c == 0 { [1.0, 0.0] } else { [0.0, 1.0] }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kmeans_separates_two_blobs() {
        tch::manual_seed(3);
        let a = Tensor::randn([50, 2], (Kind::Float, tch::Device::Cpu)) * 0.1;
        let b = Tensor::randn([50, 2], (Kind::Float, tch::Device::Cpu)) * 0.1 + 5.0;
        let (centroids, assign) = kmeans(&Tensor::cat(&[a, b], 0), 2, 3, 50);
        assert!(assign[..50].iter().all(|&c| c == assign[0]));
        assert!(assign[50..].iter().all(|&c| c == assign[50] && c != assign[0]));
        let far = centroids.get(assign[50]).mean(Kind::Float).double_value(&[]);
        assert!((far - 5.0).abs() < 0.1, "centroid of the far blob at {far}");
    }

    #[test]
    fn every_class_keeps_a_cluster() {
        // Both clusters mostly positive: the less positive one still stands for class 0.
        let assign = [0, 0, 0, 1, 1, 1];
        let labels = [1.0, 1.0, 0.0, 1.0, 1.0, 1.0];
        let map = clusters_to_classes(&assign, &labels, &[true; 6], 2);
        assert_eq!(map, vec![[1.0, 0.0], [0.0, 1.0]]);
        // Three clusters: the middle one follows its majority.
        let assign = [0, 0, 1, 1, 2, 2];
        let labels = [0.0, 0.0, 1.0, 1.0, 1.0, 0.0];
        let map = clusters_to_classes(&assign, &labels, &[true, true, true, true, true, false], 3);
        assert_eq!(map, vec![[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]);
    }
}

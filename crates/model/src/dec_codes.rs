//! The DEC stage's view of the autoencoder's latent space, for the solo and the packed trainer:
//! the k-means starting point with its cluster → class map, the latent codes of a batch, and
//! the target distribution (equation 3).

use tch::{Device, Tensor};

use crate::autoencoder::Autoencoder;
use crate::batch::Batch;
use crate::cluster::{clusters_to_classes, kmeans};
use crate::evaluate::EVAL_BATCH;
use crate::losses;
use crate::train::Trainer;

/// k-means restarts when initialising the DEC centroids.
const KMEANS_RESTARTS: usize = 10;
const KMEANS_MAX_ITER: usize = 300;

impl Trainer<'_> {
    /// DEC's starting point from the pretrained autoencoder `ae`: k-means centroids `[K, L]` of
    /// the training rows' latent codes, and the cluster → class map (`[K, 2]` one-hot, row-major)
    /// from their labeled members. Draws from torch's generator (the stage's seed).
    pub(crate) fn initial_clusters(&self, ae: &Autoencoder) -> (Tensor, Vec<f32>) {
        let p = self.params;
        let z_all = self.latent_codes(ae, &self.data.train);
        let (init, assign) = kmeans(&z_all, p.n_clusters, KMEANS_RESTARTS, KMEANS_MAX_ITER);
        let labels = Vec::<f32>::try_from(self.data.train.y.to_device(Device::Cpu)).expect("float labels");
        let labeled = Vec::<bool>::try_from(self.data.train.labeled.to_device(Device::Cpu)).expect("bool mask");
        (init, clusters_to_classes(&assign, &labels, &labeled, p.n_clusters as usize).concat())
    }

    pub(crate) fn latent_codes(&self, ae: &Autoencoder, data: &Batch) -> Tensor {
        tch::no_grad(|| {
            let parts: Vec<Tensor> =
                data.batch_indices(EVAL_BATCH, false).iter().map(|idx| ae.encode(&data.select(idx), false)).collect();
            Tensor::cat(&parts, 0)
        })
    }

    /// Equation 3 over every row of `data` with the current network.
    pub(crate) fn target_distribution(&self, ae: &Autoencoder, centroids: &Tensor, data: &Batch) -> Tensor {
        tch::no_grad(|| {
            let q = losses::soft_assignment(&self.latent_codes(ae, data), centroids, self.params.dof);
            losses::target_distribution(&q)
        })
    }
}

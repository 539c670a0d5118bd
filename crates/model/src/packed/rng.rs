//! Per-member random numbers for the pack's dropout masks.
//!
//! tch exposes one global generator. Members drawing from it in turn would make each member's
//! masks depend on its pack-mates (how many drew before it, and how much). Instead, at every
//! training step each member's uniform numbers come from the generator freshly seeded with its
//! own key — a hash of (trial seed, stage, epoch, step) — drawn in one block of the size of its
//! masks for that step; the forward pass then cuts the block in the same order every step. So
//! a member's masks are a function of (seed, stage, epoch, step, dropout site, element) only,
//! whatever its pack-mates and K: counter-based randomness built from the seedable generator.
//!
//! Like the solo trainer (which reseeds the same generator per epoch), this assumes one pack
//! trains at a time in a process.

use tch::{Device, Kind, Tensor};

use decsweep_api::Stage;

/// The key of a member at one training step: SplitMix64 of (seed, stage, epoch, step), as a
/// non-negative torch seed.
pub fn step_key(seed: u64, stage: Stage, epoch: u64, step: u64) -> i64 {
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((stage as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9))
        .wrapping_add(epoch.wrapping_mul(0x94D0_49BB_1331_11EB))
        .wrapping_add(step.wrapping_mul(0xD6E8_FEB8_6659_FD93));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 1) as i64
}

/// `[K, per_member]` uniform numbers in [0, 1): row `k` drawn from torch's generator seeded with
/// `keys[k]`, so it depends on that key only.
pub fn uniforms(keys: &[i64], per_member: i64, device: Device) -> Tensor {
    let rows: Vec<Tensor> = keys
        .iter()
        .map(|&key| {
            tch::manual_seed(key);
            Tensor::rand([per_member], (Kind::Float, device))
        })
        .collect();
    Tensor::stack(&rows, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_members_numbers_depend_on_its_key_only() {
        let a = step_key(7, Stage::Finetune, 3, 11);
        let b = step_key(8, Stage::Finetune, 3, 11);
        let alone = uniforms(&[a], 50, Device::Cpu);
        let packed = uniforms(&[b, a, b], 50, Device::Cpu);
        assert!(alone.get(0).equal(&packed.get(1)));
        assert!(!packed.get(0).equal(&packed.get(1)), "another key, other numbers");
        for other in
            [step_key(7, Stage::Finetune, 3, 12), step_key(7, Stage::Dec, 3, 11), step_key(7, Stage::Finetune, 4, 11)]
        {
            assert_ne!(other, a);
            assert!(other >= 0);
        }
    }
}

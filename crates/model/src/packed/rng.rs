//! Per-member random numbers for the pack's dropout masks.
//!
//! tch exposes one global generator. Members drawing from it in turn would make each member's
//! masks depend on its pack-mates (how many drew before it, and how much). Instead, at every
//! training step each member's masks come from its own key, a hash of (trial seed, stage,
//! epoch, step), as one block of the size of its masks for that step; the forward pass then
//! cuts the block in the same order every step. So a member's masks are a function of
//! (seed, stage, epoch, step, dropout site, element) only, whatever its pack-mates and K.
//!
//! How the block is drawn depends on the device, because what is cheap does:
//! - **CPU**: a counter-based generator written here ([`counter_bits`]): element pair `j` of a
//!   member's block is a hash of (key, j). torch's CPU generator (a Mersenne twister, one
//!   element at a time) took 30 ms a step for 16 tiny members, more than their forward pass;
//!   the hash takes a few, spread over the intra-op threads by member.
//! - **CUDA**: torch's generator (Philox on the GPU), reseeded with each member's key before
//!   its block is drawn. Blocks there are far larger (the paper's model at K = 32) and drawing
//!   them on the device is what keeps it busy.
//!
//! The CUDA path reseeds the process's one generator, so like the solo trainer (which reseeds
//! it per epoch) it assumes one pack trains at a time in a process.

use tch::{Device, Kind, Tensor};

use decsweep_api::Stage;

/// The key of a member at one training step: SplitMix64 of (seed, stage, epoch, step), as a
/// non-negative torch seed.
pub fn step_key(seed: u64, stage: Stage, epoch: u64, step: u64) -> i64 {
    let z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((stage as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9))
        .wrapping_add(epoch.wrapping_mul(0x94D0_49BB_1331_11EB))
        .wrapping_add(step.wrapping_mul(0xD6E8_FEB8_6659_FD93));
    (mix64(z) >> 1) as i64
}

/// `[K, per_member]` inverted-dropout factors: row `k` holds 0 where member `k` drops an element
/// (with probability `rates[k]`) and `1 / (1 − rates[k])` where it keeps it, drawn from
/// `keys[k]` only.
pub fn keep_factors(keys: &[i64], rates: &[f64], per_member: i64, device: Device) -> Tensor {
    assert_eq!(keys.len(), rates.len(), "one rate per key");
    let k = keys.len() as i64;
    match device {
        Device::Cpu => {
            let out = Tensor::empty([k, per_member], (Kind::Float, Device::Cpu));
            let n = per_member as usize;
            if n == 0 {
                return out;
            }
            // SAFETY: `out` was just allocated, contiguous, `k · n` floats, and nothing else
            // holds it until this function returns it; the slice does not outlive this scope.
            let block = unsafe { std::slice::from_raw_parts_mut(out.data_ptr() as *mut f32, keys.len() * n) };
            // Members split over the intra-op threads, which are idle between torch's ops.
            let threads = (tch::get_num_threads().max(1) as usize).min(keys.len());
            let per_thread = keys.len().div_ceil(threads);
            let fill = |block: &mut [f32], keys: &[i64], rates: &[f64]| {
                for ((row, &key), &rate) in block.chunks_mut(n).zip(keys).zip(rates) {
                    fill_keep_factors(key as u64, rate, row);
                }
            };
            std::thread::scope(|scope| {
                let mut parts =
                    block.chunks_mut(per_thread * n).zip(keys.chunks(per_thread)).zip(rates.chunks(per_thread));
                let first = parts.next();
                for ((block, keys), rates) in parts {
                    scope.spawn(move || fill(block, keys, rates));
                }
                if let Some(((block, keys), rates)) = first {
                    fill(block, keys, rates);
                }
            });
            out
        }
        _ => {
            let blocks: Vec<Tensor> = keys
                .iter()
                .zip(rates)
                .map(|(&key, &rate)| {
                    tch::manual_seed(key);
                    let keep = Tensor::rand([per_member], (Kind::Float, device)).ge(rate);
                    keep.to_kind(Kind::Float) * (1.0 / (1.0 - rate))
                })
                .collect();
            Tensor::stack(&blocks, 0)
        }
    }
}

/// Member `key`'s factors: element `i` is dropped when its 16 random bits, read as a fraction
/// of 2¹⁶, are below `rate`; so its drop probability is `rate` rounded to a multiple of 2⁻¹⁶
/// (0.1 becomes 0.100006). Four elements share one 64-bit draw: the draws, not the stores, are
/// what this costs.
fn fill_keep_factors(key: u64, rate: f64, out: &mut [f32]) {
    let threshold = (rate.clamp(0.0, 1.0) * 65_536.0).round() as u32;
    let scale = (1.0 / (1.0 - rate)) as f32;
    let mut quads = out.chunks_exact_mut(4);
    let mut j = 0u64;
    for quad in &mut quads {
        let bits = counter_bits(key, j);
        for (i, x) in quad.iter_mut().enumerate() {
            *x = if ((bits >> (16 * i)) & 0xFFFF) as u32 >= threshold { scale } else { 0.0 };
        }
        j += 1;
    }
    let bits = counter_bits(key, j);
    for (i, x) in quads.into_remainder().iter_mut().enumerate() {
        *x = if ((bits >> (16 * i)) & 0xFFFF) as u32 >= threshold { scale } else { 0.0 };
    }
}

/// 64 random bits for counter `j` of stream `key`: the stream starts at a SplitMix64 hash of
/// the key (so neighbouring keys start far apart), and draw `j` is wyrand's output function of
/// that start's `j + 1`-th Weyl step: a function of (key, j) and nothing else.
fn counter_bits(key: u64, j: u64) -> u64 {
    let s = splitmix64(key).wrapping_add(j.wrapping_add(1).wrapping_mul(0xA076_1D64_78BD_642F));
    let t = u128::from(s) * u128::from(s ^ 0xE703_7ED1_A0B4_28DB);
    (t >> 64) as u64 ^ t as u64
}

fn splitmix64(x: u64) -> u64 {
    mix64(x.wrapping_add(0x9E37_79B9_7F4A_7C15))
}

/// SplitMix64's output function (Stafford's Mix13): what `step_key` and `splitmix64` share.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_members_factors_depend_on_its_key_and_rate_only() {
        let a = step_key(7, Stage::Finetune, 3, 11);
        let b = step_key(8, Stage::Finetune, 3, 11);
        let alone = keep_factors(&[a], &[0.1], 51, Device::Cpu);
        let packed = keep_factors(&[b, a, b], &[0.5, 0.1, 0.2], 51, Device::Cpu);
        assert!(alone.get(0).equal(&packed.get(1)));
        assert!(!packed.get(0).equal(&packed.get(1)), "another key, other factors");
        for other in
            [step_key(7, Stage::Finetune, 3, 12), step_key(7, Stage::Dec, 3, 11), step_key(7, Stage::Finetune, 4, 11)]
        {
            assert_ne!(other, a);
            assert!(other >= 0);
        }
    }

    #[test]
    fn factors_are_zero_or_the_inverse_keep_rate_at_the_rate_asked() {
        let n = 200_001;
        for rate in [0.0, 0.1, 0.5, 0.9] {
            let f = keep_factors(&[step_key(1, Stage::Ae, 1, 0)], &[rate], n, Device::Cpu);
            let scale = (1.0 / (1.0 - rate)) as f32;
            let values = Vec::<f32>::try_from(f.view([-1])).unwrap();
            assert!(values.iter().all(|&v| v == 0.0 || v == scale), "rate {rate}: values other than 0 and {scale}");
            let dropped = values.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
            // Binomial standard deviation at n = 200,001 is at most 0.0012; rounding to 2⁻¹⁶ is below it.
            assert!((dropped - rate).abs() < 0.006, "rate {rate}: dropped {dropped}");
        }
    }

    #[test]
    fn neighbouring_keys_and_counters_give_unrelated_bits() {
        // Bits that agree half the time, as independent ones do (binomial sd 1/sqrt(64·4000)/2).
        let agree = |x: u64, y: u64| (!(x ^ y)).count_ones() as f64;
        let n = 4000u64;
        let mut by_key = 0.0;
        let mut by_counter = 0.0;
        for j in 0..n {
            by_key += agree(counter_bits(5, j), counter_bits(6, j));
            by_counter += agree(counter_bits(5, j), counter_bits(5, j + 1));
        }
        for (what, sum) in [("keys", by_key), ("counters", by_counter)] {
            let share = sum / (64.0 * n as f64);
            assert!((share - 0.5).abs() < 0.01, "neighbouring {what}: {share} of bits agree");
        }
    }
}

//! Torch seeds of a trial's stages and epochs: a function of (trial seed, stage, epoch) only,
//! so a stage trained on its own, loaded from a cache or resumed mid-way draws the same numbers.

use decsweep_api::Stage;

/// The seed torch's generator gets before `epoch` of `stage` (epoch 0: before the stage builds
/// its network).
pub(crate) fn torch_seed(seed: u64, stage: Stage, epoch: u64) -> i64 {
    mix_seed(seed, stage_salt(stage), epoch)
}

/// Mixes the trial seed, a stage's salt and an epoch into one torch seed (SplitMix64's
/// finaliser, so nearby inputs give unrelated seeds).
fn mix_seed(seed: u64, salt: u64, epoch: u64) -> i64 {
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(salt.wrapping_mul(0xBF58_476D_1CE4_E5B9))
        .wrapping_add(epoch.wrapping_mul(0x94D0_49BB_1331_11EB));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 1) as i64
}

fn stage_salt(stage: Stage) -> u64 {
    match stage {
        Stage::Data => 0,
        Stage::Ae => 1,
        Stage::Dec => 2,
        Stage::Finetune => 3,
    }
}

//! The synthetic generators' vocabulary: which generator (`kind`) and the knobs of the clustered
//! one, with their defaults and ranges. Shared by `decsweep data synth` (flags), sweep specs
//! (`dataset = { synthetic = { kind = "clustered", … } }`), the coordinator (which generates a
//! spec's dataset and records its identity) and the generator itself (`decsweep-data`).
//!
//! The generators and what each knob does are documented with them, in `decsweep_data`'s
//! `synth` (the `linear` generator) and `clustered` modules.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::params::{Domain, PackRole, ParamError, ParamSpec, ParamValue};

/// Which synthetic generator, with its settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum SynthKind {
    /// The original generator: a sentiment score projected linearly into every modality. Its
    /// label signal is easy; kept byte-for-byte so existing datasets and results hold.
    #[default]
    Linear,
    /// Classes as sub-clusters on a curved manifold, spread over modalities and time.
    Clustered(ClusteredKnobs),
}

impl SynthKind {
    /// The words a spec or `--kind` accepts.
    pub const WORDS: &'static [&'static str] = &["linear", "clustered"];

    pub fn name(&self) -> &'static str {
        match self {
            SynthKind::Linear => "linear",
            SynthKind::Clustered(_) => "clustered",
        }
    }

    /// The generator of that name with default knobs.
    pub fn from_word(word: &str) -> Option<SynthKind> {
        match word {
            "linear" => Some(SynthKind::Linear),
            "clustered" => Some(SynthKind::Clustered(ClusteredKnobs::default())),
            _ => None,
        }
    }

    /// The knobs this generator has (none for `linear`).
    pub fn knobs(&self) -> &'static [ParamSpec] {
        match self {
            SynthKind::Linear => &[],
            SynthKind::Clustered(_) => CLUSTERED_KNOBS,
        }
    }
}

/// The clustered generator's knobs. `Default` gives the settings of `sweeps/clustered.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusteredKnobs {
    /// Half the angle between neighbouring sub-cluster centres on the curve, in units of a
    /// sub-cluster's angular standard deviation.
    pub separation: f64,
    /// Sub-clusters per class.
    pub subclusters: i64,
    /// Per-step noise standard deviation per modality (text, audio, vision), in units of a
    /// feature's signal standard deviation.
    pub noise: [f64; 3],
    /// Per modality (text, audio, vision), the share of its steps that carry the cluster signal.
    pub share: [f64; 3],
}

impl Default for ClusteredKnobs {
    fn default() -> Self {
        ClusteredKnobs { separation: 2.5, subclusters: 4, noise: [7.0, 3.5, 2.8], share: [0.5, 0.5, 0.5] }
    }
}

const NOISE: Domain = Domain::Float { min: 0.0, max: 1000.0, min_open: false };
const SHARE: Domain = Domain::Float { min: 0.0, max: 1.0, min_open: false };

/// The clustered generator's knobs, in the order they are written in a dataset's identity.
pub const CLUSTERED_KNOBS: &[ParamSpec] = &[
    ParamSpec {
        name: "separation",
        domain: Domain::Float { min: 0.0, max: 100.0, min_open: true },
        stages: &[], only_in: None, pack: PackRole::Key,
        doc: "half the angle between neighbouring sub-clusters on the curve, in sub-cluster standard deviations (higher: cleaner clusters)",
    },
    ParamSpec {
        name: "subclusters",
        domain: Domain::Int { min: 1, max: 32 },
        stages: &[], only_in: None, pack: PackRole::Key,
        doc: "sub-clusters per class, alternating with the other class's along the curve",
    },
    ParamSpec { name: "noise_text", domain: NOISE, stages: &[], only_in: None, pack: PackRole::Key, doc: "per-step noise of text, in signal standard deviations" },
    ParamSpec { name: "noise_audio", domain: NOISE, stages: &[], only_in: None, pack: PackRole::Key, doc: "per-step noise of audio, in signal standard deviations" },
    ParamSpec { name: "noise_vision", domain: NOISE, stages: &[], only_in: None, pack: PackRole::Key, doc: "per-step noise of vision, in signal standard deviations" },
    ParamSpec { name: "share_text", domain: SHARE, stages: &[], only_in: None, pack: PackRole::Key, doc: "share of text steps that carry the cluster signal" },
    ParamSpec { name: "share_audio", domain: SHARE, stages: &[], only_in: None, pack: PackRole::Key, doc: "share of audio steps that carry the cluster signal" },
    ParamSpec { name: "share_vision", domain: SHARE, stages: &[], only_in: None, pack: PackRole::Key, doc: "share of vision steps that carry the cluster signal" },
];

/// The registry entry of a clustered-generator knob.
pub fn clustered_knob(name: &str) -> Option<&'static ParamSpec> {
    CLUSTERED_KNOBS.iter().find(|k| k.name == name)
}

impl ClusteredKnobs {
    /// The value of a knob by name.
    pub fn get(&self, name: &str) -> Option<ParamValue> {
        let m = ["text", "audio", "vision"];
        Some(match name {
            "separation" => ParamValue::Float(self.separation),
            "subclusters" => ParamValue::Int(self.subclusters),
            _ => {
                let (what, modality) = name.split_once('_')?;
                let i = m.iter().position(|x| *x == modality)?;
                match what {
                    "noise" => ParamValue::Float(self.noise[i]),
                    "share" => ParamValue::Float(self.share[i]),
                    _ => return None,
                }
            }
        })
    }

    /// Sets a knob by name, converting and range-checking the value. An unknown name is
    /// [`ParamError::Unknown`]; callers list [`CLUSTERED_KNOBS`] in their own message.
    pub fn set(&mut self, name: &str, value: &ParamValue) -> Result<(), ParamError> {
        let spec = clustered_knob(name).ok_or_else(|| ParamError::Unknown { name: name.to_string() })?;
        let checked = spec.check(value)?;
        let float = checked.as_f64().expect("checked as a number");
        match name {
            "separation" => self.separation = float,
            "subclusters" => self.subclusters = float as i64,
            "noise_text" => self.noise[0] = float,
            "noise_audio" => self.noise[1] = float,
            "noise_vision" => self.noise[2] = float,
            "share_text" => self.share[0] = float,
            "share_audio" => self.share[1] = float,
            "share_vision" => self.share[2] = float,
            _ => unreachable!("clustered_knob() accepted an unhandled name"),
        }
        Ok(())
    }
}

/// Every knob as `name=value`, comma-separated, in registry order: the part of a dataset's
/// identity that tells two clustered datasets apart.
impl fmt::Display for ClusteredKnobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, spec) in CLUSTERED_KNOBS.iter().enumerate() {
            let sep = if k == 0 { "" } else { "," };
            write!(f, "{sep}{}={}", spec.name, self.get(spec.name).expect("registered knob"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_knob_round_trips_and_is_range_checked() {
        let mut k = ClusteredKnobs::default();
        for spec in CLUSTERED_KNOBS {
            let v = k.get(spec.name).unwrap_or_else(|| panic!("{} has no getter", spec.name));
            k.set(spec.name, &v).unwrap();
        }
        assert_eq!(k, ClusteredKnobs::default());
        k.set("noise_audio", &ParamValue::Int(7)).unwrap();
        k.set("share_vision", &ParamValue::Float(0.0)).unwrap();
        k.set("subclusters", &ParamValue::Int(5)).unwrap();
        assert_eq!((k.noise[1], k.share[2], k.subclusters), (7.0, 0.0, 5));
        assert!(matches!(k.set("share_text", &ParamValue::Float(1.5)), Err(ParamError::OutOfRange { .. })));
        assert!(matches!(k.set("separation", &ParamValue::Float(0.0)), Err(ParamError::OutOfRange { .. })));
        assert!(matches!(k.set("subclusters", &ParamValue::Float(2.5)), Err(ParamError::WrongType { .. })));
        assert!(matches!(k.set("noise_smell", &ParamValue::Int(1)), Err(ParamError::Unknown { .. })));
        assert_eq!(k.get("noise_smell"), None);
    }

    #[test]
    fn identity_names_every_knob_and_kinds_parse() {
        let text = ClusteredKnobs::default().to_string();
        assert_eq!(
            text,
            "separation=2.5,subclusters=4,noise_text=7,noise_audio=3.5,noise_vision=2.8,share_text=0.5,share_audio=0.5,share_vision=0.5"
        );
        let other = ClusteredKnobs { separation: 3.0, ..ClusteredKnobs::default() };
        assert_ne!(other.to_string(), text, "different knobs, different identity");
        assert_eq!(SynthKind::from_word("linear"), Some(SynthKind::Linear));
        assert_eq!(SynthKind::from_word("clustered").unwrap().knobs().len(), 8);
        assert_eq!(SynthKind::from_word("spiral"), None);
        assert_eq!(SynthKind::default().name(), "linear");
    }
}

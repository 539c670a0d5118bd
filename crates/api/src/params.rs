//! The pipeline's parameters: one typed struct, one registry describing every field.
//!
//! DESIGN.md fixes the names; they are never renamed. Each parameter records the stages that
//! read it, so a stage's checkpoint key can be derived from exactly the parameters it depends on
//! and a sweep spec can be told when it varies a parameter its pipeline never reads.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A parameter value as it travels in specs, `--set`, CSV and JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Int(i64),
    Float(f64),
    Str(String),
}

impl ParamValue {
    /// Reads a `--set` right-hand side: an integer, else a float, else a string.
    pub fn parse_loose(text: &str) -> ParamValue {
        let t = text.trim();
        if let Ok(i) = t.parse::<i64>() {
            ParamValue::Int(i)
        } else if let Ok(f) = t.parse::<f64>() {
            ParamValue::Float(f)
        } else {
            ParamValue::Str(t.to_string())
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ParamValue::Int(i) => Some(*i as f64),
            ParamValue::Float(f) => Some(*f),
            ParamValue::Str(_) => None,
        }
    }

    /// Equality as a person reads it: `1` and `1.0` are the same value.
    pub fn same_as(&self, other: &ParamValue) -> bool {
        match (self.as_f64(), other.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => self == other,
        }
    }

    /// A total order as a person reads it: numbers numerically, before words, words by text.
    pub fn cmp_readable(&self, other: &ParamValue) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        match (self.as_f64(), other.as_f64()) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => self.to_string().cmp(&other.to_string()),
        }
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Int(i) => write!(f, "{i}"),
            // `{}` on f64 prints the shortest text that reads back to the same value.
            ParamValue::Float(x) => write!(f, "{x}"),
            ParamValue::Str(s) => f.write_str(s),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParamError {
    #[error("unknown parameter `{name}`; valid parameters are: {}", valid_names().join(", "))]
    Unknown { name: String },
    #[error("parameter `{name}` expects {expected}, got `{got}`")]
    WrongType { name: String, expected: String, got: String },
    #[error("parameter `{name}` = {got} is out of range: expected {expected}")]
    OutOfRange { name: String, expected: String, got: String },
    #[error("`--set` expects key=value, got `{0}`")]
    Syntax(String),
    #[error("{0}")]
    Inconsistent(String),
}

/// A stage of the pipeline. Upstream stages come first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Preprocessing and splits.
    Data,
    /// Autoencoder pretraining (reconstruction + disentanglement).
    Ae,
    /// Semi-supervised deep embedded clustering.
    Dec,
    /// Supervised classifier training (the baseline, or fine-tuning after DEC).
    Finetune,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Data => "data",
            Stage::Ae => "ae",
            Stage::Dec => "dec",
            Stage::Finetune => "finetune",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which training pipeline a trial runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pipeline {
    /// The classifier trained from scratch on the labeled part.
    Baseline,
    /// AE pretraining → semi-supervised DEC → fine-tuning of the transferred encoders.
    Dec,
}

impl Pipeline {
    pub const ALL: [Pipeline; 2] = [Pipeline::Baseline, Pipeline::Dec];

    pub fn name(self) -> &'static str {
        match self {
            Pipeline::Baseline => "baseline",
            Pipeline::Dec => "dec",
        }
    }

    /// The stages this pipeline runs, upstream first.
    pub fn stages(self) -> &'static [Stage] {
        match self {
            Pipeline::Baseline => &[Stage::Data, Stage::Finetune],
            Pipeline::Dec => &[Stage::Data, Stage::Ae, Stage::Dec, Stage::Finetune],
        }
    }

    /// Whether this pipeline reads the parameter at all: it runs one of the parameter's stages,
    /// and the parameter is not reserved to another pipeline ([`ParamSpec::only_in`]).
    pub fn reads(self, spec: &ParamSpec) -> bool {
        spec.only_in.is_none_or(|only| only == self) && spec.stages.iter().any(|s| self.stages().contains(s))
    }
}

impl FromStr for Pipeline {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "baseline" => Ok(Pipeline::Baseline),
            "dec" => Ok(Pipeline::Dec),
            other => Err(format!("unknown pipeline `{other}`; expected one of: baseline, dec")),
        }
    }
}

impl fmt::Display for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What happens to utterances whose sentiment score is exactly 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZeroLabel {
    Drop,
    Negative,
    Positive,
}

/// Where the train/validation/test partition comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitMode {
    /// Seeded stratified split as in the paper; rows the file marks as test stay held out.
    Random,
    /// The file's own `split` tensor (train / valid / test).
    Dataset,
}

/// How sequences longer than `seq_len` are brought down to `seq_len` steps (the `data` stage).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimePool {
    /// Keep the first `seq_len` valid steps and drop the rest.
    Truncate,
    /// Average the valid steps over `seq_len` consecutive windows that cover all of them
    /// (window `k` of a length-`L` row holds steps `⌊k·L/seq_len⌋ ..< ⌊(k+1)·L/seq_len⌋`, so
    /// window sizes differ by at most one step); rows of at most `seq_len` steps are unchanged.
    Resample,
}

/// The type and valid range of a parameter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Domain {
    /// A real number in `[min, max]`, with `min` excluded when `min_open`.
    Float { min: f64, max: f64, min_open: bool },
    /// An integer in `[min, max]`.
    Int { min: i64, max: i64 },
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
}

impl Domain {
    /// The valid values in words, e.g. `a number in (0, 1]`.
    pub fn describe(&self) -> String {
        match self {
            Domain::Float { min, max, min_open } => {
                let lo = if *min_open { "(" } else { "[" };
                if max.is_infinite() {
                    format!("a number in {lo}{min}, ∞)")
                } else {
                    format!("a number in {lo}{min}, {max}]")
                }
            }
            Domain::Int { min, max } if *max == i64::MAX => format!("an integer ≥ {min}"),
            Domain::Int { min, max } => format!("an integer in [{min}, {max}]"),
            Domain::Choice(words) => format!("one of {}", words.join(", ")),
        }
    }
}

/// One parameter's entry in the registry.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    pub name: &'static str,
    pub domain: Domain,
    /// Stages that read this parameter directly.
    pub stages: &'static [Stage],
    /// `Some(p)`: only pipeline `p` reads it, although other pipelines run its stages too (the
    /// fine-tune stage's DEC pseudo-labels exist only after a DEC stage). `None`: every pipeline
    /// that runs one of `stages`.
    pub only_in: Option<Pipeline>,
    /// Whether trials may differ in it and still be trained together (see [`crate::pack`]).
    pub pack: PackRole,
    pub doc: &'static str,
}

/// A parameter's part in packed training, where one process trains several trials as one
/// stacked model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PackRole {
    /// Trials of one pack may differ in it: a scalar each member keeps to itself (a learning
    /// rate, a loss weight, the dropout rate) or which rows it labels.
    PerMember,
    /// Trials of one pack agree on it: it shapes the stacked tensors or the schedule every member
    /// steps through together (widths, lengths, batch size, epochs, the data layout). Every
    /// parameter not marked `per_member` in the registry is a key parameter, so a parameter added
    /// later is never packed wrongly before the packed engine learns to vary it.
    Key,
}

impl ParamSpec {
    /// Who reads it, for listings: `finetune`, `dec,finetune`, or `finetune (dec pipeline only)`.
    pub fn read_by(&self) -> String {
        let stages: Vec<&str> = self.stages.iter().map(|s| s.name()).collect();
        match self.only_in {
            None => stages.join(","),
            Some(p) => format!("{} ({p} pipeline only)", stages.join(",")),
        }
    }

    /// Converts and range-checks a value for this parameter.
    pub fn check(&self, value: &ParamValue) -> Result<ParamValue, ParamError> {
        let wrong = || ParamError::WrongType {
            name: self.name.to_string(),
            expected: self.domain.describe(),
            got: value.to_string(),
        };
        let out_of_range = || ParamError::OutOfRange {
            name: self.name.to_string(),
            expected: self.domain.describe(),
            got: value.to_string(),
        };
        match self.domain {
            Domain::Float { min, max, min_open } => {
                let x = value.as_f64().ok_or_else(wrong)?;
                let above = if min_open { x > min } else { x >= min };
                if !(x.is_finite() && above && x <= max) {
                    return Err(out_of_range());
                }
                Ok(ParamValue::Float(x))
            }
            Domain::Int { min, max } => {
                let i = match value {
                    ParamValue::Int(i) => *i,
                    ParamValue::Float(f) if f.fract() == 0.0 && f.is_finite() => *f as i64,
                    _ => return Err(wrong()),
                };
                if i < min || i > max {
                    return Err(out_of_range());
                }
                Ok(ParamValue::Int(i))
            }
            Domain::Choice(words) => match value {
                ParamValue::Str(s) if words.contains(&s.as_str()) => Ok(value.clone()),
                ParamValue::Str(_) => Err(out_of_range()),
                _ => Err(wrong()),
            },
        }
    }
}

const ARCH: &[Stage] = &[Stage::Ae, Stage::Dec, Stage::Finetune];
const POSITIVE: Domain = Domain::Float { min: 0.0, max: f64::INFINITY, min_open: true };
const NON_NEGATIVE: Domain = Domain::Float { min: 0.0, max: f64::INFINITY, min_open: false };
const COUNT: Domain = Domain::Int { min: 1, max: i64::MAX };

/// Declares the `Params` struct, its paper defaults and the registry in one place so the three
/// can never drift apart. A line ending in `, per_member` marks a [`PackRole::PerMember`]
/// parameter; every other parameter belongs to the pack key.
macro_rules! params {
    ($( $(#[doc = $doc:literal])* $name:ident : $ty:ty = $default:expr, $domain:expr, $stages:expr $(, $flag:ident $($arg:ident)?)?; )*) => {
        /// Every parameter of a trial. `Default` gives the paper's settings.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct Params {
            $( $(#[doc = $doc])* pub $name: $ty, )*
        }

        impl Default for Params {
            fn default() -> Self {
                Params { $( $name: $default, )* }
            }
        }

        /// The registry, in declaration order.
        pub const SPECS: &[ParamSpec] = &[
            $( ParamSpec {
                name: stringify!($name),
                domain: $domain,
                stages: $stages,
                only_in: params!(@only $($flag $($arg)?)?),
                pack: params!(@pack $($flag $($arg)?)?),
                doc: concat!($($doc),*),
            }, )*
        ];

        impl Params {
            /// The value of a parameter by name.
            pub fn get(&self, name: &str) -> Result<ParamValue, ParamError> {
                match name {
                    $( stringify!($name) => Ok(self.$name.to_value()), )*
                    _ => Err(ParamError::Unknown { name: name.to_string() }),
                }
            }

            /// Sets a parameter by name, converting and range-checking the value.
            pub fn set(&mut self, name: &str, value: &ParamValue) -> Result<(), ParamError> {
                let spec = spec(name)?;
                let checked = spec.check(value)?;
                match name {
                    $( stringify!($name) => self.$name = <$ty as ParamType>::from_value(&checked), )*
                    _ => unreachable!("spec() accepted an unregistered name"),
                }
                Ok(())
            }
        }
    };
    // The optional flag after a parameter's stages: `per_member` (its pack role) or `only P`
    // (the one pipeline that reads it).
    (@only) => { None };
    (@only per_member) => { None };
    (@only only $only:ident) => { Some(Pipeline::$only) };
    (@pack) => { PackRole::Key };
    (@pack per_member) => { PackRole::PerMember };
    (@pack only $only:ident) => { PackRole::Key };
}

params! {
    /// Fraction of the training and validation rows whose labels are kept. Validation rows come
    /// from the labeled part: accuracy, F1, checkpoint selection, pruning and TPE use only the
    /// labeled validation rows (`n` in trials.csv), so fewer at lower fractions; the test split
    /// (`test_n`) is always scored in full. Registered with the stages that use labels, not with
    /// `data`: the train/validation partition does not depend on it, so an AE checkpoint is
    /// shared across label fractions.
    label_fraction: f64 = 0.4, Domain::Float { min: 0.0, max: 1.0, min_open: true }, &[Stage::Dec, Stage::Finetune], per_member;
    /// What a sentiment score of exactly 0 becomes: drop the row, or count it negative/positive.
    zero_label: ZeroLabel = ZeroLabel::Drop, Domain::Choice(&["drop", "negative", "positive"]), &[Stage::Data];
    /// `random`: seeded stratified split (file test rows stay held out); `dataset`: the file's split.
    split: SplitMode = SplitMode::Random, Domain::Choice(&["random", "dataset"]), &[Stage::Data];
    /// Fraction of rows held out for validation by the random split.
    val_fraction: f64 = 0.2, Domain::Float { min: 0.0, max: 0.9, min_open: true }, &[Stage::Data];
    /// Time steps every sequence is padded or brought down to (see time_pool).
    seq_len: i64 = 30, COUNT, &[Stage::Data];
    /// How rows longer than seq_len are shortened: `truncate` keeps the first seq_len steps;
    /// `resample` averages all valid steps over seq_len consecutive, near-equal windows
    /// (window k of L steps: steps floor(k*L/seq_len) up to floor((k+1)*L/seq_len)). Rows of at
    /// most seq_len steps are padded unchanged either way.
    time_pool: TimePool = TimePool::Truncate, Domain::Choice(&["truncate", "resample"]), &[Stage::Data];
    /// Width of each modality's Transformer encoder.
    d_model: i64 = 128, COUNT, ARCH;
    /// Attention heads per encoder layer (must divide d_model).
    n_heads: i64 = 4, COUNT, ARCH;
    /// Transformer layers per modality encoder.
    n_layers: i64 = 2, COUNT, ARCH;
    /// Hidden width of each encoder layer's feed-forward block.
    ff_dim: i64 = 256, COUNT, ARCH;
    /// Dropout in encoders and classifier head.
    dropout: f64 = 0.1, Domain::Float { min: 0.0, max: 0.95, min_open: false }, ARCH, per_member;
    /// Width of the autoencoder's fused latent z.
    latent_dim: i64 = 64, COUNT, &[Stage::Ae, Stage::Dec];
    /// Number of DEC clusters K.
    n_clusters: i64 = 2, Domain::Int { min: 2, max: 1024 }, &[Stage::Dec];
    /// Degrees of freedom of the Student-t kernel of Q.
    dof: f64 = 1.0, POSITIVE, &[Stage::Dec], per_member;
    /// Epochs between recomputations of the target distribution P.
    p_update: i64 = 1, COUNT, &[Stage::Dec];
    /// Weight of the reconstruction term during AE pretraining.
    alpha_ae: f64 = 1.0, NON_NEGATIVE, &[Stage::Ae], per_member;
    /// Weight of the disentanglement term during AE pretraining.
    gamma_ae: f64 = 0.001, NON_NEGATIVE, &[Stage::Ae], per_member;
    /// Weight of the clustering term KL(P‖Q) in the DEC loss (1 in equation 8; 0 ablates it).
    cluster_weight: f64 = 1.0, NON_NEGATIVE, &[Stage::Dec], per_member;
    /// Weight α of the reconstruction term in the DEC loss (equation 8).
    alpha: f64 = 0.1, NON_NEGATIVE, &[Stage::Dec], per_member;
    /// Weight β of the supervised term in the DEC loss (equation 8).
    beta: f64 = 0.5, NON_NEGATIVE, &[Stage::Dec], per_member;
    /// Weight γ of the disentanglement term in the DEC loss (equation 8).
    gamma: f64 = 0.0, NON_NEGATIVE, &[Stage::Dec], per_member;
    /// Adam learning rate of AE pretraining.
    lr_ae: f64 = 5e-4, POSITIVE, &[Stage::Ae], per_member;
    /// Adam learning rate of the DEC stage.
    lr_dec: f64 = 1e-4, POSITIVE, &[Stage::Dec], per_member;
    /// Adam learning rate of the classifier (baseline and fine-tune).
    lr_ft: f64 = 4e-5, POSITIVE, &[Stage::Finetune], per_member;
    /// Adam (L2) weight decay of the classifier.
    weight_decay: f64 = 1e-2, NON_NEGATIVE, &[Stage::Finetune], per_member;
    /// Mini-batch size of every stage.
    batch_size: i64 = 128, COUNT, &[Stage::Ae, Stage::Dec, Stage::Finetune];
    /// Epochs of AE pretraining.
    epochs_ae: i64 = 200, COUNT, &[Stage::Ae];
    /// Epochs of the DEC stage.
    epochs_dec: i64 = 100, COUNT, &[Stage::Dec];
    /// Epochs of classifier training.
    epochs_ft: i64 = 500, COUNT, &[Stage::Finetune];
    /// DEC pseudo-labels in fine-tuning (not in the paper): an unlabeled training row whose
    /// largest DEC soft assignment is at least this gets the class of its cluster (the majority
    /// of the labeled rows in that cluster at the end of the DEC stage) and joins the
    /// classifier's loss with weight pseudo_weight. 0 turns it off: the paper's fine-tuning.
    /// The dec pipeline only.
    pseudo_threshold: f64 = 0.0, Domain::Float { min: 0.0, max: 1.0, min_open: false }, &[Stage::Finetune], only Dec;
    /// Weight λ of the pseudo-labeled rows' BCE, added to the labeled rows' BCE in fine-tuning
    /// (with pseudo_threshold > 0; the dec pipeline only).
    pseudo_weight: f64 = 1.0, NON_NEGATIVE, &[Stage::Finetune], only Dec;
}

/// The registry entry of a parameter.
pub fn spec(name: &str) -> Result<&'static ParamSpec, ParamError> {
    SPECS.iter().find(|s| s.name == name).ok_or_else(|| ParamError::Unknown { name: name.to_string() })
}

/// Every parameter name, in registry order.
pub fn valid_names() -> Vec<&'static str> {
    SPECS.iter().map(|s| s.name).collect()
}

/// Short names of the parameters whose full name is long, for configuration labels
/// ([`crate::labels`]): `lf=0.1` rather than `label_fraction=0.1`. A parameter not listed is
/// shown by its full name (`lr_ft`, `alpha`, `dof`). Short names are unique and never another
/// parameter's full name (a unit test checks), so a label reads back to one parameter.
pub const SHORT_NAMES: &[(&str, &str)] = &[
    ("label_fraction", "lf"),
    ("zero_label", "zero"),
    ("val_fraction", "vf"),
    ("seq_len", "seq"),
    ("time_pool", "pool"),
    ("d_model", "d"),
    ("n_heads", "heads"),
    ("n_layers", "layers"),
    ("ff_dim", "ff"),
    ("dropout", "drop"),
    ("latent_dim", "z"),
    ("n_clusters", "k"),
    ("p_update", "p_every"),
    ("cluster_weight", "kl_w"),
    ("weight_decay", "wd"),
    ("batch_size", "bs"),
    ("epochs_ae", "ep_ae"),
    ("epochs_dec", "ep_dec"),
    ("epochs_ft", "ep_ft"),
    ("pseudo_threshold", "tau"),
    ("pseudo_weight", "lambda"),
];

/// The name a configuration label uses for parameter `name`: its short name when it has one,
/// else `name` itself (also for names the registry does not know, a `command` pipeline's).
pub fn short_name(name: &str) -> &str {
    SHORT_NAMES.iter().find(|(long, _)| *long == name).map_or(name, |(_, short)| short)
}

impl Params {
    /// Applies one `key=value` assignment as given on a command line.
    pub fn apply_assignment(&mut self, assignment: &str) -> Result<(), ParamError> {
        let (key, value) = assignment.split_once('=').ok_or_else(|| ParamError::Syntax(assignment.to_string()))?;
        self.set(key.trim(), &ParamValue::parse_loose(value))
    }

    /// Checks constraints that involve more than one parameter.
    pub fn validate(&self) -> Result<(), ParamError> {
        if self.d_model % self.n_heads != 0 {
            return Err(ParamError::Inconsistent(format!(
                "d_model ({}) must be divisible by n_heads ({})",
                self.d_model, self.n_heads
            )));
        }
        Ok(())
    }

    /// Every parameter as `name → value`, in name order.
    pub fn to_map(&self) -> BTreeMap<&'static str, ParamValue> {
        SPECS.iter().map(|s| (s.name, self.get(s.name).expect("registered"))).collect()
    }

    /// The parameters `stage` and its upstream stages read in `pipeline`: exactly what a
    /// checkpoint of that stage depends on besides the dataset and the seed.
    pub fn stage_inputs(&self, pipeline: Pipeline, stage: Stage) -> BTreeMap<&'static str, ParamValue> {
        let upto: Vec<Stage> = pipeline.stages().iter().copied().filter(|s| *s <= stage).collect();
        SPECS
            .iter()
            .filter(|s| pipeline.reads(s) && s.stages.iter().any(|st| upto.contains(st)))
            .map(|s| (s.name, self.get(s.name).expect("registered")))
            .collect()
    }
}

/// Conversion between a field's Rust type and a [`ParamValue`] already checked by its spec.
trait ParamType: Sized {
    fn to_value(&self) -> ParamValue;
    fn from_value(v: &ParamValue) -> Self;
}

impl ParamType for f64 {
    fn to_value(&self) -> ParamValue {
        ParamValue::Float(*self)
    }
    fn from_value(v: &ParamValue) -> Self {
        v.as_f64().expect("checked by spec")
    }
}

impl ParamType for i64 {
    fn to_value(&self) -> ParamValue {
        ParamValue::Int(*self)
    }
    fn from_value(v: &ParamValue) -> Self {
        match v {
            ParamValue::Int(i) => *i,
            _ => unreachable!("checked by spec"),
        }
    }
}

/// Enums stored as their lowercase serde names.
macro_rules! word_param {
    ($ty:ty) => {
        impl ParamType for $ty {
            fn to_value(&self) -> ParamValue {
                match serde_json::to_value(self) {
                    Ok(serde_json::Value::String(s)) => ParamValue::Str(s),
                    _ => unreachable!("unit enum serialises to a string"),
                }
            }
            fn from_value(v: &ParamValue) -> Self {
                serde_json::from_value(serde_json::Value::String(v.to_string())).expect("checked by spec")
            }
        }
    };
}
word_param!(ZeroLabel);
word_param!(SplitMode);
word_param!(TimePool);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_papers() {
        let p = Params::default();
        assert_eq!((p.epochs_ft, p.lr_ft, p.weight_decay, p.batch_size), (500, 4e-5, 1e-2, 128));
        assert_eq!((p.epochs_ae, p.lr_ae, p.alpha_ae, p.gamma_ae), (200, 5e-4, 1.0, 0.001));
        assert_eq!((p.epochs_dec, p.lr_dec, p.alpha, p.beta, p.gamma), (100, 1e-4, 0.1, 0.5, 0.0));
        assert_eq!((p.label_fraction, p.seq_len, p.d_model, p.n_clusters), (0.4, 30, 128, 2));
        p.validate().unwrap();
    }

    #[test]
    fn every_registered_name_round_trips_through_get_and_set() {
        let mut p = Params::default();
        for s in SPECS {
            let v = p.get(s.name).unwrap();
            p.set(s.name, &v).unwrap();
        }
        assert_eq!(p, Params::default());
        assert_eq!(SPECS.len(), p.to_map().len(), "duplicate names in the registry");
    }

    #[test]
    fn assignments_convert_and_check() {
        let mut p = Params::default();
        p.apply_assignment("lr_ft=1e-3").unwrap();
        p.apply_assignment("epochs_ft = 7").unwrap();
        p.apply_assignment("alpha=1").unwrap();
        p.apply_assignment("zero_label=positive").unwrap();
        assert_eq!((p.lr_ft, p.epochs_ft, p.alpha, p.zero_label), (1e-3, 7, 1.0, ZeroLabel::Positive));
        assert_eq!(p.time_pool, TimePool::Truncate, "today's behaviour is the default");
        p.apply_assignment("time_pool=resample").unwrap();
        assert_eq!(p.time_pool, TimePool::Resample);
        assert!(matches!(p.apply_assignment("time_pool=average"), Err(ParamError::OutOfRange { .. })));

        let unknown = p.apply_assignment("learning_rate=1").unwrap_err();
        assert!(unknown.to_string().contains("lr_ft"), "lists valid keys: {unknown}");
        assert!(matches!(p.apply_assignment("label_fraction=0"), Err(ParamError::OutOfRange { .. })));
        assert!(matches!(p.apply_assignment("label_fraction=1.5"), Err(ParamError::OutOfRange { .. })));
        assert!(matches!(p.apply_assignment("epochs_ft=2.5"), Err(ParamError::WrongType { .. })));
        assert!(matches!(p.apply_assignment("zero_label=maybe"), Err(ParamError::OutOfRange { .. })));
        assert!(matches!(p.apply_assignment("lr_ft=fast"), Err(ParamError::WrongType { .. })));
        assert!(matches!(p.apply_assignment("lr_ft"), Err(ParamError::Syntax(_))));
        p.apply_assignment("n_heads=3").unwrap();
        assert!(p.validate().is_err());
    }

    #[test]
    fn stage_inputs_follow_the_pipeline() {
        let p = Params::default();
        let ae = p.stage_inputs(Pipeline::Dec, Stage::Ae);
        assert!(ae.contains_key("lr_ae") && ae.contains_key("seq_len") && ae.contains_key("d_model"));
        assert!(!ae.contains_key("beta") && !ae.contains_key("lr_ft"));
        assert!(!ae.contains_key("label_fraction"), "AE checkpoints are shared across label fractions");
        for stage in [Stage::Data, Stage::Ae, Stage::Dec, Stage::Finetune] {
            assert!(p.stage_inputs(Pipeline::Dec, stage).contains_key("time_pool"), "{stage} depends on the pooling");
        }
        assert!(p.stage_inputs(Pipeline::Dec, Stage::Dec).contains_key("label_fraction"));
        let ft = p.stage_inputs(Pipeline::Baseline, Stage::Finetune);
        assert!(ft.contains_key("lr_ft") && !ft.contains_key("lr_ae") && !ft.contains_key("beta"));
        assert!(Pipeline::Dec.reads(spec("beta").unwrap()));
        assert!(!Pipeline::Baseline.reads(spec("beta").unwrap()));
    }

    #[test]
    fn pseudo_labels_belong_to_the_dec_pipelines_fine_tuning_only() {
        let p = Params::default();
        assert_eq!((p.pseudo_threshold, p.pseudo_weight), (0.0, 1.0), "off by default: the paper's fine-tuning");
        for name in ["pseudo_threshold", "pseudo_weight"] {
            let entry = spec(name).unwrap();
            assert!(Pipeline::Dec.reads(entry) && !Pipeline::Baseline.reads(entry), "{name}");
            assert_eq!(entry.read_by(), "finetune (dec pipeline only)");
            assert!(p.stage_inputs(Pipeline::Dec, Stage::Finetune).contains_key(name), "{name} keys fine-tuning");
            for stage in [Stage::Ae, Stage::Dec] {
                assert!(!p.stage_inputs(Pipeline::Dec, stage).contains_key(name), "{name} stays out of {stage}");
            }
            assert!(!p.stage_inputs(Pipeline::Baseline, Stage::Finetune).contains_key(name), "{name} in baseline");
        }
        assert_eq!(spec("lr_ft").unwrap().read_by(), "finetune");
        let mut q = Params::default();
        q.apply_assignment("pseudo_threshold=0.9").unwrap();
        assert!(matches!(q.apply_assignment("pseudo_threshold=1.5"), Err(ParamError::OutOfRange { .. })));
        assert!(matches!(q.apply_assignment("pseudo_weight=-1"), Err(ParamError::OutOfRange { .. })));
    }

    #[test]
    fn short_names_are_registered_unique_and_unambiguous() {
        for (long, short) in SHORT_NAMES {
            assert!(spec(long).is_ok(), "short name for unregistered `{long}`");
            assert!(short.len() < long.len(), "`{short}` is not shorter than `{long}`");
            assert!(spec(short).is_err(), "`{short}` is the full name of another parameter");
        }
        let shown: std::collections::BTreeSet<&str> = SPECS.iter().map(|s| short_name(s.name)).collect();
        assert_eq!(shown.len(), SPECS.len(), "two parameters are labelled alike");
        assert_eq!(short_name("label_fraction"), "lf");
        assert_eq!(short_name("lr_ft"), "lr_ft");
        assert_eq!(short_name("x"), "x");
    }

    #[test]
    fn values_compare_as_people_read_them() {
        use std::cmp::Ordering;
        assert!(ParamValue::Int(1).same_as(&ParamValue::Float(1.0)));
        assert!(!ParamValue::Str("1".into()).same_as(&ParamValue::Int(1)));
        assert_eq!(ParamValue::Float(0.05).cmp_readable(&ParamValue::Int(1)), Ordering::Less);
        assert_eq!(ParamValue::Int(3).cmp_readable(&ParamValue::Str("a".into())), Ordering::Less);
    }

    #[test]
    fn params_serde_rejects_unknown_fields() {
        let p: Params = serde_json::from_str(r#"{"lr_ft": 0.01}"#).unwrap();
        assert_eq!(p.lr_ft, 0.01);
        assert!(serde_json::from_str::<Params>(r#"{"lr": 0.01}"#).is_err());
    }
}

//! `[objective]`: the metric and the direction configurations are ranked by. A leaf, so the
//! samplers that need the direction (TPE) do not depend on the spec that holds it.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Maximize,
    Minimize,
}

impl Direction {
    pub const WORDS: &'static [&'static str] = &["maximize", "minimize"];
}

/// `[objective]`: the metric a model-based sampler and the reports rank configurations by.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    pub metric: String,
    pub direction: Direction,
}

impl Default for Objective {
    fn default() -> Self {
        Objective { metric: "accuracy".into(), direction: Direction::Maximize }
    }
}

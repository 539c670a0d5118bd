//! Named tensors of a stage, kept on the CPU and stored as safetensors.

use std::path::{Path, PathBuf};

use tch::nn::VarStore;
use tch::{Device, Tensor};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint {path}: {source}")]
    Io { path: PathBuf, source: tch::TchError },
    #[error("checkpoint lacks variable `{name}` (needed to initialise `{needed_by}`)")]
    Missing { name: String, needed_by: String },
    #[error("checkpoint variable `{name}` has shape {found:?}, the model expects {expected:?}")]
    Shape { name: String, found: Vec<i64>, expected: Vec<i64> },
}

#[derive(Debug)]
pub struct Checkpoint {
    pub tensors: Vec<(String, Tensor)>,
}

impl Checkpoint {
    /// Whether this checkpoint names exactly the variables of `vs`, each with its shape.
    pub fn check_fits(&self, vs: &VarStore) -> Result<(), String> {
        let vars = vs.variables();
        if let Some((name, _)) = self.tensors.iter().find(|(name, _)| !vars.contains_key(name)) {
            return Err(format!("variable `{name}` is not in the stage's network"));
        }
        for (name, var) in &vars {
            match self.get(name) {
                None => return Err(format!("variable `{name}` is missing")),
                Some(t) if t.size() != var.size() => {
                    return Err(format!(
                        "variable `{name}` has shape {:?}, the network's is {:?}",
                        t.size(),
                        var.size()
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// A detached CPU copy of every variable (trainable or not, e.g. BatchNorm statistics).
    pub fn of(vs: &VarStore) -> Checkpoint {
        let mut tensors: Vec<(String, Tensor)> =
            vs.variables().into_iter().map(|(name, t)| (name, t.detach().to_device(Device::Cpu).copy())).collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        Checkpoint { tensors }
    }

    /// Another handle on the same tensors (they are never modified in place).
    pub fn shallow_clone(&self) -> Checkpoint {
        Checkpoint { tensors: self.tensors.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect() }
    }

    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// Writes to a temporary file and renames it, so a crash never leaves half a checkpoint.
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        let tmp = path.with_extension("safetensors.tmp");
        let err = |source| CheckpointError::Io { path: path.to_path_buf(), source };
        Tensor::write_safetensors(&self.tensors, &tmp).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(|e| err(tch::TchError::Io(e)))
    }

    pub fn load(path: &Path) -> Result<Checkpoint, CheckpointError> {
        let tensors = Tensor::read_safetensors(path)
            .map_err(|source| CheckpointError::Io { path: path.to_path_buf(), source })?;
        Ok(Checkpoint { tensors })
    }

    /// Copies into `vs` every variable whose name starts with one of `prefixes`; each of those
    /// must exist in the checkpoint with the same shape. Returns how many were copied.
    pub fn load_into(&self, vs: &VarStore, prefixes: &[&str]) -> Result<usize, CheckpointError> {
        let mut copied = 0;
        let _guard = tch::no_grad_guard();
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, mut dst) in vars {
            if !prefixes.iter().any(|p| name.starts_with(p)) {
                continue;
            }
            let src = self
                .get(&name)
                .ok_or_else(|| CheckpointError::Missing { name: name.clone(), needed_by: prefixes.join(", ") })?;
            if src.size() != dst.size() {
                return Err(CheckpointError::Shape { name, found: src.size(), expected: dst.size() });
            }
            dst.copy_(src);
            copied += 1;
        }
        Ok(copied)
    }
}

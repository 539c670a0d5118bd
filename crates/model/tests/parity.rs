//! Parity with PyTorch: the same weights and inputs through our networks and losses and through
//! the independent PyTorch reference `tests/parity/reference.py` (nn.TransformerEncoder,
//! nn.BatchNorm1d, F.kl_div, ...) must give the same logits, loss terms, intermediate tensors
//! and gradients of every parameter.
//!
//! Protocol: the test builds each network with a tiny configuration, gives every variable random
//! values (biases, norms and BatchNorm statistics included), writes variables, batch and
//! configuration with `Tensor::write_safetensors`, runs `$DECSWEEP_PYTHON reference.py IN OUT`
//! and compares every tensor of OUT with ours by name.
//!
//! Tolerance: element-wise `|ours − pytorch| ≤ 1e-4 · max(1, |pytorch|)`, i.e. absolute 1e-4 for
//! values up to 1 in magnitude and relative 1e-4 above. Computation is float32 on both sides.
//! A name present on one side only, a shape difference or a non-finite value is a mismatch too.
//!
//! The test fails (it does not skip) when the python interpreter or torch is missing.
//!
//! Device: `DECSWEEP_PARITY_DEVICE` (`cpu`, the default, or `cuda` / `cuda:N`, which
//! `make gpu-check` sets). Weights and inputs are drawn on the CPU either way, then both sides
//! compute on that device (`reference.py --device`); the tolerance is the same, since neither
//! side enables TF32 (libtorch's and PyTorch's default for float32 products).

use std::path::{Path, PathBuf};
use std::process::Command;

use decsweep_api::Params;
use decsweep_model::autoencoder::Autoencoder;
use decsweep_model::classifier::Classifier;
use decsweep_model::losses::{self, LossTerms, LossWeights};
use decsweep_model::reference::{batch_tensors, config_tensors};
use decsweep_model::{Batch, ModelConfig};
use tch::nn::{Init, VarStore};
use tch::{Device, Kind, Tensor};

const TOLERANCE: f64 = 1e-4;

/// The device both sides compute on (see the module's doc).
fn device() -> Device {
    let device = match std::env::var("DECSWEEP_PARITY_DEVICE").as_deref() {
        Err(_) | Ok("") | Ok("cpu") => Device::Cpu,
        Ok("cuda") => Device::Cuda(0),
        Ok(other) => match other.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
            Some(n) => Device::Cuda(n),
            None => panic!("DECSWEEP_PARITY_DEVICE={other}: expected cpu, cuda or cuda:N"),
        },
    };
    if let Device::Cuda(n) = device {
        assert!(
            n < tch::Cuda::device_count().max(0) as usize,
            "DECSWEEP_PARITY_DEVICE asks for CUDA device {n}; libtorch sees {} CUDA devices",
            tch::Cuda::device_count()
        );
    }
    device
}

/// [`device`] as `reference.py --device` spells it.
fn device_arg() -> String {
    match device() {
        Device::Cuda(n) => format!("cuda:{n}"),
        _ => "cpu".into(),
    }
}
const MODALITIES: [&str; 3] = decsweep_data::MODALITIES;

// ---------------------------------------------------------------------------------------------
// Python

fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// `tests/parity/reference.py`, or `$DECSWEEP_PARITY_REFERENCE` (gpu-check runs this test's
/// prebuilt binary in another checkout, where the compile-time path does not exist).
fn reference_script() -> PathBuf {
    match std::env::var_os("DECSWEEP_PARITY_REFERENCE") {
        Some(path) => PathBuf::from(path),
        None => workspace_root().join("tests/parity/reference.py"),
    }
}

/// The interpreter of the project's venv: `$DECSWEEP_PYTHON` (set by the Makefile and by
/// `.cargo/config.toml`), else `.venv/bin/python`. Panics with what to do when it cannot import
/// torch and numpy.
fn python() -> PathBuf {
    let python = std::env::var_os("DECSWEEP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/python"));
    let probe = Command::new(&python).args(["-c", "import numpy, torch; print(torch.__version__)"]).output();
    match probe {
        Ok(out) if out.status.success() => python,
        Ok(out) => panic!(
            "the PyTorch parity tests need torch and numpy, but {} cannot import them:\n{}\n\
             Run `make venv` (it installs torch==2.11.0 and numpy into .venv), or point \
             DECSWEEP_PYTHON at a python that has them.",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!(
            "the PyTorch parity tests need a python with torch and numpy, but {} cannot be run ({e}).\n\
             Run `make venv` (it installs torch==2.11.0 and numpy into .venv), or point \
             DECSWEEP_PYTHON at a python that has them.",
            python.display()
        ),
    }
}

/// A scratch directory of this test under cargo's target/tmp.
/// A fresh directory under cargo's test scratch space, or under the system's temporary
/// directory when that is not writable (a prebuilt test binary run in another checkout).
fn scratch(name: &str) -> PathBuf {
    let leaf = format!("parity-{name}-{}", std::process::id());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(&leaf);
    if std::fs::create_dir_all(&dir).is_ok() {
        return dir;
    }
    let dir = std::env::temp_dir().join(leaf);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

/// Runs the reference in `mode` on `inputs`; returns its named outputs (without the version tag).
fn run_reference(mode: &str, name: &str, inputs: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    let python = python();
    let dir = scratch(name);
    let (input, output) = (dir.join("in.safetensors"), dir.join("out.safetensors"));
    Tensor::write_safetensors(inputs, &input).expect("writing the reference's input");
    let run = Command::new(&python)
        .arg(reference_script())
        .args(["--mode", mode, "--device", &device_arg()])
        .arg(&input)
        .arg(&output)
        .output()
        .unwrap_or_else(|e| panic!("running {} {}: {e}", python.display(), reference_script().display()));
    assert!(
        run.status.success(),
        "tests/parity/reference.py --mode {mode} failed ({}):\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    let mut out = Tensor::read_safetensors(&output).expect("reading the reference's output");
    let _ = std::fs::remove_dir_all(&dir);
    out.retain(|(n, _)| n != "torch_version");
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

// ---------------------------------------------------------------------------------------------
// Comparison

/// One tensor that differs, with enough to find out why.
#[derive(Debug)]
struct Mismatch {
    name: String,
    what: String,
}

/// Compares every tensor by name: `|a − b| ≤ tol · max(1, |b|)` element-wise, `b` from PyTorch.
fn compare(ours: &[(String, Tensor)], theirs: &[(String, Tensor)], tol: f64) -> Vec<Mismatch> {
    let mut names: Vec<&String> = ours.iter().chain(theirs).map(|(n, _)| n).collect();
    names.sort();
    names.dedup();
    let find =
        |set: &'_ [(String, Tensor)], name: &str| set.iter().find(|(n, _)| n == name).map(|(_, t)| t.shallow_clone());
    let mut out = Vec::new();
    for name in names {
        let what = match (find(ours, name), find(theirs, name)) {
            (Some(_), None) => Some("only in ours (PyTorch did not produce it)".to_string()),
            (None, Some(_)) => Some("only in PyTorch (we did not produce it)".to_string()),
            (Some(a), Some(b)) if a.size() != b.size() => {
                Some(format!("shape: ours {:?}, PyTorch {:?}", a.size(), b.size()))
            }
            (Some(a), Some(b)) => {
                let a = a.detach().to_kind(Kind::Double).flatten(0, -1);
                let b = b.detach().to_kind(Kind::Double).flatten(0, -1);
                let diff = (&a - &b).abs();
                let allowed = b.abs().clamp_min(1.0) * tol;
                // NaN on either side makes `diff <= allowed` false, so it counts as a mismatch.
                let bad = diff.le_tensor(&allowed).logical_not();
                let n_bad = bad.sum(Kind::Int64).int64_value(&[]);
                (n_bad > 0).then(|| {
                    let excess = (&diff / &allowed).nan_to_num(f64::INFINITY, None, None);
                    let worst = excess.argmax(0, false).int64_value(&[]);
                    format!(
                        "{n_bad} of {} elements off; worst at flat index {worst}: ours {:.7e}, PyTorch {:.7e} \
                         (|diff| {:.3e}, allowed {:.3e}); max |diff| {:.3e}",
                        a.size()[0],
                        a.double_value(&[worst]),
                        b.double_value(&[worst]),
                        diff.double_value(&[worst]),
                        allowed.double_value(&[worst]),
                        diff.nan_to_num(f64::INFINITY, None, None).max().double_value(&[]),
                    )
                })
            }
            (None, None) => unreachable!(),
        };
        if let Some(what) = what {
            out.push(Mismatch { name: name.clone(), what });
        }
    }
    out
}

/// The tensor closest to failing: its name and max over elements of |a − b| / allowed.
fn closest_call(ours: &[(String, Tensor)], theirs: &[(String, Tensor)], tol: f64) -> (String, f64) {
    let mut worst = (String::new(), 0.0);
    for (name, b) in theirs {
        let Some((_, a)) = ours.iter().find(|(n, _)| n == name) else { continue };
        let (a, b) = (a.to_kind(Kind::Double), b.to_kind(Kind::Double));
        let ratio = ((&a - &b).abs() / (b.abs().clamp_min(1.0) * tol)).max().double_value(&[]);
        if ratio > worst.1 {
            worst = (name.clone(), ratio);
        }
    }
    worst
}

fn report(mismatches: &[Mismatch]) -> String {
    mismatches.iter().map(|m| format!("  {}: {}", m.name, m.what)).collect::<Vec<_>>().join("\n")
}

// ---------------------------------------------------------------------------------------------
// The case: tiny networks, random weights, a batch with varied lengths

const ALPHA: f64 = 0.7;
const BETA: f64 = 0.5;
const GAMMA: f64 = 0.3;
const ALPHA_AE: f64 = 1.0;
const GAMMA_AE: f64 = 0.2;
/// Loss weights and dof as the reference reads them.
const LOSS_SCALARS: [(&str, f64); 6] =
    [("dof", DOF), ("alpha", ALPHA), ("beta", BETA), ("gamma", GAMMA), ("alpha_ae", ALPHA_AE), ("gamma_ae", GAMMA_AE)];
const DOF: f64 = 1.0;

fn tiny_config() -> ModelConfig {
    ModelConfig {
        input_dims: [7, 5, 3],
        d_model: 16,
        n_heads: 2,
        n_layers: 2,
        ff_dim: 32,
        dropout: 0.0,
        latent_dim: 8,
        n_clusters: 3,
        head_dims: vec![12, 6],
    }
}

const STEPS: i64 = 6;
const BATCH: i64 = 5;
/// Per modality, so a mix-up of modalities' masks would show; 1 and T both occur.
const LENGTHS: [[i64; 5]; 3] = [[1, 6, 3, 5, 2], [6, 2, 1, 4, 3], [3, 6, 6, 1, 5]];

/// Features are random at every step, padding included, so any masking error changes results.
fn tiny_batch() -> Batch {
    let cfg = tiny_config();
    Batch {
        x: std::array::from_fn(|m| Tensor::randn([BATCH, STEPS, cfg.input_dims[m]], (Kind::Float, Device::Cpu))),
        lengths: std::array::from_fn(|m| Tensor::from_slice(&LENGTHS[m])),
        y: Tensor::from_slice(&[1f32, 0., 1., 1., 0.]),
        labeled: Tensor::from_slice(&[1u8, 1, 0, 1, 0]).to_kind(Kind::Bool),
    }
}

fn sorted_variables(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Moves every variable away from its initialisation (zero biases, unit norms, fresh BatchNorm
/// statistics would hide mistakes): weights and biases get noise, running means random values,
/// running variances values in [0.5, 1.5]. `cluster_to_class` is left alone.
fn randomise(vs: &VarStore) {
    tch::no_grad(|| {
        for (name, mut v) in sorted_variables(vs) {
            if name.ends_with("running_var") {
                v.copy_(&(v.rand_like() + 0.5));
            } else if name.ends_with("running_mean") {
                v.copy_(&(v.randn_like() * 0.3));
            } else if !name.ends_with("cluster_to_class") {
                let _ = v.g_add_(&(v.randn_like() * 0.1));
            }
        }
    });
}

/// Detached copies of every variable, names prefixed.
fn snapshot(prefix: &str, vs: &VarStore) -> Vec<(String, Tensor)> {
    sorted_variables(vs)
        .into_iter()
        .map(|(n, t)| (format!("{prefix}{n}"), t.detach().to_device(Device::Cpu).copy()))
        .collect()
}

/// Gradients of every trainable variable that has one.
fn gradients(prefix: &str, vs: &VarStore) -> Vec<(String, Tensor)> {
    sorted_variables(vs)
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .filter_map(|(n, t)| {
            let g = t.grad();
            g.defined().then(|| (format!("{prefix}grad/{n}"), g.detach().copy()))
        })
        .collect()
}

struct Case {
    /// What the reference reads.
    inputs: Vec<(String, Tensor)>,
    /// What we computed, named as the reference names its outputs.
    ours: Vec<(String, Tensor)>,
    /// Trainable variables of the classifier and of the DEC network.
    n_trainable: (usize, usize),
}

/// Held by every test that draws from torch's global generator: tests run on parallel threads,
/// and interleaved draws would make a case depend on the other tests.
static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    TORCH_RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Builds both networks, runs our forward and backward passes, and collects the reference's
/// inputs along the way. Deterministic for `seed`.
fn build_case(seed: i64) -> Case {
    let _rng = rng_lock();
    tch::manual_seed(seed);
    let cfg = tiny_config();
    let batch = tiny_batch();
    let mut inputs = config_tensors(&cfg, STEPS, &LOSS_SCALARS);
    inputs.extend(batch_tensors(&batch));
    let dev = device();
    let batch = Batch {
        x: std::array::from_fn(|m| batch.x[m].to_device(dev)),
        lengths: std::array::from_fn(|m| batch.lengths[m].to_device(dev)),
        y: batch.y.to_device(dev),
        labeled: batch.labeled.to_device(dev),
    };
    let mut ours = Vec::new();

    // Classifier: training mode (batch statistics), BCE, backward; then evaluation mode with the
    // running statistics that forward updated.
    let mut clf_vs = VarStore::new(Device::Cpu);
    let clf = Classifier::new(clf_vs.root(), &cfg);
    randomise(&clf_vs);
    inputs.extend(snapshot("classifier/", &clf_vs));
    clf_vs.set_device(dev);
    ours.push(("classifier/embedding".into(), tch::no_grad(|| clf.encoders.forward(&batch, true))));
    let logits = clf.forward(&batch, true);
    let bce = losses::bce_with_logits(&logits, &batch.y);
    bce.backward();
    ours.extend(gradients("classifier/", &clf_vs));
    for (n, t) in sorted_variables(&clf_vs).into_iter().filter(|(_, t)| !t.requires_grad()) {
        ours.push((format!("classifier/buffer/{n}"), t.detach().copy()));
    }
    ours.push(("classifier/logits".into(), logits.detach()));
    ours.push(("classifier/loss/bce".into(), bce.detach()));
    tch::no_grad(|| {
        let eval_logits = clf.forward(&batch, false);
        ours.push(("classifier/eval/loss/bce".into(), losses::bce_with_logits(&eval_logits, &batch.y)));
        ours.push(("classifier/eval/logits".into(), eval_logits));
    });

    // The DEC network, as the DEC stage builds it: autoencoder + `dec.centroids` +
    // `dec.cluster_to_class` (K = 3 clusters standing for classes 0, 1, 1).
    let mut dec_vs = VarStore::new(Device::Cpu);
    let ae = Autoencoder::new(dec_vs.root(), &cfg);
    let dec_root = dec_vs.root() / "dec";
    let mut centroids = dec_root.var("centroids", &[cfg.n_clusters, cfg.latent_dim], Init::Const(0.0));
    let mut cluster_to_class = dec_root.zeros_no_train("cluster_to_class", &[cfg.n_clusters, 2]);
    randomise(&dec_vs);
    dec_vs.set_device(dev);
    tch::no_grad(|| {
        cluster_to_class.copy_(&Tensor::from_slice(&[1f32, 0., 0., 1., 0., 1.]).view([3, 2]));
        // Centroids near some latent codes, so Q is neither uniform nor one-hot.
        let z = ae.encode(&batch, true);
        centroids.copy_(&(z.narrow(0, 0, cfg.n_clusters) + z.randn_like().narrow(0, 0, cfg.n_clusters) * 0.5));
    });
    inputs.extend(snapshot("dec/", &dec_vs));

    // AE stage loss: α_ae·recon + γ_ae·disentangle (equation 8 without cluster and supervised).
    let z = ae.encode(&batch, true);
    let zero = Tensor::zeros([], (Kind::Float, dev));
    let ae_terms = LossTerms {
        cluster: zero.shallow_clone(),
        recon: losses::reconstruction(&ae.decode(&z, &batch), &batch),
        supervised: zero,
        disentangle: losses::disentangle(&z),
    };
    let ae_total = ae_terms.total(LossWeights { cluster: 0.0, alpha: ALPHA_AE, beta: 0.0, gamma: GAMMA_AE });
    ae_total.backward();
    ours.extend(gradients("ae/", &dec_vs));
    ours.push(("ae/loss/recon".into(), ae_terms.recon.detach()));
    ours.push(("ae/loss/disentangle".into(), ae_terms.disentangle.detach()));
    ours.push(("ae/loss/total".into(), ae_total.detach()));
    for (_, mut t) in sorted_variables(&dec_vs) {
        t.zero_grad();
    }

    // Equation 8, with the target P computed from this batch's Q and held constant.
    let z = ae.encode(&batch, true);
    let q = losses::soft_assignment(&z, &centroids, DOF);
    let p = losses::target_distribution(&q.detach());
    let recons = ae.decode(&z, &batch);
    let terms = LossTerms {
        cluster: losses::cluster_kl(&p, &q),
        recon: losses::reconstruction(&recons, &batch),
        supervised: losses::supervised(&q, &cluster_to_class, &batch.y, &batch.labeled),
        disentangle: losses::disentangle(&z),
    };
    let total = terms.total(LossWeights { cluster: 1.0, alpha: ALPHA, beta: BETA, gamma: GAMMA });
    total.backward();
    ours.extend(gradients("dec/", &dec_vs));
    for (m, r) in MODALITIES.iter().zip(&recons) {
        ours.push((format!("dec/recon/{m}"), r.detach()));
    }
    ours.push(("dec/z".into(), z.detach()));
    ours.push(("dec/q".into(), q.detach()));
    ours.push(("dec/p".into(), p));
    for (n, t) in [
        ("cluster", &terms.cluster),
        ("recon", &terms.recon),
        ("supervised", &terms.supervised),
        ("disentangle", &terms.disentangle),
        ("total", &total),
    ] {
        ours.push((format!("dec/loss/{n}"), t.detach()));
    }
    let mut ours: Vec<(String, Tensor)> = ours.into_iter().map(|(n, t)| (n, t.to_device(Device::Cpu))).collect();
    ours.sort_by(|a, b| a.0.cmp(&b.0));
    let n_trainable = (clf_vs.trainable_variables().len(), dec_vs.trainable_variables().len());
    Case { inputs, ours, n_trainable }
}

fn count(set: &[(String, Tensor)], prefix: &str) -> usize {
    set.iter().filter(|(n, _)| n.starts_with(prefix)).count()
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn networks_losses_and_gradients_match_pytorch() {
    let case = build_case(7);
    let theirs = run_reference("parity", "match", &case.inputs);

    // Not vacuous: every trainable variable has a gradient on our side, every loss is there.
    let (n_clf, n_dec) = case.n_trainable;
    assert_eq!(count(&case.ours, "classifier/grad/"), n_clf, "a classifier variable got no gradient");
    assert_eq!(count(&case.ours, "dec/grad/"), n_dec, "a DEC variable got no gradient");
    assert_eq!(count(&case.ours, "ae/grad/"), n_dec - 1, "the AE loss reaches everything but the centroids");
    for name in ["dec/loss/cluster", "dec/loss/supervised", "dec/loss/disentangle", "dec/loss/recon"] {
        let (_, t) = case.ours.iter().find(|(n, _)| n == name).expect(name);
        assert!(t.double_value(&[]).abs() > 1e-4, "{name} is ~0, so the comparison would prove little");
    }

    let mismatches = compare(&case.ours, &theirs, TOLERANCE);
    assert!(
        mismatches.is_empty(),
        "{} of {} tensors differ from PyTorch beyond |diff| <= {TOLERANCE}·max(1, |pytorch|):\n{}",
        mismatches.len(),
        theirs.len(),
        report(&mismatches)
    );
    let (name, ratio) = closest_call(&case.ours, &theirs, TOLERANCE);
    eprintln!(
        "{} tensors match PyTorch within {TOLERANCE}·max(1, |x|); closest to the limit: {name} at {:.0}% of it",
        theirs.len(),
        ratio * 100.0
    );
}

/// The comparison can fail: one changed weight on the PyTorch side is reported by name, exactly
/// where it has an effect and nowhere else.
#[test]
fn a_perturbed_weight_is_reported() {
    let case = build_case(7);
    let mut inputs = case.inputs;
    for (name, t) in inputs.iter_mut() {
        if name == "classifier/head.fc2.bias" || name == "dec/decoders.audio.out.bias" {
            *t = t.copy();
            let _ = t.get(0).view([-1]).get(0).g_add_scalar_(0.05);
        }
    }
    let theirs = run_reference("parity", "perturbed", &inputs);
    let mismatches = compare(&case.ours, &theirs, TOLERANCE);
    let names: Vec<&str> = mismatches.iter().map(|m| m.name.as_str()).collect();
    for expected in [
        "classifier/logits",
        "classifier/loss/bce",
        "classifier/eval/logits",
        "classifier/grad/head.fc2.bias",
        "dec/recon/audio",
        "dec/loss/recon",
        "dec/loss/total",
        "ae/loss/total",
        "dec/grad/decoders.audio.out.bias",
        "ae/grad/decoders.audio.out.bias",
    ] {
        assert!(names.contains(&expected), "{expected} not reported; the report was:\n{}", report(&mismatches));
    }
    for untouched in [
        "classifier/embedding",
        "classifier/buffer/head.bn0.running_mean",
        "dec/z",
        "dec/q",
        "dec/recon/text",
        "dec/recon/vision",
        "dec/grad/decoders.text.out.weight",
        "dec/loss/cluster",
        "dec/loss/supervised",
        "dec/loss/disentangle",
    ] {
        assert!(!names.contains(&untouched), "{untouched} reported although unaffected:\n{}", report(&mismatches));
    }
}

/// The comparator itself: names on one side only, shapes, values beyond the absolute or the
/// relative tolerance, and NaN are all reported; values within tolerance are not.
#[test]
fn comparator_reports_each_kind_of_difference() {
    let t = |v: &[f32]| Tensor::from_slice(v);
    let ours = vec![
        ("abs_ok".to_string(), t(&[0.5, -0.2])),
        ("abs_bad".to_string(), t(&[0.5, -0.2])),
        ("rel_ok".to_string(), t(&[1000.0])),
        ("rel_bad".to_string(), t(&[1000.0])),
        ("shape".to_string(), t(&[1.0, 2.0, 3.0, 4.0]).view([2, 2])),
        ("nan".to_string(), t(&[f32::NAN])),
        ("only_ours".to_string(), t(&[0.0])),
    ];
    let theirs = vec![
        ("abs_ok".to_string(), t(&[0.50005, -0.2])),
        ("abs_bad".to_string(), t(&[0.5, -0.2003])),
        ("rel_ok".to_string(), t(&[1000.05])),
        ("rel_bad".to_string(), t(&[1000.2])),
        ("shape".to_string(), t(&[1.0, 2.0, 3.0, 4.0])),
        ("nan".to_string(), t(&[0.0])),
        ("only_theirs".to_string(), t(&[0.0])),
    ];
    let mismatches = compare(&ours, &theirs, TOLERANCE);
    let names: Vec<&str> = mismatches.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["abs_bad", "nan", "only_ours", "only_theirs", "rel_bad", "shape"], "{}", report(&mismatches));
    assert!(mismatches[0].what.contains("1 of 2 elements off"), "{}", mismatches[0].what);
}

/// The default configuration (Params::default(), the synthetic data's dims 300/74/47): the
/// classifier's trainable parameter count, as the training stage reports it, against the sum
/// worked out layer by layer, and against PyTorch's `sum(p.numel() for p in model.parameters())`
/// for the same configuration, with every parameter's name and shape. Also pins where the
/// paper's 851,713 comes from.
#[test]
fn default_parameter_count_matches_hand_count_and_pytorch() {
    let rng = rng_lock(); // building networks draws their initial values
    let cfg = ModelConfig::new(&Params::default(), [300, 74, 47]);
    let vs = VarStore::new(Device::Cpu);
    let _clf = Classifier::new(vs.root(), &cfg);
    // As `Trainer::train_classifier` computes `param_count`.
    let ours: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();

    // d = 128, FF 256, 2 layers, head 384 → 32 → 16 → 1.
    let d = cfg.d_model;
    let linear = |i: i64, o: i64| i * o + o;
    let layer = linear(d, 3 * d) + linear(d, d) + linear(d, cfg.ff_dim) + linear(cfg.ff_dim, d) + 2 * (2 * d);
    let encoders: i64 = cfg.input_dims.iter().map(|&dim| linear(dim, d) + cfg.n_layers * layer).sum();
    let head = linear(3 * d, 32) + 2 * 32 + linear(32, 16) + linear(16, 1);
    assert_eq!(layer, 132_480);
    assert_eq!(encoders + head, 862_081);
    assert_eq!(ours, 862_081, "the classifier's parameter count changed");
    // The paper's 851,713 is this architecture exactly when audio + vision dims sum to 40
    // (e.g. COVAREP 5 + FACET 35): 10,368 = (74 + 47 − 40) · 128 fewer projection weights.
    let paper_dims = ModelConfig::new(&Params::default(), [300, 5, 35]);
    let vs_paper = VarStore::new(Device::Cpu);
    let _ = Classifier::new(vs_paper.root(), &paper_dims);
    assert_eq!(vs_paper.trainable_variables().iter().map(|t| t.numel() as i64).sum::<i64>(), 851_713);
    drop(rng);

    let mut inputs = config_tensors(&cfg, Params::default().seq_len, &LOSS_SCALARS);
    inputs.retain(|(n, _)| !["config/alpha", "config/beta", "config/gamma"].contains(&n.as_str()));
    let theirs = run_reference("count", "count", &inputs);
    let (_, count) = theirs.iter().find(|(n, _)| n == "count").expect("count");
    assert_eq!(count.int64_value(&[]), ours, "PyTorch counts a different number of parameters");
    let ours_shapes: Vec<(String, Vec<i64>)> =
        sorted_variables(&vs).into_iter().filter(|(_, t)| t.requires_grad()).map(|(n, t)| (n, t.size())).collect();
    let theirs_shapes: Vec<(String, Vec<i64>)> = theirs
        .iter()
        .filter_map(|(n, t)| n.strip_prefix("shape/").map(|n| (n.to_string(), Vec::<i64>::try_from(t).expect("i64"))))
        .collect();
    assert_eq!(ours_shapes, theirs_shapes, "parameter names or shapes differ from PyTorch's");
}

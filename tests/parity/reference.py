#!/usr/bin/env python3
"""PyTorch reference of decsweep's networks and losses (paper §3.2–3.3, equations 1–8).

Written the ordinary PyTorch way (nn.Linear, nn.TransformerEncoder with src_key_padding_mask,
nn.BatchNorm1d, F.kl_div, ...) and independently of the Rust code in crates/model, so that the
Rust test suite can check that both compute the same numbers from the same weights and inputs.
Module attributes are named so that `state_dict()` keys are exactly the Rust VarStore names
(`encoders.text.layers.0.self_attn.in_proj_weight`, `head.bn0.running_mean`, `fusion.weight`,
`decoders.audio.hidden.bias`, `dec.centroids`, ...); the only extra key PyTorch keeps is
BatchNorm's `num_batches_tracked`, which does not influence any result at momentum 0.1.

Usage:
    reference.py [--mode parity|count|bench] [--device cpu|cuda] IN.safetensors OUT.safetensors

Files are read and written by the small safetensors codec below (numpy only; the `safetensors`
package is not assumed). The input holds `config/*` scalars, `batch/*` tensors and weights under
`classifier/`, `dec/` (parity) or `classifier/`, `ae/` (bench).

- parity: one training-mode forward/backward of the classifier (BCE) and of the DEC network
  (the AE loss, then equation 8), an evaluation-mode classifier forward with the updated
  BatchNorm statistics; writes logits, every loss term, intermediate tensors and the gradient of
  every parameter.
- count: the classifier's parameter count and every parameter's shape for a configuration.
- bench: builds the fine-tune step (BCE, Adam with weight decay) and the AE step (α·recon +
  γ·disentangle, Adam) and times training steps (forward + backward + Adam) on request, one
  stdin line per request, answering with one JSON line on stdout (see `run_bench`); OUT gets
  every timing at the end.
"""

import argparse
import json
import math
import struct
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MODALITIES = ("text", "audio", "vision")

# nn.TransformerEncoder's evaluation fast path packs padded batches into nested tensors.
warnings.filterwarnings("ignore", message="The PyTorch API of nested tensors")

# ---------------------------------------------------------------------------------------------
# safetensors codec: 8-byte little-endian header length, a JSON header
# {name: {dtype, shape, data_offsets: [begin, end]}} and the little-endian data block.

_DTYPES = {
    "F64": (np.dtype("<f8"), torch.float64),
    "F32": (np.dtype("<f4"), torch.float32),
    "I64": (np.dtype("<i8"), torch.int64),
    "I32": (np.dtype("<i4"), torch.int32),
    "I16": (np.dtype("<i2"), torch.int16),
    "I8": (np.dtype("i1"), torch.int8),
    "U8": (np.dtype("u1"), torch.uint8),
    "BOOL": (np.dtype("?"), torch.bool),
}
_CODES = {torch_dtype: (code, np_dtype) for code, (np_dtype, torch_dtype) in _DTYPES.items()}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: {len(data)} bytes, too short for a safetensors header")
    (header_len,) = struct.unpack("<Q", data[:8])
    if 8 + header_len > len(data):
        raise ValueError(f"{path}: header of {header_len} bytes runs past the end of the file")
    header = json.loads(data[8 : 8 + header_len].decode("utf-8"))
    base = 8 + header_len
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in _DTYPES:
            raise ValueError(f"{path}: tensor {name!r} has unsupported dtype {info['dtype']}")
        np_dtype, _ = _DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        shape = tuple(info["shape"])
        count = int(np.prod(shape, dtype=np.int64))
        if end - begin != count * np_dtype.itemsize or base + end > len(data):
            raise ValueError(f"{path}: tensor {name!r} has offsets {begin}..{end} for shape {shape}")
        array = np.frombuffer(data, dtype=np_dtype, count=count, offset=base + begin).reshape(shape)
        tensors[name] = torch.from_numpy(array.copy())
    return tensors


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        if t.dtype not in _CODES:
            raise ValueError(f"cannot write tensor {name!r} of dtype {t.dtype}")
        code, np_dtype = _CODES[t.dtype]
        blob = t.numpy().astype(np_dtype, copy=False).tobytes()
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # keep the data block 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for blob in blobs:
            f.write(blob)


# ---------------------------------------------------------------------------------------------
# Configuration


class Config:
    def __init__(self, t):
        def scalar(name):
            if f"config/{name}" not in t:
                raise SystemExit(f"input lacks config/{name}")
            return t[f"config/{name}"].item()

        self.input_dims = [int(v) for v in t["config/input_dims"].tolist()]
        self.head_dims = [int(v) for v in t["config/head_dims"].tolist()]
        self.seq_len = int(scalar("seq_len"))
        for name in ("d_model", "n_heads", "n_layers", "ff_dim", "latent_dim", "n_clusters"):
            setattr(self, name, int(scalar(name)))
        self.dropout = float(scalar("dropout"))
        optional = {"dof": 1.0, "alpha": 0.0, "beta": 0.0, "gamma": 0.0, "alpha_ae": 1.0, "gamma_ae": 0.0}
        for name, default in optional.items():
            key = f"config/{name}"
            setattr(self, name, float(t[key].item()) if key in t else default)


# ---------------------------------------------------------------------------------------------
# Networks


def sinusoidal_positions(steps, d):
    """pe[t, 2i] = sin(t / 10000^(2i/d)), pe[t, 2i+1] = cos(t / 10000^(2i/d))."""
    position = torch.arange(steps, dtype=torch.float32).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(steps, d)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)[:, : d // 2]
    return pe


def valid_mask(lengths, steps):
    """[B, T] bool, True at the valid steps t < length."""
    return torch.arange(steps, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


class ModalityEncoder(nn.TransformerEncoder):
    """Linear projection + sinusoidal positions + nn.TransformerEncoder layers + masked mean.

    Subclassing nn.TransformerEncoder keeps its parameter names (`layers.<i>.self_attn...`)
    directly under the modality, next to `proj`.
    """

    def __init__(self, input_dim, cfg):
        layer = nn.TransformerEncoderLayer(
            cfg.d_model, cfg.n_heads, dim_feedforward=cfg.ff_dim, dropout=cfg.dropout, batch_first=True
        )
        super().__init__(layer, num_layers=cfg.n_layers)
        self.proj = nn.Linear(input_dim, cfg.d_model)
        self.input_dropout = nn.Dropout(cfg.dropout)
        self.register_buffer("positions", sinusoidal_positions(cfg.seq_len, cfg.d_model), persistent=False)

    def forward(self, x, lengths):
        steps = x.shape[1]
        valid = valid_mask(lengths, steps)
        h = self.input_dropout(self.proj(x) + self.positions[:steps])
        h = super().forward(h, src_key_padding_mask=~valid)
        w = valid.unsqueeze(-1).to(h.dtype)
        return (h * w).sum(1) / w.sum(1)


def make_encoders(cfg):
    return nn.ModuleDict({m: ModalityEncoder(d, cfg) for m, d in zip(MODALITIES, cfg.input_dims)})


def encode_all(encoders, xs, lengths):
    return torch.cat([encoders[m](xs[m], lengths[m]) for m in MODALITIES], dim=1)


class Head(nn.Module):
    """fc0 → BatchNorm1d → ReLU → Dropout → fc1 → ReLU → ... → fcN (one logit)."""

    def __init__(self, fused, head_dims, dropout):
        super().__init__()
        self.fc0 = nn.Linear(fused, head_dims[0])
        self.bn0 = nn.BatchNorm1d(head_dims[0])
        self.dropout = nn.Dropout(dropout)
        widths = list(head_dims) + [1]
        self.n_narrowing = len(widths) - 1
        for i in range(1, len(widths)):
            setattr(self, f"fc{i}", nn.Linear(widths[i - 1], widths[i]))

    def forward(self, h):
        h = self.dropout(F.relu(self.bn0(self.fc0(h))))
        for i in range(1, self.n_narrowing + 1):
            h = getattr(self, f"fc{i}")(h)
            if i < self.n_narrowing:
                h = F.relu(h)
        return h.squeeze(1)


class Classifier(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.encoders = make_encoders(cfg)
        self.head = Head(3 * cfg.d_model, cfg.head_dims, cfg.dropout)

    def forward(self, xs, lengths):
        return self.head(encode_all(self.encoders, xs, lengths))


class Decoder(nn.Module):
    """z → d_model, plus the position of every step, → ReLU MLP per step → [B, T, D_m]."""

    def __init__(self, output_dim, cfg):
        super().__init__()
        self.from_latent = nn.Linear(cfg.latent_dim, cfg.d_model)
        self.hidden = nn.Linear(cfg.d_model, cfg.d_model)
        self.out = nn.Linear(cfg.d_model, output_dim)
        self.register_buffer("positions", sinusoidal_positions(cfg.seq_len, cfg.d_model), persistent=False)

    def forward(self, z, steps):
        h = F.relu(self.from_latent(z).unsqueeze(1) + self.positions[:steps])
        return self.out(F.relu(self.hidden(h)))


class Autoencoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.encoders = make_encoders(cfg)
        self.fusion = nn.Linear(3 * cfg.d_model, cfg.latent_dim)
        self.decoders = nn.ModuleDict({m: Decoder(d, cfg) for m, d in zip(MODALITIES, cfg.input_dims)})

    def encode(self, xs, lengths):
        return self.fusion(encode_all(self.encoders, xs, lengths))

    def decode(self, z, xs):
        return {m: self.decoders[m](z, xs[m].shape[1]) for m in MODALITIES}


class DecHead(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.centroids = nn.Parameter(torch.zeros(cfg.n_clusters, cfg.latent_dim))
        self.register_buffer("cluster_to_class", torch.zeros(cfg.n_clusters, 2))


class DecNetwork(Autoencoder):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.dec = DecHead(cfg)


# ---------------------------------------------------------------------------------------------
# Losses (equations 1–8)


def reconstruction(recons, xs, lengths):
    """Equation 4 on the valid steps: MSE per modality, then the mean over modalities."""
    per_modality = []
    for m in MODALITIES:
        valid = valid_mask(lengths[m], xs[m].shape[1])
        per_modality.append(F.mse_loss(recons[m][valid], xs[m][valid]))
    return torch.stack(per_modality).mean()


def disentangle(z):
    """Equations 5–6: squared off-diagonal entries of C = ẑᵀẑ / N, summed."""
    centred = z - z.mean(dim=0, keepdim=True)
    cov = centred.T @ centred / z.shape[0]
    off_diagonal = ~torch.eye(cov.shape[0], dtype=torch.bool, device=cov.device)
    return cov[off_diagonal].pow(2).sum()


def soft_assignment(z, centroids, dof):
    """Equation 2 (Student-t kernel)."""
    dist2 = (z.unsqueeze(1) - centroids.unsqueeze(0)).pow(2).sum(dim=2)
    kernel = (1.0 + dist2 / dof).pow(-(dof + 1.0) / 2.0)
    return kernel / kernel.sum(dim=1, keepdim=True)


def target_distribution(q):
    """Equation 3."""
    weight = q.pow(2) / q.sum(dim=0)
    return (weight.T / weight.sum(dim=1)).T


def supervised(q, cluster_to_class, y, labeled):
    """Equation 7: CE of the clusters' class probabilities on the labeled rows."""
    if not labeled.any():
        return q.sum() * 0.0
    probs = q @ cluster_to_class
    return F.nll_loss(probs[labeled].log(), y[labeled].long())


def dec_terms(net, cfg, xs, lengths, y, labeled):
    z = net.encode(xs, lengths)
    q = soft_assignment(z, net.dec.centroids, cfg.dof)
    p = target_distribution(q.detach())
    recons = net.decode(z, xs)
    terms = {
        "cluster": F.kl_div(q.log(), p, reduction="batchmean"),
        "recon": reconstruction(recons, xs, lengths),
        "supervised": supervised(q, net.dec.cluster_to_class, y, labeled),
        "disentangle": disentangle(z),
    }
    return z, q, p, recons, terms


# ---------------------------------------------------------------------------------------------
# Loading


def load_weights(model, tensors, prefix):
    """Loads the tensors named `prefix + state_dict key`; every key must be there and nothing else."""
    given = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    expected = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    missing, unexpected = sorted(expected - given.keys()), sorted(given.keys() - expected)
    if missing or unexpected:
        raise SystemExit(
            f"parameter names differ under {prefix!r}:\n  only in PyTorch: {missing}\n  only in the input: {unexpected}"
        )
    for name, value in given.items():
        have = model.state_dict()[name].shape
        if tuple(have) != tuple(value.shape):
            raise SystemExit(f"{prefix}{name}: input shape {tuple(value.shape)}, PyTorch expects {tuple(have)}")
    model.load_state_dict(given, strict=False)


def read_batch(t, device):
    xs = {m: t[f"batch/x/{m}"].to(device) for m in MODALITIES}
    lengths = {m: t[f"batch/lengths/{m}"].to(device) for m in MODALITIES}
    return xs, lengths, t["batch/y"].to(device), t["batch/labeled"].to(device)


def persistent_buffers(model):
    keys = model.state_dict().keys()
    return [(n, b) for n, b in model.named_buffers() if n in keys and not n.endswith("num_batches_tracked")]


# ---------------------------------------------------------------------------------------------
# Modes


def run_parity(t, device):
    cfg = Config(t)
    xs, lengths, y, labeled = read_batch(t, device)
    out = {}

    # Classifier: training mode (batch statistics), BCE with logits, backward.
    clf = Classifier(cfg).to(device)
    load_weights(clf, t, "classifier/")
    clf.train()
    with torch.no_grad():
        out["classifier/embedding"] = encode_all(clf.encoders, xs, lengths)
    logits = clf(xs, lengths)
    bce = F.binary_cross_entropy_with_logits(logits, y)
    bce.backward()
    out["classifier/logits"] = logits
    out["classifier/loss/bce"] = bce
    for name, p in clf.named_parameters():
        out[f"classifier/grad/{name}"] = p.grad
    for name, b in persistent_buffers(clf):
        out[f"classifier/buffer/{name}"] = b
    # Evaluation mode: running statistics (as updated by the forward above); no_grad takes
    # nn.TransformerEncoder's fast path.
    clf.eval()
    with torch.no_grad():
        eval_logits = clf(xs, lengths)
        out["classifier/eval/logits"] = eval_logits
        out["classifier/eval/loss/bce"] = F.binary_cross_entropy_with_logits(eval_logits, y)

    # The DEC network: first the AE stage's loss, then equation 8.
    net = DecNetwork(cfg).to(device)
    load_weights(net, t, "dec/")
    net.train()
    z = net.encode(xs, lengths)
    ae_recon = reconstruction(net.decode(z, xs), xs, lengths)
    ae_dis = disentangle(z)
    ae_total = cfg.alpha_ae * ae_recon + cfg.gamma_ae * ae_dis
    ae_total.backward()
    out["ae/loss/recon"], out["ae/loss/disentangle"], out["ae/loss/total"] = ae_recon, ae_dis, ae_total
    for name, p in net.named_parameters():
        if p.grad is not None:
            out[f"ae/grad/{name}"] = p.grad.clone()
    net.zero_grad()

    z, q, p, recons, terms = dec_terms(net, cfg, xs, lengths, y, labeled)
    total = terms["cluster"] + cfg.alpha * terms["recon"] + cfg.beta * terms["supervised"] + cfg.gamma * terms["disentangle"]
    total.backward()
    out["dec/z"], out["dec/q"], out["dec/p"] = z, q, p
    for m in MODALITIES:
        out[f"dec/recon/{m}"] = recons[m]
    for name, value in terms.items():
        out[f"dec/loss/{name}"] = value
    out["dec/loss/total"] = total
    for name, p_ in net.named_parameters():
        if p_.grad is None:
            raise SystemExit(f"dec parameter {name} received no gradient from equation 8")
        out[f"dec/grad/{name}"] = p_.grad
    return out


def run_count(t, device):
    clf = Classifier(Config(t))
    out = {"count": torch.tensor(sum(p.numel() for p in clf.parameters()), dtype=torch.int64)}
    for name, p in clf.named_parameters():
        out[f"shape/{name}"] = torch.tensor(list(p.shape), dtype=torch.int64)
    return out


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(loss_fn, opt, warmup, steps, device, sync_phases):
    """Milliseconds of each timed step (forward + loss, zero_grad + backward, optimiser step),
    as tensors: total, forward, backward, step. On CUDA every step ends with a synchronisation;
    with `sync_phases` every phase does."""

    def step():
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    sync(device)
    phase_sync = (lambda: sync(device)) if sync_phases else (lambda: None)
    rows = []
    for _ in range(steps):
        t0 = time.perf_counter()
        loss = loss_fn()
        phase_sync()
        t1 = time.perf_counter()
        opt.zero_grad()
        loss.backward()
        phase_sync()
        t2 = time.perf_counter()
        opt.step()
        sync(device)
        t3 = time.perf_counter()
        rows.append([t3 - t0, t1 - t0, t2 - t1, t3 - t2])
    ms = torch.tensor(rows, dtype=torch.float64) * 1e3
    return {"ms": ms[:, 0], "forward_ms": ms[:, 1], "backward_ms": ms[:, 2], "step_ms": ms[:, 3]}


def run_bench(t, device):
    """Builds both steps from the input, then serves timing requests, one per stdin line:
    `finetune|ae WARMUP STEPS` → one JSON line on stdout with the milliseconds of each timed step
    (`ms`, `forward_ms`, `backward_ms`, `step_ms`); `quit` or end of input → returns every timing
    made. The caller interleaves these requests with its own steps, so that background load on
    the machine affects both sides alike."""
    cfg = Config(t)
    threads = int(t["bench/threads"].item())
    if threads > 0:
        torch.set_num_threads(threads)
    sync_phases = bool(t["bench/sync_phases"].item())
    xs, lengths, y, _ = read_batch(t, device)

    clf = Classifier(cfg).to(device)
    load_weights(clf, t, "classifier/")
    clf.train()
    opt = torch.optim.Adam(clf.parameters(), lr=t["bench/lr_ft"].item(), weight_decay=t["bench/weight_decay"].item())

    def finetune_loss():
        return F.binary_cross_entropy_with_logits(clf(xs, lengths), y)

    ae = Autoencoder(cfg).to(device)
    load_weights(ae, t, "ae/")
    ae.train()
    ae_opt = torch.optim.Adam(ae.parameters(), lr=t["bench/lr_ae"].item())

    def ae_loss():
        z = ae.encode(xs, lengths)
        return cfg.alpha_ae * reconstruction(ae.decode(z, xs), xs, lengths) + cfg.gamma_ae * disentangle(z)

    steps = {"finetune": (finetune_loss, opt), "ae": (ae_loss, ae_opt)}
    done = {name: [] for name in steps}
    print(json.dumps({"ready": True, "threads": torch.get_num_threads(), "torch": torch.__version__}), flush=True)
    for line in sys.stdin:
        request = line.split()
        if not request or request[0] == "quit":
            break
        if request[0] not in steps or len(request) != 3:
            raise SystemExit(f"bench: bad request {line.strip()!r}; expected `finetune|ae WARMUP STEPS` or `quit`")
        loss_fn, optimiser = steps[request[0]]
        result = time_steps(loss_fn, optimiser, int(request[1]), int(request[2]), device, sync_phases)
        done[request[0]].append(result["ms"])
        print(json.dumps({k: v.tolist() for k, v in result.items()}), flush=True)
    out = {"bench/threads": torch.tensor(torch.get_num_threads(), dtype=torch.int64)}
    for name, parts in done.items():
        if parts:
            out[f"{name}/ms"] = torch.cat(parts)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["parity", "count", "bench"], default="parity")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("input")
    parser.add_argument("output")
    args = parser.parse_args()
    device = torch.device(args.device)
    tensors = read_safetensors(args.input)
    if args.mode == "parity":
        out = run_parity(tensors, device)
    elif args.mode == "count":
        out = run_count(tensors, device)
    else:
        out = run_bench(tensors, device)
    out["torch_version"] = torch.tensor([int(v) for v in torch.__version__.split("+")[0].split(".")[:3]])
    write_safetensors(args.output, out)


if __name__ == "__main__":
    sys.exit(main())

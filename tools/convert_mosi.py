#!/usr/bin/env python3
"""Convert the CMU-MOSI feature files people already have into decsweep's dataset file.

    python3 tools/convert_mosi.py aligned_50.pkl --out mosi.safetensors
    python3 tools/convert_mosi.py mosi_data_noalign.pkl --out mosi-unaligned.safetensors --format mult
    python3 tools/convert_mosi.py --format csd --text T.csd --audio A.csd --vision V.csd --labels L.csd \
        [--word-aligned] [--folds FOLDS.json] --out mosi-sdk.safetensors

Pickles need python3 and numpy only. A pickle can run code when it is loaded: convert only files
you trust (the ones MMSA and MulT publish). A pickle whose SHA-256 MMSA publishes is named as that
file; one named like a published file whose bytes differ gets a warning with both hashes
(published_checksums.py; MulT publishes none).

CMU-MultimodalSDK computational sequences (.csd, HDF5; --format csd) also need h5py, which
`make venv` installs into .venv: the rules are in mosi_csd.py, the file layout in csd_read.py.

Output: one .safetensors file in decsweep's canonical format (DESIGN.md "Data"): F32 `text`,
`audio`, `vision` [N, T, D]; I64 `lengths` [N], or `text_lengths` / `audio_lengths` /
`vision_lengths` when the modalities' lengths differ; F32 `label` [N]; U8 `split` [N]
(0 train, 1 valid, 2 test: a pickle's own split; for .csd the folds or a seeded split by video);
`__metadata__` holds "format": "decsweep-mosi/1" and "meta" (ids, source, nonfinite_replaced,
extra, which records the input's SHA-256). Valid steps are moved to the front of each sequence,
as the format requires. NaN and +-inf in the features become 0 and are counted into
`nonfinite_replaced` (for .csd, those in the feature rows the dataset uses).

Input schemas, as read by the projects' own loaders (line numbers at the commits named):

MMSA `aligned_50.pkl` / `unaligned_50.pkl` -- thuiar/MMSA, src/MMSA/data_loader.py at
a94e65d07fa1ae0d44e552390074b29b0898edfd, MMDataset.__init_mosi:
  * the top level maps "train" / "valid" / "test" to one dict each (MMDataLoader, lines 223-227);
  * "text": float [N, T, Dt] (line 38); for MOSI these are 768-d BERT features
    (config_regression.json, feature_dims [768, 5, 20]);
  * "text_bert": [N, 3, T], rows input_ids / input_mask / segment_ids (lines 91 and 95); the mask
    is 1 for the tokens and 0 for the padding after them (comment in models/singleTask/MISA.py,
    "bert_sent_mask : consists of seq_len of 1, followed by padding of 0"). These are token ids
    for MMSA's own BERT, not features, so they are used for the text lengths only;
  * "audio": float [N, Ta, Da], may hold -inf (lines 40 and 87); "vision": float [N, Tv, Dv]
    (line 42);
  * "id" (line 45), "raw_text" (line 44), "regression_labels": [N] in [-3, 3] (line 70);
  * unaligned files also hold "audio_lengths" and "vision_lengths" (lines 78-86). The valid steps
    come first: the models pass these lengths to pack_padded_sequence (e.g. SELF_MM.py,
    AuViSubNet.forward). For aligned files, audio and vision take the text lengths, the sum of
    the BERT mask (lines 98-100; SELF_MM.py forward, lines 58-64).

MulT `mosi_data.pkl` / `mosi_data_noalign.pkl` -- yaohungt/Multimodal-Transformer, src/dataset.py
at a670936824ee722c8494fd98d204977a1d663c7a, Multimodal_Datasets.__init__:
  * the top level maps "train" / "valid" / "test" (split_type; main.py lines 118-120);
  * "vision" (line 26), "text" (GloVe, line 27), "audio" (line 28; -inf set to 0 at line 29):
    float [N, T, D];
  * "labels" (line 31): [N, 1, 1] for MOSI (get_lbl_info, line 47, reads shape[1] and shape[2]);
  * "id" (optional, line 34): for MOSI each row holds three byte strings (line 55 decodes
    [0], [1], [2]); they are joined with "_".
  * No lengths are stored. The sequences are zero-padded at the front ("left padding zeroes or
    truncating", the author's answer in yaohungt/Multimodal-Transformer issue #3).

Where a file stores no lengths, they are inferred from the padding: a row's valid steps run from
its first to its last step with any nonzero feature, whichever side the zeros are on, and are
moved to the front. When all three modalities have the same number of steps (aligned data) the
span is the union over the modalities, so the three lengths agree. How many rows were padded on
which side is recorded in meta.extra.padding.

Long sequences: unaligned files hold far more steps than decsweep's default seq_len of 30
(MMSA unaligned_50.pkl: audio up to 375, vision up to 500). When any modality's longest row runs
past LONG_SEQUENCE_FACTOR x seq_len (--seq-len, default 30), a warning on stderr says what each
value of decsweep's `time_pool` parameter will do with those rows: `truncate` (the default) keeps
only the first seq_len steps, `resample` averages all of them over seq_len near-equal windows.
The file itself is written unchanged either way.

Exit status: 0 ok, 1 failure, 2 bad input (missing, unreadable or malformed input file).
"""

import argparse
import os
import pickle
import sys

try:
    import numpy as np
except ImportError:  # pragma: no cover - reported to the user
    sys.stderr.write("error: tools/convert_mosi.py needs numpy (pip install numpy)\n")
    sys.exit(1)

from dataset_file import BAD_INPUT, MODALITIES, SPLITS, InputError, file_sha256, write_safetensors
from published_checksums import recognise

CSD_ROLES = ("text", "audio", "vision", "labels")
# Lengths beyond this many times seq_len are "far past" it (the same threshold as
# `decsweep data inspect`, decsweep_data::LONG_SEQUENCE_FACTOR).
LONG_SEQUENCE_FACTOR = 2
DEFAULT_SEQ_LEN = 30


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Convert CMU-MOSI feature files (MMSA or MulT pickles, CMU-MultimodalSDK .csd "
        "sequences) into decsweep's .safetensors dataset.",
        epilog="Schemas and the loader lines they come from are in this script's docstring; "
        "the .csd rules in mosi_csd.py.",
    )
    parser.add_argument(
        "input", nargs="?", help="aligned_50.pkl / unaligned_50.pkl (MMSA) or mosi_data*.pkl (MulT); not with --format csd"
    )
    parser.add_argument("--out", required=True, help="output .safetensors file (written atomically)")
    parser.add_argument(
        "--format",
        choices=("auto", "mmsa", "mult", "csd"),
        default="auto",
        help="input schema; auto decides a pickle's by its keys (MMSA has regression_labels, MulT labels); "
        "csd reads the four computational sequences given by --text, --audio, --vision and --labels",
    )
    csd = parser.add_argument_group("--format csd (CMU-MultimodalSDK computational sequences)")
    for role, example in zip(CSD_ROLES, ("glove_vectors", "COVAREP", "FACET_4.2", "Opinion Segment Labels")):
        csd.add_argument(f"--{role}", metavar="FILE.csd", help=f"the {role} sequence, e.g. {example}")
    csd.add_argument(
        "--word-aligned",
        action="store_true",
        help="one step per word; audio and vision averaged over each word (default: each modality keeps its own rows)",
    )
    csd.add_argument("--folds", metavar="FOLDS.json", help='{"train": [...], "valid": [...], "test": [...]} video ids')
    csd.add_argument("--seed", type=int, default=0, help="seed of the split by video when there is no --folds (default 0)")
    parser.add_argument(
        "--seq-len",
        type=int,
        default=DEFAULT_SEQ_LEN,
        help="the seq_len the data will be used with (default 30); rows longer than "
        f"{LONG_SEQUENCE_FACTOR} x seq_len are warned about",
    )
    args = parser.parse_args(argv)
    if args.seq_len < 1:
        parser.error("--seq-len must be at least 1")
    csd_given = [f"--{r.replace('_', '-')}" for r in CSD_ROLES + ("word_aligned", "folds") if getattr(args, r)]
    if args.format == "csd":
        if args.input is not None:
            parser.error(f"--format csd reads --text, --audio, --vision and --labels, not a positional input ({args.input})")
        lacking = [f"--{r}" for r in CSD_ROLES if getattr(args, r) is None]
        if lacking:
            parser.error(f"--format csd needs {', '.join(lacking)}")
    elif csd_given:
        parser.error(f"{', '.join(csd_given)}: only with --format csd")
    elif args.input is None:
        parser.error("the input pickle is required (or --format csd with --text, --audio, --vision and --labels)")
    try:
        if args.format == "csd":
            import mosi_csd

            paths = {role: getattr(args, role) for role in CSD_ROLES}
            tensors, meta, lines, warnings = mosi_csd.convert_csd(paths, args.word_aligned, args.folds, args.seed)
        else:
            tensors, meta, lines, warnings = convert_pickle(args.input, args.format)
        write_safetensors(args.out, tensors, meta)
    except InputError as e:
        sys.stderr.write(f"error: {e}\n")
        return BAD_INPUT
    except (OSError, RuntimeError) as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    counts = [int((tensors["split"] == s).sum()) for s in range(3)]
    dims = " ".join(f"{m} {tensors[m].shape[2]}" for m in MODALITIES)
    print(
        f"{args.out}: {len(meta['ids'])} rows; dims {dims}; split {counts[0]} train / {counts[1]} valid / "
        f"{counts[2]} test; {meta['nonfinite_replaced']} non-finite values replaced by 0"
    )
    for line in lines:
        print(f"  {line}")
    warning = long_sequence_warning(tensors, args.seq_len)
    for text in warnings + ([warning] if warning else []):
        sys.stderr.write(f"warning: {text}\n")
    return 0


def convert_pickle(path, fmt):
    """An MMSA or MulT pickle: the tensors, the metadata, report lines and warnings."""
    sha256 = file_sha256(path)
    data = load_pickle(path)
    fmt = detect_format(path, data) if fmt == "auto" else fmt
    tensors, meta = convert(path, data, fmt)
    meta["extra"]["input_sha256"] = sha256
    lines = [f"read {fmt.upper()} pickle {path} (sha256 {sha256})"]
    warnings = []
    kind, message = recognise(path, sha256)
    if kind == "known":
        lines.append(f"recognised: {message}")
        meta["extra"]["recognised_as"] = message
    elif kind == "mismatch":
        warnings.append(message)
    return tensors, meta, lines, warnings


def long_sequence_warning(tensors, seq_len):
    """What happens to rows far past seq_len under each time_pool value; None if there are none."""
    longest = {}
    for m in MODALITIES:
        lengths = tensors.get(f"{m}_lengths", tensors.get("lengths"))
        longest[m] = int(lengths.max()) if len(lengths) else 0
    limit = LONG_SEQUENCE_FACTOR * seq_len
    long = [f"{m} up to {longest[m]} steps" for m in MODALITIES if longest[m] > limit]
    if not long:
        return None
    worst = max(longest.values())
    return (
        f"lengths run far past seq_len = {seq_len} ({', '.join(long)}; more than {LONG_SEQUENCE_FACTOR} x seq_len): "
        f"with time_pool = truncate (decsweep's default) only the first {seq_len} steps of each row are used, "
        f"so a {worst}-step row loses {100 * (worst - seq_len) / worst:.0f}% of its steps; with "
        f"time_pool = resample every step is averaged into {seq_len} near-equal windows "
        f"(about {worst / seq_len:.1f} steps each for a {worst}-step row)"
    )


def load_pickle(path):
    try:
        with open(path, "rb") as f:
            try:
                return pickle.load(f)
            except UnicodeDecodeError:
                # Pickles written by Python 2 (as some released feature files were) hold byte
                # strings that only this encoding reads back.
                f.seek(0)
                return pickle.load(f, encoding="latin1")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file")
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, ValueError) as e:
        raise InputError(f"{path}: not a readable pickle ({type(e).__name__}: {e})")


def detect_format(path, data):
    first = split_dict(path, data, "train")
    if "regression_labels" in first:
        return "mmsa"
    if "labels" in first:
        return "mult"
    raise InputError(
        f"{path}: cannot tell the format: split 'train' has keys {sorted(map(str, first))}, "
        "expected 'regression_labels' (MMSA) or 'labels' (MulT); pass --format"
    )


def split_dict(path, data, split):
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a dict with keys {list(SPLITS)}, found {type(data).__name__}")
    if split not in data:
        raise InputError(f"{path}: missing split '{split}' (keys: {sorted(map(str, data))})")
    part = data[split]
    if not isinstance(part, dict):
        raise InputError(f"{path}: split '{split}' is a {type(part).__name__}, expected a dict")
    return part


def get(path, part, split, key, fmt):
    if key not in part:
        raise InputError(
            f"{path}: split '{split}' has no key '{key}' ({fmt} schema; keys: {sorted(map(str, part))})"
        )
    return part[key]


def features(path, part, split, key, fmt, n=None):
    """A float32 [N, T, D] array with non-finite values replaced by 0, and their count."""
    raw = get(path, part, split, key, fmt)
    try:
        x = np.array(raw, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise InputError(f"{path}: split '{split}' key '{key}' is not numeric: {e}")
    if x.ndim != 3 or x.shape[1] == 0 or x.shape[2] == 0:
        raise InputError(f"{path}: split '{split}' key '{key}' has shape {x.shape}, expected [N, T, D]")
    if n is not None and x.shape[0] != n:
        raise InputError(f"{path}: split '{split}' key '{key}' has {x.shape[0]} rows, expected {n}")
    bad = ~np.isfinite(x)
    replaced = int(bad.sum())
    x[bad] = 0.0
    return x, replaced


def labels_of(path, part, split, fmt):
    key = "regression_labels" if fmt == "mmsa" else "labels"
    try:
        raw = np.array(get(path, part, split, key, fmt), dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InputError(f"{path}: split '{split}' key '{key}' is not numeric: {e}")
    # MulT stores [N, 1, 1]; MMSA [N]. Either way one score per row.
    if raw.ndim == 0 or raw.size != raw.shape[0]:
        raise InputError(f"{path}: split '{split}' key '{key}' has shape {raw.shape}, expected one score per row")
    y = raw.reshape(raw.shape[0])
    for row, value in enumerate(y):
        if not np.isfinite(value) or abs(value) > 3.0:
            raise InputError(f"{path}: split '{split}' key '{key}' row {row} is {value}, expected a score in [-3, 3]")
    return y.astype(np.float32)


def ids_of(path, part, split, n):
    raw = part.get("id")
    if raw is None:
        return [f"{split}_{i}" for i in range(n)]

    def text(v):
        if isinstance(v, (bytes, np.bytes_)):
            return v.decode("utf-8", errors="replace")
        if isinstance(v, (list, tuple, np.ndarray)):
            return "_".join(text(x) for x in v)
        return str(v)

    ids = [text(v) for v in list(raw)]
    if len(ids) != n:
        raise InputError(f"{path}: split '{split}' key 'id' has {len(ids)} entries for {n} rows")
    return ids


def explicit_lengths(path, part, split, key, t, n, stats):
    """Lengths a file stores, clamped to 1..T (a clamped value is counted)."""
    try:
        raw = np.array(part[key]).reshape(-1).astype(np.int64)
    except (TypeError, ValueError) as e:
        raise InputError(f"{path}: split '{split}' key '{key}' is not a list of integers: {e}")
    if len(raw) != n:
        raise InputError(f"{path}: split '{split}' key '{key}' has {len(raw)} entries for {n} rows")
    clamped = np.clip(raw, 1, t)
    stats["lengths_clamped"] += int((clamped != raw).sum())
    return clamped


def mask_lengths(path, part, split, t, n, stats):
    """Text lengths from the BERT input mask (row 1 of text_bert)."""
    tb = np.array(part["text_bert"])
    if tb.ndim != 3 or tb.shape[0] != n or tb.shape[1] != 3:
        raise InputError(f"{path}: split '{split}' key 'text_bert' has shape {tb.shape}, expected [{n}, 3, T]")
    raw = (tb[:, 1, :] != 0).sum(axis=1).astype(np.int64)
    clamped = np.clip(raw, 1, t)
    stats["lengths_clamped"] += int((clamped != raw).sum())
    return clamped


def spans(x):
    """Per row, (first, last) step with any nonzero feature; (-1, -1) for an all-zero row."""
    nonzero = np.any(x != 0, axis=2)
    any_step = nonzero.any(axis=1)
    t = x.shape[1]
    first = np.where(any_step, nonzero.argmax(axis=1), -1)
    last = np.where(any_step, t - 1 - nonzero[:, ::-1].argmax(axis=1), -1)
    return first, last


def move_to_front(x, first, last, padding, all_zero):
    """Moves each row's [first, last] span to the front; returns the lengths."""
    n, t, _ = x.shape
    lengths = np.ones(n, dtype=np.int64)
    out = np.zeros_like(x)
    for i in range(n):
        if first[i] < 0:
            # Nothing but padding: one zero step, so the row stays valid (length >= 1).
            all_zero[0] += 1
            continue
        length = last[i] - first[i] + 1
        out[i, :length] = x[i, first[i] : last[i] + 1]
        lengths[i] = length
        side = ("front" if first[i] > 0 else "") + ("back" if last[i] < t - 1 else "")
        padding[side or "none"] += 1
    return out, lengths


def convert(path, data, fmt):
    """Returns the tensors and the metadata of the whole file, splits concatenated in order."""
    if fmt not in ("mmsa", "mult"):
        raise InputError(f"{path}: unknown format {fmt}")
    per_split = []
    replaced = 0
    stats = {"lengths_clamped": 0}
    padding = {m: {"front": 0, "back": 0, "frontback": 0, "none": 0} for m in MODALITIES}
    all_zero = {m: [0] for m in MODALITIES}
    lengths_source = {}
    present = [s for s in SPLITS if isinstance(data, dict) and s in data]
    if "train" not in present:
        split_dict(path, data, "train")  # raises the precise error
    for split_index, split in enumerate(SPLITS):
        if split not in present:
            continue
        part = split_dict(path, data, split)
        y = labels_of(path, part, split, fmt)
        n = len(y)
        xs = {}
        for m in MODALITIES:
            xs[m], k = features(path, part, split, m, fmt, n)
            replaced += k
        lengths = {}
        if fmt == "mmsa":
            for m, key in (("audio", "audio_lengths"), ("vision", "vision_lengths")):
                if key in part:
                    lengths[m] = explicit_lengths(path, part, split, key, xs[m].shape[1], n, stats)
                    lengths_source[m] = key
            if "text_bert" in part:
                text_len = mask_lengths(path, part, split, xs["text"].shape[1], n, stats)
                lengths["text"] = text_len
                lengths_source["text"] = "text_bert input mask"
                for m in ("audio", "vision"):
                    # Aligned MMSA data: audio and vision follow the text (loader lines 98-100).
                    if m not in lengths and xs[m].shape[1] == xs["text"].shape[1]:
                        lengths[m] = text_len
                        lengths_source[m] = "text_bert input mask (aligned)"
        inferred = [m for m in MODALITIES if m not in lengths]
        aligned = len({xs[m].shape[1] for m in inferred}) == 1 and len(inferred) > 1
        if aligned:
            firsts, lasts = zip(*(spans(xs[m]) for m in inferred))
            first = np.min(np.where(np.array(firsts) < 0, np.iinfo(np.int64).max, np.array(firsts)), axis=0)
            last = np.max(np.array(lasts), axis=0)
            first = np.where(last < 0, -1, first)
            for m in inferred:
                xs[m], lengths[m] = move_to_front(xs[m], first, last, padding[m], all_zero[m])
                lengths_source[m] = "inferred from padding (union over aligned modalities)"
        else:
            for m in inferred:
                first, last = spans(xs[m])
                xs[m], lengths[m] = move_to_front(xs[m], first, last, padding[m], all_zero[m])
                lengths_source[m] = "inferred from padding"
        per_split.append((split_index, xs, lengths, y, ids_of(path, part, split, n)))

    tensors = {}
    for m in MODALITIES:
        t_max = max(xs[m].shape[1] for _, xs, _, _, _ in per_split)
        dims = {xs[m].shape[2] for _, xs, _, _, _ in per_split}
        if len(dims) != 1:
            raise InputError(f"{path}: key '{m}' has different feature sizes across splits: {sorted(dims)}")
        blocks = []
        for _, xs, _, _, _ in per_split:
            x = xs[m]
            if x.shape[1] < t_max:
                # Valid steps are at the front now, so padding at the back is safe.
                x = np.concatenate([x, np.zeros((x.shape[0], t_max - x.shape[1], x.shape[2]), np.float32)], axis=1)
            blocks.append(x)
        tensors[m] = np.ascontiguousarray(np.concatenate(blocks, axis=0), dtype="<f4")
    lengths = {m: np.concatenate([ls[m] for _, _, ls, _, _ in per_split]).astype("<i8") for m in MODALITIES}
    if all(np.array_equal(lengths["text"], lengths[m]) for m in MODALITIES):
        tensors["lengths"] = lengths["text"]
    else:
        for m in MODALITIES:
            tensors[f"{m}_lengths"] = lengths[m]
    tensors["label"] = np.concatenate([y for _, _, _, y, _ in per_split]).astype("<f4")
    tensors["split"] = np.concatenate(
        [np.full(len(y), index, dtype=np.uint8) for index, _, _, y, _ in per_split]
    )
    ids = [i for _, _, _, _, split_ids in per_split for i in split_ids]
    meta = {
        "ids": ids,
        "source": f"{fmt.upper()} pickle {os.path.basename(path)} via tools/convert_mosi.py",
        "feature_names": None,
        "nonfinite_replaced": replaced,
        "extra": {
            "converter": "tools/convert_mosi.py",
            "input": os.path.basename(path),
            "input_format": fmt,
            "splits": [SPLITS[i] for i, _, _, _, _ in per_split],
            "lengths_source": lengths_source,
            "padding": padding,
            "all_zero_rows": {m: all_zero[m][0] for m in MODALITIES},
            "lengths_clamped": stats["lengths_clamped"],
        },
    }
    return tensors, meta


if __name__ == "__main__":
    sys.exit(main())

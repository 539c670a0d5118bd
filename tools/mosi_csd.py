"""CMU-MultimodalSDK computational sequences -> decsweep's dataset: `convert_mosi.py --format csd`.

    python3 tools/convert_mosi.py --format csd --text CMU_MOSI_TimestampedWordVectors.csd \\
        --audio CMU_MOSI_COVAREP.csd --vision CMU_MOSI_Visual_Facet_42.csd \\
        --labels CMU_MOSI_Opinion_Labels.csd [--word-aligned] [--folds folds.json] --out mosi-sdk.safetensors

The rules (issue 19):
  * One row per opinion segment of the label file (features [n x 1], -3..3; its intervals are the
    segments' bounds), with id `video[k]`, k the segment's index within its video in time order.
  * A feature row belongs to a segment when its interval's midpoint lies in the segment's
    [start, end); a segment's rows keep their time order.
  * Without --word-aligned each modality keeps its own rows (per-modality lengths, like MMSA's
    unaligned files). A segment with no row in a modality gets one zero step there (the format
    needs length >= 1); such segments are counted per modality.
  * With --word-aligned there is one step per text row (word) of the segment. Audio and vision at
    that step are the mean of their rows whose midpoint lies in the word's [start, end), or zeros
    where there are none: the SDK's alignment to the words with an average collapse. Zero steps
    are counted per modality. A segment without words gets one zero step in all three (counted).
  * NaN and +-inf become 0 (csd_read.py); the values replaced in rows the dataset uses are counted.
  * Splits: --folds names the videos of each split, {"train": [...], "valid": [...], "test": [...]}
    (the SDK's standard folds give 1,284 / 229 / 686 MOSI segments). Without it whole videos are
    shuffled (--seed) and dealt out in the standard folds' proportions, so no video has segments in
    two splits; that split is not the standard one, and the converter says so. A video in two
    folds, or a fold video with no segments, is an error naming it; a video with segments in no
    fold is left out with a warning.
  * A video of the label file missing from a feature file is left out, with a warning naming it
    and the file, and the number of segments dropped; videos in every file are kept.
  * Rows are ordered train, valid, test, and by video id and k within each.
  * meta.extra records each input (file name, SHA-256, root name, the SDK metadata), the
    alignment, the split, and every count above.
"""

import json
import os

import numpy as np

from csd_read import read_sequence
from dataset_file import MODALITIES, SPLITS, InputError, file_sha256

ROLES = MODALITIES + ("labels",)
# Segments per fold in the SDK's standard CMU-MOSI folds: the proportions of the seeded split.
STANDARD_FOLD_SEGMENTS = (1284, 229, 686)


class Counts:
    """What the conversion replaced, filled in or left out; reported and stored in meta.extra."""

    def __init__(self):
        self.nonfinite = {m: 0 for m in MODALITIES}
        self.empty_segments = {m: 0 for m in MODALITIES}
        self.empty_word_steps = {m: 0 for m in ("audio", "vision")}
        self.word_steps = 0
        self.segments_without_words = 0


def convert_csd(paths, word_aligned, folds_path, seed):
    """paths: role -> .csd file. Returns (tensors, meta, report lines, warnings)."""
    seqs = {role: read_sequence(paths[role], role, 1 if role == "labels" else None) for role in ROLES}
    warnings = []
    videos, missing = shared_videos(seqs, warnings)
    segments = {vid: segments_of(seqs["labels"], vid) for vid in videos}
    segments = {vid: s for vid, s in segments.items() if s}
    if not segments:
        raise InputError(f"{paths['labels']}: no opinion segment of a video that every feature file has")
    if folds_path is None:
        split_of, split_info = random_split(segments, seed)
        warnings.append(
            f"no --folds given: videos were split at random (seed {seed}) into train/valid/test in the "
            "SDK's proportions; this is NOT the standard CMU-MOSI split, so results are not comparable "
            "with published ones (pass --folds with the SDK's standard folds for that)"
        )
    else:
        split_of, split_info = read_folds(folds_path, segments, seqs, missing, warnings)

    counts = Counts()
    used = {m: {vid: np.zeros(len(seqs[m].videos[vid][0]), bool) for vid in segments} for m in MODALITIES}
    rows = []  # (split, vid, k, label, {modality: [steps x d] float32})
    for vid in sorted(segments, key=lambda v: (split_of.get(v, 3), v)):
        if vid not in split_of:
            continue
        timelines = {m: Timeline(seqs[m].videos[vid]) for m in MODALITIES}
        for k, (start, end, label) in enumerate(segments[vid]):
            if word_aligned:
                steps = word_steps(timelines, start, end, used, vid, counts)
            else:
                steps = own_steps(timelines, start, end, used, vid, counts)
            rows.append((split_of[vid], vid, k, label, steps))
    for m in MODALITIES:
        for vid, mask in used[m].items():
            counts.nonfinite[m] += int(seqs[m].videos[vid][2][mask].sum())

    tensors = assemble(rows, {m: seqs[m].width for m in MODALITIES})
    meta = metadata(seqs, rows, word_aligned, split_info, missing, counts)
    return tensors, meta, report(seqs, rows, word_aligned, split_info, counts), warnings


def shared_videos(seqs, warnings):
    """The label file's videos that every feature file has, and for the others which files lack
    them (warned about, one line per feature file)."""
    labelled = set(seqs["labels"].videos)
    missing = {}
    for m in MODALITIES:
        lacking = sorted(labelled - set(seqs[m].videos))
        for vid in lacking:
            missing.setdefault(vid, []).append(m)
    for m in MODALITIES:
        lacking = [vid for vid in sorted(missing) if m in missing[vid]]
        if lacking:
            dropped = sum(len(seqs["labels"].videos[vid][0]) for vid in lacking)
            warnings.append(
                f"{seqs[m].path}: has no {m} for {len(lacking)} video(s) of the label file: {', '.join(lacking)}; "
                f"expected every labelled video. Their {dropped} segment(s) are left out"
            )
    unlabelled = set().union(*(seqs[m].videos for m in MODALITIES)) - labelled
    if unlabelled:
        warnings.append(
            f"{len(unlabelled)} video(s) of the feature files have no labels in {seqs['labels'].path} and "
            f"are not used: {', '.join(sorted(unlabelled)[:10])}{' ...' if len(unlabelled) > 10 else ''}"
        )
    kept = sorted(labelled - set(missing))
    if missing:
        dropped = sum(len(seqs["labels"].videos[vid][0]) for vid in missing)
        warnings.append(
            f"dropped {dropped} segment(s) of {len(missing)} video(s) missing from a feature file; "
            f"kept the videos present in all four files ({len(kept)})"
        )
    return kept, missing


def segments_of(labels, vid):
    """(start, end, label) of a video's opinion segments in time order (start, then end)."""
    features, intervals, nonfinite = labels.videos[vid]
    if nonfinite.any():
        row = int(np.argmax(nonfinite))
        raise InputError(f"{labels.path}: video {vid} segment row {row} has a non-finite label, expected a score in [-3, 3]")
    out = []
    for row in np.lexsort((intervals[:, 1], intervals[:, 0])):
        y = float(features[row, 0])
        if not -3.0 <= y <= 3.0:
            raise InputError(f"{labels.path}: video {vid} segment row {row} has label {y}, expected a score in [-3, 3]")
        out.append((float(intervals[row, 0]), float(intervals[row, 1]), y))
    return out


class Timeline:
    """A video's rows of one modality sorted by interval midpoint, for [start, end) lookups."""

    def __init__(self, video):
        self.features, self.intervals, _ = video
        mids = self.intervals.mean(axis=1)
        self.order = np.argsort(mids, kind="stable")
        self.mids = mids[self.order]

    def rows(self, start, end):
        """Indices of the rows whose midpoint lies in [start, end), in time order."""
        lo, hi = np.searchsorted(self.mids, [start, end], side="left")
        return self.order[lo:hi]


def own_steps(timelines, start, end, used, vid, counts):
    steps = {}
    for m in MODALITIES:
        rows = timelines[m].rows(start, end)
        used[m][vid][rows] = True
        if len(rows) == 0:
            counts.empty_segments[m] += 1
            steps[m] = np.zeros((1, timelines[m].features.shape[1]), np.float32)
        else:
            steps[m] = timelines[m].features[rows]
    return steps


def word_steps(timelines, start, end, used, vid, counts):
    text = timelines["text"]
    words = text.rows(start, end)
    if len(words) == 0:
        counts.segments_without_words += 1
        return {m: np.zeros((1, timelines[m].features.shape[1]), np.float32) for m in MODALITIES}
    used["text"][vid][words] = True
    counts.word_steps += len(words)
    word_intervals = text.intervals[words]
    steps = {"text": text.features[words]}
    for m in ("audio", "vision"):
        out = np.zeros((len(words), timelines[m].features.shape[1]), np.float32)
        for i, (w_start, w_end) in enumerate(word_intervals):
            rows = timelines[m].rows(w_start, w_end)
            if len(rows) == 0:
                counts.empty_word_steps[m] += 1
                continue
            used[m][vid][rows] = True
            out[i] = timelines[m].features[rows].astype(np.float64).mean(axis=0)
        steps[m] = out
    return steps


def random_split(segments, seed):
    """Whole videos, shuffled with `seed`, dealt to train until it holds the standard folds' share
    of the segments, then to valid, then to test; each split gets a video when there are three."""
    vids = sorted(segments)
    order = [vids[i] for i in np.random.default_rng(seed).permutation(len(vids))]
    total = sum(len(segments[v]) for v in vids)
    bounds = np.cumsum(STANDARD_FOLD_SEGMENTS)[:2] / sum(STANDARD_FOLD_SEGMENTS) * total
    before = np.cumsum([0] + [len(segments[v]) for v in order])[:-1]
    first_valid = int(np.searchsorted(before, bounds[0], side="left"))
    first_test = int(np.searchsorted(before, bounds[1], side="left"))
    if len(order) >= 3:
        first_valid = min(max(first_valid, 1), len(order) - 2)
        first_test = min(max(first_test, first_valid + 1), len(order) - 1)
    split_of = {}
    for i, vid in enumerate(order):
        split_of[vid] = 0 if i < first_valid else 1 if i < first_test else 2
    info = {"source": "random by video", "seed": seed, "standard": False}
    info["videos"] = {name: sorted(v for v in order if split_of[v] == s) for s, name in enumerate(SPLITS)}
    return split_of, info


def read_folds(path, segments, seqs, missing, warnings):
    sha256 = file_sha256(path)
    expected = 'expected {"train": [video ids], "valid": [...], "test": [...]}'
    try:
        with open(path, encoding="utf-8") as f:
            folds = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not JSON ({e}); {expected}")
    if not isinstance(folds, dict) or sorted(folds) != sorted(SPLITS):
        keys = sorted(folds) if isinstance(folds, dict) else type(folds).__name__
        raise InputError(f"{path}: has {keys}; {expected}")
    split_of = {}
    for s, name in enumerate(SPLITS):
        ids = folds[name]
        if not isinstance(ids, list) or not all(isinstance(v, str) for v in ids):
            raise InputError(f"{path}: fold '{name}' is not a list of video id strings; {expected}")
        for vid in ids:
            if vid in split_of and split_of[vid] != s:
                raise InputError(
                    f"{path}: video {vid} is in both fold '{SPLITS[split_of[vid]]}' and fold '{name}'; "
                    "a video's segments must all be in one split"
                )
            if vid not in segments:
                raise InputError(f"{path}: fold '{name}' names video {vid}, which has no segments: {why_no_segments(vid, seqs, missing)}")
            split_of[vid] = s
    unassigned = sorted(set(segments) - set(split_of))
    if unassigned:
        n = sum(len(segments[v]) for v in unassigned)
        warnings.append(f"{path}: {len(unassigned)} video(s) with segments are in no fold and left out ({n} segments): {', '.join(unassigned)}")
    info = {"source": "folds", "folds_file": os.path.basename(path), "folds_sha256": sha256, "standard": None}
    info["videos"] = {name: sorted(v for v in split_of if split_of[v] == s) for s, name in enumerate(SPLITS)}
    info["unassigned_videos"] = unassigned
    return split_of, info


def why_no_segments(vid, seqs, missing):
    labels = seqs["labels"]
    if vid in missing:
        return "; ".join(f"missing from the {m} file {seqs[m].path}" for m in missing[vid])
    if vid not in labels.videos:
        return f"not in the label file {labels.path}"
    return f"the label file {labels.path} has no segment for it"


def assemble(rows, widths):
    """The canonical tensors: per modality [N, T, D] with T its longest row, steps at the front."""
    tensors = {}
    lengths = {}
    for m in MODALITIES:
        lengths[m] = np.array([r[4][m].shape[0] for r in rows], dtype="<i8")
        x = np.zeros((len(rows), int(lengths[m].max()), widths[m]), dtype="<f4")
        for i, r in enumerate(rows):
            x[i, : lengths[m][i]] = r[4][m]
        tensors[m] = x
    if all(np.array_equal(lengths["text"], lengths[m]) for m in MODALITIES):
        tensors["lengths"] = lengths["text"]
    else:
        for m in MODALITIES:
            tensors[f"{m}_lengths"] = lengths[m]
    tensors["label"] = np.array([r[3] for r in rows], dtype="<f4")
    tensors["split"] = np.array([r[0] for r in rows], dtype=np.uint8)
    return tensors


def metadata(seqs, rows, word_aligned, split_info, missing, counts):
    inputs = {
        role: {
            "file": os.path.basename(seqs[role].path),
            "sha256": seqs[role].sha256,
            "root": seqs[role].root,
            "metadata": seqs[role].metadata,
            "videos": len(seqs[role].videos),
            "width": seqs[role].width,
        }
        for role in ROLES
    }
    names = {}
    for m in MODALITIES:
        dims = seqs[m].metadata.get("dimension names")
        names[m] = dims if isinstance(dims, list) and len(dims) == seqs[m].width else None
    alignment = {
        "mode": "word" if word_aligned else "none",
        "membership": "feature rows whose interval midpoint lies in the segment's [start, end), in time order",
    }
    if word_aligned:
        alignment["steps"] = "one per text row (word); audio and vision: mean of the rows whose midpoint lies in the word's [start, end), zeros where none"
    roots = ", ".join(seqs[role].root for role in ROLES)
    return {
        "ids": [f"{vid}[{k}]" for _, vid, k, _, _ in rows],
        "source": f"CMU-MultimodalSDK computational sequences {roots} via tools/convert_mosi.py "
        f"({'word-aligned, mean collapse' if word_aligned else 'unaligned'})",
        "feature_names": names if any(names.values()) else None,
        "nonfinite_replaced": sum(counts.nonfinite.values()),
        "extra": {
            "converter": "tools/convert_mosi.py",
            "input_format": "csd",
            "inputs": inputs,
            "alignment": alignment,
            "split": split_info,
            "videos_missing": missing,
            "dropped_segments": sum(len(seqs["labels"].videos[vid][0]) for vid in missing),
            "nonfinite_by_modality": counts.nonfinite,
            "empty_segments": counts.empty_segments if not word_aligned else None,
            "word_steps": counts.word_steps if word_aligned else None,
            "empty_word_steps": counts.empty_word_steps if word_aligned else None,
            "segments_without_words": counts.segments_without_words if word_aligned else None,
        },
    }


def report(seqs, rows, word_aligned, split_info, counts):
    """Lines for stdout: what was read, how it was aligned and split, what was replaced."""
    names = ", ".join(f"{role} `{seqs[role].root}` ({os.path.basename(seqs[role].path)})" for role in ROLES)
    dims = " ".join(f"{m} {seqs[m].width}" for m in MODALITIES)
    lines = [f"read CMU-MultimodalSDK sequences: {names}; dims {dims}"]
    if word_aligned:
        lines.append(
            f"alignment: word-aligned, {counts.word_steps} word steps; audio and vision are the mean of their rows "
            f"in each word; zero steps where a word has none: audio {counts.empty_word_steps['audio']}, "
            f"vision {counts.empty_word_steps['vision']}; segments without words (one zero step): "
            f"{counts.segments_without_words}"
        )
    else:
        empty = ", ".join(f"{m} {counts.empty_segments[m]}" for m in MODALITIES)
        lines.append(f"alignment: none, each modality keeps its own rows; segments with no row (one zero step): {empty}")
    per_split = [sum(1 for r in rows if r[0] == s) for s in range(3)]
    source = (
        f"folds from {split_info['folds_file']}" if split_info["source"] == "folds"
        else f"random by video, seed {split_info['seed']}, not the standard split"
    )
    videos = "/".join(str(len(split_info["videos"][name])) for name in SPLITS)
    lines.append(f"split {per_split[0]} train / {per_split[1]} valid / {per_split[2]} test segments ({videos} videos; {source})")
    by = ", ".join(f"{m} {counts.nonfinite[m]}" for m in MODALITIES)
    lines.append(f"{sum(counts.nonfinite.values())} non-finite values replaced by 0 ({by})")
    return lines

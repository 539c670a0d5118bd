#!/usr/bin/env python3
"""Small CMU-MultimodalSDK computational sequences (.csd) for the tests of tools/mosi_csd.py.

    make_fixtures.py OUT_DIR

Laid out as the SDK's write_CSD writes them (see tools/csd_read.py): one root group named after
the sequence, <root>/data/<video>/features [n x d] and intervals [n x 2], <root>/metadata/<key> a
[1] string holding JSON. Dims text 3, audio 2, vision 4 (not the paper's 300 / 74 / 47).

Feature values, for a video numbered V and row r: text V*1000 + 10r + j, audio V*1000 + 10r + j,
vision -(V*1000 + 10r + j), j the column. Videos (their V):

  vidA (100)  segments stored out of time order: [2, 5) label 0, [0, 2) 1.5, [5, 6) -2.
              words [0, .5) [.5, 1.2) [1.2, 2.4) [2.6, 2.9) [3, 4) [4, 5.2) [5.2, 5.8): the third and
              sixth cross a segment bound, their midpoints (1.8, 4.6) decide.
              audio frames [.3k, .3k + .3), k = 0..20: frame 6 [1.8, 2.1) cuts the bound at 2 and
              belongs to segment 0; frame 20 (midpoint 6.15) lies in no segment and holds a NaN
              that must not be counted; frame 3 feature 0 is NaN (counted).
              vision frames [.5k - .25, .5k + .25), k = 0..12: midpoints exactly .5k, so frame 4
              (midpoint 2.0) is segment 1's (start inclusive) and frame 12 (6.0) nobody's; frame 2
              feature 1 is +inf. The word [2.6, 2.9) has no vision frame.
  vidB (101)  segments [0, 3) label 0, [3, 6) 2.5, [6, 6.5) -1: the last has no row anywhere.
              words [i, i + 1) i = 0..5; audio [.5k, .5k + .5) k = 0..11, frame 5 feature 1 -inf;
              vision [k, k + 1) k = 0..5.
  vidM (102)  in the text, audio and label files but not the vision file; segments [0, 1) 1,
              [1, 2) -1; text row 0 holds a NaN (never counted: the video is dropped).
  v00..v15 (0..15)  segments [2s, 2s + 2) s = 0..3, label ((4V + s) mod 13 - 6) / 2 (exact zeros
              among them); words [.5w, .5w + .5) w = 0..15; audio [.1k, .1k + .1) k = 0..79 (five
              per word); vision [.25k, .25k + .25) k = 0..31 (two per word).
  extra (103) only in the text file: features but no labels.

Also written: folds.json (v15 in no fold), folds_twice.json (v02 in train and test),
folds_unknown.json (nosuch), folds_missing.json (vidM); and the bad inputs not_hdf5.csd,
no_data.csd (a root group without `data`), widths.csd (text, v03 4 wide), labels_2col.csd.
"""

import json
import os
import sys

import h5py
import numpy as np

DIMS = {"text": 3, "audio": 2, "vision": 4}
ROOTS = {"text": "glove_vectors", "audio": "COVAREP", "vision": "FACET_4.2", "labels": "Opinion Segment Labels"}
FILES = {"text": "text.csd", "audio": "audio.csd", "vision": "vision.csd", "labels": "labels.csd"}
BULK = [f"v{v:02d}" for v in range(16)]


def values(number, m, rows, width):
    r = np.arange(rows, dtype=np.float64)[:, None]
    j = np.arange(width, dtype=np.float64)[None, :]
    x = number * 1000 + 10 * r + j
    return (-x if m == "vision" else x).astype(np.float32)


def frames(step, count, offset=0.0):
    k = np.arange(count, dtype=np.float64)
    return np.stack([step * k + offset, step * k + offset + step], axis=1)


def videos():
    """video -> {role: (features, intervals)}."""
    out = {}
    a_words = np.array([[0, .5], [.5, 1.2], [1.2, 2.4], [2.6, 2.9], [3, 4], [4, 5.2], [5.2, 5.8]])
    a = {
        "text": (values(100, "text", 7, 3), a_words),
        "audio": (values(100, "audio", 21, 2), frames(.3, 21)),
        "vision": (values(100, "vision", 13, 4), frames(.5, 13, -.25)),
        "labels": (np.array([[0.0], [1.5], [-2.0]], np.float32), np.array([[2, 5], [0, 2], [5, 6]], np.float64)),
    }
    a["audio"][0][3, 0] = np.nan
    a["audio"][0][20, 1] = np.nan
    a["vision"][0][2, 1] = np.inf
    out["vidA"] = a
    b = {
        "text": (values(101, "text", 6, 3), frames(1, 6)),
        "audio": (values(101, "audio", 12, 2), frames(.5, 12)),
        "vision": (values(101, "vision", 6, 4), frames(1, 6)),
        "labels": (np.array([[0.0], [2.5], [-1.0]], np.float32), np.array([[0, 3], [3, 6], [6, 6.5]], np.float64)),
    }
    b["audio"][0][5, 1] = -np.inf
    out["vidB"] = b
    m = {
        "text": (values(102, "text", 4, 3), frames(.5, 4)),
        "audio": (values(102, "audio", 20, 2), frames(.1, 20)),
        "labels": (np.array([[1.0], [-1.0]], np.float32), frames(1, 2)),
    }
    m["text"][0][0, 0] = np.nan
    out["vidM"] = m
    for v, vid in enumerate(BULK):
        labels = np.array([[((4 * v + s) % 13 - 6) / 2] for s in range(4)], np.float32)
        out[vid] = {
            "text": (values(v, "text", 16, 3), frames(.5, 16)),
            "audio": (values(v, "audio", 80, 2), frames(.1, 80)),
            "vision": (values(v, "vision", 32, 4), frames(.25, 32)),
            "labels": (labels, frames(2, 4)),
        }
    out["extra"] = {"text": (values(103, "text", 2, 3), frames(1, 2))}
    return out


def write_csd(path, root, data, metadata=None, with_data=True):
    """The SDK's layout; `data` maps a video to (features, intervals)."""
    with h5py.File(path, "w") as f:
        group = f.create_group(root)
        if with_data:
            d = group.create_group("data")
            for vid, (features, intervals) in data.items():
                v = d.create_group(vid)
                v.create_dataset("features", data=features)
                v.create_dataset("intervals", data=intervals)
        meta = group.create_group("metadata")
        for key, value in (metadata or {}).items():
            meta.create_dataset(key, (1,), dtype=h5py.special_dtype(vlen=str))
            meta[key][0] = json.dumps(value)


def metadata(role, width):
    names = ["sentiment"] if role == "labels" else [f"{ROOTS[role]}_{j}" for j in range(width)]
    return {
        "root name": ROOTS[role],
        "computational sequence description": f"decsweep test fixture: {role}",
        "dimension names": names,
        "computational sequence version": "1.0",
        "dataset name": "decsweep csd fixture",
    }


def main(out):
    all_videos = videos()
    per_role = {role: {vid: v[role] for vid, v in all_videos.items() if role in v} for role in FILES}
    for role, name in FILES.items():
        width = 1 if role == "labels" else DIMS[role]
        write_csd(os.path.join(out, name), ROOTS[role], per_role[role], metadata(role, width))

    folds = {"train": BULK[:10] + ["vidA"], "valid": BULK[10:12], "test": BULK[12:15] + ["vidB"]}
    broken = {
        "folds.json": folds,
        "folds_twice.json": dict(folds, test=folds["test"] + ["v02"]),
        "folds_unknown.json": dict(folds, valid=folds["valid"] + ["nosuch"]),
        "folds_missing.json": dict(folds, train=folds["train"] + ["vidM"]),
    }
    for name, value in broken.items():
        with open(os.path.join(out, name), "w") as f:
            json.dump(value, f)

    with open(os.path.join(out, "not_hdf5.csd"), "wb") as f:
        f.write(b"COVAREP features, honestly\n")
    write_csd(os.path.join(out, "no_data.csd"), "COVAREP", {}, metadata("audio", 2), with_data=False)
    wide = dict(per_role["text"])
    features, intervals = wide["v03"]
    wide["v03"] = (np.concatenate([features, np.ones((len(features), 1), np.float32)], axis=1), intervals)
    write_csd(os.path.join(out, "widths.csd"), ROOTS["text"], wide, metadata("text", 3))
    two = {vid: (np.concatenate([y, y], axis=1), iv) for vid, (y, iv) in per_role["labels"].items()}
    write_csd(os.path.join(out, "labels_2col.csd"), ROOTS["labels"], two, metadata("labels", 1))


if __name__ == "__main__":
    main(sys.argv[1])

"""Reading one CMU-MultimodalSDK computational sequence (.csd), checked, for tools/mosi_csd.py.

The layout, as the SDK writes and reads it (mmsdk/mmdatasdk/computational_sequence/file_ops.py,
write_CSD and read_CSD, CMU-MultiComp-Lab/CMU-MultimodalSDK at
3e27d3781fe38b660432c7edfa7912bd0d256ee1):
  * an HDF5 file whose first group under the root (the SDK reads `list(keys())[0]`) is named after
    the sequence: `glove_vectors`, `COVAREP`, `FACET_4.2`, `Opinion Segment Labels`, ...;
  * `<root>/data/<video_id>/features`: [n x d] numbers, one row per word, frame or segment;
  * `<root>/data/<video_id>/intervals`: [n x 2], each row's start and end in seconds;
  * `<root>/metadata/<key>`: a [1] string dataset holding the JSON of one value (keys such as
    "root name", "dimension names", "computational sequence description"); a value that is not
    JSON is kept as the string, as the SDK's metadata_to_dict does.
"""

import json
import os

import numpy as np

from dataset_file import InputError, file_sha256


class Sequence:
    """One .csd file: `videos` maps a video id to (features float32 [n, d] with every non-finite
    value set to 0, intervals float64 [n, 2], non-finite values per row int64 [n])."""

    def __init__(self, path, role, sha256, root, metadata, videos, width):
        self.path = path
        self.role = role
        self.sha256 = sha256
        self.root = root
        self.metadata = metadata
        self.videos = videos
        self.width = width


def h5py_module():
    try:
        import h5py
    except ImportError:
        raise RuntimeError(
            "--format csd needs h5py, which `make venv` installs into .venv (pinned in the Makefile); "
            "run the converter with .venv/bin/python, or pip install h5py"
        )
    return h5py


def read_sequence(path, role, label_columns=None):
    """Reads and checks `path`, the `role` ("text", "audio", "vision" or "labels") sequence.
    `label_columns`: the width every video must have (1 for labels), None for any one width."""
    h5py = h5py_module()
    if os.path.isdir(path):
        raise InputError(f"{path}: is a folder; expected the {role} computational sequence (.csd file)")
    sha256 = file_sha256(path)
    if not h5py.is_hdf5(path):
        raise InputError(
            f"{path}: not an HDF5 file; expected the {role} computational sequence, a CMU-MultimodalSDK .csd file"
        )
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise InputError(f"{path}: cannot open it as HDF5 ({e})")
    with f:
        roots = list(f.keys())
        if not roots:
            raise InputError(
                f"{path}: holds nothing; expected a group named after the sequence with "
                "data/<video_id>/features and intervals in it"
            )
        root = roots[0]
        group = f[root]
        data = group.get("data") if isinstance(group, h5py.Group) else None
        if not isinstance(data, h5py.Group):
            raise InputError(
                f"{path}: has no `data` group under `{root}`; expected {root}/data/<video_id>/features "
                "and intervals (the CMU-MultimodalSDK layout)"
            )
        metadata = read_metadata(h5py, group.get("metadata"))
        videos = {}
        width, first = None, None
        for vid in sorted(data.keys()):
            features, intervals, bad = read_video(h5py, path, root, vid, data[vid])
            if width is None:
                width, first = features.shape[1], vid
            elif features.shape[1] != width:
                raise InputError(
                    f"{path}: video {vid} has {features.shape[1]} features per row, but video {first} has "
                    f"{width}; expected one width across all videos of `{root}`"
                )
            videos[vid] = (features, intervals, bad)
    if width is None:
        raise InputError(f"{path}: `{root}/data` holds no video; expected data/<video_id>/features and intervals")
    if label_columns is not None and width != label_columns:
        raise InputError(
            f"{path}: the labels have {width} columns (video {first}); expected [n x {label_columns}]: one "
            "sentiment score in [-3, 3] per opinion segment"
        )
    return Sequence(path, role, sha256, root, metadata, videos, width)


def read_video(h5py, path, root, vid, group):
    where = f"{path}: {root}/data/{vid}"
    if not isinstance(group, h5py.Group) or not all(
        isinstance(group.get(k), h5py.Dataset) for k in ("features", "intervals")
    ):
        raise InputError(f"{where}: expected a group with `features` [n x d] and `intervals` [n x 2] datasets")
    raw = group["features"][()]
    try:
        # A float64 value beyond float32's range becomes inf here and is counted with the rest.
        with np.errstate(over="ignore"):
            features = np.asarray(raw).astype(np.float32)
    except (TypeError, ValueError):
        raise InputError(
            f"{where}/features holds {np.asarray(raw).dtype} values, expected numbers (is this the words "
            "sequence rather than the word vectors?)"
        )
    if features.ndim != 2 or features.shape[1] == 0:
        raise InputError(f"{where}/features has shape {list(features.shape)}, expected [n x d] with d >= 1")
    try:
        intervals = np.asarray(group["intervals"][()]).astype(np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{where}/intervals is not numeric, expected [n x 2] start and end times in seconds")
    if intervals.shape != (features.shape[0], 2):
        raise InputError(
            f"{where}/intervals has shape {list(intervals.shape)}, expected [{features.shape[0]} x 2] "
            "(one start and end per feature row)"
        )
    with np.errstate(invalid="ignore"):
        wrong = ~(np.isfinite(intervals).all(axis=1) & (intervals[:, 1] >= intervals[:, 0]))
    if wrong.any():
        row = int(wrong.argmax())
        start, end = intervals[row]
        raise InputError(f"{where}/intervals row {row} is [{start}, {end}], expected finite start <= end")
    # Counted per row so the converter can report only the values it actually used.
    nonfinite = ~np.isfinite(features)
    bad = nonfinite.sum(axis=1).astype(np.int64)
    features[nonfinite] = 0.0
    return features, intervals, bad


def read_metadata(h5py, group):
    """Each key's value: the JSON in its first string, or the string itself when it is not JSON."""
    if not isinstance(group, h5py.Group):
        return {}
    metadata = {}
    for key in sorted(group.keys()):
        item = group[key]
        if not isinstance(item, h5py.Dataset) or item.size == 0:
            continue
        value = item[()].reshape(-1)[0] if item.shape else item[()]
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        if not isinstance(value, str):
            value = str(value)
        try:
            metadata[key] = json.loads(value)
        except ValueError:
            metadata[key] = value
    return metadata

"""What every converter in tools/ shares: decsweep's dataset file (one .safetensors file, DESIGN.md
"Data"; read back by crates/data/src/format), the bad-input error and the input's SHA-256.

Imported by tools/convert_mosi.py and tools/mosi_csd.py; needs numpy only.
"""

import hashlib
import json
import os
import struct
import tempfile

import numpy as np

FORMAT = "decsweep-mosi/1"
MODALITIES = ("text", "audio", "vision")
SPLITS = ("train", "valid", "test")
# Exit status of a converter given a missing, unreadable or malformed input.
BAD_INPUT = 2

DTYPES = {np.dtype("<f4"): "F32", np.dtype("<i8"): "I64", np.dtype("uint8"): "U8"}


class InputError(Exception):
    """The input file is missing, unreadable or not in the expected schema."""


def file_sha256(path):
    """Lowercase hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file")
    except OSError as e:
        raise InputError(f"{path}: cannot read it ({e.strerror or e})")
    return digest.hexdigest()


def write_safetensors(out, tensors, meta):
    """Writes the safetensors layout by hand: u64 LE header size, JSON header padded with spaces
    to a multiple of 8, then the tensors' little-endian bytes back to back (8-byte types first so
    every tensor is aligned). Written to a temporary file in the same folder, then renamed, so a
    failure never leaves a half-written dataset. Missing folders of `out` are created."""
    order = sorted(tensors, key=lambda k: (-tensors[k].dtype.itemsize, k))
    header = {"__metadata__": {"format": FORMAT, "meta": json.dumps(meta, separators=(",", ":"))}}
    offset = 0
    for name in order:
        a = tensors[name]
        size = a.nbytes
        header[name] = {"dtype": DTYPES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)
    directory = os.path.dirname(os.path.abspath(out))
    # As `decsweep data synth --out` does: the README's `--out data/mosi.safetensors` works in a
    # fresh checkout, which has no data/ folder.
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".convert_mosi-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(blob)))
            f.write(blob)
            for name in order:
                f.write(np.ascontiguousarray(tensors[name]).tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise

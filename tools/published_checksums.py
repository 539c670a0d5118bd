"""Input files whose SHA-256 their publishers list, so a converter can say which one it was given.

Where they come from (looked up 2026-12-07):
  * MMSA (thuiar/MMSA) lists SHA-256 for its feature files in README.md, section "2. Datasets"
    (at commit a94e65d07fa1ae0d44e552390074b29b0898edfd). All five are here; the MOSEI and SIMS
    files share names with the MOSI ones or are recognised for what they are.
  * MulT (yaohungt/Multimodal-Transformer) publishes none: its README (at
    a670936824ee722c8494fd98d204977a1d663c7a) links a Dropbox archive with no checksum, and no
    release notes listing one were found. Its mosi_data.pkl / mosi_data_noalign.pkl are not
    recognised.
  * CMU-MultimodalSDK's .csd files: the SDK lists download URLs only (cmu_mosi.py), no checksums.
"""

import os

# sha256 -> (publisher, path as published)
PUBLISHED = {
    "78e0f8b5ef8ff71558e7307848fc1fa929ecb078203f565ab22b9daab2e02524": ("MMSA", "MOSI/Processed/unaligned_50.pkl"),
    "d3994fd25681f9c7ad6e9c6596a6fe9b4beb85ff7d478ba978b124139002e5f9": ("MMSA", "MOSI/Processed/aligned_50.pkl"),
    "ad8b23d50557045e7d47959ce6c5b955d8d983f2979c7d9b7b9226f6dd6fec1f": ("MMSA", "MOSEI/Processed/unaligned_50.pkl"),
    "45eccfb748a87c80ecab9bfac29582e7b1466bf6605ff29d3b338a75120bf791": ("MMSA", "MOSEI/Processed/aligned_50.pkl"),
    "c9e20c13ec0454d98bb9c1e520e490c75146bfa2dfeeea78d84de047dbdd442f": ("MMSA", "SIMS/Processed/unaligned_39.pkl"),
}


def recognise(path, sha256, published=None):
    """(kind, message): ("known", ...) when the bytes are a published file, ("mismatch", ...) when
    the file is named like one but its bytes are none of them, (None, None) otherwise."""
    table = PUBLISHED if published is None else published
    if sha256 in table:
        publisher, name = table[sha256]
        return "known", f"{path} is {publisher}'s published {name} (sha256 {sha256})"
    base = os.path.basename(path)
    alike = sorted((name, publisher, digest) for digest, (publisher, name) in table.items()
                   if os.path.basename(name) == base)
    if not alike:
        return None, None
    listed = "; ".join(f"{publisher}'s {name} has sha256 {digest}" for name, publisher, digest in alike)
    return "mismatch", (
        f"{path} is named like a published file but matches none of them: its sha256 is {sha256}; {listed}. "
        "A re-processed or partly downloaded copy converts all the same, but it is not the published data"
    )

//! Checks every tensor entry of a safetensors header against the file before anything else
//! reads it, so a header that lies (a huge shape, offsets past the end, a shape that does not
//! fit its bytes) is refused with the file *and the tensor* named. The safetensors crate refuses
//! the same files, but several of its errors (`ValidationOverflow`, `TensorInvalidInfo`,
//! `MetadataIncompleteBuffer`) do not say which tensor is wrong.
//!
//! Nothing here allocates in proportion to what the header claims: sizes are computed with
//! checked arithmetic and compared with the bytes actually in the file.

use std::path::Path;

use serde_json::{Map, Value};

use crate::error::DataError;

/// Size of the little-endian header length that starts every safetensors file.
const LEN_BYTES: usize = crate::error::HEADER_LENGTH_BYTES as usize;

/// Bits per element of every dtype the safetensors format defines.
fn dtype_bits(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" | "F8_E4M3FNUZ" | "F8_E5M2FNUZ" => 8,
        "I16" | "U16" | "F16" | "BF16" => 16,
        "I32" | "U32" | "F32" => 32,
        "I64" | "U64" | "F64" | "C64" => 64,
        _ => return None,
    })
}

/// Checks each tensor's dtype, shape and data offsets against the file's data section. A file
/// too short for the header's length is refused here, in words a user can act on; a header that
/// cannot be read at all (not UTF-8, not JSON) is left to the safetensors crate, whose error names
/// the file; there is no tensor to name.
pub(super) fn check_tensors(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    let Some(len_bytes) = bytes.get(..LEN_BYTES) else {
        return Err(DataError::TooShort { path: path.to_path_buf(), bytes: bytes.len() as u64 });
    };
    let mut len = [0u8; LEN_BYTES];
    len.copy_from_slice(len_bytes);
    let header_len = u64::from_le_bytes(len);
    let file_len = bytes.len() as u64;
    let Some(data_start) = header_len.checked_add(LEN_BYTES as u64).filter(|&end| end <= file_len) else {
        return Err(DataError::BadHeader {
            path: path.to_path_buf(),
            reason: format!("claims a {header_len}-byte header, but the file has only {file_len} bytes"),
        });
    };
    let Some(header) = std::str::from_utf8(&bytes[LEN_BYTES..data_start as usize])
        .ok()
        .and_then(|text| serde_json::from_str::<Map<String, Value>>(text).ok())
    else {
        return Ok(());
    };
    let data_len = file_len - data_start;
    let mut covered = 0u64;
    for (name, entry) in header.iter().filter(|(name, _)| *name != "__metadata__") {
        let end = check_entry(entry, data_len).map_err(|reason| DataError::BadTensorHeader {
            path: path.to_path_buf(),
            tensor: name.clone(),
            reason,
        })?;
        covered = covered.max(end);
    }
    if covered != data_len {
        return Err(DataError::BadHeader {
            path: path.to_path_buf(),
            reason: format!("the tensors cover {covered} bytes of data, but the file holds {data_len}"),
        });
    }
    Ok(())
}

/// One tensor's entry; the end of its data on success, what is wrong otherwise.
fn check_entry(entry: &Value, data_len: u64) -> Result<u64, String> {
    let dtype = entry.get("dtype").and_then(Value::as_str).ok_or("has no `dtype` string")?;
    let bits = dtype_bits(dtype).ok_or_else(|| format!("has dtype `{dtype}`, which is not a safetensors dtype"))?;
    let shape: Vec<u64> = entry
        .get("shape")
        .and_then(Value::as_array)
        .and_then(|dims| dims.iter().map(Value::as_u64).collect())
        .ok_or("has no `shape` list of non-negative integers")?;
    let offsets: Vec<u64> = entry
        .get("data_offsets")
        .and_then(Value::as_array)
        .and_then(|o| o.iter().map(Value::as_u64).collect())
        .filter(|o: &Vec<u64>| o.len() == 2)
        .ok_or("has no `data_offsets` pair of non-negative integers")?;
    let (start, end) = (offsets[0], offsets[1]);
    let bytes = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .and_then(|n| n.checked_mul(bits))
        .map(|b| b.div_ceil(8))
        .ok_or_else(|| format!("claims shape {shape:?} of {dtype}: more bytes than any file can hold"))?;
    if start > end || end > data_len {
        return Err(format!(
            "claims data bytes {start}..{end} ({bytes} bytes for shape {shape:?} of {dtype}), \
             but the file holds {data_len} bytes of data (truncated?)"
        ));
    }
    if end - start != bytes {
        return Err(format!(
            "claims shape {shape:?} of {dtype} ({bytes} bytes), but its data_offsets {start}..{end} span {} bytes",
            end - start
        ));
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: usize) -> Vec<u8> {
        let mut b = (header.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(header.as_bytes());
        b.extend(std::iter::repeat_n(0u8, data));
        b
    }

    fn check(header: &str, data: usize) -> String {
        check_tensors(Path::new("d.safetensors"), &file(header, data))
            .map_err(|e| e.to_string())
            .err()
            .unwrap_or_default()
    }

    #[test]
    fn a_consistent_header_passes() {
        let h = r#"{"__metadata__":{"format":"x"},"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b":{"dtype":"U8","shape":[4],"data_offsets":[24,28]}}"#;
        assert_eq!(check(h, 28), "");
    }

    #[test]
    fn huge_and_inconsistent_claims_name_the_tensor() {
        let huge = r#"{"text":{"dtype":"F32","shape":[1099511627776,1048576,300],"data_offsets":[0,16]}}"#;
        let e = check(huge, 16);
        assert!(e.starts_with("d.safetensors: tensor `text`") && e.contains("more bytes than any file"), "{e}");

        let past_end = r#"{"label":{"dtype":"F32","shape":[1073741824],"data_offsets":[0,4294967296]}}"#;
        let e = check(past_end, 16);
        assert!(e.contains("tensor `label`") && e.contains("holds 16 bytes of data"), "{e}");

        let mismatch = r#"{"audio":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#;
        assert!(check(mismatch, 8).contains("tensor `audio`"), "{}", check(mismatch, 8));

        let dtype = r#"{"split":{"dtype":"Q7","shape":[1],"data_offsets":[0,1]}}"#;
        assert!(check(dtype, 1).contains("`Q7`"), "{}", check(dtype, 1));

        let negative = r#"{"lengths":{"dtype":"I64","shape":[-1],"data_offsets":[0,8]}}"#;
        assert!(check(negative, 8).contains("tensor `lengths`"), "{}", check(negative, 8));
    }

    #[test]
    fn a_header_longer_than_the_file_is_refused() {
        let mut b = file("{}", 0);
        b[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        let e = check_tensors(Path::new("d.safetensors"), &b).unwrap_err().to_string();
        assert!(e.contains("claims a 18446744073709551615-byte header"), "{e}");
        let e = check(r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#, 3);
        assert!(e.contains("cover 1 bytes of data, but the file holds 3"), "{e}");
    }
}

//! NumPy `.npy` arrays and `.npz` archives (a zip of `.npy` members), and the
//! bounded zip reading that `torch.save` archives share.
//!
//! npyz parses the header dictionary; the header length and the data size
//! are checked against the bytes actually present first, because npyz would
//! allocate whatever the header length field claims.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use zip::ZipArchive;

use super::tensor::byte_len;
use super::{CheckpointError, DType, ErrorKind, Format, RawTensor};

/// Deflate cannot expand data by more than about 1032x; anything claiming
/// more is a zip bomb.
const MAX_INFLATE_RATIO: u64 = 1100;

/// Opens a zip archive (its central directory is bounded by the file).
pub(crate) fn open_zip(path: &Path) -> Result<ZipArchive<File>, CheckpointError> {
    super::check_regular(path)?;
    let file = File::open(path).map_err(|e| CheckpointError::new(path, e))?;
    ZipArchive::new(file).map_err(|e| CheckpointError::new(path, ErrorKind::Corrupt(format!("zip: {e}"))))
}

/// Reads one member completely, refusing members whose declared size is
/// out of proportion with their compressed size, and reading no more than
/// the declared size.
pub(crate) fn read_member(zip: &mut ZipArchive<File>, index: usize) -> Result<(String, Vec<u8>), ErrorKind> {
    let mut member = zip
        .by_index(index)
        .map_err(|e| ErrorKind::Corrupt(format!("zip member {index}: {e}")))?;
    let name = member
        .name()
        .map_err(|e| ErrorKind::Corrupt(format!("zip member {index}: name: {e}")))?
        .into_owned();
    let declared = member.size();
    let packed = member.compressed_size();
    if declared > packed.saturating_mul(MAX_INFLATE_RATIO).max(4096) {
        return Err(ErrorKind::TooLarge {
            what: format!("zip member {name} (compressed {packed} bytes)"),
            claimed: declared as u128,
            available: packed.saturating_mul(MAX_INFLATE_RATIO),
        });
    }
    let mut data = Vec::new();
    (&mut member)
        .take(declared)
        .read_to_end(&mut data)
        .map_err(|e| ErrorKind::Corrupt(format!("zip member {name}: {e}")))?;
    if data.len() as u64 != declared {
        return Err(ErrorKind::Truncated(format!(
            "zip member {name}: {} of {declared} bytes",
            data.len()
        )));
    }
    Ok((name, data))
}

/// The member names of an archive (names that are not valid text are skipped).
pub(crate) fn member_names(zip: &ZipArchive<File>) -> Vec<String> {
    zip.file_names().filter_map(|n| n.ok().map(|n| n.into_owned())).collect()
}

/// Tells a `torch.save` archive (it has a `data.pkl`) and a `.keras` file
/// (`config.json` and `model.weights.h5`) from an `.npz`.
pub(crate) fn zip_kind(path: &Path) -> Result<Format, CheckpointError> {
    let names = member_names(&open_zip(path)?);
    if names.iter().any(|n| n == "data.pkl" || n.ends_with("/data.pkl")) {
        Ok(Format::TorchZip)
    } else if ["config.json", "model.weights.h5"].iter().all(|m| names.iter().any(|n| n == m)) {
        Ok(Format::Keras)
    } else if names.iter().any(|n| n.ends_with(".npy")) {
        Ok(Format::Npz)
    } else {
        Err(CheckpointError::new(
            path,
            ErrorKind::UnknownFormat(
                "a zip archive with neither data.pkl (torch.save), .npy members (npz), nor config.json and model.weights.h5 (.keras)"
                    .into(),
            ),
        ))
    }
}

/// Reads every array of an `.npz`, named by its member name without `.npy`.
pub fn read_npz(path: &Path) -> Result<Vec<RawTensor>, CheckpointError> {
    read_npz_keeping(path, &|_| true)
}

/// The array names of an `.npz` (its `.npy` members), read from the zip's
/// directory alone.
pub fn array_names(path: &Path) -> Result<Vec<String>, CheckpointError> {
    Ok(member_names(&open_zip(path)?)
        .into_iter()
        .filter_map(|n| n.strip_suffix(".npy").map(str::to_string))
        .collect())
}

/// Most bytes of a member read to find its `.npy` header.
const NPY_HEADER_MAX: u64 = 1 << 16;

/// Reads the arrays of an `.npz` whose names `keep` accepts; of the
/// others only the header (name, shape, type) is inflated, so members a
/// model does not use cost nothing however large they claim to be. The
/// arrays kept must fit in the memory available.
pub fn read_npz_keeping(path: &Path, keep: &dyn Fn(&str) -> bool) -> Result<Vec<RawTensor>, CheckpointError> {
    let mut zip = open_zip(path)?;
    let mut needed = 0u64;
    for index in 0..zip.len() {
        let member = zip
            .by_index_raw(index)
            .map_err(|e| CheckpointError::new(path, ErrorKind::Corrupt(format!("zip member {index}: {e}"))))?;
        if member.name().is_ok_and(|n| n.strip_suffix(".npy").is_some_and(keep)) {
            needed = needed.saturating_add(member.size());
        }
    }
    let available = crate::hardware::available_memory();
    if needed > available {
        return Err(CheckpointError::new(
            path,
            ErrorKind::TooLarge {
                what: "the arrays the model uses".into(),
                claimed: needed as u128,
                available,
            },
        ));
    }
    let mut tensors = Vec::new();
    for index in 0..zip.len() {
        let name = zip
            .name_for_index(index)
            .and_then(|n| n.ok())
            .map(|n| n.into_owned())
            .unwrap_or_default();
        let Some(name) = name.strip_suffix(".npy") else { continue };
        let tensor = if keep(name) {
            let (_, data) = read_member(&mut zip, index).map_err(|e| CheckpointError::new(path, e))?;
            parse_npy(name, &data)
        } else {
            read_member_prefix(&mut zip, index, NPY_HEADER_MAX)
                .and_then(|head| npy_header(&head))
                .and_then(|(dtype, shape, _)| RawTensor::unread(name.to_string(), shape, dtype))
        };
        tensors.push(tensor.map_err(|e| CheckpointError::tensor(path, name, e))?);
    }
    Ok(tensors)
}

/// The first `max` bytes of a member (fewer when it is shorter).
fn read_member_prefix(zip: &mut ZipArchive<File>, index: usize, max: u64) -> Result<Vec<u8>, ErrorKind> {
    let member = zip
        .by_index(index)
        .map_err(|e| ErrorKind::Corrupt(format!("zip member {index}: {e}")))?;
    let mut data = Vec::new();
    member
        .take(max)
        .read_to_end(&mut data)
        .map_err(|e| ErrorKind::Corrupt(format!("zip member {index}: {e}")))?;
    Ok(data)
}

/// Reads a single `.npy` array, named after the file stem.
pub fn read_npy(path: &Path) -> Result<Vec<RawTensor>, CheckpointError> {
    let data = super::read_regular(path)?;
    let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let tensor = parse_npy(&name, &data).map_err(|e| CheckpointError::tensor(path, &name, e))?;
    Ok(vec![tensor])
}

fn npy_dtype(type_str: &str) -> DType {
    match type_str.trim_start_matches(['<', '>', '|', '=']) {
        "f4" => DType::F32,
        "f8" => DType::F64,
        "f2" => DType::F16,
        "i4" => DType::I32,
        "i8" => DType::I64,
        _ => DType::Other(type_str.to_string()),
    }
}

/// Parses one `.npy` image into a C-order little-endian tensor (big-endian
/// data is byte-swapped, Fortran order is transposed).
pub fn parse_npy(name: &str, bytes: &[u8]) -> Result<RawTensor, ErrorKind> {
    let (dtype, shape, header) = npy_header(bytes)?;
    let data = &bytes[header.data_start..];
    let item = dtype.size().expect("npy_header refuses unsized types");
    let want = byte_len(&shape, &dtype).ok_or_else(|| ErrorKind::Shape(format!("shape {shape:?} overflows")))?;
    if want as u64 > data.len() as u64 {
        return Err(ErrorKind::TooLarge {
            what: format!("shape {shape:?} of {}", header.type_str),
            claimed: want as u128,
            available: data.len() as u64,
        });
    }
    let mut raw = data[..want].to_vec();
    if header.type_str.starts_with('>') {
        raw.chunks_exact_mut(item).for_each(<[u8]>::reverse);
    }
    if header.fortran && shape.len() > 1 {
        raw = fortran_to_c(&raw, &shape, item);
    }
    RawTensor::new(name.to_string(), shape, dtype, raw)
}

/// What an `.npy` header says beyond the type and shape.
struct NpyHeader {
    /// Where the data starts.
    data_start: usize,
    type_str: String,
    fortran: bool,
}

/// The element type and shape of an `.npy` image from its header (the
/// header must be complete in `bytes`; the data need not be).
fn npy_header(bytes: &[u8]) -> Result<(DType, Vec<usize>, NpyHeader), ErrorKind> {
    if !bytes.starts_with(b"\x93NUMPY") {
        return Err(ErrorKind::BadMagic("not a .npy array (expected \\x93NUMPY)".into()));
    }
    let (len_bytes, start) = match bytes.get(6) {
        Some(1) => (2, 10),
        Some(2) | Some(3) => (4, 12),
        Some(v) => return Err(ErrorKind::Unsupported(format!(".npy format version {v}"))),
        None => return Err(ErrorKind::Truncated(".npy version".into())),
    };
    let field = bytes
        .get(8..8 + len_bytes)
        .ok_or_else(|| ErrorKind::Truncated(".npy header length".into()))?;
    let header_len = field.iter().rev().fold(0u64, |n, &b| (n << 8) | b as u64);
    let available = bytes.len().saturating_sub(start) as u64;
    if header_len > available {
        return Err(ErrorKind::TooLarge {
            what: ".npy header".into(),
            claimed: header_len as u128,
            available,
        });
    }
    let header = npyz::NpyHeader::from_reader(bytes).map_err(|e| ErrorKind::Corrupt(format!(".npy header: {e}")))?;
    let npyz::DType::Plain(type_str) = header.dtype() else {
        return Err(ErrorKind::DType("structured .npy arrays are not tensors".into()));
    };
    let type_str = type_str.to_string();
    let dtype = npy_dtype(&type_str);
    let shape = header
        .shape()
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| ErrorKind::Shape(format!("dimension {d} is too large"))))
        .collect::<Result<Vec<_>, _>>()?;
    if dtype.size().is_none() {
        return Err(ErrorKind::DType(format!("element type {type_str} is not supported")));
    }
    let fortran = header.order() == npyz::Order::Fortran;
    Ok((
        dtype,
        shape,
        NpyHeader {
            data_start: start + header_len as usize,
            type_str,
            fortran,
        },
    ))
}

/// Reorders column-major elements of `item` bytes into row-major order.
fn fortran_to_c(src: &[u8], shape: &[usize], item: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len());
    // Fortran strides, in elements.
    let mut strides = vec![1usize; shape.len()];
    for k in 1..shape.len() {
        strides[k] = strides[k - 1] * shape[k - 1];
    }
    let mut index = vec![0usize; shape.len()];
    for _ in 0..src.len() / item {
        let offset: usize = index.iter().zip(&strides).map(|(i, s)| i * s).sum();
        out.extend_from_slice(&src[offset * item..(offset + 1) * item]);
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            if index[axis] < shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(header: &str, data: &[u8]) -> Vec<u8> {
        let mut h = header.to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((h.len() as u16).to_le_bytes());
        out.extend(h.as_bytes());
        out.extend(data);
        out
    }

    #[test]
    fn fortran_and_big_endian_arrays_become_c_order_little_endian() {
        let data: Vec<u8> = [1.0f32, 4.0, 2.0, 5.0, 3.0, 6.0].iter().flat_map(|v| v.to_be_bytes()).collect();
        let t = parse_npy("x", &npy("{'descr': '>f4', 'fortran_order': True, 'shape': (2, 3), }", &data)).unwrap();
        assert_eq!(t.shape, vec![2, 3]);
        assert_eq!(t.to_f32().unwrap().0, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn claimed_sizes_beyond_the_bytes_are_refused() {
        let e = parse_npy(
            "x",
            &npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }", &[0; 8]),
        )
        .unwrap_err();
        assert!(matches!(e, ErrorKind::TooLarge { .. }), "{e}");
        let mut bad = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", &[0; 8]);
        bad[6] = 2;
        bad[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(parse_npy("x", &bad), Err(ErrorKind::TooLarge { .. })));
    }
}

//! The HDF5 that Keras writes, read with `hdf5-reader` from bytes in
//! memory: string attributes (variable-length or fixed, scalar or 1-D)
//! and float datasets as [`RawTensor`]s.
//!
//! `hdf5-reader` refuses what hostile files do to a reader (continuation
//! chunks that repeat or cycle, datatypes nested deeper than 32, headers
//! over a byte limit); on top of that every read is limited to the file's
//! length (a contiguous, unfiltered dataset cannot hold more), and a
//! dataset must not be chunked (Keras and h5py write weights in one run).

use hdf5_reader::{Datatype, Hdf5File, OpenOptions};

use crate::checkpoint::tensor::byte_len;
use crate::checkpoint::{DType, ErrorKind, RawTensor};

/// An HDF5 file held in memory.
pub struct H5 {
    file: Hdf5File,
    len: usize,
}

fn err(what: &str, e: hdf5_reader::error::Error) -> ErrorKind {
    ErrorKind::Corrupt(format!("HDF5 {what}: {e}"))
}

impl H5 {
    /// Opens the HDF5 file in `bytes`.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<H5, ErrorKind> {
        if !bytes.starts_with(b"\x89HDF\r\n\x1a\n") {
            return Err(ErrorKind::BadMagic("not an HDF5 file (no \\x89HDF signature)".into()));
        }
        let len = bytes.len();
        // No read may allocate more than the file holds; no chunk cache.
        let options = OpenOptions::default()
            .with_max_read_bytes(len)
            .with_max_chunk_bytes(len)
            .with_chunk_cache_bytes(0)
            .with_max_object_header_bytes(len);
        let file = Hdf5File::from_vec_with_options(bytes, options).map_err(|e| err("file", e))?;
        Ok(H5 { file, len })
    }

    /// Whether `path` is a group.
    pub fn has_group(&self, path: &str) -> bool {
        self.file.group(path).is_ok()
    }

    /// The names of the datasets in `path`.
    pub fn datasets(&self, path: &str) -> Result<Vec<String>, ErrorKind> {
        self.file
            .group(path)
            .and_then(|g| g.member_names())
            .map(|(_, datasets)| datasets)
            .map_err(|e| err(&format!("group '{path}'"), e))
    }

    /// The string or strings of attribute `attr` of group `path` (`None`
    /// when it is absent). An empty numeric array is no strings (Keras
    /// writes one for a layer without weights).
    pub fn strings(&self, path: &str, attr: &str) -> Result<Option<Vec<String>>, ErrorKind> {
        let group = if path == "/" {
            self.file.root_group()
        } else {
            self.file.group(path)
        };
        let attrs = group
            .and_then(|g| g.attributes())
            .map_err(|e| err(&format!("attributes of '{path}'"), e))?;
        let Some(a) = attrs.into_iter().find(|a| a.name == attr) else {
            return Ok(None);
        };
        if matches!(a.datatype, Datatype::FloatingPoint { .. }) && a.shape.iter().product::<u64>() == 0 && !a.shape.is_empty() {
            return Ok(Some(Vec::new()));
        }
        a.read_strings()
            .map(Some)
            .map_err(|e| ErrorKind::Corrupt(format!("attribute '{attr}' of '{path}' is not text: {e}")))
    }

    /// The dataset at `path` as a tensor called `name`.
    pub fn tensor(&self, path: &str, name: &str) -> Result<RawTensor, ErrorKind> {
        let ds = self.file.dataset(path).map_err(|e| err(&format!("dataset '{path}'"), e))?;
        let shape: Vec<usize> = ds
            .shape()
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| ErrorKind::Shape(format!("dimension {d}"))))
            .collect::<Result<_, _>>()?;
        let dtype = match ds.dtype() {
            Datatype::FloatingPoint { size: 4, .. } => DType::F32,
            Datatype::FloatingPoint { size: 8, .. } => DType::F64,
            other => return Err(ErrorKind::DType(format!("element type {other:?} cannot be a weight"))),
        };
        let want = byte_len(&shape, &dtype).ok_or_else(|| ErrorKind::Shape(format!("shape {shape:?} is too large")))?;
        if want > self.len {
            return Err(ErrorKind::TooLarge {
                what: format!("dataset '{path}' of shape {shape:?}"),
                claimed: want as u128,
                available: self.len as u64,
            });
        }
        if ds.chunks().is_some() {
            return Err(ErrorKind::Unsupported(format!(
                "dataset '{path}' is chunked (Keras writes weights in one contiguous run)"
            )));
        }
        let data: Vec<u8> = match dtype {
            DType::F32 => ds.read_array::<f32>().map(|a| a.iter().flat_map(|x| x.to_le_bytes()).collect()),
            _ => ds.read_array::<f64>().map(|a| a.iter().flat_map(|x| x.to_le_bytes()).collect()),
        }
        .map_err(|e| err(&format!("data of '{path}'"), e))?;
        RawTensor::new(name.to_string(), shape, dtype, data)
    }
}

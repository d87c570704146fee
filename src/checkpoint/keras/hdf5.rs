//! The HDF5 that Keras writes, read with `hdf5-pure` from bytes in memory:
//! string attributes (variable-length or fixed, scalar or 1-D) and float
//! datasets as [`RawTensor`]s. A dataset's data must lie in the file, in
//! one run (contiguous or compact, unfiltered, as Keras and h5py write
//! it): its shape times its element size is checked against that run and
//! the file's length before anything is read.

use hdf5_pure::{AttrValue, DType as H5Type, File, Layout};

use crate::checkpoint::tensor::numel;
use crate::checkpoint::{DType, ErrorKind, RawTensor};

/// An HDF5 file held in memory.
pub struct H5 {
    file: File,
    len: u64,
}

fn err(what: &str, e: hdf5_pure::Error) -> ErrorKind {
    ErrorKind::Corrupt(format!("HDF5 {what}: {e}"))
}

impl H5 {
    /// Opens the HDF5 file in `bytes`.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<H5, ErrorKind> {
        if !hdf5_pure::is_hdf5_bytes(&bytes) {
            return Err(ErrorKind::BadMagic("not an HDF5 file (no \\x89HDF signature)".into()));
        }
        let len = bytes.len() as u64;
        let file = File::from_bytes(bytes).map_err(|e| err("file", e))?;
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
            .and_then(|g| g.datasets())
            .map_err(|e| err(&format!("group '{path}'"), e))
    }

    /// The string or strings of attribute `attr` of group `path` (`None`
    /// when it is absent). An empty numeric array is no strings (Keras
    /// writes one for a layer without weights).
    pub fn strings(&self, path: &str, attr: &str) -> Result<Option<Vec<String>>, ErrorKind> {
        let group = if path == "/" { Ok(self.file.root()) } else { self.file.group(path) };
        let attrs = group
            .and_then(|g| g.attrs())
            .map_err(|e| err(&format!("attributes of '{path}'"), e))?;
        let Some(value) = attrs.get(attr) else { return Ok(None) };
        let strings = match value {
            AttrValue::String(s)
            | AttrValue::AsciiString(s)
            | AttrValue::VarLenString(s)
            | AttrValue::VarLenAsciiString(s)
            | AttrValue::StringSized { value: s, .. }
            | AttrValue::AsciiStringSized { value: s, .. } => vec![s.clone()],
            AttrValue::StringArray(v)
            | AttrValue::AsciiStringArray(v)
            | AttrValue::VarLenStringArray(v)
            | AttrValue::VarLenAsciiStringArray(v)
            | AttrValue::VarLenAsciiCharArray(v)
            | AttrValue::StringArraySized { values: v, .. }
            | AttrValue::AsciiStringArraySized { values: v, .. } => v.clone(),
            AttrValue::F64Array(v) if v.is_empty() => Vec::new(),
            AttrValue::F32Array(v) if v.is_empty() => Vec::new(),
            other => {
                return Err(ErrorKind::Corrupt(format!("attribute '{attr}' of '{path}' is {other:?}, not text")));
            }
        };
        Ok(Some(strings))
    }

    /// The dataset at `path` as a tensor called `name`.
    pub fn tensor(&self, path: &str, name: &str) -> Result<RawTensor, ErrorKind> {
        let ds = self.file.dataset(path).map_err(|e| err(&format!("dataset '{path}'"), e))?;
        let shape: Vec<usize> = ds
            .shape()
            .map_err(|e| err(&format!("shape of '{path}'"), e))?
            .into_iter()
            .map(|d| usize::try_from(d).map_err(|_| ErrorKind::Shape(format!("dimension {d}"))))
            .collect::<Result<_, _>>()?;
        let dtype = match ds.dtype().map_err(|e| err(&format!("type of '{path}'"), e))? {
            H5Type::F32 => DType::F32,
            H5Type::F64 => DType::F64,
            other => return Err(ErrorKind::DType(format!("element type {other} cannot be a weight"))),
        };
        let want = numel(&shape)
            .and_then(|n| n.checked_mul(dtype.size().expect("f32 or f64")))
            .ok_or_else(|| ErrorKind::Shape(format!("shape {shape:?} is too large")))? as u64;
        let stored = match ds.layout().map_err(|e| err(&format!("layout of '{path}'"), e))? {
            Layout::Compact { size } => Some(size),
            Layout::Contiguous { address: Some(a), size } if a.checked_add(size).is_some_and(|end| end <= self.len) => Some(size),
            Layout::Contiguous { address: None, .. } => {
                return Err(ErrorKind::Missing(format!("dataset '{path}' was never written")));
            }
            Layout::Contiguous { size, .. } => {
                return Err(ErrorKind::TooLarge {
                    what: format!("dataset '{path}'"),
                    claimed: size as u128,
                    available: self.len,
                });
            }
            _ => None,
        };
        if stored.is_none() || !ds.filters().is_empty() {
            return Err(ErrorKind::Unsupported(format!(
                "dataset '{path}' is chunked or filtered (Keras writes weights in one contiguous run)"
            )));
        }
        if stored != Some(want) {
            return Err(ErrorKind::Shape(format!(
                "shape {shape:?} of {} needs {want} bytes, the dataset stores {}",
                dtype.name(),
                stored.unwrap_or(0)
            )));
        }
        let data: Vec<u8> = match dtype {
            DType::F32 => ds.read_f32().map(|v| v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            _ => ds.read_f64().map(|v| v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        }
        .map_err(|e| err(&format!("data of '{path}'"), e))?;
        RawTensor::new(name.to_string(), shape, dtype, data)
    }
}

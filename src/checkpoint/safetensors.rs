//! safetensors files, through the `safetensors` crate (which bounds the
//! header at 100 MB and checks every offset against the buffer).

use std::path::Path;

use ::safetensors::{Dtype, SafeTensors};

use super::{CheckpointError, DType, ErrorKind, RawTensor};

fn dtype(d: Dtype) -> DType {
    match d {
        Dtype::F32 => DType::F32,
        Dtype::F64 => DType::F64,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::I32 => DType::I32,
        Dtype::I64 => DType::I64,
        other => DType::Other(format!("{other:?}").to_lowercase()),
    }
}

/// Reads every tensor of a safetensors file, in storage order.
pub fn read(path: &Path) -> Result<Vec<RawTensor>, CheckpointError> {
    let bytes = super::read_regular(path)?;
    parse(&bytes).map_err(|e| CheckpointError::new(path, e))
}

/// Parses a whole safetensors buffer.
pub fn parse(bytes: &[u8]) -> Result<Vec<RawTensor>, ErrorKind> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| ErrorKind::Corrupt(format!("safetensors: {e}")))?;
    let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(|e| ErrorKind::Corrupt(format!("safetensors: {e}")))?;
    metadata
        .offset_keys()
        .into_iter()
        .map(|name| {
            let view = st.tensor(&name).map_err(|e| ErrorKind::Corrupt(format!("safetensors: {e}")))?;
            let dt = dtype(view.dtype());
            // Sub-byte and unknown types have no per-element size here: keep
            // their bytes as they are so that only a layout that needs them fails.
            let shape = view.shape().to_vec();
            if dt.size().is_none() {
                return Ok(RawTensor {
                    name,
                    shape,
                    dtype: dt,
                    data: Vec::new(),
                    read: true,
                });
            }
            RawTensor::new(name, shape, dt, view.data().to_vec())
        })
        .collect()
}

//! Tensors as a checkpoint file stores them: a name, a shape, an element
//! type and little-endian bytes in C order. Every format reader produces
//! these; only [`RawTensor::to_f32`] turns them into numbers.

use super::ErrorKind;

/// Element types the readers recognise. Floating-point types convert to f32;
/// integers are read (test inputs, step counters) but never become weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DType {
    F32,
    F64,
    F16,
    BF16,
    I32,
    I64,
    /// Anything else, by the name the file gives it (refused as a weight).
    Other(String),
}

impl DType {
    /// Bytes per element, `None` for types whose size is unknown.
    pub fn size(&self) -> Option<usize> {
        match self {
            DType::F32 | DType::I32 => Some(4),
            DType::F64 | DType::I64 => Some(8),
            DType::F16 | DType::BF16 => Some(2),
            DType::Other(_) => None,
        }
    }
    /// Short lower-case name (`f32`, `bf16`, ...).
    pub fn name(&self) -> &str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::Other(s) => s,
        }
    }
}

/// One tensor read from a file, not yet interpreted.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTensor {
    /// The name in the file.
    pub name: String,
    /// Dimensions, slowest first (empty for a scalar).
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: DType,
    /// `numel * dtype.size()` little-endian bytes, C order (empty when the
    /// tensor was not read).
    pub data: Vec<u8>,
    /// Whether `data` was read: a reader skips the tensors the layout
    /// cannot use (optimizer slots, counters), keeping only their name,
    /// shape and type.
    pub read: bool,
}

/// Number of elements of `shape`, or `None` when the product overflows.
pub fn numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// Bytes that `shape` of `dtype` takes, checked for overflow; `None` when
/// the size is unknown or does not fit in a `usize`.
pub fn byte_len(shape: &[usize], dtype: &DType) -> Option<usize> {
    numel(shape)?.checked_mul(dtype.size()?)
}

impl RawTensor {
    /// Builds a tensor after checking that `data` has exactly the bytes the
    /// shape and type call for.
    pub fn new(name: String, shape: Vec<usize>, dtype: DType, data: Vec<u8>) -> Result<Self, ErrorKind> {
        let want = byte_len(&shape, &dtype).ok_or_else(|| ErrorKind::Shape(format!("shape {shape:?} of {} is too large", dtype.name())))?;
        if want != data.len() {
            return Err(ErrorKind::Shape(format!(
                "shape {shape:?} of {} needs {want} bytes, the file holds {}",
                dtype.name(),
                data.len()
            )));
        }
        Ok(RawTensor {
            name,
            shape,
            dtype,
            data,
            read: true,
        })
    }

    /// A tensor whose data was not read (see [`RawTensor::read`]).
    pub fn unread(name: String, shape: Vec<usize>, dtype: DType) -> Result<Self, ErrorKind> {
        byte_len(&shape, &dtype).ok_or_else(|| ErrorKind::Shape(format!("shape {shape:?} of {} is too large", dtype.name())))?;
        Ok(RawTensor {
            name,
            shape,
            dtype,
            data: Vec::new(),
            read: false,
        })
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        numel(&self.shape).expect("checked in new")
    }

    /// The values as f32. f16, bf16 and f64 are converted and the note says
    /// so (f64 values outside the f32 range become infinite and are refused
    /// later as non-finite weights); integer and unknown types are refused.
    pub fn to_f32(&self) -> Result<(Vec<f32>, Option<String>), ErrorKind> {
        if !self.read {
            return Err(ErrorKind::Unsupported(
                "not read: its name matches none the layout uses (pass --layout if the detected one is wrong)".into(),
            ));
        }
        let le2 = |c: &[u8]| u16::from_le_bytes([c[0], c[1]]);
        let values: Vec<f32> = match self.dtype {
            DType::F32 => self
                .data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            DType::F64 => self
                .data
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
                .collect(),
            DType::F16 => self.data.chunks_exact(2).map(|c| half::f16::from_bits(le2(c)).to_f32()).collect(),
            DType::BF16 => self.data.chunks_exact(2).map(|c| half::bf16::from_bits(le2(c)).to_f32()).collect(),
            _ => {
                return Err(ErrorKind::DType(format!(
                    "element type {} is not floating point (weights must be f32, f64, f16 or bf16)",
                    self.dtype.name()
                )));
            }
        };
        let note = (self.dtype != DType::F32).then(|| format!("{}: converted {} to f32", self.name, self.dtype.name()));
        Ok((values, note))
    }

    /// The values as i64 (integer tensors only; test inputs and counters).
    pub fn to_i64(&self) -> Result<Vec<i64>, ErrorKind> {
        match self.dtype {
            DType::I64 => Ok(self
                .data
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect()),
            DType::I32 => Ok(self
                .data
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect()),
            _ => Err(ErrorKind::DType(format!(
                "element type {} is not an integer type",
                self.dtype.name()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked_and_types_convert() {
        assert!(RawTensor::new("t".into(), vec![2, 3], DType::F32, vec![0; 23]).is_err());
        assert!(RawTensor::new("t".into(), vec![usize::MAX, 3], DType::F32, vec![]).is_err());
        let bf = RawTensor::new(
            "b".into(),
            vec![2],
            DType::BF16,
            [0x3f80u16, 0xc000].iter().flat_map(|v| v.to_le_bytes()).collect(),
        )
        .unwrap();
        let (v, note) = bf.to_f32().unwrap();
        assert_eq!(v, vec![1.0, -2.0]);
        assert_eq!(note.as_deref(), Some("b: converted bf16 to f32"));
        let h = RawTensor::new(
            "h".into(),
            vec![1],
            DType::F16,
            half::f16::from_f32(0.5).to_bits().to_le_bytes().to_vec(),
        )
        .unwrap();
        assert_eq!(h.to_f32().unwrap().0, vec![0.5]);
        let i = RawTensor::new("i".into(), vec![1], DType::I64, 7i64.to_le_bytes().to_vec()).unwrap();
        assert!(matches!(i.to_f32(), Err(ErrorKind::DType(_))));
        assert_eq!(i.to_i64().unwrap(), vec![7]);
    }
}

//! ONNX `TensorProto`s as issbench's [`RawTensor`]s, and the few constant
//! values the graph walk reads (shapes, axes, zero states). A tensor's
//! dimensions are a claim: the bytes it holds are counted first, and
//! nothing is allocated for data that is not there.

use super::proto::{TensorProto, data_type};
use crate::checkpoint::tensor::{byte_len, numel};
use crate::checkpoint::{DType, ErrorKind, RawTensor};

/// The element type issbench gives an ONNX data type.
fn dtype(code: i32) -> DType {
    match code {
        data_type::FLOAT => DType::F32,
        data_type::DOUBLE => DType::F64,
        data_type::FLOAT16 => DType::F16,
        data_type::BFLOAT16 => DType::BF16,
        data_type::INT32 => DType::I32,
        data_type::INT64 => DType::I64,
        other => DType::Other(format!("onnx-type-{other}")),
    }
}

/// Refuses a tensor whose data lives in another file.
fn check_internal(t: &TensorProto) -> Result<(), ErrorKind> {
    if t.data_location == 1 || !t.external_data.is_empty() {
        let file = t.external_data.iter().find(|e| e.key == "location").map(|e| e.value.as_str());
        return Err(ErrorKind::Unsupported(format!(
            "stored as external data{}; issbench reads self-contained .onnx files (save with onnx.save_model(model, path, save_as_external_data=False))",
            file.map(|f| format!(" (in '{f}')")).unwrap_or_default()
        )));
    }
    Ok(())
}

/// The dimensions, which must not be negative.
fn shape(t: &TensorProto) -> Result<Vec<usize>, ErrorKind> {
    t.dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| ErrorKind::Shape(format!("dimension {d} in {:?}", t.dims))))
        .collect()
}

/// The tensor as stored, renamed `name` (its data checked against its shape).
pub fn raw(t: &TensorProto, name: &str) -> Result<RawTensor, ErrorKind> {
    check_internal(t)?;
    let shape = shape(t)?;
    let dtype = dtype(t.data_type);
    let n = numel(&shape).ok_or_else(|| ErrorKind::Shape(format!("shape {shape:?} is too large")))?;
    let want = byte_len(&shape, &dtype).ok_or_else(|| match &dtype {
        DType::Other(d) => ErrorKind::DType(format!("element type {d} cannot be a weight")),
        _ => ErrorKind::Shape(format!("shape {shape:?} is too large")),
    })?;
    if !t.raw_data.is_empty() {
        if t.raw_data.len() != want {
            return Err(ErrorKind::Shape(format!(
                "shape {shape:?} of {} needs {want} bytes, raw_data holds {}",
                dtype.name(),
                t.raw_data.len()
            )));
        }
        return RawTensor::new(name.to_string(), shape, dtype, t.raw_data.to_vec());
    }
    // Typed fields: count the values present before allocating their bytes.
    let present = match dtype {
        DType::F32 => t.float_data.len(),
        DType::F64 => t.double_data.len(),
        DType::I64 => t.int64_data.len(),
        DType::I32 | DType::F16 | DType::BF16 => t.int32_data.len(),
        DType::Other(_) => unreachable!("refused above"),
    };
    if present != n {
        return Err(ErrorKind::Shape(format!(
            "shape {shape:?} needs {n} values, the tensor holds {present}"
        )));
    }
    let data: Vec<u8> = match dtype {
        DType::F32 => t.float_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DType::F64 => t.double_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DType::I64 => t.int64_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DType::I32 => t.int32_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        // float16 and bfloat16 travel as their bits in int32_data.
        _ => t.int32_data.iter().flat_map(|&v| (v as u16).to_le_bytes()).collect(),
    };
    RawTensor::new(name.to_string(), shape, dtype, data)
}

/// The tensor's name, shape and type only (an initializer nothing uses).
pub fn unread(t: &TensorProto) -> RawTensor {
    RawTensor {
        name: t.name.clone(),
        shape: t.dims.iter().map(|&d| d.max(0) as usize).collect(),
        dtype: dtype(t.data_type),
        data: Vec::new(),
        read: false,
    }
}

/// The values of an integer tensor (a shape, axes, a permutation).
pub fn ints(t: &TensorProto) -> Result<Vec<i64>, ErrorKind> {
    let raw = raw(t, &t.name)?;
    raw.to_i64()
}

/// Whether a float tensor holds only zeros (an initial state, peepholes).
pub fn all_zero(t: &TensorProto) -> Result<bool, ErrorKind> {
    let raw = raw(t, &t.name)?;
    Ok(raw.to_f32()?.0.iter().all(|&v| v == 0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(dims: &[i64], code: i32) -> TensorProto {
        TensorProto {
            dims: dims.to_vec(),
            data_type: code,
            ..TensorProto::default()
        }
    }

    #[test]
    fn raw_and_typed_data_must_fill_the_shape() {
        let mut t = tensor(&[2, 2], data_type::FLOAT);
        t.float_data = vec![1.0, 2.0, 3.0, 4.0];
        assert_eq!(raw(&t, "w").unwrap().to_f32().unwrap().0, vec![1.0, 2.0, 3.0, 4.0]);
        t.float_data.pop();
        assert!(matches!(raw(&t, "w"), Err(ErrorKind::Shape(_))));
        // A huge claimed shape with 8 bytes present: refused before any allocation.
        let mut big = tensor(&[1 << 40, 1 << 20], data_type::FLOAT);
        big.raw_data = vec![0u8; 8].into();
        assert!(matches!(raw(&big, "w"), Err(ErrorKind::Shape(_))));
        let mut neg = tensor(&[-1, 2], data_type::FLOAT);
        neg.raw_data = vec![0u8; 8].into();
        assert!(matches!(raw(&neg, "w"), Err(ErrorKind::Shape(_))));
    }

    #[test]
    fn half_types_travel_as_bits_and_external_data_is_refused() {
        let mut h = tensor(&[1], data_type::FLOAT16);
        h.int32_data = vec![half::f16::from_f32(0.5).to_bits() as i32];
        assert_eq!(raw(&h, "h").unwrap().to_f32().unwrap().0, vec![0.5]);
        let mut ext = tensor(&[1], data_type::FLOAT);
        ext.data_location = 1;
        assert!(matches!(raw(&ext, "e"), Err(ErrorKind::Unsupported(m)) if m.contains("external data")));
        let mut shape = tensor(&[3], data_type::INT64);
        shape.int64_data = vec![0, 0, -1];
        assert_eq!(ints(&shape).unwrap(), vec![0, 0, -1]);
        let mut z = tensor(&[2], data_type::FLOAT);
        z.float_data = vec![0.0, -0.0];
        assert!(all_zero(&z).unwrap());
    }
}

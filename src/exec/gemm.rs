//! One weight matrix times a batch: the executor behind sparse-GEMM sweep
//! points (DeepBench's sparse problems), so they are timed, verified and
//! written exactly like the LSTM points.

use super::{Backend, ExecError, Executor, PreparedWeight};
use crate::kernels::{MatMut, MatRef};
use crate::model::{Inputs, ModelError};

/// `Y = X · Wᵀ` for a fixed `W` of `[rows, cols]` on one backend: `packed`
/// (dense, zeros included) or `csr` (nonzeros only).
pub struct GemmExecutor {
    mode: String,
    backend: Backend,
    rows: usize,
    cols: usize,
    weight: PreparedWeight,
    out: Vec<f32>,
    prepare_ns: u64,
}

impl GemmExecutor {
    /// Prepares the row-major `w` (`rows x cols`) for `backend`; `mode` is
    /// the name reported in results.
    pub fn prepare(w: &[f32], rows: usize, cols: usize, backend: Backend, mode: &str) -> GemmExecutor {
        let started = std::time::Instant::now();
        let weight = PreparedWeight::new(backend, w, rows, cols);
        GemmExecutor {
            mode: mode.to_string(),
            backend,
            rows,
            cols,
            weight,
            out: Vec::new(),
            prepare_ns: started.elapsed().as_nanos() as u64,
        }
    }
}

impl Executor for GemmExecutor {
    fn mode(&self) -> &str {
        &self.mode
    }
    fn backend(&self) -> String {
        self.backend.describe()
    }
    fn prepare_ns(&self) -> u64 {
        self.prepare_ns
    }
    /// Takes features of width `cols`: the `seq * batch` rows of `X` (a
    /// GEMM problem's `n` is its batch at seq 1). Returns `Y`, `[rows of X, rows]`.
    fn run(&mut self, inputs: &Inputs) -> Result<&[f32], ExecError> {
        let Inputs::Features { width, values, .. } = inputs else {
            return Err(ModelError::Inputs("a GEMM problem takes feature inputs, not tokens".into()).into());
        };
        let n = inputs.seq() * inputs.batch();
        if *width != self.cols || values.len() != n * self.cols {
            return Err(ModelError::Inputs(format!(
                "{} values of width {width} for a {}-column matrix",
                values.len(),
                self.cols
            ))
            .into());
        }
        // `Y` from a cache-line boundary, as an application would allocate
        // a large output (the kernels may then write it around the caches).
        if self.out.len() < n * self.rows + 16 {
            self.out.resize(n * self.rows + 16, 0.0);
        }
        let skip = self.out.as_ptr().align_offset(64).min(16);
        let out = &mut self.out[skip..skip + n * self.rows];
        self.weight.apply(
            MatRef::row_major(values, n, self.cols),
            &mut MatMut::row_major(out, n, self.rows),
            false,
        );
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_and_csr_compute_the_same_product() {
        let (rows, cols, n) = (37, 29, 21);
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| if i % 7 == 0 { (i % 13) as f32 - 6.0 } else { 0.0 })
            .collect();
        let x: Vec<f32> = (0..n * cols).map(|i| (i % 11) as f32 * 0.1 - 0.5).collect();
        let inputs = Inputs::Features {
            seq: 1,
            batch: n,
            width: cols,
            values: x.clone(),
        };
        let want: Vec<f64> = (0..n)
            .flat_map(|b| {
                let (w, x) = (&w, &x);
                (0..rows).map(move |r| (0..cols).map(|c| w[r * cols + c] as f64 * x[b * cols + c] as f64).sum::<f64>())
            })
            .collect();
        for backend in [Backend::Packed, Backend::Csr] {
            let mut exec = GemmExecutor::prepare(&w, rows, cols, backend, "x");
            let got = exec.run(&inputs).unwrap();
            for (g, e) in got.iter().zip(&want) {
                assert!((*g as f64 - e).abs() < 1e-4, "{backend:?}: {g} vs {e}");
            }
        }
        let mut exec = GemmExecutor::prepare(&w, rows, cols, Backend::Csr, "x");
        let tokens = Inputs::Tokens {
            seq: 1,
            batch: 1,
            ids: vec![0],
        };
        assert!(exec.run(&tokens).is_err());
    }
}

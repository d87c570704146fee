//! A sparse GEMM problem's matrix and its prepared executors, built once for
//! all of its points, its CSR product verified once against the dense one.

use std::collections::HashMap;

use super::point::GemmShape;
use crate::deepbench::SparseProblem;
use crate::exec::{Backend, Executor, GemmExecutor};
use crate::iss::{DEFAULT_TOLERANCE, VERIFY_BATCH, compare_outputs, within_tolerance};
use crate::mode::Mode;
use crate::model::Inputs;
use crate::report::Status;

pub(crate) struct GemmInstance {
    pub shape: GemmShape,
    w: Vec<f32>,
    /// Nonzeros of `W`.
    pub nonzeros: usize,
    /// Max relative error of csr against the dense kernel, once measured.
    verified: Option<f64>,
    /// Prepared executors by backend; absent while lent out.
    executors: HashMap<Backend, GemmExecutor>,
}

impl GemmInstance {
    /// DeepBench's matrix of `shape` (seed 7).
    pub fn build(shape: GemmShape) -> GemmInstance {
        let problem = SparseProblem {
            m: shape.m,
            k: shape.k,
            n: 1,
            sparsity: shape.sparsity,
        };
        let w = problem.weights(7);
        let nonzeros = w.iter().filter(|&&v| v != 0.0).count();
        GemmInstance {
            shape,
            w,
            nonzeros,
            verified: None,
            executors: HashMap::new(),
        }
    }

    /// The executor of `backend` (from the cache, or prepared now); `mode`
    /// names it in rows.
    pub fn executor(&mut self, mode: Mode, backend: Backend) -> GemmExecutor {
        let (m, k) = (self.shape.m, self.shape.k);
        self.executors
            .remove(&backend)
            .unwrap_or_else(|| GemmExecutor::prepare(&self.w, m, k, backend, mode.name()))
    }

    /// Returns an executor lent by [`GemmInstance::executor`].
    pub fn give_back(&mut self, backend: Backend, exec: GemmExecutor) {
        self.executors.insert(backend, exec);
    }

    /// csr against the dense kernel on the same matrix, once; `None` for dense.
    pub fn verify(&mut self, mode: Mode, dense_backend: Backend) -> Result<Option<f64>, Status> {
        if mode == Mode::Dense {
            return Ok(None);
        }
        if self.verified.is_none() {
            let inputs = Inputs::random_for(None, self.shape.k, 1, VERIFY_BATCH, 7);
            // Both executors go back to the cache for the points that time them.
            let (mut dense, mut csr) = (self.executor(Mode::Dense, dense_backend), self.executor(Mode::Csr, Backend::Csr));
            let outputs = dense.run(&inputs).map(|want| want.to_vec()).and_then(|want| {
                let got = csr.run(&inputs)?;
                Ok(compare_outputs(&want, got))
            });
            self.give_back(dense_backend, dense);
            self.give_back(Backend::Csr, csr);
            let eq = outputs.map_err(Status::failed_with)?;
            let eq = within_tolerance(eq, DEFAULT_TOLERANCE).map_err(|e| Status::not_equivalent(format!("csr: {e}")))?;
            self.verified = Some(eq.max_rel);
        }
        Ok(self.verified)
    }
}

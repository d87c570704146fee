//! A sparse GEMM problem's matrix and its prepared executors, built once for
//! all of its points: its CSR product verified once against the dense one,
//! and per block shape its block-pruned twin (the same nonzero count) whose
//! BSR product is verified against the dense kernel on the same weights.

use std::collections::HashMap;

use super::point::GemmShape;
use crate::deepbench::SparseProblem;
use crate::exec::{Backend, Executor, GemmExecutor};
use crate::iss::{DEFAULT_TOLERANCE, VERIFY_BATCH, compare_outputs, within_tolerance};
use crate::mode::{BlockShape, Mode};
use crate::model::Inputs;
use crate::prune::prune_blocks;
use crate::report::Status;

pub(crate) struct GemmInstance {
    pub shape: GemmShape,
    w: Vec<f32>,
    /// Nonzeros of `W`.
    pub nonzeros: usize,
    /// Max relative error of csr against the dense kernel, once measured.
    verified: Option<f64>,
    /// Per block shape: `W` block-pruned to its nonzero count, and bsr's
    /// max relative error against the dense kernel on it, once measured.
    blocked: HashMap<BlockShape, (Vec<f32>, Option<f64>)>,
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
            blocked: HashMap::new(),
            executors: HashMap::new(),
        }
    }

    /// `W` block-pruned to its nonzero count in `block`s, made on first use.
    fn blocked(&mut self, block: BlockShape) -> Result<&mut (Vec<f32>, Option<f64>), Status> {
        if !self.blocked.contains_key(&block) {
            let (m, k) = (self.shape.m, self.shape.k);
            let mut w = self.w.clone();
            prune_blocks(&mut w, m, k, block.pair(), self.nonzeros).map_err(Status::failed_with)?;
            self.blocked.insert(block, (w, None));
        }
        Ok(self.blocked.get_mut(&block).expect("just made"))
    }

    /// The executor of `backend` (from the cache, or prepared now); `mode`
    /// names it in rows.
    pub fn executor(&mut self, mode: Mode, backend: Backend) -> Result<GemmExecutor, Status> {
        let (m, k) = (self.shape.m, self.shape.k);
        if let Some(exec) = self.executors.remove(&backend) {
            return Ok(exec);
        }
        let w = match backend {
            Backend::Bsr(block) => &self.blocked(block)?.0,
            _ => &self.w,
        };
        Ok(GemmExecutor::prepare(w, m, k, backend, mode.name()))
    }

    /// Returns an executor lent by [`GemmInstance::executor`].
    pub fn give_back(&mut self, backend: Backend, exec: GemmExecutor) {
        self.executors.insert(backend, exec);
    }

    /// csr against the dense kernel on the same matrix, once, and bsr
    /// against the dense kernel on its block-pruned matrix, once per block
    /// shape; `None` for dense.
    pub fn verify(&mut self, mode: Mode, backend: Backend, dense_backend: Backend) -> Result<Option<f64>, Status> {
        if mode == Mode::Dense {
            return Ok(None);
        }
        if let Backend::Bsr(block) = backend {
            if let Some(e) = self.blocked(block)?.1 {
                return Ok(Some(e));
            }
            let (m, k) = (self.shape.m, self.shape.k);
            let inputs = Inputs::random_for(None, k, 1, VERIFY_BATCH, 7);
            let mut bsr = self.executor(mode, backend)?;
            let w = &self.blocked(block)?.0;
            // A dense executor of the pruned matrix, for this check only.
            let mut dense = GemmExecutor::prepare(w, m, k, dense_backend, "dense");
            let outputs = dense.run(&inputs).map(|want| want.to_vec()).and_then(|want| {
                let got = bsr.run(&inputs)?;
                Ok(compare_outputs(&want, got))
            });
            self.give_back(backend, bsr);
            let eq = outputs.map_err(Status::failed_with)?;
            let eq = within_tolerance(eq, DEFAULT_TOLERANCE).map_err(|e| Status::not_equivalent(format!("bsr: {e}")))?;
            self.blocked(block)?.1 = Some(eq.max_rel);
            return Ok(Some(eq.max_rel));
        }
        if self.verified.is_none() {
            let inputs = Inputs::random_for(None, self.shape.k, 1, VERIFY_BATCH, 7);
            // Both executors go back to the cache for the points that time them.
            let (mut dense, mut csr) = (self.executor(Mode::Dense, dense_backend)?, self.executor(Mode::Csr, Backend::Csr)?);
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

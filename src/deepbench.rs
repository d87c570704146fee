//! DeepBench's inference sparse GEMM problems (Baidu DeepBench,
//! `sparse_bench`): the standard workload for sparse-vs-dense kernels.
//!
//! `W` is `m x k` with `sparsity` of its entries zero, nonzeros placed
//! uniformly at random with the same count in every row; `X` has `n` columns
//! (the batch). The product is `Y = W · X` (`m x n`).

use crate::model::synthetic::SplitMix64;

/// One sparse GEMM problem.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SparseProblem {
    /// Rows of `W` (outputs).
    pub m: usize,
    /// Columns of `W` (inputs).
    pub k: usize,
    /// Columns of `X` (batch).
    pub n: usize,
    /// Fraction of zero entries in `W`.
    pub sparsity: f64,
}

impl SparseProblem {
    /// A short name: `m7680_k2560_n1_s0.95`.
    pub fn name(&self) -> String {
        format!("m{}_k{}_n{}_s{}", self.m, self.k, self.n, self.sparsity)
    }
    /// Nonzeros in every row of `W`.
    pub fn nnz_per_row(&self) -> usize {
        ((1.0 - self.sparsity) * self.k as f64).round() as usize
    }
    /// `W` as a dense row-major matrix, nonzeros uniform in [-1, 1) at
    /// random distinct columns, `nnz_per_row` in every row.
    pub fn weights(&self, seed: u64) -> Vec<f32> {
        let mut rng = SplitMix64::new(seed);
        let mut w = vec![0.0f32; self.m * self.k];
        let mut columns: Vec<usize> = (0..self.k).collect();
        let per_row = self.nnz_per_row();
        for row in w.chunks_exact_mut(self.k) {
            for i in 0..per_row {
                let j = i + rng.below((self.k - i) as u64) as usize;
                columns.swap(i, j);
                row[columns[i]] = rng.uniform(-1.0, 1.0);
            }
        }
        w
    }
}

/// The inference problems: `m x k` in {7680 x 2560, 10752 x 3584},
/// `n` in {1, 2, 4, 1500}, sparsity 0.90 and 0.95.
pub fn inference_problems() -> Vec<SparseProblem> {
    let mut out = Vec::new();
    for (m, k) in [(7680, 2560), (10752, 3584)] {
        for n in [1, 2, 4, 1500] {
            for sparsity in [0.90, 0.95] {
                out.push(SparseProblem { m, k, n, sparsity });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_has_the_same_nonzero_count() {
        let p = SparseProblem {
            m: 13,
            k: 40,
            n: 1,
            sparsity: 0.9,
        };
        let w = p.weights(1);
        for row in w.chunks_exact(40) {
            assert_eq!(row.iter().filter(|&&v| v != 0.0).count(), 4);
        }
        assert_eq!(inference_problems().len(), 16);
        assert_eq!(
            SparseProblem {
                m: 7680,
                k: 2560,
                n: 1,
                sparsity: 0.95
            }
            .nnz_per_row(),
            128
        );
    }
}

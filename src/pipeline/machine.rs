//! The machine measurements run on: what every row records about it, and
//! its thread pools with the limits measured on each.

use std::collections::HashMap;

use crate::hardware::{Limits, cpu_model, host_name, measure_limits, total_memory_gib};
use crate::kernels::simd::{SimdLevel, cpu_features};

/// A thread pool could not start.
#[derive(Debug, thiserror::Error)]
#[error("thread pool of {threads}: {message}")]
pub struct PoolError {
    pub threads: usize,
    pub message: String,
}

/// This machine (see the module documentation).
pub struct Machine {
    /// Host name.
    pub host: String,
    /// The user's name for the machine (`--label`); empty when none.
    pub label: String,
    /// CPU model with family and model numbers.
    pub cpu: String,
    /// SIMD level the kernels run at, and the CPU's features.
    pub simd: String,
    /// Logical cores.
    pub cores: usize,
    /// Memory, GiB.
    pub memory_gib: f64,
    pools: HashMap<usize, (rayon::ThreadPool, Limits)>,
}

impl Machine {
    /// This machine, with no pool started yet.
    pub fn new() -> Machine {
        Machine {
            host: host_name(),
            label: String::new(),
            cpu: cpu_model(),
            simd: format!("{} ({})", SimdLevel::detect().name(), cpu_features()),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib: total_memory_gib(),
            pools: HashMap::new(),
        }
    }

    /// Threads a request means (0: all logical cores).
    pub fn threads(&self, requested: usize) -> usize {
        if requested == 0 { self.cores } else { requested }
    }

    /// The pool of `threads` workers and the limits measured on it, both
    /// made on first use.
    pub fn pool(&mut self, threads: usize) -> Result<(&rayon::ThreadPool, Limits), PoolError> {
        let (pool, limits) = match self.pools.entry(threads) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                // Denormals as zeros in every worker, for the reason in
                // `flush_denormals`.
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .start_handler(|_| crate::kernels::simd::flush_denormals())
                    .build()
                    .map_err(|e| PoolError {
                        threads,
                        message: e.to_string(),
                    })?;
                let limits = pool.install(measure_limits);
                e.insert((pool, limits))
            }
        };
        Ok((pool, *limits))
    }
}

impl Default for Machine {
    fn default() -> Self {
        Machine::new()
    }
}

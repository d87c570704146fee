//! What this machine can do at most: its memory read bandwidth and the peak
//! FLOP rate of its FMA units. Kernel speeds are judged against these.

use rayon::prelude::*;

use crate::kernels::simd::{SimdLevel, multiversion};

#[inline(always)]
fn sum_kernel<const FUSED: bool>(v: &[f32]) -> f32 {
    // Sixteen independent partial sums: enough to keep loads, not adds, the limit.
    let mut acc = [0.0f32; 64];
    let mut chunks = v.chunks_exact(64);
    for c in &mut chunks {
        for l in 0..64 {
            acc[l] += c[l];
        }
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

multiversion! {
    fn sum_slice(v: &[f32]) -> f32 => sum_kernel
}

/// Reads every element of `data` once, split over the rayon pool, and returns
/// their sum (so the reads cannot be optimised away). Time it over a buffer
/// much larger than the last-level cache to get the memory read bandwidth.
pub fn read_pass(data: &[f32]) -> f32 {
    let chunk = data.len().div_ceil(rayon::current_num_threads()).max(1 << 16);
    data.par_chunks(chunk).map(sum_slice).sum()
}

/// Multiply-adds per thread in one [`fma_peak_pass`] of `iterations`.
pub fn fma_pass_flops(iterations: usize) -> f64 {
    // 12 vector accumulators x lanes x 2 flops per iteration.
    let lanes = match SimdLevel::detect() {
        SimdLevel::Avx512 => 16,
        SimdLevel::Avx2Fma => 8,
        SimdLevel::Neon => 4,
        SimdLevel::Portable => 4,
    };
    (iterations * 12 * lanes * 2) as f64
}

/// Runs `iterations` rounds of 12 independent vector FMAs on every rayon
/// worker (registers only: no memory traffic). Its rate is the machine's
/// FMA peak; [`fma_pass_flops`] gives the flops per worker.
pub fn fma_peak_pass(iterations: usize) -> f32 {
    (0..rayon::current_num_threads())
        .into_par_iter()
        .map(|w| fma_loop(iterations, w as f32))
        .sum()
}

fn fma_loop(iterations: usize, seed: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        match SimdLevel::detect() {
            // SAFETY: detect() confirmed the features.
            SimdLevel::Avx512 => return unsafe { fma_avx512(iterations, seed) },
            // SAFETY: as above.
            SimdLevel::Avx2Fma => return unsafe { fma_avx2(iterations, seed) },
            _ => {}
        }
    }
    let mut acc = [seed; 48];
    for _ in 0..iterations {
        for a in acc.iter_mut() {
            *a = *a * 0.999_999 + 1e-7;
        }
    }
    acc.iter().sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_avx512(iterations: usize, seed: f32) -> f32 {
    use std::arch::x86_64::*;
    let m = _mm512_set1_ps(0.999_999);
    let c = _mm512_set1_ps(1e-7);
    let mut acc = [_mm512_set1_ps(seed); 12];
    for _ in 0..iterations {
        for a in acc.iter_mut() {
            *a = _mm512_fmadd_ps(*a, m, c);
        }
    }
    acc.iter().map(|&a| _mm512_reduce_add_ps(a)).sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_avx2(iterations: usize, seed: f32) -> f32 {
    use std::arch::x86_64::*;
    let m = _mm256_set1_ps(0.999_999);
    let c = _mm256_set1_ps(1e-7);
    let mut acc = [_mm256_set1_ps(seed); 12];
    for _ in 0..iterations {
        for a in acc.iter_mut() {
            *a = _mm256_fmadd_ps(*a, m, c);
        }
    }
    let mut out = [0.0f32; 8];
    let mut total = 0.0;
    for a in acc {
        // SAFETY: out holds 8 floats.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), a) };
        total += out.iter().sum::<f32>();
    }
    total
}

/// The CPU's model name (from /proc/cpuinfo on Linux), or "unknown", with
/// its family and model numbers where the file gives them: a virtual
/// machine often reports only a generic name ("AMD EPYC" for Zen 4 and
/// Zen 5 alike), and results from two such targets must not look alike.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| cpu_model_from_cpuinfo(&s))
        .unwrap_or_else(|| "unknown".to_string())
}

/// [`cpu_model`] from the text of /proc/cpuinfo (its first processor):
/// "NAME (family F model M)", or the name alone.
fn cpu_model_from_cpuinfo(cpuinfo: &str) -> Option<String> {
    let field = |key: &str| {
        cpuinfo
            .lines()
            .take_while(|l| !l.trim().is_empty())
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim().to_string())
    };
    let name = field("model name")?;
    Some(match (field("cpu family"), field("model")) {
        (Some(family), Some(model)) => format!("{name} (family {family} model {model})"),
        _ => name,
    })
}

/// Bytes of memory available to start new work (`MemAvailable` in
/// /proc/meminfo on Linux; unbounded where the system does not say).
pub fn available_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib.saturating_mul(1024))
        })
        .unwrap_or(u64::MAX)
}

/// The machine's memory in GiB, to one decimal (0 where /proc/meminfo
/// cannot be read).
pub fn total_memory_gib() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some((kib / (1024.0 * 1024.0) * 10.0).round() / 10.0)
        })
        .unwrap_or(0.0)
}

/// The host name (from the kernel), or "unknown".
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// What the machine can do at most with the current rayon pool: FMA peak
/// and memory read bandwidth, measured (best of a few passes).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Limits {
    /// Peak FMA rate, GFLOP/s.
    pub peak_gflops: f64,
    /// Read bandwidth over a buffer far larger than the caches, GB/s (1e9 bytes).
    pub bandwidth_gbs: f64,
}

/// Measures [`Limits`] on the current rayon pool (about half a second; the
/// bandwidth buffer is 256 MiB).
pub fn measure_limits() -> Limits {
    use std::time::Instant;
    let iterations = 2_000_000;
    let flops = fma_pass_flops(iterations) * rayon::current_num_threads() as f64;
    let best = |mut f: Box<dyn FnMut() -> f32>| {
        (0..3)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(f());
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let peak_gflops = flops / best(Box::new(|| fma_peak_pass(iterations))) / 1e9;
    let buffer = vec![1.0f32; 64 << 20];
    let bandwidth_gbs = (buffer.len() * 4) as f64 / best(Box::new(|| read_pass(&buffer))) / 1e9;
    Limits {
        peak_gflops,
        bandwidth_gbs,
    }
}

/// The source revision this binary was built from (`git describe`-like, from
/// build.rs), or "unknown" outside a git checkout.
pub fn git_revision() -> &'static str {
    option_env!("ISSBENCH_GIT_REV").unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_pass_sums_every_element() {
        let v: Vec<f32> = (0..200_001).map(|i| (i % 7) as f32).collect();
        let want: f64 = v.iter().map(|&x| x as f64).sum();
        assert_eq!(read_pass(&v) as f64, want);
    }

    /// The family and model numbers follow the name; the "model" key is
    /// not confused with "model name", and only the first processor counts.
    #[test]
    fn cpu_model_names_family_and_model() {
        let zen4 = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n\
                    model name\t: AMD EPYC\n\nprocessor\t: 1\ncpu family\t: 26\nmodel\t\t: 2\n";
        assert_eq!(cpu_model_from_cpuinfo(zen4).as_deref(), Some("AMD EPYC (family 25 model 17)"));
        let bare = "model name\t: Some CPU\n";
        assert_eq!(cpu_model_from_cpuinfo(bare).as_deref(), Some("Some CPU"));
        assert_eq!(cpu_model_from_cpuinfo("processor\t: 0\n"), None);
    }

    #[test]
    fn fma_pass_is_finite_and_counts_flops() {
        assert!(fma_peak_pass(1000).is_finite());
        assert!(fma_pass_flops(10) >= 10.0 * 12.0 * 4.0 * 2.0);
    }
}

//! The bf16 micro-kernel interface: the instruction sets ([`Bf16Kernel`]),
//! each one's kernels behind one small trait, and one call's [`Tile`].

use super::PANEL;
use crate::kernels::lowp::Out;
use crate::kernels::simd::{SimdLevel, has_avx512_bf16};

/// The instruction set a [`super::Bf16PackedMatrix`] was packed for; every
/// product on it runs those kernels.
///
/// All of them add the same exact products (a product of two bf16 values
/// fits an f32) to an f32 sum in the same order, one rounding per
/// product: for each pair of steps the odd one, then the even one, as
/// Intel defines `vdpbf16ps`. The SIMD kernels split the sums of a block
/// of one to three rows (two on AVX2) over several accumulators (added at the end, so
/// the few accumulators do not wait on the multiply-add latency), which
/// changes the order there; on blocks of four rows and more the AVX2 and
/// AVX-512F kernels give the portable kernel's bits.
/// [`Bf16Kernel::Avx512Bf16`] runs the instruction itself, which also
/// flushes subnormal inputs and results to zero (on this Zen 5 it gives
/// the portable bits too, on blocks of four rows and more).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Bf16Kernel {
    /// Plain Rust.
    Portable,
    /// AVX2 and FMA: bf16 widened to f32 by a shift and a mask, then
    /// fused multiply-adds (Haswell, Zen 3).
    Avx2,
    /// The same on AVX-512F (AVX-512 without BF16: Skylake-SP, Ice Lake).
    Avx512,
    /// AVX512_BF16: `vdpbf16ps` (Zen 4, Zen 5, Sapphire Rapids).
    Avx512Bf16,
}

impl Bf16Kernel {
    /// The widest kernels this CPU runs within the `ISSBENCH_SIMD` cap
    /// (detected once, then cached).
    pub fn detect() -> Bf16Kernel {
        static KERNEL: std::sync::OnceLock<Bf16Kernel> = std::sync::OnceLock::new();
        *KERNEL.get_or_init(|| Self::available()[0])
    }

    /// Every kernel this CPU runs within the `ISSBENCH_SIMD` cap, widest first.
    pub fn available() -> Vec<Bf16Kernel> {
        let level = SimdLevel::detect();
        let mut kernels = Vec::new();
        if has_avx512_bf16() {
            kernels.push(Bf16Kernel::Avx512Bf16);
        }
        if cfg!(target_arch = "x86_64") && level == SimdLevel::Avx512 {
            kernels.push(Bf16Kernel::Avx512);
        }
        if cfg!(target_arch = "x86_64") && level >= SimdLevel::Avx2Fma {
            kernels.push(Bf16Kernel::Avx2);
        }
        kernels.push(Bf16Kernel::Portable);
        kernels
    }

    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Bf16Kernel::Portable => "portable",
            Bf16Kernel::Avx2 => "avx2",
            Bf16Kernel::Avx512 => "avx512",
            Bf16Kernel::Avx512Bf16 => "avx512-bf16",
        }
    }

    /// The SIMD level `A`'s rounding is compiled for.
    pub(super) fn level(self) -> SimdLevel {
        match self {
            Bf16Kernel::Portable => SimdLevel::Portable,
            Bf16Kernel::Avx2 => SimdLevel::Avx2Fma,
            Bf16Kernel::Avx512 | Bf16Kernel::Avx512Bf16 => SimdLevel::Avx512,
        }
    }

    /// Most rows of `A` one call takes.
    pub(super) fn mr(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Bf16Kernel::Avx512Bf16 => <super::avx512::Avx512Bf16 as MicroKernels>::MR,
            #[cfg(target_arch = "x86_64")]
            Bf16Kernel::Avx512 => <super::avx512f::Avx512F as MicroKernels>::MR,
            #[cfg(target_arch = "x86_64")]
            Bf16Kernel::Avx2 => <super::avx2::Avx2 as MicroKernels>::MR,
            _ => <super::portable::Plain as MicroKernels>::MR,
        }
    }

    /// Columns of `C` one call computes: a whole panel or a half.
    pub(super) fn nr(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Bf16Kernel::Avx512Bf16 => <super::avx512::Avx512Bf16 as MicroKernels>::NR,
            #[cfg(target_arch = "x86_64")]
            Bf16Kernel::Avx512 => <super::avx512f::Avx512F as MicroKernels>::NR,
            #[cfg(target_arch = "x86_64")]
            Bf16Kernel::Avx2 => <super::avx2::Avx2 as MicroKernels>::NR,
            _ => <super::portable::Plain as MicroKernels>::NR,
        }
    }

    /// The kernel for a block of `rows` rows (1..=[`Bf16Kernel::mr`]);
    /// `prefetch`: prefetch the panel ahead, where the family does.
    pub(super) fn micro_kernel(self, rows: usize, prefetch: bool) -> KernelFn {
        match self {
            #[cfg(target_arch = "x86_64")]
            Bf16Kernel::Avx512Bf16 => super::avx512::Avx512Bf16::kernel(rows, prefetch),
            #[cfg(target_arch = "x86_64")]
            Bf16Kernel::Avx512 => super::avx512f::Avx512F::kernel(rows, prefetch),
            #[cfg(target_arch = "x86_64")]
            Bf16Kernel::Avx2 => super::avx2::Avx2::kernel(rows, prefetch),
            _ => super::portable::Plain::kernel(rows, prefetch),
        }
    }
}

/// One micro-kernel call over a [`Tile`].
pub(super) type KernelFn = unsafe fn(&Tile);

/// The micro-kernels of one instruction set.
pub(super) trait MicroKernels {
    /// Most rows of `A` one call takes.
    const MR: usize;
    /// Columns of `C` one call computes (a whole panel, or a half).
    const NR: usize;
    /// The kernel for a block of `rows` rows (1..=`MR`).
    fn kernel(rows: usize, prefetch: bool) -> KernelFn;
}

/// One micro-kernel call: all of `k` for a block of rows of `C`, over
/// columns `col0..col0 + NR` of one panel.
pub(super) struct Tile<'a> {
    /// The block's rounded `A`: `[pairs][rows][2]`.
    pub(super) a: *const u16,
    pub(super) rows: usize,
    /// Pair rows of `k` (`ceil(k / 2)`).
    pub(super) pairs: usize,
    /// The panel's first pair row (`pairs` rows of 64 values).
    pub(super) panel: *const u16,
    /// First column of the panel this call computes.
    pub(super) col0: usize,
    pub(super) out: &'a Out,
    /// The tile's first row of `C` and the panel's first column.
    pub(super) row0: usize,
    pub(super) j0: usize,
}

impl Tile<'_> {
    /// Row `r`'s start values over the call's `W` columns.
    ///
    /// # Safety
    /// The tile must lie inside `C` (and its start row).
    #[inline(always)]
    pub(super) unsafe fn start_row<const W: usize>(&self, r: usize, buf: &mut [f32; W]) {
        // SAFETY: the caller's contract.
        unsafe { self.out.start_values(self.row0 + r, self.j0 + self.col0, buf) }
    }
    /// Writes row `r`'s results over the call's `W` columns.
    ///
    /// # Safety
    /// The tile must lie inside `C`, and nothing else may touch it meanwhile.
    #[inline(always)]
    pub(super) unsafe fn store_row<const W: usize>(&self, r: usize, vals: &[f32; W]) {
        // SAFETY: the caller's contract.
        unsafe { self.out.store(self.row0 + r, self.j0 + self.col0, vals) }
    }
}

/// Whether a family's tiles cut a panel into whole calls.
pub(super) const fn fits<K: MicroKernels>() -> bool {
    PANEL.is_multiple_of(K::NR)
}
const _: () = assert!(fits::<super::portable::Plain>());
#[cfg(target_arch = "x86_64")]
const _: () = assert!(fits::<super::avx512::Avx512Bf16>() && fits::<super::avx512f::Avx512F>() && fits::<super::avx2::Avx2>());

//! The int8 micro-kernel interface: the instruction sets ([`Int8Kernel`]),
//! each one's kernels behind one small trait, one call's [`Tile`], and the
//! dequantization every kernel ends with.

use super::PANEL;
use crate::kernels::lowp::Out;
use crate::kernels::simd::{SimdLevel, has_avx_vnni, has_avx512_vnni};

/// The instruction set an [`super::Int8PackedMatrix`] was packed for;
/// every product on it runs those kernels. All of them compute the same
/// `i32` sums exactly and dequantize them with the same `f32` operations,
/// so their results are equal bit for bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Int8Kernel {
    /// Plain Rust.
    Portable,
    /// AVX2: `vpmovsxbw` widens the weights to `s16` and `vpmaddwd`
    /// multiplies them with `A` widened to `u16`, so no sum saturates.
    Avx2,
    /// AVX-VNNI: `vpdpbusd` on ymm registers (Alder Lake, Zen 5).
    AvxVnni,
    /// AVX-512 VNNI: `vpdpbusd` on zmm registers (Cascade Lake, Ice Lake,
    /// Sapphire Rapids, Zen 4, Zen 5).
    Avx512Vnni,
}

impl Int8Kernel {
    /// The widest kernels this CPU runs within the `ISSBENCH_SIMD` cap
    /// (detected once, then cached).
    pub fn detect() -> Int8Kernel {
        static KERNEL: std::sync::OnceLock<Int8Kernel> = std::sync::OnceLock::new();
        *KERNEL.get_or_init(|| Self::available()[0])
    }

    /// Every kernel this CPU runs within the `ISSBENCH_SIMD` cap, widest first.
    pub fn available() -> Vec<Int8Kernel> {
        let mut kernels = Vec::new();
        if has_avx512_vnni() {
            kernels.push(Int8Kernel::Avx512Vnni);
        }
        if has_avx_vnni() {
            kernels.push(Int8Kernel::AvxVnni);
        }
        if cfg!(target_arch = "x86_64") && SimdLevel::detect() >= SimdLevel::Avx2Fma {
            kernels.push(Int8Kernel::Avx2);
        }
        kernels.push(Int8Kernel::Portable);
        kernels
    }

    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Int8Kernel::Portable => "portable",
            Int8Kernel::Avx2 => "avx2",
            Int8Kernel::AvxVnni => "avx-vnni",
            Int8Kernel::Avx512Vnni => "avx512-vnni",
        }
    }

    /// The SIMD level whose vector width the kernels' helpers (`A`'s
    /// quantization) are compiled for.
    pub(super) fn level(self) -> SimdLevel {
        match self {
            Int8Kernel::Portable => SimdLevel::Portable,
            Int8Kernel::Avx2 | Int8Kernel::AvxVnni => SimdLevel::Avx2Fma,
            Int8Kernel::Avx512Vnni => SimdLevel::Avx512,
        }
    }

    /// Most rows of `A` one call takes.
    pub(super) fn mr(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Int8Kernel::Avx512Vnni => <super::avx512::Avx512Vnni as MicroKernels>::MR,
            #[cfg(target_arch = "x86_64")]
            Int8Kernel::AvxVnni => <super::avxvnni::AvxVnni as MicroKernels>::MR,
            #[cfg(target_arch = "x86_64")]
            Int8Kernel::Avx2 => <super::avx2::Avx2 as MicroKernels>::MR,
            _ => <super::portable::Portable as MicroKernels>::MR,
        }
    }

    /// Columns of `C` one call computes: a whole panel or a part of it.
    pub(super) fn nr(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Int8Kernel::Avx512Vnni => <super::avx512::Avx512Vnni as MicroKernels>::NR,
            #[cfg(target_arch = "x86_64")]
            Int8Kernel::AvxVnni => <super::avxvnni::AvxVnni as MicroKernels>::NR,
            #[cfg(target_arch = "x86_64")]
            Int8Kernel::Avx2 => <super::avx2::Avx2 as MicroKernels>::NR,
            _ => <super::portable::Portable as MicroKernels>::NR,
        }
    }

    /// Bytes of one quantized value of `A` as the kernels read it: `u16`
    /// for the AVX2 kernels (`vpmaddwd` takes 16-bit pairs), else `u8`.
    pub(super) fn a_value_bytes(self) -> usize {
        if self == Int8Kernel::Avx2 { 2 } else { 1 }
    }

    /// The kernel for a block of `rows` rows (1..=[`Int8Kernel::mr`]);
    /// `prefetch`: prefetch the panel ahead, where the family does.
    pub(super) fn micro_kernel(self, rows: usize, prefetch: bool) -> KernelFn {
        match self {
            #[cfg(target_arch = "x86_64")]
            Int8Kernel::Avx512Vnni => super::avx512::Avx512Vnni::kernel(rows, prefetch),
            #[cfg(target_arch = "x86_64")]
            Int8Kernel::AvxVnni => super::avxvnni::AvxVnni::kernel(rows, prefetch),
            #[cfg(target_arch = "x86_64")]
            Int8Kernel::Avx2 => super::avx2::Avx2::kernel(rows, prefetch),
            _ => super::portable::Portable::kernel(rows, prefetch),
        }
    }
}

/// One micro-kernel call over a [`Tile`].
pub(super) type KernelFn = unsafe fn(&Tile);

/// The micro-kernels of one instruction set.
pub(super) trait MicroKernels {
    /// Most rows of `A` one call takes: as many as the vector registers
    /// hold accumulators for.
    const MR: usize;
    /// Columns of `C` one call computes (a whole panel, or a part).
    const NR: usize;
    /// The kernel for a block of `rows` rows (1..=`MR`).
    fn kernel(rows: usize, prefetch: bool) -> KernelFn;
}

/// What turns a tile's `i32` sums into `f32`: `A`'s scale and zero point,
/// and the panel's column scales and sums.
#[derive(Clone, Copy)]
pub(super) struct Dequant<'a> {
    pub(super) a_scale: f32,
    pub(super) zero_point: i32,
    /// The panel's 32 column scales (zero past the last column).
    pub(super) scales: &'a [f32; PANEL],
    /// The panel's 32 column sums (zero past the last column).
    pub(super) col_sums: &'a [i32; PANEL],
}

/// One micro-kernel call: all of `k` for a block of rows of `C`, over
/// columns `col0..col0 + NR` of one panel.
pub(super) struct Tile<'a> {
    /// The block's quantized `A`: `[groups][rows][4]` values of
    /// [`Int8Kernel::a_value_bytes`] each.
    pub(super) a: *const u8,
    pub(super) rows: usize,
    /// Group rows of `k` (`ceil(k / 4)`).
    pub(super) groups: usize,
    /// The panel's first group row (`groups` rows of 128 bytes).
    pub(super) panel: *const i8,
    /// First column of the panel this call computes (0 for whole-panel kernels).
    pub(super) col0: usize,
    pub(super) dequant: Dequant<'a>,
    pub(super) out: &'a Out,
    /// The tile's first row of `C` and the panel's first column.
    pub(super) row0: usize,
    pub(super) j0: usize,
}

impl Tile<'_> {
    /// Dequantizes the rows' sums over the columns `col0..col0 + W` and
    /// writes them to `C`: `start + (a_scale · scale_j) · (sum_j −
    /// zero_point · col_sum_j)`, the `i32` difference wrapping (it is
    /// exact: the true value fits) and converted to `f32`, then one
    /// multiplication and one addition, never fused, so that every kernel
    /// gives the same bits. The column factors are computed once per call,
    /// into locals (a store to `C` could alias the weights' scales, so the
    /// compiler would otherwise load them again for every row).
    ///
    /// # Safety
    /// The tile must lie inside `C` (and its start row), and nothing else
    /// may touch those values meanwhile.
    #[inline(always)]
    pub(super) unsafe fn finish_rows<const W: usize>(&self, sums: &[[i32; W]]) {
        let d = self.dequant;
        let col = self.j0 + self.col0;
        let mut offsets = [0i32; W];
        let mut factors = [0.0f32; W];
        for l in 0..W {
            offsets[l] = d.zero_point.wrapping_mul(d.col_sums[self.col0 + l]);
            factors[l] = d.a_scale * d.scales[self.col0 + l];
        }
        for (r, sums_r) in sums.iter().enumerate() {
            let row = self.row0 + r;
            let mut vals = [0.0f32; W];
            // SAFETY: the row and columns lie inside C (the caller's contract).
            unsafe { self.out.start_values(row, col, &mut vals) };
            for l in 0..W {
                let t = sums_r[l].wrapping_sub(offsets[l]) as f32;
                vals[l] += factors[l] * t;
            }
            // SAFETY: as above.
            unsafe { self.out.store(row, col, &vals) };
        }
    }
}

/// Whether a family's tiles cut a panel into whole calls.
pub(super) const fn fits<K: MicroKernels>() -> bool {
    PANEL.is_multiple_of(K::NR)
}
const _: () = assert!(fits::<super::portable::Portable>());
#[cfg(target_arch = "x86_64")]
const _: () = assert!(fits::<super::avx512::Avx512Vnni>() && fits::<super::avxvnni::AvxVnni>() && fits::<super::avx2::Avx2>());

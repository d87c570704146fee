//! Runtime CPU feature detection: which instruction set the hand-written
//! kernels run with on this machine.
//!
//! One binary serves every x86-64 and aarch64 machine: each kernel is compiled
//! several times with different `target_feature`s and the widest one this CPU
//! supports is picked at run time, once.

use std::sync::OnceLock;

/// Instruction-set level the hand-written kernels use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SimdLevel {
    /// Plain Rust; whatever the compiler's baseline target gives (SSE2 on x86-64).
    Portable,
    /// aarch64 NEON with fused multiply-add (baseline on every aarch64 CPU).
    Neon,
    /// x86-64 AVX2 with FMA3 (Haswell and later, Zen).
    Avx2Fma,
    /// x86-64 AVX-512F (Skylake-SP and later, Zen 4).
    Avx512,
}

impl SimdLevel {
    /// The best level this CPU supports (detected once, then cached).
    pub fn detect() -> SimdLevel {
        static LEVEL: OnceLock<SimdLevel> = OnceLock::new();
        *LEVEL.get_or_init(detect_uncached)
    }

    /// This level, or the detected level where the CPU lacks it (for
    /// products built at a chosen level, so tests and comparisons can run
    /// the narrower kernels on a wide CPU).
    pub fn capped(self) -> SimdLevel {
        let best = SimdLevel::detect();
        let same_family = (self == SimdLevel::Neon) == (best == SimdLevel::Neon);
        if self == SimdLevel::Portable || (self <= best && same_family) {
            self
        } else {
            best
        }
    }

    /// Short name used in backend strings and CSV rows.
    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Portable => "portable",
            SimdLevel::Neon => "neon",
            SimdLevel::Avx2Fma => "avx2",
            SimdLevel::Avx512 => "avx512",
        }
    }
}

/// Floats in a 64-byte cache line (the unit the kernels' prefetches count in).
pub(crate) const FLOATS_PER_LINE: usize = 16;

/// Asks for the cache line holding `ptr` to be brought into L1 (no-op off
/// x86-64). A hint only: `ptr` need not be valid.
#[inline(always)]
pub(crate) fn prefetch_l1<T>(ptr: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching never faults, whatever the address.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(ptr.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

/// Asks for the cache line holding `ptr` to be brought into L2 (no-op off
/// x86-64). A hint only: `ptr` need not be valid.
#[inline(always)]
pub(crate) fn prefetch_l2<T>(ptr: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching never faults, whatever the address.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T1, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T1>(ptr.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

/// Environment variable that caps the level (`portable`, `avx2`, `avx512`,
/// `neon`; `avxvnni` is `avx2` that keeps AVX-VNNI for the int8 kernels):
/// lets tests and comparisons run the narrower kernels on a wide CPU.
pub const SIMD_ENV: &str = "ISSBENCH_SIMD";

fn detect_uncached() -> SimdLevel {
    let best = detect_cpu();
    let cap = match std::env::var(SIMD_ENV).as_deref() {
        Ok("portable") => SimdLevel::Portable,
        Ok("neon") => SimdLevel::Neon,
        Ok("avx2") | Ok("avxvnni") => SimdLevel::Avx2Fma,
        _ => SimdLevel::Avx512,
    };
    // Neon and the x86 levels are not comparable: a cap from the other
    // architecture leaves the CPU's own level alone.
    if cap == SimdLevel::Portable || (cap < best && (best == SimdLevel::Neon) == (cap == SimdLevel::Neon)) {
        cap
    } else {
        best
    }
}

fn detect_cpu() -> SimdLevel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma") {
            return SimdLevel::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return SimdLevel::Avx2Fma;
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        return SimdLevel::Neon;
    }
    #[allow(unreachable_code)]
    SimdLevel::Portable
}

/// Whether the int8 kernels may use AVX-512 VNNI (`vpdpbusd` on zmm): the
/// level is AVX-512 (so an `ISSBENCH_SIMD` cap of `avx2`, `avxvnni` or
/// `portable` turns it off) and the CPU has AVX512_VNNI and AVX512BW.
/// Detected once, then cached.
pub fn has_avx512_vnni() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| SimdLevel::detect() == SimdLevel::Avx512 && cpu_has_avx512_vnni())
}

/// Whether the int8 kernels may use AVX-VNNI (`vpdpbusd` on ymm, Alder
/// Lake and Zen 5 onwards): the level is AVX2 or above, the CPU has
/// AVX-VNNI, and `ISSBENCH_SIMD` is not `avx2` (plain AVX2, as on Zen 3)
/// or `portable`; `ISSBENCH_SIMD=avxvnni` caps the level at AVX2 but keeps
/// AVX-VNNI. Detected once, then cached.
pub fn has_avx_vnni() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        let level = SimdLevel::detect();
        let plain_avx2 = std::env::var(SIMD_ENV).as_deref() == Ok("avx2");
        matches!(level, SimdLevel::Avx2Fma | SimdLevel::Avx512) && !plain_avx2 && cpu_has_avx_vnni()
    })
}

/// Whether the bf16 kernels may use AVX512_BF16 (`vdpbf16ps`, Zen 4,
/// Sapphire Rapids): the level is AVX-512 (so an `ISSBENCH_SIMD` cap below
/// it turns it off) and the CPU has AVX512_BF16. Detected once, then cached.
pub fn has_avx512_bf16() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| SimdLevel::detect() == SimdLevel::Avx512 && cpu_has_avx512_bf16())
}

fn cpu_has_avx512_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512vnni") && std::arch::is_x86_feature_detected!("avx512bw")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

fn cpu_has_avx_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avxvnni") && std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

fn cpu_has_avx512_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16") && std::arch::is_x86_feature_detected!("avx512bw")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Every SIMD feature this CPU reports that matters for these kernels,
/// comma-separated (for CSV rows and reports).
pub fn cpu_features() -> String {
    let mut found: Vec<&str> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => {$(
                if std::arch::is_x86_feature_detected!($f) { found.push($f); }
            )*};
        }
        probe!(
            "sse4.2",
            "avx",
            "avx2",
            "fma",
            "f16c",
            "avx512f",
            "avx512bw",
            "avx512vl",
            "avx512vnni",
            "avx512bf16",
            "avx512fp16"
        );
    }
    #[cfg(target_arch = "aarch64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => {$(
                if std::arch::is_aarch64_feature_detected!($f) { found.push($f); }
            )*};
        }
        probe!("neon", "fp16", "dotprod", "sve", "sve2", "bf16", "i8mm");
    }
    found.join(",")
}

/// Makes this thread flush denormal results to zero and read denormal
/// operands as zero (x86-64 MXCSR FTZ and DAZ): on many x86 cores an
/// operation on a denormal takes a hundred cycles, and a checkpoint's
/// near-zero weights (an ISS component trained to 1e-39) would time the
/// microcode assist, not the kernel. A no-op elsewhere.
pub fn flush_denormals() {
    #[cfg(target_arch = "x86_64")]
    {
        const FTZ: u32 = 1 << 15;
        const DAZ: u32 = 1 << 6;
        let mut csr: u32 = 0;
        // SAFETY: stmxcsr writes the 4-byte control register to `csr`;
        // ldmxcsr loads it back with two mode bits set (no exception is
        // unmasked, so no instruction can start trapping).
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
            csr |= FTZ | DAZ;
            std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, preserves_flags));
        }
    }
}

/// Multiply-add that is fused when the instruction set has FMA.
///
/// `FUSED = false` must be used for code that may run without FMA: there
/// `f32::mul_add` falls back to a slow library call.
#[inline(always)]
pub(crate) fn madd<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FUSED { a.mul_add(b, c) } else { a * b + c }
}

/// Defines `fn $name(args) -> ret` that runs the `#[inline(always)]` kernel
/// `$kernel::<FUSED>(args)` compiled for the detected SIMD level; with
/// `fn $name[level](args)`, for the level passed as its first argument
/// (`level: SimdLevel`, a level the CPU has: the one a prepared weight
/// was prepared for).
///
/// Each level gets its own wrapper carrying `target_feature`, and the kernel
/// is called *directly* from it (never through a closure, which the compiler
/// may leave un-inlined and therefore compiled for the baseline target), so
/// the kernel is vectorised for that instruction set.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident ($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? => $kernel:ident) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            $crate::kernels::simd::multiversion!(@dispatch $crate::kernels::simd::SimdLevel::detect(), ($($arg: $ty),*) $(-> $ret)? => $kernel)
        }
    };
    ($(#[$meta:meta])* $vis:vis fn $name:ident [$level:ident] ($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? => $kernel:ident) => {
        $(#[$meta])*
        $vis fn $name($level: $crate::kernels::simd::SimdLevel, $($arg: $ty),*) $(-> $ret)? {
            $crate::kernels::simd::multiversion!(@dispatch $level, ($($arg: $ty),*) $(-> $ret)? => $kernel)
        }
    };
    (@dispatch $level:expr, ($($arg:ident : $ty:ty),*) $(-> $ret:ty)? => $kernel:ident) => {{
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
        unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
            $kernel::<true>($($arg),*)
        }
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
            $kernel::<true>($($arg),*)
        }
        match $level {
            // SAFETY: the level is one the CPU has (detected, or the level a
            // weight was prepared for, itself detected).
            #[cfg(target_arch = "x86_64")]
            $crate::kernels::simd::SimdLevel::Avx512 => unsafe { avx512($($arg),*) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            $crate::kernels::simd::SimdLevel::Avx2Fma => unsafe { avx2($($arg),*) },
            #[cfg(target_arch = "aarch64")]
            $crate::kernels::simd::SimdLevel::Neon => $kernel::<true>($($arg),*),
            _ => $kernel::<false>($($arg),*),
        }
    }};
}
pub(crate) use multiversion;

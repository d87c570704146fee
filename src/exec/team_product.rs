//! The products of the team forward at each precision: how a layer's
//! input `X` is made ready for the input projection by the workers
//! together (read in place, packed, rounded to bf16, or quantized to int8
//! in two passes: its range, then its values), and the claimed products
//! themselves. The executor's schedule (claims, progress, waits) is the
//! same for all precisions; only these calls differ.

use crate::kernels::bf16::{
    Bf16PackedMatrix, bf16_gemm_claimed, bf16_gemm_claimed_from, bf16_gemm_claimed_prepacked, round_a_part, rounded_a_len,
};
use crate::kernels::int8::{
    AQuant, Int8PackedMatrix, SharedRange, a_part_rows, a_range, int8_gemm_claimed, int8_gemm_claimed_from, int8_gemm_claimed_prepacked,
    quantize_a_part, quantized_a_len,
};
use crate::kernels::matrix::SendPtr;
use crate::kernels::{
    MatRef, PackedMatrix, PanelOrder, SharedOutput, SharedParts, Start, claim_granule, pack_a_part, packed_a_len, packed_gemm_claimed,
    packed_gemm_claimed_from, packed_gemm_claimed_prepacked, reads_a_in_place,
};

/// A gate weight packed for the team forward at one precision.
pub enum TeamWeight {
    F32(PackedMatrix),
    Bf16(Bf16PackedMatrix),
    Int8(Int8PackedMatrix),
}

/// How the workers make `X` ready before the input projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::exec) enum Staging {
    /// The kernels read `X` where it is.
    InPlace,
    /// One pass: packed (fp32) or rounded (bf16) by parts.
    OnePass,
    /// Two passes (int8): the range of every part, then the values
    /// quantized with the whole `X`'s scale.
    RangeThenValues,
}

/// The buffers the workers stage `X` into, reused from run to run.
#[derive(Default)]
pub(in crate::exec) struct StagedX {
    pub f32: Vec<f32>,
    pub u16: Vec<u16>,
    pub u8: Vec<u8>,
}

/// Raw views of [`StagedX`] the workers share, with the int8 range.
pub(in crate::exec) struct StagedPtrs<'a> {
    f32: SendPtr,
    u16: SharedParts<u16>,
    u8: SharedParts<u8>,
    lens: (usize, usize, usize),
    pub range: &'a SharedRange,
}

impl StagedX {
    /// Grows the buffer `w`'s staging needs for `rows` rows of its input.
    pub fn grow_for(&mut self, w: &TeamWeight, staging: Staging, rows: usize) {
        fn grow<T: Default + Clone>(v: &mut Vec<T>, len: usize) {
            if v.len() < len {
                v.resize(len, T::default());
            }
        }
        if staging == Staging::InPlace {
            return;
        }
        match w {
            TeamWeight::F32(p) => grow(&mut self.f32, packed_a_len(rows, p.k())),
            TeamWeight::Bf16(p) => grow(&mut self.u16, rounded_a_len(p, rows)),
            TeamWeight::Int8(p) => grow(&mut self.u8, quantized_a_len(p, rows)),
        }
    }

    /// The pointers the workers share (valid while `self` is not touched).
    pub fn ptrs<'a>(&mut self, range: &'a SharedRange) -> StagedPtrs<'a> {
        StagedPtrs {
            f32: SendPtr(self.f32.as_mut_ptr()),
            u16: SharedParts::new(&mut self.u16),
            u8: SharedParts::new(&mut self.u8),
            lens: (self.f32.len(), self.u16.len(), self.u8.len()),
            range,
        }
    }
}

impl TeamWeight {
    /// How `x` is staged for this weight's input projection.
    pub(in crate::exec) fn staging(&self, x: MatRef) -> Staging {
        match self {
            TeamWeight::F32(p) if reads_a_in_place(p.level(), x) => Staging::InPlace,
            TeamWeight::F32(_) | TeamWeight::Bf16(_) => Staging::OnePass,
            TeamWeight::Int8(_) => Staging::RangeThenValues,
        }
    }

    /// Panels a claim of the input projection should be a multiple of.
    pub(in crate::exec) fn granule(&self, rows: usize, k: usize) -> usize {
        match self {
            TeamWeight::F32(p) => claim_granule(p.level(), rows, k),
            _ => 1,
        }
    }

    /// Folds the range of part `part` of `parts` of `x` into the shared
    /// range (int8's first pass).
    pub(in crate::exec) fn range_part(&self, x: MatRef, staged: &StagedPtrs, part: usize, parts: usize) {
        if let TeamWeight::Int8(p) = self {
            staged.range.fold(a_range(x, a_part_rows(p, x.rows(), part, parts)));
        }
    }

    /// Stages part `part` of `parts` of `x` (the last pass).
    ///
    /// # Safety
    /// Each part is staged once, by one worker, into its own range of the
    /// shared buffer (grown by [`StagedX::grow_for`] for `x`); nobody reads
    /// the buffer before every part is done; for int8 every part's range
    /// was folded before.
    pub(in crate::exec) unsafe fn stage_part(&self, x: MatRef, staged: &StagedPtrs, part: usize, parts: usize) {
        // SAFETY: forwarded from the caller.
        unsafe {
            match self {
                TeamWeight::F32(p) => pack_a_part(p.level(), x, staged.f32, part, parts),
                TeamWeight::Bf16(p) => round_a_part(p, x, staged.u16, part, parts),
                TeamWeight::Int8(p) => {
                    let (min, max) = staged.range.get();
                    quantize_a_part(p, x, AQuant::from_range(min, max), staged.u8, part, parts);
                }
            }
        }
    }

    /// The input projection's part a worker claims: `C = start + X · Wᵀ`
    /// over the panels `claim` hands out, `X` read as `staging` says.
    ///
    /// # Safety
    /// As the kernels' claimed products: the claimed panels' columns of
    /// `c` belong to the caller; `X` was staged whole before.
    #[allow(clippy::too_many_arguments)]
    pub(in crate::exec) unsafe fn project(
        &self,
        x: MatRef,
        staging: Staging,
        staged: &StagedPtrs,
        c: SharedOutput,
        start: Start,
        claim: impl FnMut() -> Option<std::ops::Range<usize>>,
        done: impl FnMut(std::ops::Range<usize>),
    ) {
        let rows = x.rows();
        // SAFETY: forwarded from the caller; the staged buffers hold
        // `X`'s staging (their lengths checked against what it needs).
        unsafe {
            match (self, staging) {
                (TeamWeight::F32(p), Staging::InPlace) => packed_gemm_claimed_from(x, p, c, start, claim, done),
                (TeamWeight::F32(p), _) => {
                    let len = packed_a_len(rows, p.k());
                    assert!(len <= staged.lens.0, "staged X");
                    let a = std::slice::from_raw_parts(staged.f32.get(), len);
                    packed_gemm_claimed_prepacked(a, rows, p, c, start, claim, done);
                }
                (TeamWeight::Bf16(p), _) => {
                    let len = rounded_a_len(p, rows);
                    assert!(len <= staged.lens.1, "staged X");
                    let a = std::slice::from_raw_parts(staged.u16.0, len);
                    bf16_gemm_claimed_prepacked(a, rows, p, c, start, claim, done);
                }
                (TeamWeight::Int8(p), _) => {
                    let len = quantized_a_len(p, rows);
                    assert!(len <= staged.lens.2, "staged X");
                    let a = std::slice::from_raw_parts(staged.u8.0, len);
                    let (min, max) = staged.range.get();
                    int8_gemm_claimed_prepacked(a, rows, AQuant::from_range(min, max), p, c, start, claim, done);
                }
            }
        }
    }

    /// A recurrent step's part a worker claims where `C` starts from
    /// `start` (a bias row) rather than from the step's gates: `C = start +
    /// H · Wᵀ` over the panels `claim` hands out, ascending.
    ///
    /// # Safety
    /// As the kernels' claimed products; a [`Start::Row`] must point at
    /// `c.cols` floats that stay unchanged meanwhile.
    pub(in crate::exec) unsafe fn recur_from(
        &self,
        h: MatRef,
        c: SharedOutput,
        start: Start,
        claim: impl FnMut() -> Option<std::ops::Range<usize>>,
        done: impl FnMut(std::ops::Range<usize>),
    ) {
        // SAFETY: forwarded from the caller.
        unsafe {
            match self {
                TeamWeight::F32(p) => packed_gemm_claimed_from(h, p, c, start, claim, done),
                TeamWeight::Bf16(p) => bf16_gemm_claimed_from(h, p, c, start, claim, done),
                TeamWeight::Int8(p) => int8_gemm_claimed_from(h, p, c, start, claim, done),
            }
        }
    }

    /// A recurrent step's part a worker claims: `C (+)= H · Wᵀ` over the
    /// panels `claim` hands out, in `order` (each worker stages the few
    /// rows of `H` itself).
    ///
    /// # Safety
    /// As the kernels' claimed products.
    pub(in crate::exec) unsafe fn recur(
        &self,
        h: MatRef,
        c: SharedOutput,
        accumulate: bool,
        order: PanelOrder,
        claim: impl FnMut() -> Option<std::ops::Range<usize>>,
        done: impl FnMut(std::ops::Range<usize>),
    ) {
        // SAFETY: forwarded from the caller.
        unsafe {
            match self {
                TeamWeight::F32(p) => packed_gemm_claimed(h, p, c, accumulate, order, claim, done),
                TeamWeight::Bf16(p) => bf16_gemm_claimed(h, p, c, accumulate, order, claim, done),
                TeamWeight::Int8(p) => int8_gemm_claimed(h, p, c, accumulate, order, claim, done),
            }
        }
    }
}

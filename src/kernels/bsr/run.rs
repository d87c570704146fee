//! How a product runs: which kernel, the batch in chunks and tiles, the
//! inputs read in place or packed, and the block rows over rayon tasks.

use rayon::prelude::*;

use super::layout::{Family, Layout};
use super::words::Arith;
use super::{BlockOut, BsrMatrix, Inputs, Job, KernelFn, MAX_ACCUMULATORS, Sums, pack, portable};
use crate::kernels::matrix::MatRef;

/// Below this many multiply-adds a product runs on the calling thread.
const PARALLEL_MIN_MACS: usize = 1 << 15;

/// Bytes of `X` one chunk of a batch spans: the chunk's inputs stay in L2
/// while the block rows of a task pass over them.
const X_CHUNK_BYTES: usize = 512 << 10;

/// Blocks narrower than this many columns read batches packed ([`pack`]):
/// in place, a block row of 16 floats fills the cache line it reads, and
/// packing a large batch costs more than it saves (docs/tuning.md, "BSR").
const PACK_BELOW_COLUMNS: usize = 16;

/// Batches from which layouts that have an entry kernel run it
/// (`template.rs`, `entry_kernel!`) instead of the block kernel.
pub(super) const ENTRY_MIN_BATCH: usize = 16;

/// [`ENTRY_MIN_BATCH`] for layouts of 128- and 256-bit sub-tiles (int8 and
/// bf16 4 x 4 blocks, fp32 4 x 1 and 4 x 2): docs/tuning.md, "bf16 and
/// int8 values".
pub(super) const NARROW_ENTRY_MIN_BATCH: usize = 8;

/// A thread's reusable buffer of floats.
pub(super) type Scratch = std::thread::LocalKey<std::cell::RefCell<Vec<f32>>>;

thread_local! {
    /// Packed (or padded) inputs, reused between calls.
    static X_SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// A bf16 or int8 product's inputs in words, reused between calls.
    pub(super) static WORDS_SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on `len` floats of this thread's `scratch` (or of a fresh
/// buffer when a product on this thread already holds it), starting on a
/// cache-line boundary so that packed input vectors never span two lines.
pub(super) fn with_scratch(scratch: &'static Scratch, len: usize, f: impl FnOnce(&mut [f32])) {
    let aligned = |v: &mut Vec<f32>| {
        if v.len() < len + 16 {
            v.resize(len + 16, 0.0);
        }
        let skip = v.as_ptr().align_offset(64).min(16);
        f(&mut v[skip..skip + len])
    };
    scratch.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut v) => aligned(&mut v),
        Err(_) => aligned(&mut Vec::new()),
    })
}

/// The product of `X` and `w` into `out`, on the rayon pool (over balanced
/// block-row ranges) when large. The vector kernels read a batch packed, a
/// chunk at a time ([`pack`]), for blocks narrower than
/// [`PACK_BELOW_COLUMNS`] and for the entry kernel; otherwise they, and the
/// portable kernel, read `X` in place. Where `X` cannot be read in place
/// (strided columns, or an edge block column ending inside a step), it is
/// copied into rows padded with zeros to whole blocks. A bf16 or int8
/// matrix multiplies `X` already in words (`super::words`): its columns
/// and a block's are counted in words here.
pub(super) fn product(w: &BsrMatrix, x: MatRef, out: BlockOut) {
    let (r, c) = (w.block.0, w.words);
    let cols = w.word_cols();
    let layout = w.layout;
    let batch = x.rows();
    let job = Job {
        block_ptr: &w.block_ptr,
        block_col: &w.block_col,
        values: w.values.as_slice(),
        c,
        cols,
        block_len: r * c,
        pass_len: layout.pass_rows() * c,
        steps: c / layout.cp,
    };
    let parts = if w.stored_values() * batch < PARALLEL_MIN_MACS {
        1
    } else {
        rayon::current_num_threads()
    };
    let plan = (layout.family != Family::Portable).then(|| Plan::new(w, batch));
    if let Some(plan) = plan.as_ref().filter(|p| p.packed) {
        let padded = cols.next_multiple_of(c);
        let ranges = plan.chunks(batch, cols);
        // Every chunk but the last is a multiple of the largest tile; each
        // is packed padded to whole granules.
        let chunk = ranges[0].len().next_multiple_of(plan.granule);
        let last = ranges[ranges.len() - 1].len();
        let len = ((ranges.len() - 1) * chunk + last.next_multiple_of(plan.granule)) * padded;
        return with_scratch(&X_SCRATCH, len, |buf| {
            let pack_range = |(i, part): (usize, &mut [f32])| pack::pack(x, i * chunk, padded, layout.cp, part);
            if parts > 1 {
                buf.par_chunks_mut(chunk * padded).enumerate().for_each(pack_range);
            } else {
                buf.chunks_mut(chunk * padded).enumerate().for_each(pack_range);
            }
            let chunks: Vec<(Inputs, std::ops::Range<usize>)> = ranges
                .into_iter()
                .map(|range| {
                    let entries = range.len().next_multiple_of(plan.granule);
                    let inputs = Inputs {
                        x: &buf[range.start * padded..(range.start + entries) * padded],
                        entry: layout.cp,
                        step: entries * layout.cp,
                        block: entries * c,
                        edge_col: usize::MAX,
                        edge_steps: 0,
                    };
                    (inputs, range)
                })
                .collect();
            let task = |part: usize| vector_rows(w, &job, plan, &chunks, w.balanced_block_rows(part, parts), out);
            for_each_task(parts, task);
        });
    }
    let run = |inputs: Inputs| {
        if let Some(plan) = &plan {
            let chunks: Vec<(Inputs, std::ops::Range<usize>)> = plan
                .chunks(batch, cols)
                .into_iter()
                .map(|range| {
                    let chunk = Inputs {
                        x: &inputs.x[range.start * inputs.entry..],
                        ..inputs
                    };
                    (chunk, range)
                })
                .collect();
            let task = |part: usize| vector_rows(w, &job, plan, &chunks, w.balanced_block_rows(part, parts), out);
            for_each_task(parts, task);
        } else {
            let rows = |part: usize| w.balanced_block_rows(part, parts);
            match w.arith {
                Arith::F32 => for_each_task(parts, |part| {
                    portable::block_rows_auto(w.level, &job, &inputs, rows(part), r, batch, out)
                }),
                arith => for_each_task(parts, |part| {
                    portable::block_rows_words(arith, &job, &inputs, rows(part), r, batch, out)
                }),
            }
        }
    };
    let simd = plan.is_some();
    let edge = cols % c;
    if (x.col_stride() == 1 || cols == 1) && (!simd || edge.is_multiple_of(layout.cp)) {
        let (edge_col, edge_steps) = if simd && edge != 0 {
            (cols / c, edge / layout.cp)
        } else {
            (usize::MAX, 0)
        };
        return run(Inputs {
            x: x.data(),
            entry: x.row_stride(),
            step: layout.cp,
            block: c,
            edge_col,
            edge_steps,
        });
    }
    let width = if simd { cols.next_multiple_of(c) } else { cols };
    with_scratch(&X_SCRATCH, batch * width, |padded| {
        for (b, row) in padded.chunks_exact_mut(width).enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = if j < cols { x.at(b, j) } else { 0.0 };
            }
        }
        run(Inputs {
            x: padded,
            entry: width,
            step: layout.cp,
            block: c,
            edge_col: usize::MAX,
            edge_steps: 0,
        })
    });
}

/// Runs `task(i)` for every `i < count`, on the rayon pool when there are several.
fn for_each_task(count: usize, task: impl Fn(usize) + Send + Sync) {
    if count > 1 {
        (0..count).into_par_iter().for_each(task);
    } else {
        task(0);
    }
}

/// Which kernels run a product's batch, and how it is cut into tiles.
struct Plan {
    /// Tile sizes the kernels take, largest first, each with its kernel.
    kernels: Vec<(usize, KernelFn)>,
    /// Entries a tile's size is a multiple of (the entry kernel's entries
    /// per vector; 1 for the block kernel): packed chunks are padded to it.
    granule: usize,
    /// Whether the kernels read packed inputs.
    packed: bool,
}

impl Plan {
    /// The plan for `w` (a vector layout) and a batch of `batch`.
    fn new(w: &BsrMatrix, batch: usize) -> Plan {
        let layout = &w.layout;
        if batch >= layout.entry_min_batch()
            && let Some((cp, rows, vectors)) = layout.entry_shape(w.level)
        {
            let granule = 16 / cp;
            let kernels = (1..=vectors)
                .rev()
                .filter_map(|v| entry_kernel_for(w.arith, cp, rows, v).map(|k| (v * granule, k)))
                .collect();
            return Plan {
                kernels,
                granule,
                packed: true,
            };
        }
        Plan {
            kernels: layout.tile_sizes().map(|b| (b, kernel_for(layout, w.arith, b))).collect(),
            granule: 1,
            packed: batch > 1 && w.words < PACK_BELOW_COLUMNS,
        }
    }

    /// A chunk of `len` entries (padded to the granule) in the largest
    /// tiles: (first entry, size, kernel).
    fn tiles(&self, len: usize) -> Vec<(usize, usize, KernelFn)> {
        let len = len.next_multiple_of(self.granule);
        let mut tiles = Vec::new();
        let mut b0 = 0;
        while b0 < len {
            let &(b, kernel) = self
                .kernels
                .iter()
                .find(|&&(s, _)| s <= len - b0)
                .expect("tile sizes end with one granule");
            tiles.push((b0, b, kernel));
            b0 += b;
        }
        tiles
    }

    /// The batch in chunks of about [`X_CHUNK_BYTES`] of `X` (at least one
    /// largest tile; all but the last of equal length, a multiple of it).
    fn chunks(&self, batch: usize, cols: usize) -> Vec<std::ops::Range<usize>> {
        let largest = self.kernels[0].0;
        let chunk = (X_CHUNK_BYTES / (cols.max(1) * 4)).max(largest) / largest * largest;
        (0..batch).step_by(chunk).map(|start| start..(start + chunk).min(batch)).collect()
    }
}

/// The compiled block kernel for `layout`, `arith` and a batch tile of `tile`.
pub(super) fn kernel_for(layout: &Layout, arith: Arith, tile: usize) -> KernelFn {
    let kernel = match layout.family {
        #[cfg(target_arch = "x86_64")]
        Family::Zmm => super::avx512::kernel(arith, layout.cp, layout.groups, tile),
        #[cfg(target_arch = "x86_64")]
        Family::Ymm => super::avx2::kernel8(arith, layout.cp, layout.groups, tile),
        #[cfg(target_arch = "x86_64")]
        Family::Xmm => super::avx2::kernel4(arith, layout.cp, layout.groups, tile),
        _ => None,
    };
    kernel.unwrap_or_else(|| panic!("no {arith:?} kernel for {layout:?} and a tile of {tile}"))
}

/// The compiled entry kernel for steps of `cp` columns, `rows` rows per
/// pass and `vectors` input vectors.
pub(super) fn entry_kernel_for(arith: Arith, cp: usize, rows: usize, vectors: usize) -> Option<KernelFn> {
    #[cfg(target_arch = "x86_64")]
    return super::avx512::entry_kernel(arith, cp, rows, vectors);
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// One task of a vector-kernel product: block rows `block_rows`, chunk by
/// chunk of the batch (each with its inputs and entries), pass by pass,
/// tile by tile.
fn vector_rows(
    w: &BsrMatrix,
    job: &Job,
    plan: &Plan,
    chunks: &[(Inputs, std::ops::Range<usize>)],
    block_rows: std::ops::Range<usize>,
    out: BlockOut,
) {
    let (r, rp) = (w.block.0, w.layout.pass_rows());
    let mut sums = Sums([0.0; MAX_ACCUMULATORS * 16]);
    for (inputs, entries) in chunks {
        let tiles = plan.tiles(entries.len());
        for br in block_rows.clone() {
            if out.accumulate && job.block_ptr[br] == job.block_ptr[br + 1] {
                continue;
            }
            for pass in 0..r / rp {
                let r0 = br * r + pass * rp;
                if r0 >= w.rows {
                    break;
                }
                for &(b0, b, kernel) in &tiles {
                    // SAFETY: the matrix's level has the kernel's features
                    // (it was chosen for that level); `job` and `inputs`
                    // uphold their invariants (built by `product`); the
                    // block row, pass and tile lie inside the matrix and
                    // the (padded) chunk.
                    unsafe { kernel(job, inputs, br, pass, b0, &mut sums) };
                    let count = b.min(entries.len().saturating_sub(b0));
                    out.write_tile(entries.start + b0, count, r0, rp, &mut sums.0);
                }
            }
        }
    }
    super::fence_streamed(out);
}

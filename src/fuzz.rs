//! A mutation fuzzer that runs on stable Rust (cargo-fuzz needs a nightly
//! toolchain, which this project's machines cannot install). It takes the
//! committed fixtures as seeds, damages them (bit flips, boundary values in
//! length fields, truncation, insertion, deletion, duplication), feeds them
//! to a loader, and reports any panic. `examples/fuzz.rs` runs it for a
//! time budget; `tests/fuzz.rs` runs a fixed number of cases in CI.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::checkpoint::{LoadOptions, load};
use crate::model::synthetic::SplitMix64;
use crate::sweep::SweepSpec;

/// What is fuzzed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// TensorFlow checkpoints: the `.index` table and the data shard, in turn.
    Tf,
    /// safetensors files.
    Safetensors,
    /// `.npz` archives and single `.npy` arrays, in turn.
    Numpy,
    /// `torch.save` zips: the archive itself, and the pickle inside it (re-zipped so the zip CRC holds), in turn.
    Torch,
    /// ONNX models (the protobuf and the graph walk).
    Onnx,
    /// Keras models: `.h5` files (the HDF5 reader), and `.keras` zips, both
    /// as archives and re-zipped with a damaged `model.weights.h5` or
    /// `config.json` (so that the zip CRC does not hide the damage).
    Keras,
    /// SavedModel folders: the variables bundle (index and data, which
    /// holds the object graph), in turn.
    SavedModel,
    /// Sweep TOML specs.
    SweepToml,
}

impl Target {
    /// Every target.
    pub const ALL: [Target; 8] = [
        Target::Tf,
        Target::Safetensors,
        Target::Numpy,
        Target::Torch,
        Target::Onnx,
        Target::Keras,
        Target::SavedModel,
        Target::SweepToml,
    ];
    /// Name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Target::Tf => "tf",
            Target::Safetensors => "safetensors",
            Target::Numpy => "numpy",
            Target::Torch => "torch",
            Target::Onnx => "onnx",
            Target::Keras => "keras",
            Target::SavedModel => "saved-model",
            Target::SweepToml => "sweep-toml",
        }
    }
    /// Parses [`Target::name`].
    pub fn parse(s: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == s)
    }
}

/// How one case ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Loaded (the damage missed everything that matters).
    Loaded,
    /// Refused with this error.
    Refused(String),
    /// Panicked: a bug.
    Panicked(String),
}

const SPEC_SEED: &str = r#"
name = "fuzz"
budget_ms = 1
[[grid]]
hidden = [16, 24]
kept = [1.0, 0.5]
modes = ["dense", "iss", "csr"]
batch = [1, 4]
seq = [3]
threads = [1, 0]
[[grid]]
models = ["tiny-iss", "ckpt/model.ckpt-1"]
modes = ["iss"]
batch = [2]
seq = [5]
head = [false, true]
"#;

/// Values that break length fields.
const INTERESTING: [u64; 10] = [0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x7fff_ffff, 0xffff_ffff, 1 << 40, u64::MAX];

/// Applies one to four random mutations to `data`.
pub fn mutate(data: &[u8], rng: &mut SplitMix64) -> Vec<u8> {
    let mut d = data.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = d.len().max(1) as u64;
        let at = rng.below(len) as usize;
        match rng.below(8) {
            0 => {
                if let Some(b) = d.get_mut(at) {
                    *b ^= 1 << rng.below(8);
                }
            }
            1 => {
                if let Some(b) = d.get_mut(at) {
                    *b = INTERESTING[rng.below(5) as usize] as u8;
                }
            }
            2 | 3 => {
                // A boundary value written over what may be a length field.
                let v = INTERESTING[rng.below(INTERESTING.len() as u64) as usize];
                let width = [1usize, 2, 4, 8][rng.below(4) as usize];
                for (k, byte) in v.to_le_bytes().iter().take(width).enumerate() {
                    if let Some(b) = d.get_mut(at + k) {
                        *b = *byte;
                    }
                }
            }
            4 => d.truncate(at),
            5 => {
                let n = 1 + rng.below(16) as usize;
                let bytes: Vec<u8> = (0..n).map(|_| rng.below(256) as u8).collect();
                d.splice(at.min(d.len())..at.min(d.len()), bytes);
            }
            6 => {
                let end = (at + 1 + rng.below(64) as usize).min(d.len());
                d.drain(at.min(end)..end);
            }
            _ => {
                let end = (at + 1 + rng.below(64) as usize).min(d.len());
                let chunk = d[at.min(end)..end].to_vec();
                let to = rng.below(d.len() as u64 + 1) as usize;
                d.splice(to..to, chunk);
            }
        }
    }
    d
}

/// A fuzzing session for one target: seeds read from the fixtures folder,
/// a scratch folder for the damaged files.
pub struct Fuzzer {
    target: Target,
    seeds: Vec<(String, Vec<u8>)>,
    /// For `Tf` and `SavedModel`: the fixture folders to copy (index, data) from.
    tf_dirs: Vec<PathBuf>,
    scratch: PathBuf,
    rng: SplitMix64,
    cases: u64,
}

fn read_zip_member(path: &Path, suffix: &str) -> Option<Vec<u8>> {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).ok()?).ok()?;
    let name = zip
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .find(|n| n.ends_with(suffix))?;
    let mut out = Vec::new();
    zip.by_name(&name).ok()?.read_to_end(&mut out).ok()?;
    Some(out)
}

impl Fuzzer {
    /// Seeds `target` from the fixtures in `fixtures`, writing cases under `scratch`.
    pub fn new(target: Target, fixtures: &Path, scratch: &Path, seed: u64) -> std::io::Result<Fuzzer> {
        std::fs::create_dir_all(scratch)?;
        let mut seeds = Vec::new();
        let mut tf_dirs = Vec::new();
        let mut entries: Vec<PathBuf> = std::fs::read_dir(fixtures)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        let ext = |p: &Path, e: &str| {
            p.extension().is_some_and(|x| x == e) && !p.to_string_lossy().contains(".canonical") && !p.to_string_lossy().contains(".io.")
        };
        for p in &entries {
            let name = p.file_name().unwrap_or_default().to_string_lossy().into_owned();
            match target {
                // TF checkpoint folders (their `checkpoint` file at the top;
                // a SavedModel keeps its bundle under variables/).
                Target::Tf if p.join("checkpoint").is_file() => tf_dirs.push(p.clone()),
                Target::Safetensors if ext(p, "safetensors") => seeds.push((name, std::fs::read(p)?)),
                Target::Numpy if ext(p, "npz") => {
                    if let Some(npy) = read_zip_member(p, ".npy") {
                        seeds.push((format!("{name}.member.npy"), npy));
                    }
                    seeds.push((name, std::fs::read(p)?));
                }
                Target::Torch if ext(p, "pt") || ext(p, "pth") => seeds.push((name, std::fs::read(p)?)),
                Target::Onnx if ext(p, "onnx") => seeds.push((name, std::fs::read(p)?)),
                Target::Keras if ext(p, "h5") || ext(p, "keras") => seeds.push((name, std::fs::read(p)?)),
                Target::SavedModel if p.join("saved_model.pb").is_file() => tf_dirs.push(p.clone()),
                _ => {}
            }
        }
        if target == Target::SweepToml {
            seeds.push(("spec.toml".into(), SPEC_SEED.as_bytes().to_vec()));
        }
        Ok(Fuzzer {
            target,
            seeds,
            tf_dirs,
            scratch: scratch.to_path_buf(),
            rng: SplitMix64::new(seed),
            cases: 0,
        })
    }

    /// Runs one damaged case; returns what happened and a description of the case.
    pub fn run_one(&mut self) -> std::io::Result<(Outcome, String)> {
        self.cases += 1;
        let case = self.cases;
        let (outcome, what) = match self.target {
            Target::Tf => self.tf_case()?,
            Target::SavedModel => self.saved_model_case()?,
            Target::SweepToml => {
                let bytes = mutate(&self.seeds[0].1, &mut self.rng);
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let outcome = guarded(|| match SweepSpec::from_toml("fuzz.toml", &text) {
                    Ok(spec) => {
                        let _ = spec.points();
                        Ok(())
                    }
                    Err(e) => Err(e.to_string()),
                });
                (outcome, format!("case {case}: sweep spec {text:?}"))
            }
            _ => {
                let k = self.rng.below(self.seeds.len() as u64) as usize;
                let (name, seed) = (self.seeds[k].0.clone(), self.seeds[k].1.clone());
                // A member inside a zip, damaged and re-zipped, half the time.
                let member = match self.target {
                    Target::Torch => Some("data.pkl"),
                    Target::Keras if name.ends_with(".keras") => Some(if self.rng.below(4) == 0 {
                        "config.json"
                    } else {
                        "model.weights.h5"
                    }),
                    _ => None,
                }
                .filter(|_| self.rng.below(2) == 0);
                let bytes = match member {
                    Some(member) => rezip_with_mutated(&seed, member, &mut self.rng)?,
                    None => mutate(&seed, &mut self.rng),
                };
                let ext = Path::new(&name)
                    .extension()
                    .map(|e| e.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let path = self.scratch.join(format!("case.{ext}"));
                std::fs::write(&path, &bytes)?;
                let outcome = guarded(|| load(&path, &LoadOptions::default()).map(|_| ()).map_err(|e| e.to_string()));
                (
                    outcome,
                    format!(
                        "case {case}: {} of {name}{}",
                        bytes.len(),
                        member.map(|m| format!(" ({m})")).unwrap_or_default()
                    ),
                )
            }
        };
        Ok((outcome, what))
    }

    fn tf_case(&mut self) -> std::io::Result<(Outcome, String)> {
        let src = self.tf_dirs[self.rng.below(self.tf_dirs.len() as u64) as usize].clone();
        let dir = self.scratch.join("ckpt");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(&src)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for f in &files {
            std::fs::copy(f, dir.join(f.file_name().unwrap_or_default()))?;
        }
        let victims: Vec<&PathBuf> = files.iter().filter(|f| !f.ends_with("checkpoint")).collect();
        let victim = victims[self.rng.below(victims.len() as u64) as usize];
        let target = dir.join(victim.file_name().unwrap_or_default());
        let bytes = mutate(&std::fs::read(&target)?, &mut self.rng);
        std::fs::write(&target, &bytes)?;
        let outcome = guarded(|| load(&dir, &LoadOptions::default()).map(|_| ()).map_err(|e| e.to_string()));
        Ok((
            outcome,
            format!("case {}: {} damaged to {} bytes", self.cases, victim.display(), bytes.len()),
        ))
    }
}

/// A zip whose member ending in `member` (a `torch.save` zip's `data.pkl`,
/// a `.keras` file's `model.weights.h5`) is mutated, re-zipped (stored) so
/// that the zip's CRC check does not hide the damage from the reader.
fn rezip_with_mutated(zip_bytes: &[u8], member: &str, rng: &mut SplitMix64) -> std::io::Result<Vec<u8>> {
    let mut src = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).map_err(std::io::Error::other)?;
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..src.len() {
        let mut entry = src.by_index(i).map_err(std::io::Error::other)?;
        let name = entry.name().map_err(std::io::Error::other)?.into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data)?;
        if name.ends_with(member) {
            data = mutate(&data, rng);
        }
        out.start_file(name.as_str(), options).map_err(std::io::Error::other)?;
        out.write_all(&data)?;
    }
    Ok(out.finish().map_err(std::io::Error::other)?.into_inner())
}

impl Fuzzer {
    /// A copy of a SavedModel folder with one file of its variables
    /// bundle damaged.
    fn saved_model_case(&mut self) -> std::io::Result<(Outcome, String)> {
        let src = self.tf_dirs[self.rng.below(self.tf_dirs.len() as u64) as usize].clone();
        let dir = self.scratch.join("saved_model");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("variables"))?;
        std::fs::write(dir.join("saved_model.pb"), b"")?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(src.join("variables"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        for f in &files {
            std::fs::copy(f, dir.join("variables").join(f.file_name().unwrap_or_default()))?;
        }
        let victim = &files[self.rng.below(files.len() as u64) as usize];
        let target = dir.join("variables").join(victim.file_name().unwrap_or_default());
        let bytes = mutate(&std::fs::read(&target)?, &mut self.rng);
        std::fs::write(&target, &bytes)?;
        let outcome = guarded(|| load(&dir, &LoadOptions::default()).map(|_| ()).map_err(|e| e.to_string()));
        Ok((
            outcome,
            format!("case {}: {} damaged to {} bytes", self.cases, victim.display(), bytes.len()),
        ))
    }
}

/// Runs `f`, turning a panic into [`Outcome::Panicked`].
fn guarded(f: impl FnOnce() -> Result<(), String>) -> Outcome {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(())) => Outcome::Loaded,
        Ok(Err(e)) => Outcome::Refused(e),
        Err(p) => Outcome::Panicked(
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default(),
        ),
    }
}

/// A global allocator that remembers the largest single allocation, so a
/// fuzz run can show that no file tricks a loader into allocating what a
/// header merely claims. Install it with `#[global_allocator]` in the
/// fuzzing binary.
pub struct TrackingAlloc;

static LARGEST: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl std::alloc::GlobalAlloc for TrackingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: as above.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

/// The largest single allocation since the last call (0 without [`TrackingAlloc`]).
pub fn take_largest_allocation() -> usize {
    LARGEST.swap(0, std::sync::atomic::Ordering::Relaxed)
}

/// Largest single allocation a case may make: the fixtures are a few KB, so
/// anything near this came from a size a file claimed.
pub const ALLOCATION_LIMIT: usize = 64 << 20;

/// Totals of a fuzz run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub cases: u64,
    pub loaded: u64,
    pub refused: u64,
    /// Panics and oversized allocations, with the case that caused them.
    pub failures: Vec<String>,
    /// Largest single allocation seen in any case.
    pub largest_allocation: usize,
}

/// Runs `target` until `cases` cases or `seconds` have passed, whichever first.
pub fn run(target: Target, fixtures: &Path, scratch: &Path, seed: u64, cases: u64, seconds: f64) -> std::io::Result<Report> {
    let mut fuzzer = Fuzzer::new(target, fixtures, scratch, seed)?;
    let started = std::time::Instant::now();
    let mut report = Report::default();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    while report.cases < cases && started.elapsed().as_secs_f64() < seconds {
        take_largest_allocation();
        let (outcome, what) = fuzzer.run_one()?;
        let largest = take_largest_allocation();
        report.largest_allocation = report.largest_allocation.max(largest);
        report.cases += 1;
        match outcome {
            Outcome::Loaded => report.loaded += 1,
            Outcome::Refused(_) => report.refused += 1,
            Outcome::Panicked(msg) => report.failures.push(format!("{what}: panic: {msg}")),
        }
        if largest > ALLOCATION_LIMIT {
            report.failures.push(format!("{what}: allocated {largest} bytes at once"));
        }
    }
    std::panic::set_hook(hook);
    Ok(report)
}

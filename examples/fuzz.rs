//! Mutation fuzzing of the loaders and the sweep spec parser, on stable
//! Rust (see `issbench::fuzz`):
//!
//! ```sh
//! cargo run --release --example fuzz -- tf 600          # 10 minutes on the TensorFlow reader
//! cargo run --release --example fuzz -- all 600         # every target, 10 minutes each
//! ```
//!
//! Exits 1 and prints each failing case on a panic or an allocation over
//! `issbench::fuzz::ALLOCATION_LIMIT`.

use std::path::Path;
use std::process::ExitCode;

use issbench::fuzz::{Target, TrackingAlloc, run};

#[global_allocator]
static ALLOC: TrackingAlloc = TrackingAlloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let which = args.first().map(String::as_str).unwrap_or("all");
    let seconds: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(60.0);
    let seed: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0x5EED);
    let targets: Vec<Target> = match which {
        "all" => Target::ALL.to_vec(),
        name => match Target::parse(name) {
            Some(t) => vec![t],
            None => {
                eprintln!("unknown target '{name}': all, {}", Target::ALL.map(Target::name).join(", "));
                return ExitCode::from(2);
            }
        },
    };
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut failed = false;
    for target in targets {
        let scratch = std::env::temp_dir().join(format!("issbench-fuzz-{}-{}", target.name(), std::process::id()));
        let report = match run(target, &fixtures, &scratch, seed, u64::MAX, seconds) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{}: {e}", target.name());
                return ExitCode::from(2);
            }
        };
        let _ = std::fs::remove_dir_all(&scratch);
        println!(
            "{:12} {:>9} cases in {seconds} s: {} loaded, {} refused, {} failures; largest single allocation {} bytes",
            target.name(),
            report.cases,
            report.loaded,
            report.refused,
            report.failures.len(),
            report.largest_allocation
        );
        for f in &report.failures {
            println!("  {f}");
            failed = true;
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

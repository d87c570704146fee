//! A short, deterministic run of the mutation fuzzer over every target (the
//! long runs are `cargo run --release --example fuzz`): no panic, and no
//! single allocation larger than `ALLOCATION_LIMIT`, in any case.

use std::path::Path;

use issbench::fuzz::{Target, TrackingAlloc, run};

#[global_allocator]
static ALLOC: TrackingAlloc = TrackingAlloc;

#[test]
fn mutated_inputs_never_panic_or_allocate_what_they_claim() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let scratch = tempfile::tempdir().unwrap();
    for target in Target::ALL {
        let report = run(target, &fixtures, &scratch.path().join(target.name()), 7, 400, 60.0).unwrap();
        assert!(report.cases >= 50, "{target:?}: only {} cases", report.cases);
        assert!(report.refused > 0, "{target:?}: the mutations never broke anything");
        assert!(report.failures.is_empty(), "{target:?}: {:#?}", report.failures);
    }
}

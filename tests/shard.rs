//! A sweep split with `sweep --shard I/N` and put back with `merge`: the
//! shards together measure exactly the points of the unsharded sweep, each
//! once, and `merge` names a missing shard. (tools/slurm/test-slurm.sh runs
//! the same through a real Slurm job array.)

use std::path::Path;
use std::process::{Command, Output};

use issbench::report::merge::measurement_key;
use issbench::report::read_rows;

fn issbench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_issbench")).args(args).output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = issbench(args);
    assert!(
        out.status.success(),
        "issbench {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

const SPEC: &str = "name = \"s\"\nbudget_ms = 1\nmin_runs = 1\nmax_runs = 2\n[[grid]]\nhidden = [8, 16, 24]\nkept = [1.0, 0.5, 0.25]\nmodes = [\"dense\", \"iss\", \"csr\"]\nbatch = [1, 3]\nseq = [2]\nthreads = [1]\n";

fn keys(path: &Path) -> Vec<String> {
    let mut k: Vec<String> = read_rows(&[path.to_path_buf()]).unwrap().iter().map(measurement_key).collect();
    k.sort();
    k
}

#[test]
fn shards_merge_into_the_unsharded_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("s.toml");
    std::fs::write(&spec, SPEC).unwrap();
    let spec = spec.to_str().unwrap();
    let whole = dir.path().join("whole");
    ok(&["sweep", "--config", spec, "--out", whole.to_str().unwrap(), "--no-charts"]);
    let parts = dir.path().join("parts");
    let mut files = Vec::new();
    for i in 0..3 {
        let shard = format!("{i}/3");
        let text = ok(&["sweep", "--config", spec, "--out", parts.to_str().unwrap(), "--shard", &shard]);
        assert!(
            text.contains(&format!("(shard {shard})")) && text.contains("not drawn for a shard"),
            "{text}"
        );
        let file = parts.join(format!("s.shard-{i}-of-3.csv"));
        assert!(read_rows(std::slice::from_ref(&file)).unwrap().iter().all(|r| r.shard == shard));
        files.push(file.to_str().unwrap().to_string());
    }
    // No chart in the shards' folder: shards may share it.
    let drawn = std::fs::read_dir(&parts)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".svg") || n.ends_with(".png"))
        .count();
    assert_eq!(drawn, 0);
    let merged = dir.path().join("merged.csv");
    let expect = whole.join("s.csv");
    let mut args = vec!["merge", "-o", merged.to_str().unwrap(), "--expect", expect.to_str().unwrap()];
    args.extend(files.iter().map(String::as_str));
    let text = ok(&args);
    assert!(text.contains("s: shards 0, 1, 2 of 3") && text.contains("each once"), "{text}");
    let (merged_keys, whole_keys) = (keys(&merged), keys(&expect));
    assert_eq!(merged_keys, whole_keys);
    let distinct: std::collections::BTreeSet<&String> = merged_keys.iter().collect();
    assert_eq!(distinct.len(), merged_keys.len(), "no duplicates");
    // Every shard measured something.
    for f in &files {
        assert!(!keys(Path::new(f)).is_empty(), "{f}");
    }

    // A missing shard is named, and the file is not overwritten.
    let out = issbench(&["merge", "-o", dir.path().join("part.csv").to_str().unwrap(), &files[0], &files[2]]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("s: shard 1/3 missing"), "{err}");
    let out = issbench(&["merge", "-o", merged.to_str().unwrap(), &files[0]]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("already exists"));
    // Against the wrong expectation: the differences are listed.
    let out = issbench(&[
        "merge",
        "-o",
        dir.path().join("two.csv").to_str().unwrap(),
        "--expect",
        expect.to_str().unwrap(),
        &files[0],
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("missing: "), "{err}");
}

#[test]
fn a_bad_shard_is_refused() {
    for bad in ["3/3", "1", "a/b"] {
        let out = issbench(&["sweep", "--shard", bad, "--out", "/nonexistent"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("0 <= I < N"), "{bad}: {err}");
    }
}

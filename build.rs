//! Records the git revision in `ISSBENCH_GIT_REV`, so every result row says
//! which source measured it. Outside a checkout (or without git) the
//! revision is "unknown".
//!
//! The script reruns when HEAD moves (a commit, a checkout) or a source file
//! changes (which may make the build dirty), never on git commands that only
//! touch the index, such as `git status`: a rerun rebuilds the crate.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let rev = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    // Dirty: what the binary is built from differs from HEAD (a changed
    // README or result file does not change what is measured).
    let dirty = git(&[
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        "src",
        "build.rs",
        "Cargo.toml",
        "Cargo.lock",
    ])
    .is_some_and(|s| !s.is_empty());
    println!("cargo:rustc-env=ISSBENCH_GIT_REV={rev}{}", if dirty { "-dirty" } else { "" });
    // HEAD, the branch it points to, and packed refs (where a branch lives
    // after `git gc`); paths come from git, so worktrees work too.
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    for name in ["HEAD", "packed-refs"].into_iter().chain(branch.as_deref()) {
        if let Some(path) = git(&["rev-parse", "--git-path", name]).filter(|p| std::path::Path::new(p).exists()) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    for path in ["build.rs", "Cargo.toml", "Cargo.lock", "src"] {
        println!("cargo:rerun-if-changed={path}");
    }
}

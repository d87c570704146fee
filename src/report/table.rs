//! A row for people: what `issbench run` prints by default.

use super::Row;
use crate::mode::Mode;

/// `row` as a few labelled lines.
pub fn row_text(r: &Row) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    let parts = match (r.vocab, r.head_output) {
        (0, 0) if r.head => "recurrent layers only: the model has no embedding or head".to_string(),
        (0, 0) => "recurrent layers only".to_string(),
        (0, out) => format!("features in, head of {out} outputs"),
        (vocab, 0) => format!("embedding of {vocab} tokens, hidden states out"),
        (vocab, out) => format!("embedding of {vocab} tokens and head of {out} outputs"),
    };
    line(format!("model    {} (hidden {}, {parts})", r.model, r.hidden_full));
    line(format!(
        "mode     {}  precision {}  backend {}  threads {}",
        r.mode, r.precision, r.backend, r.threads
    ));
    line(format!(
        "shape    batch {}  seq {}  {} multiply-adds per step",
        r.batch, r.seq, r.macs_per_step
    ));
    if !r.ok() {
        line(format!("status   {}", r.status));
        return out;
    }
    let ms = |ns: f64| ns / 1e6;
    line(format!(
        "time     median {:.3} ms  min {:.3} ms  max {:.3} ms  95% CI of the median {:.3}-{:.3} ms  ({} runs)",
        ms(r.median_ns),
        ms(r.min_ns),
        ms(r.max_ns),
        ms(r.ci_low_ns),
        ms(r.ci_high_ns),
        r.runs
    ));
    match r.precision {
        crate::precision::Precision::Fp32 => line(format!(
            "speed    {:.1} GFLOP/s at the median ({:.0}% of the measured FMA peak {:.0} GFLOP/s)",
            r.gflops,
            100.0 * r.gflops / r.peak_gflops,
            r.peak_gflops
        )),
        p => line(format!(
            "speed    {:.1} GFLOP/s at the median, in {p} ({:.0}% of {}x the measured fp32 FMA peak {:.0} GFLOP/s)",
            r.gflops,
            100.0 * r.gflops / (p.narrowing() * r.peak_gflops),
            p.narrowing(),
            r.peak_gflops
        )),
    }
    match r.mode {
        Mode::Iss => line(format!(
            "iss      kept {} of {} units; ideal speedup {:.2}x",
            r.hidden_kept, r.hidden_full, r.ideal_speedup
        )),
        Mode::Csr => line(format!(
            "csr      {} weights multiplied (sparsity {:.4}); ideal speedup {:.2}x",
            r.nonzero_weights, r.sparsity, r.ideal_speedup
        )),
        _ => {}
    }
    if let Some(e) = r.verify_max_rel {
        line(format!("verify   outputs against the dense model: max relative error {e:.2e}"));
    }
    if let (Some(abs), Some(rel)) = (r.max_abs_err, r.max_rel_err) {
        line(format!(
            "{:8} outputs against fp32 over the whole sequence: max abs error {abs:.2e} ({rel:.2e} of the largest output)",
            r.precision.name()
        ));
    }
    if let Some(s) = r
        .speedup_vs_dense
        .filter(|_| r.mode != Mode::Dense || r.precision != crate::precision::Precision::Fp32)
    {
        let interval = match (r.speedup_ci_low, r.speedup_ci_high) {
            (Some(lo), Some(hi)) => format!(" (95% interval {lo:.2}-{hi:.2})"),
            _ => String::new(),
        };
        line(format!("speedup  {s:.2}x over dense fp32{interval}"));
    }
    out
}

/// One row as the sweep's progress line: the median, the speedup with its
/// interval, and the flags of a suspect number.
pub fn progress_line(row: &Row) -> String {
    let mode = format!("{}{}", row.mode, row.variant_suffix());
    if !row.ok() {
        return format!("{} {mode} b{}: {}", row.model, row.batch, row.status);
    }
    let reference = row.mode == Mode::Dense && row.precision == crate::precision::Precision::Fp32;
    let speedup = match (reference, row.speedup_vs_dense, row.speedup_ci_low, row.speedup_ci_high) {
        (true, ..) | (_, None, ..) => String::new(),
        (_, Some(s), Some(lo), Some(hi)) => format!(", {s:.2}x [{lo:.2}-{hi:.2}] vs dense"),
        (_, Some(s), ..) => format!(", {s:.2}x vs dense"),
    };
    let flags = if row.flags.is_empty() {
        String::new()
    } else {
        format!("  [suspect: {}]", row.flags)
    };
    let error = row.max_rel_err.map(|e| format!(", error {e:.1e}")).unwrap_or_default();
    format!(
        "{} {mode} b{} t{}: {:.3} ms{speedup}{error}{flags}",
        row.model,
        row.batch,
        row.threads,
        row.median_ms()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::row;

    #[test]
    fn the_text_names_what_ran() {
        let iss = Row {
            mode: Mode::Iss,
            hidden_kept: "128/128".into(),
            ideal_speedup: 3.2,
            verify_max_rel: Some(2e-7),
            ..row()
        };
        let text = row_text(&iss);
        assert!(text.contains("kept 128/128 of 256/256 units; ideal speedup 3.20x"), "{text}");
        assert!(
            text.contains("recurrent layers only") && text.contains("max relative error 2.00e-7"),
            "{text}"
        );
        let failed = row_text(&iss.failed("not equivalent"));
        assert!(
            failed.contains("status   failed: not equivalent") && !failed.contains("time"),
            "{failed}"
        );
    }
}

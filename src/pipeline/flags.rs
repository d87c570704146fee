//! When a number may not be what it seems: the flags a row carries (the
//! `flags` column, `;`-separated) and the bounds behind them.

use super::host::HostLoad;
use crate::measure::Rounds;
use crate::model::Model;
use crate::report::Row;

/// A pruned model one of whose layers keeps no input weight in any
/// direction is flagged `input-cut`: its outputs do not depend on the
/// model's input (global block pruning can leave a whole layer to its
/// biases), so its verification and precision errors say nothing.
pub const INPUT_CUT: &str = "input-cut";

/// Whether some layer of `model` keeps no input weight in any direction.
pub fn input_cut(model: &Model) -> bool {
    model
        .layers()
        .iter()
        .any(|l| l.directions().all(|(_, r)| r.w_ih().iter().all(|&w| w == 0.0)))
}

/// A speedup whose whole 95% interval lies above this multiple of its
/// ideal (the multiply-add ratio) is flagged `above-ideal`. Cache effects
/// explain a speedup above the ideal (a compacted model that fits in a
/// cache the full one did not): up to 2.05x the ideal in the quick sweep on
/// the development machine (hidden 1024 at batch 1, dense streaming 64 MB
/// from memory, the compacted model in L3). Three times the ideal is more
/// than that explains.
pub const ABOVE_IDEAL: f64 = 3.0;

/// Run times whose coefficient of variation is above this are flagged
/// `noisy`: on a quiet machine a point's runs vary by a few percent.
pub const NOISY_CV: f64 = 0.2;

/// Round medians further apart than this ratio are flagged
/// `rounds-disagree`: the host's speed moved during the point. The
/// speedup, paired by rounds, is still sound; the times are not.
pub const ROUNDS_DISAGREE: f64 = 1.25;

/// Other processes using more than this many cores on average while the
/// point was timed, or the hypervisor stealing more than [`BUSY_STEAL`] of
/// the time, flag `busy-host`.
pub const BUSY_OTHER_CORES: f64 = 0.25;
/// See [`BUSY_OTHER_CORES`].
pub const BUSY_STEAL: f64 = 0.1;

/// The flags of a measured `row` (its runs in `rounds`), timed while the
/// host was as `load` says, with `oversubscribed` when it ran more threads
/// than the machine has cores.
pub fn flags(row: &Row, rounds: &Rounds, load: Option<HostLoad>, oversubscribed: bool) -> String {
    let mut flags = Vec::new();
    let lowest_speedup = row.speedup_ci_low.or(row.speedup_vs_dense);
    // Narrower weights stream faster (bf16 and int8 may go 2x and 4x
    // further), and fit caches the fp32 ones did not: a second cache
    // effect on top of the smaller model's (ISS at batch 1 in bf16 on
    // the PTB model: 60x against an ideal of 9.8x, 2.2x its fp32 27x).
    let narrowing = row.precision.narrowing();
    let ideal = row.ideal_speedup * if narrowing > 1.0 { 2.0 * narrowing } else { 1.0 };
    if lowest_speedup.is_some_and(|s| s > ABOVE_IDEAL * ideal) {
        flags.push("above-ideal");
    }
    if row.cv > NOISY_CV {
        flags.push("noisy");
    }
    let medians = rounds.medians();
    let (lo, hi) = medians.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &m| (lo.min(m), hi.max(m)));
    if medians.len() > 1 && hi > ROUNDS_DISAGREE * lo {
        flags.push("rounds-disagree");
    }
    if load.is_some_and(|l| l.other_cores > BUSY_OTHER_CORES || l.steal > BUSY_STEAL) {
        flags.push("busy-host");
    }
    if oversubscribed {
        flags.push("oversubscribed");
    }
    flags.join(";")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mode::Mode;

    fn row(speedup: f64, low: Option<f64>, ideal: f64, cv: f64) -> Row {
        let mut r = crate::report::tests::row();
        r.mode = Mode::Iss;
        r.speedup_vs_dense = Some(speedup);
        r.speedup_ci_low = low;
        r.ideal_speedup = ideal;
        r.cv = cv;
        r
    }

    #[test]
    fn a_layer_without_input_weights_cuts_the_input() {
        use crate::model::synthetic::SynthSpec;
        use crate::prune::{Scope, magnitude};
        let spec = SynthSpec {
            input: 6,
            layers: vec![5, 4],
            ..SynthSpec::default()
        };
        let model = spec.build().unwrap();
        assert!(!input_cut(&model));
        assert!(input_cut(&magnitude(&model, 1.0, Scope::Global).unwrap()));
    }

    #[test]
    fn each_flag_has_its_reason() {
        let steady = Rounds(vec![vec![10.0, 10.2], vec![10.1, 9.9]]);
        let quiet = Some(HostLoad::default());
        assert_eq!(flags(&row(9.0, Some(8.5), 9.8, 0.02), &steady, quiet, false), "");
        // The 544x against an ideal of 30x.
        assert_eq!(flags(&row(544.0, Some(300.0), 30.0, 0.02), &steady, quiet, false), "above-ideal");
        // Above 3x the ideal, but the interval reaches below it: not flagged.
        assert_eq!(flags(&row(32.0, Some(28.0), 10.0, 0.02), &steady, quiet, false), "");
        let drifting = Rounds(vec![vec![10.0], vec![14.0]]);
        let busy = Some(HostLoad {
            other_cores: 0.9,
            steal: 0.0,
        });
        assert_eq!(
            flags(&row(5.0, None, 9.8, 0.3), &drifting, busy, true),
            "noisy;rounds-disagree;busy-host;oversubscribed"
        );
        let stolen = Some(HostLoad {
            other_cores: 0.0,
            steal: 0.3,
        });
        assert_eq!(flags(&row(5.0, None, 9.8, 0.0), &steady, stolen, false), "busy-host");
    }
}

//! How busy the rest of the machine was while a point was timed: CPU time
//! other processes took (from `/proc/stat`, less this process's and its
//! peers'), and time the hypervisor stole. Linux only; elsewhere nothing
//! is known and nothing is flagged.

use std::time::Instant;

/// CPU time counters at one moment (clock ticks).
#[derive(Debug, Clone)]
pub struct HostSnapshot {
    at: Instant,
    /// Busy ticks of all CPUs (user, nice, system, irq, softirq).
    busy: u64,
    /// Ticks stolen by the hypervisor.
    steal: u64,
    /// Every tick of all CPUs.
    total: u64,
    /// Ticks used by this process and the processes named.
    ours: u64,
    pids: Vec<u32>,
}

/// What the rest of the machine did between two snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HostLoad {
    /// Cores' worth of CPU time other processes used, on average.
    pub other_cores: f64,
    /// Share of all CPU time the hypervisor stole.
    pub steal: f64,
}

/// `utime + stime` of process `pid` (`self` for this one), in ticks.
fn process_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command may hold spaces and parentheses: fields follow the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// (busy, steal, total) ticks from the first line of `/proc/stat`.
fn cpu_ticks() -> Option<(u64, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line.split_whitespace().filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let busy = v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)?;
    let steal = *v.get(7).unwrap_or(&0);
    Some((busy, steal, v.iter().take(8).sum()))
}

impl HostSnapshot {
    /// The counters now, counting the processes `pids` (peers) as ours.
    /// `None` where the kernel does not give them.
    pub fn take(pids: &[u32]) -> Option<HostSnapshot> {
        let (busy, steal, total) = cpu_ticks()?;
        let ours = process_ticks("self")? + pids.iter().filter_map(|p| process_ticks(&p.to_string())).sum::<u64>();
        Some(HostSnapshot {
            at: Instant::now(),
            busy,
            steal,
            total,
            ours,
            pids: pids.to_vec(),
        })
    }

    /// The load since this snapshot.
    pub fn load_since(&self) -> Option<HostLoad> {
        let now = HostSnapshot::take(&self.pids)?;
        let ticks_per_second = 100.0; // USER_HZ on every Linux target
        let seconds = now.at.duration_since(self.at).as_secs_f64().max(1e-3);
        let others = now
            .busy
            .saturating_sub(self.busy)
            .saturating_sub(now.ours.saturating_sub(self.ours));
        let total = now.total.saturating_sub(self.total).max(1);
        Some(HostLoad {
            other_cores: others as f64 / ticks_per_second / seconds,
            steal: now.steal.saturating_sub(self.steal) as f64 / total as f64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_counts_as_ours() {
        let Some(before) = HostSnapshot::take(&[]) else {
            println!("SKIPPED: no /proc here");
            return;
        };
        // Keep one core busy for 0.3 s: it is ours, not other load.
        let started = Instant::now();
        let mut x = 0u64;
        while started.elapsed().as_millis() < 300 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let load = before.load_since().unwrap();
        assert!(load.steal >= 0.0 && load.steal <= 1.0, "{load:?}");
        // Other processes (the rest of the test suite) may run meanwhile,
        // but our own busy core must not show as theirs.
        assert!(load.other_cores < 1.0, "{load:?}");
    }
}

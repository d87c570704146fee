//! Machines as the rows describe them: which rows each measured, and the
//! summary a reader compares machines by (CPU, cores, ISA, memory, measured
//! FMA peak and bandwidth, issbench revisions, dates).

use std::collections::{BTreeMap, BTreeSet};

use super::Row;

/// One machine ([`Row::machine_key`]) and what its rows say about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    /// [`Row::machine_key`]: the label, or the CPU, cores, ISA and memory.
    pub key: String,
    /// The user's label (empty when none).
    pub label: String,
    /// CPU model with family and model numbers.
    pub cpu: String,
    pub cores: usize,
    /// SIMD level the kernels ran at.
    pub isa: String,
    /// The CPU's features as issbench saw them.
    pub features: String,
    /// GiB (0: not recorded).
    pub memory_gib: f64,
    /// Host names of its rows (the nodes of a cluster are one machine).
    pub hosts: BTreeSet<String>,
    /// issbench revisions that measured it (`version revision`).
    pub revisions: BTreeSet<String>,
    /// First and last day it measured, `YYYY-MM-DD`.
    pub dates: (String, String),
    /// Per thread count: the best FMA peak (GFLOP/s) and read bandwidth
    /// (GB/s) any of its rows measured (other tenants only make a reading low).
    pub limits: BTreeMap<usize, (f64, f64)>,
    /// Rows, and ok rows.
    pub rows: usize,
    pub ok_rows: usize,
}

impl Machine {
    /// What charts and tables call it: the label, else the CPU with its cores and ISA.
    pub fn name(&self) -> String {
        if self.label.is_empty() {
            format!("{}, {} cores, {}", self.cpu, self.cores, self.isa)
        } else {
            self.label.clone()
        }
    }

    /// A folder name for its charts: `m{number}-` and its name in lower
    /// case letters, digits and dashes.
    pub fn slug(&self, number: usize) -> String {
        let mut s = String::new();
        for c in self.name().chars() {
            if c.is_ascii_alphanumeric() {
                s.push(c.to_ascii_lowercase());
            } else if !s.ends_with('-') {
                s.push('-');
            }
        }
        let s: String = s.trim_matches('-').chars().take(48).collect();
        format!("m{number}-{}", s.trim_end_matches('-'))
    }

    /// The machine's measured limits, `244 GF/s, 30.8 GB/s (1t); ...`.
    pub fn limits_text(&self) -> String {
        if self.limits.is_empty() {
            return "not measured".into();
        }
        self.limits
            .iter()
            .map(|(t, (peak, bw))| format!("{peak:.0} GFLOP/s, {bw:.1} GB/s ({t}t)"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The issbench revisions, `; `-separated.
    pub fn revisions_text(&self) -> String {
        self.revisions.iter().cloned().collect::<Vec<_>>().join("; ")
    }

    /// The days it measured: one day, or `first to last`.
    pub fn dates_text(&self) -> String {
        if self.dates.0 == self.dates.1 {
            self.dates.0.clone()
        } else {
            format!("{} to {}", self.dates.0, self.dates.1)
        }
    }
}

/// The machines of `rows`, in the order they first appear.
pub fn machines(rows: &[Row]) -> Vec<Machine> {
    let mut order: Vec<String> = Vec::new();
    let mut by: BTreeMap<String, Machine> = BTreeMap::new();
    for r in rows {
        let key = r.machine_key();
        let m = by.entry(key.clone()).or_insert_with(|| {
            order.push(key.clone());
            Machine {
                key,
                label: r.label.clone(),
                cpu: r.cpu_model.clone(),
                cores: r.logical_cores,
                isa: r.simd_level().to_string(),
                features: r
                    .simd
                    .split_once('(')
                    .map(|(_, f)| f.trim_end_matches(')').to_string())
                    .unwrap_or_default(),
                memory_gib: r.memory_gib,
                hosts: BTreeSet::new(),
                revisions: BTreeSet::new(),
                dates: (String::new(), String::new()),
                limits: BTreeMap::new(),
                rows: 0,
                ok_rows: 0,
            }
        });
        m.hosts.insert(r.host.clone());
        m.revisions.insert(format!("{} {}", r.suite_version, r.git_rev));
        let day = r.timestamp.get(..10).unwrap_or("").to_string();
        if m.dates.0.is_empty() || day < m.dates.0 {
            m.dates.0 = day.clone();
        }
        if day > m.dates.1 {
            m.dates.1 = day;
        }
        if r.peak_gflops > 0.0 && r.bandwidth_gbs > 0.0 {
            let l = m.limits.entry(r.threads).or_insert((0.0, 0.0));
            *l = (l.0.max(r.peak_gflops), l.1.max(r.bandwidth_gbs));
        }
        m.rows += 1;
        m.ok_rows += usize::from(r.ok());
    }
    order.into_iter().filter_map(|k| by.remove(&k)).collect()
}

/// A warning when machines were measured by different issbench revisions
/// (a kernel change then shows up as a machine difference), else `None`.
pub fn revision_warning(machines: &[Machine]) -> Option<String> {
    let all: BTreeSet<&String> = machines.iter().flat_map(|m| &m.revisions).collect();
    if all.len() < 2 {
        return None;
    }
    let each: Vec<String> = machines
        .iter()
        .enumerate()
        .map(|(i, m)| format!("M{} {}", i + 1, m.revisions_text()))
        .collect();
    Some(format!(
        "the rows come from {} issbench revisions ({}): differences may be the code's, not the machines'",
        all.len(),
        each.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::row;

    #[test]
    fn machines_are_told_apart_by_what_they_are() {
        let a = row();
        // Another host of the same machine type: the same machine.
        let node = Row {
            host: "node-7".into(),
            threads: 1,
            peak_gflops: 170.0,
            timestamp: "2026-12-03T00:00:00Z".into(),
            ..row()
        };
        let avx2 = Row {
            simd: "avx2 (avx2,fma)".into(),
            git_rev: "def".into(),
            ..row()
        };
        let labelled = Row {
            label: "lab box".into(),
            ..row()
        };
        let ms = machines(&[a, node, avx2, labelled]);
        assert_eq!(ms.len(), 3, "{ms:?}");
        assert_eq!(ms[0].hosts.len(), 2);
        assert_eq!(ms[0].limits.len(), 2);
        assert_eq!(ms[0].dates_text(), "2026-11-29 to 2026-12-03");
        assert_eq!(ms[0].name(), "Test CPU, 2 cores, avx512");
        assert_eq!(ms[0].key, "Test CPU, 2 cores, avx512, 16 GiB");
        assert_eq!(ms[1].isa, "avx2");
        assert_eq!(ms[1].features, "avx2,fma");
        assert_eq!(ms[2].name(), "lab box");
        assert_eq!(ms[2].slug(3), "m3-lab-box");
        assert_eq!(ms[0].slug(1), "m1-test-cpu-2-cores-avx512");
        let w = revision_warning(&ms).unwrap();
        assert!(w.contains("2 issbench revisions") && w.contains("M2 0.1.0 def"), "{w}");
        assert!(revision_warning(&ms[..1]).is_none());
    }
}

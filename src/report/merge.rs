//! Result files merged into one (the shards of a sweep run on many
//! machines): every measurement once, the newest where a file holds it
//! twice, and a check that no shard of a sharded sweep is missing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::{ReportError, Row, read_rows};

/// What [`merge`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// Every measurement ([`Row::key`]) once, in the order first read.
    pub rows: Vec<Row>,
    /// Rows read, and rows dropped as older copies of a measurement.
    pub read: usize,
    pub duplicates: usize,
    /// Sharded sweeps, by (sweep name, shard count): the shards present.
    pub shards: BTreeMap<(String, usize), BTreeSet<usize>>,
}

impl Merged {
    /// The shards missing from each sharded sweep, `quick: 1/3 missing`.
    pub fn missing(&self) -> Vec<String> {
        self.shards
            .iter()
            .filter_map(|((name, count), present)| {
                let gone: Vec<String> = (0..*count)
                    .filter(|i| !present.contains(i))
                    .map(|i| format!("{i}/{count}"))
                    .collect();
                (!gone.is_empty()).then(|| format!("{name}: shard {} missing", gone.join(", ")))
            })
            .collect()
    }
}

/// What a measurement is regardless of the machine that made it: the
/// point as machines share it ([`Row::shared_point_key`]) and its repeat.
pub fn measurement_key(r: &Row) -> String {
    format!("{} r{}", r.shared_point_key(), r.repeat)
}

/// How the measurements of `rows` differ from `expected`'s (an unsharded
/// run of the same sweep): those missing, those extra, and those measured
/// more than once; empty when they are exactly the same set.
pub fn differences(rows: &[Row], expected: &[Row]) -> Vec<String> {
    let count = |rs: &[Row]| {
        let mut c: BTreeMap<String, usize> = BTreeMap::new();
        for r in rs {
            *c.entry(measurement_key(r)).or_default() += 1;
        }
        c
    };
    let (have, want) = (count(rows), count(expected));
    let mut out = Vec::new();
    for k in want.keys().filter(|k| !have.contains_key(*k)) {
        out.push(format!("missing: {k}"));
    }
    for k in have.keys().filter(|k| !want.contains_key(*k)) {
        out.push(format!("not in the expected run: {k}"));
    }
    for (k, n) in have.iter().filter(|(_, n)| **n > 1) {
        out.push(format!("{n} times: {k}"));
    }
    out
}

/// Reads `paths` and keeps one row per measurement, the newest (a later
/// file wins a tie).
pub fn merge(paths: &[PathBuf]) -> Result<Merged, ReportError> {
    let all = read_rows(paths)?;
    let read = all.len();
    let mut slot: BTreeMap<String, usize> = BTreeMap::new();
    let mut rows: Vec<Row> = Vec::new();
    let mut shards: BTreeMap<(String, usize), BTreeSet<usize>> = BTreeMap::new();
    for r in all {
        if let Some((i, n)) = r.shard.split_once('/')
            && let (Ok(i), Ok(n)) = (i.parse(), n.parse())
        {
            shards.entry((r.preset.clone(), n)).or_default().insert(i);
        }
        match slot.get(&r.key()) {
            Some(&at) if rows[at].timestamp > r.timestamp => {}
            Some(&at) => rows[at] = r,
            None => {
                slot.insert(r.key(), rows.len());
                rows.push(r);
            }
        }
    }
    Ok(Merged {
        duplicates: read - rows.len(),
        read,
        rows,
        shards,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::row;
    use crate::report::to_csv;

    #[test]
    fn one_row_per_measurement_and_missing_shards_named() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, rows: &[Row]| {
            let p = dir.path().join(name);
            std::fs::write(&p, to_csv(rows).unwrap()).unwrap();
            p
        };
        let a = Row {
            shard: "0/3".into(),
            ..row()
        };
        let b = Row {
            shard: "2/3".into(),
            batch: 10,
            host: "node-2".into(),
            ..row()
        };
        let newer_a = Row {
            timestamp: "2026-12-05T00:00:00Z".into(),
            median_ns: 2e6,
            max_ns: 3e6,
            ..a.clone()
        };
        let p0 = write("q.shard-0-of-3.csv", std::slice::from_ref(&a));
        let p2 = write("q.shard-2-of-3.csv", &[b.clone(), newer_a.clone()]);
        let m = merge(&[p0, p2]).unwrap();
        assert_eq!((m.read, m.rows.len(), m.duplicates), (3, 2, 1));
        assert_eq!(m.rows[0].median_ns, 2e6, "the newest copy");
        assert_eq!(m.missing(), vec!["quick: shard 1/3 missing".to_string()]);
        let whole = merge(&[write(
            "all.csv",
            &[Row {
                shard: String::new(),
                ..a.clone()
            }],
        )])
        .unwrap();
        assert!(whole.missing().is_empty() && whole.shards.is_empty());
        // Against an unsharded run: the b10 point is extra, none missing.
        let d = differences(&m.rows, &whole.rows);
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(
            d[0].starts_with("not in the expected run: lstm2x256-k1 in256 h256/256 k256/256 dense b10 s30 t2 packed r1"),
            "{d:?}"
        );
        let one = std::slice::from_ref(&a);
        assert!(differences(one, one).is_empty());
        assert_eq!(differences(&[a.clone(), a.clone()], one).len(), 1);
    }
}

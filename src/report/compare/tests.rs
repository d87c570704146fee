use super::*;
use crate::report::Status;
use crate::report::tests::row;

/// A machine's dense, iss and csr rows at one point, times scaled.
fn machine_rows(cpu: &str, scale: f64) -> Vec<Row> {
    let mut rows = Vec::new();
    for (mode, ms, speedup, backend) in [
        ("dense", 10.0, 1.0, "packed-avx512"),
        ("iss", 2.0, 5.0, "packed-avx512"),
        ("csr", 6.0, 10.0 / 6.0, "csr-avx512"),
    ] {
        let median = ms * 1e6 * scale;
        rows.push(Row {
            host: "vm".into(),
            cpu_model: cpu.into(),
            mode: Mode::parse(mode).unwrap(),
            backend: backend.into(),
            median_ns: median,
            min_ns: median * 0.9,
            max_ns: median * 1.2,
            ci_low_ns: median * 0.98,
            ci_high_ns: median * 1.02,
            speedup_vs_dense: Some(speedup),
            kept_fraction: if mode == "dense" { 1.0 } else { 0.25 },
            hidden_kept: "64/64".into(),
            ..row()
        });
    }
    rows
}

#[test]
fn machines_side_by_side_with_ratios_and_geomeans() {
    let mut rows = machine_rows("Fast CPU (family 26 model 2)", 1.0);
    let mut slow = machine_rows("Slow CPU (family 25 model 1)", 2.0);
    // The slow machine is as fast at csr, within noise.
    slow[2].median_ns = 6.05e6;
    slow[2].ci_low_ns = 5.9e6;
    slow[2].ci_high_ns = 6.2e6;
    // ... and runs the AVX2 kernels: still the same point.
    for r in &mut slow {
        r.backend = r.backend.replace("avx512", "avx2");
        r.simd = "avx2 (avx2,fma)".into();
    }
    rows.extend(slow);
    // An older duplicate that the newest row replaces, a failed row, and a
    // point only one machine measured: none of them count.
    rows.push(Row {
        timestamp: "2020-01-01T00:00:00Z".into(),
        median_ns: 1.0,
        ..rows[0].clone()
    });
    rows.push(Row {
        status: Status::failed("out of memory"),
        median_ns: 0.0,
        ..rows[1].clone()
    });
    rows.push(Row {
        batch: 64,
        ..rows[0].clone()
    });
    let c = compare(&rows, None).unwrap();
    assert_eq!((c.machines.len(), c.points.len(), c.baseline), (2, 3, 0));
    assert_eq!(c.machines[0].name(), "Fast CPU (family 26 model 2), 2 cores, avx512");
    let iss = c.points.iter().find(|p| p.mode == Mode::Iss).unwrap();
    assert_eq!(iss.label, "h256 k0.25 iss b1 t2");
    let r = iss.ratio(1, 0).unwrap();
    assert!((r.value - 2.0).abs() < 1e-9 && !r.within_noise, "{r:?}");
    assert!((r.interval.0 - 2.0 * 0.98 / 1.02).abs() < 1e-9);
    let csr = c.points.iter().find(|p| p.mode == Mode::Csr).unwrap();
    assert!(csr.ratio(1, 0).unwrap().within_noise);
    let dense = &c.summaries[0];
    assert_eq!((dense.mode, dense.points), (Mode::Dense, 1));
    let g = dense.ratios[1].unwrap();
    assert_eq!((g.points, g.faster, g.slower), (1, 0, 1));
    assert!((g.ratio - 2.0).abs() < 1e-9);
    assert!(c.summaries[1].speedups.iter().all(|s| (s.unwrap() - 5.0).abs() < 1e-9));
    assert!(c.warnings.is_empty());

    let md = markdown(&c);
    for want in [
        "| M1 (baseline) | Fast CPU (family 26 model 2), 2 cores, avx512 |",
        "| M2 | Slow CPU (family 25 model 1), 2 cores, avx2 |",
        "| point | M1 ms | M2 ms | M2 / M1 | fastest |",
        "| h256 k0.25 iss b1 t2 | 2.000 | 4.000 | 2.00 | M1 |",
        "| h256 k0.25 csr b1 t2 | 6.000 | 6.050 | ≈ 1.01 | M1 |",
        "| dense | 1 | 2.00 (0 faster, 0 within noise, 1 slower) |",
        "| iss | 5.00x | 5.00x |",
    ] {
        assert!(md.contains(want), "{want}\n{md}");
    }
    assert!(!md.contains(" b64 "), "{md}");

    let dir = tempfile::tempdir().unwrap();
    let files = write(&c, dir.path()).unwrap();
    for f in [
        "compare.md",
        "compare.csv",
        "compare_ratio.svg",
        "compare_ratio.png",
        "compare_speedup.svg",
        "compare_speedup.png",
        "compare_geomean.svg",
        "compare_geomean.png",
    ] {
        assert!(files.contains(&dir.path().join(f)), "{f}: {files:?}");
    }
    let png = std::fs::read(dir.path().join("compare_ratio.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);
    let svg = std::fs::read_to_string(dir.path().join("compare_ratio.svg")).unwrap();
    assert!(svg.contains("M2: Slow CPU") && svg.contains("h256 k0.25 iss b1 t2"), "{svg}");
    let csv = std::fs::read_to_string(dir.path().join("compare.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 6, "{csv}");
    assert!(lines[0].starts_with("point,point_key,mode,"), "{}", lines[0]);
    assert!(csv.contains(",M2,\"Slow CPU (family 25 model 1), 2 cores, avx2\",false,"), "{csv}");
}

#[test]
fn one_host_name_two_machines_and_labels() {
    // Every reference file says host `vm`; the CPUs differ.
    let mut rows = machine_rows("AMD EPYC (family 25 model 17)", 1.0);
    rows.extend(machine_rows("AMD EPYC (family 26 model 2)", 0.5));
    assert_eq!(compare(&rows, None).unwrap().machines.len(), 2);
    // One kind of machine twice: one machine, unless labelled.
    let twice: Vec<Row> = machine_rows("X", 1.0).into_iter().chain(machine_rows("X", 1.1)).collect();
    let e = compare(&twice, None).unwrap_err().to_string();
    assert!(e.contains("found 1: X, 2 cores, avx512") && e.contains("NAME=file.csv"), "{e}");
    let mut labelled = machine_rows("X", 1.0);
    labelled.extend(machine_rows("X", 1.1).into_iter().map(|r| Row {
        label: "second".into(),
        git_rev: "fedcba".into(),
        ..r
    }));
    let c = compare(&labelled, Some("second")).unwrap();
    assert_eq!((c.baseline, c.machines[1].name().as_str()), (1, "second"));
    assert!(c.warnings[0].contains("2 issbench revisions"), "{:?}", c.warnings);
    assert!(markdown(&c).contains("**Warning:**"));
}

#[test]
fn baselines_by_label_number_or_part_of_the_name() {
    let mut rows = machine_rows("Intel Xeon (family 6 model 167)", 1.0);
    rows.extend(machine_rows("AMD EPYC (family 25 model 17)", 1.0));
    rows.extend(machine_rows("AMD EPYC (family 26 model 2)", 1.0));
    let ms = crate::report::machines::machines(&rows);
    assert_eq!(pick_baseline(&ms, None).unwrap(), 0);
    assert_eq!(pick_baseline(&ms, Some("M3")).unwrap(), 2);
    assert_eq!(pick_baseline(&ms, Some("2")).unwrap(), 1);
    assert_eq!(pick_baseline(&ms, Some("Xeon")).unwrap(), 0);
    let e = pick_baseline(&ms, Some("EPYC")).unwrap_err().to_string();
    assert!(e.contains("several") && e.contains("M2 AMD EPYC (family 25"), "{e}");
    assert!(pick_baseline(&ms, Some("M9")).unwrap_err().to_string().contains("none"));
}

#[test]
fn nothing_shared_is_no_comparison() {
    assert!(compare(&[], None).unwrap_err().to_string().contains("found none"));
    let mut rows = machine_rows("A", 1.0);
    rows.push(Row {
        cpu_model: "B".into(),
        batch: 7,
        ..row()
    });
    let e = compare(&rows, None).unwrap_err().to_string();
    assert!(e.contains("share no") && e.contains("found 2"), "{e}");
}

#[test]
fn charts_stay_readable_with_ten_machines_and_many_points() {
    let mut rows = Vec::new();
    for i in 0..10 {
        for batch in 1..=40 {
            rows.extend(
                machine_rows(&format!("CPU {i}"), 1.0 + i as f64 / 10.0)
                    .into_iter()
                    .map(|r| Row { batch, ..r }),
            );
        }
    }
    let c = compare(&rows, None).unwrap();
    assert_eq!((c.machines.len(), c.points.len()), (10, 120));
    let charts = figures::charts(&c);
    let Chart::Dots(d) = &charts[0].1 else { panic!("a dot chart") };
    assert_eq!((d.series.len(), d.categories.len()), (9, 120));
    // Ten machines: no two share both colour and marker.
    let looks: std::collections::BTreeSet<String> = (0..10)
        .map(|i| format!("{:?} {:?}", crate::report::charts::colour(i), crate::report::charts::marker(i)))
        .collect();
    assert_eq!(looks.len(), 10);
    assert!(charts[0].1.size().0 > 2000, "wide enough for 120 points");
    let dir = tempfile::tempdir().unwrap();
    write(&c, dir.path()).unwrap();
}

use crate::report::charts::Chart;

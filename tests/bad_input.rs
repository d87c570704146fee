//! Malformed checkpoints: each gives one specific error that names the file
//! (and the tensor when one is to blame); none panics, none allocates what
//! a header merely claims.

use std::io::Write;
use std::path::{Path, PathBuf};

use issbench::checkpoint::{CheckpointError, ErrorKind, LoadOptions, load};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, serialize};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn load_err(path: &Path) -> CheckpointError {
    match load(path, &LoadOptions::default()) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => {
            let line = e.to_string();
            assert!(!line.contains('\n'), "one line: {line}");
            assert!(
                line.starts_with(&path.display().to_string()) || line.contains("model.ckpt"),
                "names the file: {line}"
            );
            e
        }
    }
}

/// Copies a TF checkpoint folder so that it can be damaged.
fn tf_copy(dir: &Path, name: &str) -> PathBuf {
    let to = dir.join(name);
    std::fs::create_dir_all(&to).unwrap();
    for e in std::fs::read_dir(fixture(name)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
    to
}

fn edit(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(path).unwrap();
    f(&mut bytes);
    std::fs::write(path, bytes).unwrap();
}

const INDEX: &str = "model.ckpt-3900.index";
const DATA: &str = "model.ckpt-3900.data-00000-of-00001";

#[test]
fn tf_index_damage_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let ck = tf_copy(dir.path(), "tf_kernel_bias");
    let original = std::fs::read(ck.join(INDEX)).unwrap();

    edit(&ck.join(INDEX), |b| *b.last_mut().unwrap() ^= 0xff);
    assert!(matches!(load_err(&ck).kind, ErrorKind::BadMagic(_)));

    std::fs::write(ck.join(INDEX), &original[..20]).unwrap();
    assert!(matches!(load_err(&ck).kind, ErrorKind::Truncated(_)));

    // Cut inside the blocks but keep a footer: the handles point past the end.
    let mut cut = original[..original.len() / 3].to_vec();
    cut.extend_from_slice(&original[original.len() - 48..]);
    std::fs::write(ck.join(INDEX), &cut).unwrap();
    assert!(matches!(
        load_err(&ck).kind,
        ErrorKind::TooLarge { .. } | ErrorKind::Checksum { .. }
    ));

    let mut flipped = original.clone();
    flipped[30] ^= 0x01;
    std::fs::write(ck.join(INDEX), &flipped).unwrap();
    assert!(matches!(load_err(&ck).kind, ErrorKind::Checksum { .. }));
}

#[test]
fn tf_data_damage_names_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let ck = tf_copy(dir.path(), "tf_kernel_bias");
    let original = std::fs::read(ck.join(DATA)).unwrap();

    edit(&ck.join(DATA), |b| b[100] ^= 0x40);
    let e = load_err(&ck);
    assert!(matches!(e.kind, ErrorKind::Checksum { .. }), "{e}");
    assert!(e.tensor.is_some(), "{e}");

    std::fs::write(ck.join(DATA), &original[..original.len() / 2]).unwrap();
    let e = load_err(&ck);
    assert!(matches!(e.kind, ErrorKind::TooLarge { .. }), "{e}");
    assert!(e.tensor.is_some(), "{e}");

    std::fs::remove_file(ck.join(DATA)).unwrap();
    assert!(matches!(load_err(&ck).kind, ErrorKind::Io(_)));
}

/// Writes a safetensors file of `(name, dtype, shape, bytes)`.
fn write_safetensors(path: &Path, tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(path, serialize(views, None).unwrap()).unwrap();
}

fn f32_bytes(n: usize, v: f32) -> Vec<u8> {
    (0..n).flat_map(|i| (v + i as f32 * 1e-3).to_le_bytes()).collect()
}

/// A valid one-layer PyTorch LSTM (in 3, hidden 2), with `change` applied.
fn torch_lstm(path: &Path, change: impl FnOnce(&mut Vec<(&'static str, Dtype, Vec<usize>, Vec<u8>)>)) {
    let mut t = vec![
        ("weight_ih_l0", Dtype::F32, vec![8, 3], f32_bytes(24, 0.1)),
        ("weight_hh_l0", Dtype::F32, vec![8, 2], f32_bytes(16, 0.2)),
        ("bias_ih_l0", Dtype::F32, vec![8], f32_bytes(8, 0.0)),
        ("bias_hh_l0", Dtype::F32, vec![8], f32_bytes(8, 0.0)),
    ];
    change(&mut t);
    write_safetensors(path, &t);
}

#[test]
fn layout_problems_name_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.safetensors");

    torch_lstm(&p, |_| {});
    assert!(load(&p, &LoadOptions::default()).is_ok());

    torch_lstm(&p, |t| t.retain(|x| x.0 != "weight_hh_l0"));
    let e = load_err(&p);
    assert!(
        matches!(e.kind, ErrorKind::Missing(_)) && e.tensor.as_deref() == Some("weight_hh_l0"),
        "{e}"
    );

    torch_lstm(&p, |t| t[1] = ("weight_hh_l0", Dtype::F32, vec![8, 3], f32_bytes(24, 0.2)));
    let e = load_err(&p);
    assert!(
        matches!(e.kind, ErrorKind::Shape(_)) && e.tensor.as_deref() == Some("weight_hh_l0"),
        "{e}"
    );

    torch_lstm(&p, |t| {
        let mut b = f32_bytes(16, 0.2);
        b[20..24].copy_from_slice(&f32::NAN.to_le_bytes());
        t[1].3 = b;
    });
    let e = load_err(&p);
    assert!(e.to_string().contains("non-finite value NaN at index 5"), "{e}");
    assert_eq!(e.tensor.as_deref(), Some("weight_hh_l0"));

    torch_lstm(&p, |t| t[0] = ("weight_ih_l0", Dtype::I32, vec![8, 3], vec![0; 96]));
    let e = load_err(&p);
    assert!(
        matches!(e.kind, ErrorKind::DType(_)) && e.tensor.as_deref() == Some("weight_ih_l0"),
        "{e}"
    );

    std::fs::write(&p, b"not a checkpoint at all").unwrap();
    assert!(matches!(load_err(&p).kind, ErrorKind::UnknownFormat(_)));

    write_safetensors(&p, &[("x", Dtype::F32, vec![2], f32_bytes(2, 0.0))]);
    assert!(matches!(load_err(&p).kind, ErrorKind::Layout(_)));
}

#[test]
fn half_and_double_weights_convert_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.safetensors");
    let f16 = |n: usize| {
        (0..n)
            .flat_map(|i| half::f16::from_f32(0.25 * i as f32).to_le_bytes())
            .collect::<Vec<u8>>()
    };
    let bf16 = |n: usize| {
        (0..n)
            .flat_map(|i| half::bf16::from_f32(0.5 * i as f32).to_le_bytes())
            .collect::<Vec<u8>>()
    };
    let f64s = |n: usize| (0..n).flat_map(|i| (i as f64 * 0.125).to_le_bytes()).collect::<Vec<u8>>();
    torch_lstm(&p, |t| {
        t[0] = ("weight_ih_l0", Dtype::F16, vec![8, 3], f16(24));
        t[1] = ("weight_hh_l0", Dtype::BF16, vec![8, 2], bf16(16));
        t[2] = ("bias_ih_l0", Dtype::F64, vec![8], f64s(8));
    });
    let ck = load(&p, &LoadOptions::default()).unwrap();
    assert_eq!(ck.model.layers()[0].fw().w_ih()[5], 1.25);
    assert_eq!(ck.model.layers()[0].fw().w_hh()[3], 1.5);
    assert_eq!(ck.model.layers()[0].fw().bias()[2], 0.25f32 + 0.002f32);
    assert_eq!(
        ck.notes,
        vec![
            "weight_ih_l0: converted f16 to f32",
            "weight_hh_l0: converted bf16 to f32",
            "bias_ih_l0: converted f64 to f32"
        ]
    );
}

#[test]
fn giant_claimed_sizes_are_refused_without_allocating() {
    let dir = tempfile::tempdir().unwrap();
    // safetensors: a header claiming 2^40 elements over 8 bytes of data.
    let p = dir.path().join("giant.safetensors");
    let header = br#"{"weight_ih_l0":{"dtype":"F32","shape":[1099511627776],"data_offsets":[0,4398046511104]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0; 8]);
    std::fs::write(&p, &bytes).unwrap();
    assert!(matches!(load_err(&p).kind, ErrorKind::Corrupt(_)));

    // npz: an array claiming 2^40 floats.
    let p = dir.path().join("giant.npz");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&p).unwrap());
    zip.start_file(
        "rnn.weight_ih_l0.npy",
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored),
    )
    .unwrap();
    let mut h = "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }".to_string();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    zip.write_all(b"\x93NUMPY\x01\x00").unwrap();
    zip.write_all(&(h.len() as u16).to_le_bytes()).unwrap();
    zip.write_all(h.as_bytes()).unwrap();
    zip.write_all(&[0; 16]).unwrap();
    zip.finish().unwrap();
    let e = load_err(&p);
    assert!(
        matches!(e.kind, ErrorKind::TooLarge { .. }) && e.tensor.as_deref() == Some("rnn.weight_ih_l0"),
        "{e}"
    );
}

/// Rewrites a torch.save zip, passing each member through `f`.
fn rewrite_zip(from: &Path, to: &Path, f: impl Fn(&str, Vec<u8>) -> Vec<u8>) {
    let mut src = zip::ZipArchive::new(std::fs::File::open(from).unwrap()).unwrap();
    let mut out = zip::ZipWriter::new(std::fs::File::create(to).unwrap());
    for i in 0..src.len() {
        let mut m = src.by_index(i).unwrap();
        let name = m.name().unwrap().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut m, &mut data).unwrap();
        out.start_file(
            name.as_str(),
            zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored),
        )
        .unwrap();
        out.write_all(&f(&name, data)).unwrap();
    }
    out.finish().unwrap();
}

#[test]
fn torch_archive_damage_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture("torch_plain_lstm.pth");
    let p = dir.path().join("bad.pth");

    rewrite_zip(
        &src,
        &p,
        |name, data| if name.ends_with("data/0") { data[..10].to_vec() } else { data },
    );
    let e = load_err(&p);
    assert!(
        matches!(e.kind, ErrorKind::TooLarge { .. }) && e.tensor.as_deref() == Some("weight_ih_l0"),
        "{e}"
    );

    rewrite_zip(
        &src,
        &p,
        |name, data| if name.ends_with("data.pkl") { data[..200].to_vec() } else { data },
    );
    assert!(matches!(load_err(&p).kind, ErrorKind::Truncated(_)));

    // Replace the rebuild function with something that must never be called.
    rewrite_zip(&src, &p, |name, data| {
        if name.ends_with("data.pkl") {
            let s = data.windows(31).position(|w| w == b"torch._utils\n_rebuild_tensor_v2").unwrap();
            let mut d = data.clone();
            // Protocol 2 has no frame lengths, so the splice keeps the pickle valid.
            d.splice(s..s + 31, b"os\nsystem".iter().copied());
            d
        } else {
            data
        }
    });
    let e = load_err(&p);
    assert!(
        matches!(e.kind, ErrorKind::Pickle(_)) && e.to_string().contains("refusing global os.system"),
        "{e}"
    );

    rewrite_zip(&src, &p, |name, data| if name.ends_with("data/1") { Vec::new() } else { data });
    let e = load_err(&p);
    assert_eq!(e.tensor.as_deref(), Some("weight_hh_l0"), "{e}");

    let bytes = std::fs::read(&src).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(load_err(&p).kind, ErrorKind::UnknownFormat(_) | ErrorKind::Corrupt(_)));
}

#[test]
fn the_cli_prints_one_line_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("junk.pt");
    std::fs::write(&p, b"\x80\x02}q\x00.").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_issbench"))
        .args(["inspect", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("junk.pt") && err.contains("bare pickle"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// One more malformed file per row: (name, bytes, expected error kind).
#[test]
fn a_corpus_of_malformed_small_files() {
    let dir = tempfile::tempdir().unwrap();
    let st = |header: &str, data: usize| {
        let mut b = (header.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(header.as_bytes());
        b.extend(std::iter::repeat_n(0u8, data));
        b
    };
    let npy = |header: &str, data: usize| {
        let mut h = header.to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend((h.len() as u16).to_le_bytes());
        b.extend(h.as_bytes());
        b.extend(std::iter::repeat_n(0u8, data));
        b
    };
    let w = r#"{"weight_ih_l0":{"dtype":"F32","shape":[8,3],"data_offsets":[0,96]}}"#;
    type Check = fn(&ErrorKind) -> bool;
    let corrupt: Check = |k| matches!(k, ErrorKind::Corrupt(_));
    let cases: Vec<(&str, Vec<u8>, Check)> = vec![
        ("empty.safetensors", vec![], |k| matches!(k, ErrorKind::UnknownFormat(_))),
        ("eight.safetensors", 5u64.to_le_bytes().to_vec(), |k| {
            matches!(k, ErrorKind::UnknownFormat(_))
        }),
        (
            "hdr-beyond-file.safetensors",
            {
                let mut b = st(w, 96);
                b[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
                b
            },
            |k| matches!(k, ErrorKind::UnknownFormat(_) | ErrorKind::Corrupt(_)),
        ),
        ("not-json.safetensors", st("{nope", 0), corrupt),
        ("short-data.safetensors", st(w, 50), corrupt),
        (
            "offsets-mismatch.safetensors",
            st(r#"{"weight_ih_l0":{"dtype":"F32","shape":[8,3],"data_offsets":[0,90]}}"#, 90),
            corrupt,
        ),
        (
            "negative-shape.safetensors",
            st(r#"{"weight_ih_l0":{"dtype":"F32","shape":[-8,3],"data_offsets":[0,96]}}"#, 96),
            corrupt,
        ),
        (
            "fp8-weights.safetensors",
            st(
                r#"{"weight_hh_l0":{"dtype":"F8_E4M3","shape":[8,2],"data_offsets":[0,16]},"weight_ih_l0":{"dtype":"F8_E4M3","shape":[8,3],"data_offsets":[16,40]}}"#,
                40,
            ),
            |k| matches!(k, ErrorKind::DType(_)),
        ),
        (
            "bad-version.npy",
            {
                let mut b = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8);
                b[6] = 9;
                b
            },
            |k| matches!(k, ErrorKind::Unsupported(_)),
        ),
        ("not-a-dict.npy", npy("[1, 2, 3]", 8), corrupt),
        (
            "complex.npy",
            npy("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", 16),
            |k| matches!(k, ErrorKind::DType(_)),
        ),
        (
            "short.npy",
            npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4, 4), }", 8),
            |k| matches!(k, ErrorKind::TooLarge { .. }),
        ),
        (
            "overflow.npy",
            npy("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", 8),
            |k| matches!(k, ErrorKind::Shape(_) | ErrorKind::TooLarge { .. }),
        ),
        ("magic-only.npy", b"\x93NUMPY".to_vec(), |k| matches!(k, ErrorKind::Truncated(_))),
        ("legacy.pt", b"\x80\x02}q\x00.".to_vec(), |k| matches!(k, ErrorKind::Unsupported(_))),
    ];
    assert!(cases.len() >= 15);
    for (name, bytes, check) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, &bytes).unwrap();
        let e = load_err(&p);
        assert!(check(&e.kind), "{name}: {e}");
    }
}

#[test]
fn exit_codes_are_0_1_and_2_as_documented() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_issbench"))
            .args(args)
            .output()
            .unwrap()
    };
    assert_eq!(run(&["--help"]).status.code(), Some(0));
    let bad_arg = run(&["run", "tiny", "--batch", "many"]);
    assert_eq!(bad_arg.status.code(), Some(1), "a usage error is a user error");
    let missing = run(&["run", "/no/such/checkpoint.pt"]);
    assert_eq!(missing.status.code(), Some(1));
    let err = String::from_utf8(missing.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("issbench: /no/such/checkpoint.pt: ") && !err.contains("backtrace"),
        "{err}"
    );
    let ok = run(&[
        "run",
        "tiny-iss",
        "--mode",
        "iss",
        "--time",
        "0",
        "--min-runs",
        "1",
        "--max-runs",
        "1",
        "--batch",
        "1",
        "--seq",
        "2",
    ]);
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
}

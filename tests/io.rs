//! Checkpoints: round trips of models and mixed-dtype trees, and malformed files that
//! must give the right `Error` (never a panic, never a half-loaded tree).

use cotangent::nn::{Activation, Mlp};
use cotangent::{io, random, DType, Error, Tensor, Tree};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Tree)]
struct Mixed {
    w32: Tensor,
    w64: Tensor,
    ids: Tensor,
    small: Tensor,
    mask: Tensor,
    none: Option<Tensor>,
    #[tree(skip)]
    tag: &'static str,
}

fn mixed(scale: f64) -> Mixed {
    Mixed {
        w32: (Tensor::arange(0.0, 6.0, 1.0, DType::F32) * scale).reshape(&[2, 3]),
        w64: Tensor::from_vec(vec![scale, -scale, 1e-300, f64::MAX], &[4]),
        ids: Tensor::from_vec(vec![i64::MIN, -1, 0, i64::MAX], &[2, 2]),
        small: Tensor::from_vec(vec![7i32, -7], &[2]),
        mask: Tensor::from_vec(vec![true, false, true], &[3]),
        none: None,
        tag: "mixed",
    }
}

fn mixed_template() -> Mixed {
    mixed(0.0).map_leaves(|t| t.zeros_like())
}

fn same<T: Tree>(a: &T, b: &T) -> bool {
    let (a, b) = (a.leaves(), b.leaves());
    a.len() == b.len()
        && a.iter()
            .zip(&b)
            .all(|(x, y)| x.ty() == y.ty() && x.as_concrete().unwrap().data() == y.as_concrete().unwrap().data())
}

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("cotangent_io_{}_{name}", std::process::id()))
}

#[test]
fn round_trip_every_dtype() {
    let m = mixed(2.5);
    let path = tmp("mixed.safetensors");
    io::save(&m, &path).unwrap();
    let back = io::load(&mixed_template(), &path).unwrap();
    assert!(same(&m, &back));
    assert_eq!(back.tag, "mixed");
    std::fs::remove_file(&path).unwrap();
    // The names in the file are the tree paths.
    let bytes = io::to_bytes(&m).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<&str> = st.names();
    names.sort();
    assert_eq!(names, vec!["ids", "mask", "small", "w32", "w64"]);
}

#[test]
fn round_trip_a_model_into_a_fresh_one() {
    let model = Mlp::new(&random::key(0), &[4, 8, 3], Activation::Relu, DType::F32);
    let fresh = Mlp::new(&random::key(1), &[4, 8, 3], Activation::Relu, DType::F32);
    assert!(!same(&model, &fresh));
    let back = io::from_bytes(&fresh, &io::to_bytes(&model).unwrap()).unwrap();
    assert!(same(&model, &back));
    let x = random::normal(&random::key(2), &[5, 4], DType::F32);
    assert_eq!(back.forward(&x).to_vec::<f32>(), model.forward(&x).to_vec::<f32>());
    // A single tensor is stored as `value`.
    let t = Tensor::scalar(4.0);
    let st_bytes = io::to_bytes(&t).unwrap();
    let st = safetensors::SafeTensors::deserialize(&st_bytes).unwrap();
    assert_eq!(st.names(), vec!["value"]);
}

#[test]
fn truncated_files() {
    let bytes = io::to_bytes(&mixed(1.0)).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    // Every cut point: inside the length, inside the header, inside the data.
    for cut in [0, 3, 7, 8, 9, 8 + header_len / 2, 8 + header_len, bytes.len() - 1] {
        match io::from_bytes(&mixed_template(), &bytes[..cut]) {
            Err(Error::Truncated { message }) => assert!(!message.is_empty()),
            other => panic!("cut at {cut} of {}: {other:?}", bytes.len()),
        }
    }
    // Exhaustively, no cut point panics or loads.
    for cut in 0..bytes.len() {
        assert!(io::from_bytes(&mixed_template(), &bytes[..cut]).is_err());
    }
}

#[test]
fn bad_headers() {
    let bytes = io::to_bytes(&mixed(1.0)).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let with_header = |h: &[u8]| {
        let mut b = (h.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(h);
        b
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not JSON", with_header(b"this is not json")),
        ("invalid UTF-8", with_header(&[b'{', 0xff, 0xfe, b'}'])),
        ("wrong JSON shape", with_header(b"[1, 2, 3]")),
        ("unknown dtype", with_header(br#"{"x":{"dtype":"Q7","shape":[1],"data_offsets":[0,1]}}"#)),
        ("offsets beyond the shape", with_header(br#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}}"#)),
        ("absurd header length", {
            let mut b = bytes.clone();
            b[..8].copy_from_slice(&u64::MAX.to_le_bytes());
            b
        }),
        ("trailing bytes", {
            let mut b = bytes.clone();
            b.extend_from_slice(&[0; 5]);
            b
        }),
    ];
    for (what, b) in cases {
        match io::from_bytes(&mixed_template(), &b) {
            Err(Error::BadHeader { message }) => assert!(!message.is_empty(), "{what}"),
            other => panic!("{what}: {other:?}"),
        }
    }
    // Corrupting any single header byte never panics.
    for i in 0..8 + header_len {
        let mut b = bytes.clone();
        b[i] ^= 0x5a;
        let _ = io::from_bytes(&mixed_template(), &b);
    }
}

#[test]
fn missing_names_wrong_dtypes_and_shapes_name_the_leaf() {
    // The file lacks `extra`.
    #[derive(Clone, Debug, Tree)]
    struct Bigger {
        w32: Tensor,
        extra: Tensor,
    }
    let bytes = io::to_bytes(&mixed(1.0)).unwrap();
    let t = Bigger { w32: Tensor::zeros(&[2, 3], DType::F32), extra: Tensor::zeros(&[1], DType::F32) };
    assert_eq!(io::from_bytes(&t, &bytes).unwrap_err(), Error::MissingTensor { name: "extra".into() });
    // The template wants f64 where the file has f32.
    let mut wrong = mixed_template();
    wrong.w32 = Tensor::zeros(&[2, 3], DType::F64);
    let e = io::from_bytes(&wrong, &bytes).unwrap_err();
    assert_eq!(e, Error::WrongDType { name: "w32".into(), expected: DType::F64, found: "F32".into() });
    assert!(e.to_string().contains("w32"));
    // A shape mismatch on the last leaf: earlier leaves were fine, still nothing loads.
    let mut shaped = mixed_template();
    shaped.mask = Tensor::zeros(&[4], DType::Bool);
    assert_eq!(
        io::from_bytes(&shaped, &bytes).unwrap_err(),
        Error::WrongShape { name: "mask".into(), expected: vec![4], found: vec![3] }
    );
    // A bool tensor holding a byte other than 0/1.
    let mut b = io::to_bytes(&Tensor::from_vec(vec![true, false], &[2])).unwrap();
    let n = b.len();
    b[n - 1] = 7;
    assert!(matches!(io::from_bytes(&Tensor::from_vec(vec![false, false], &[2]), &b), Err(Error::BadHeader { .. })));
}

#[test]
fn duplicate_names_and_file_errors() {
    // Two different leaves whose paths are both `a.b.c`.
    let mut inner1 = BTreeMap::new();
    inner1.insert("b.c".to_string(), Tensor::scalar(1.0));
    let mut inner2 = BTreeMap::new();
    inner2.insert("c".to_string(), Tensor::scalar(2.0));
    let mut outer = BTreeMap::new();
    outer.insert("a".to_string(), inner1);
    outer.insert("a.b".to_string(), inner2);
    assert_eq!(io::to_bytes(&outer).unwrap_err(), Error::DuplicateName { name: "a.b.c".into() });
    let missing = io::load(&Tensor::scalar(0.0), tmp("does_not_exist.safetensors")).unwrap_err();
    assert!(matches!(missing, Error::Io { action: "read", .. }), "{missing:?}");
    let unwritable = io::save(&Tensor::scalar(0.0), "/nonexistent-dir/x.safetensors").unwrap_err();
    assert!(matches!(unwritable, Error::Io { action: "write", .. }), "{unwritable:?}");
}

// ---------------------------------------------------------------------------------------
// Crafted headers: every one must be an `Err`, in debug builds too (safetensors 0.7 adds
// the declared data length to the header length unchecked). The builders below are the
// fuzzing seeds; the same bytes are kept as files under `tests/data/io_seeds/`.

/// A safetensors file: the 8-byte little-endian header length, the header, `data` zero bytes.
fn crafted(header: &[u8], data: usize) -> Vec<u8> {
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header);
    b.resize(b.len() + data, 0);
    b
}

/// Eight contiguous U8 tensors of 2⁶¹ − 1 bytes each: the offsets fit in u64, but the data
/// length plus the header length plus 8 does not.
fn eight_tensors_past_u64() -> Vec<u8> {
    let size: u64 = (1 << 61) - 1;
    let entries: Vec<String> = (0..8u64)
        .map(|k| {
            format!(r#""t{k}":{{"dtype":"U8","shape":[{size}],"data_offsets":[{},{}]}}"#, k * size, (k + 1) * size)
        })
        .collect();
    crafted(format!("{{{}}}", entries.join(",")).as_bytes(), 16)
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let f32_one = |shape: &str, offsets: &str| {
        crafted(format!(r#"{{"x":{{"dtype":"F32","shape":{shape},"data_offsets":{offsets}}}}}"#).as_bytes(), 4)
    };
    vec![
        ("overflow_8_tensors", eight_tensors_past_u64()),
        ("header_len_beyond_file", {
            let mut b = crafted(br#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, 4);
            b[..8].copy_from_slice(&1000u64.to_le_bytes());
            b
        }),
        ("header_len_u64_max", {
            let mut b = crafted(b"{}", 0);
            b[..8].copy_from_slice(&u64::MAX.to_le_bytes());
            b
        }),
        ("non_utf8_header", crafted(&[b'{', b'"', 0xc3, 0x28, b'"', b':', b'1', b'}'], 0)),
        ("negative_shape", f32_one("[-1]", "[0,4]")),
        ("float_shape", f32_one("[1.5]", "[0,4]")),
        ("shape_past_u64", f32_one("[18446744073709551616]", "[0,4]")),
        ("absurd_shape_2p40_2p40", f32_one("[1099511627776,1099511627776]", "[0,4]")),
        // Fits in u64 but is far more than the file holds: no allocation may follow it.
        ("huge_shape_small_file", f32_one("[1073741824,1073741824]", "[0,4611686018427387904]")),
        ("reversed_offsets", f32_one("[1]", "[4,0]")),
        ("offset_past_u64", f32_one("[1]", "[0,18446744073709551620]")),
        ("one_offset", f32_one("[1]", "[4]")),
        ("overlapping_tensors", crafted(
            br#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
            4,
        )),
        ("gap_between_tensors", crafted(
            br#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#,
            12,
        )),
        ("metadata_not_strings", crafted(
            br#"{"__metadata__":{"k":[1]},"value":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
            4,
        )),
        ("deep_nesting", crafted(&[b"{\"x\":".repeat(1000), vec![b'1'], b"}".repeat(1000)].concat(), 0)),
    ]
}

fn seed_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/io_seeds")
}

#[test]
fn sizes_past_u64_are_an_error_in_debug_builds_too() {
    let e = io::from_bytes(&Tensor::zeros(&[1], DType::F32), &eight_tensors_past_u64()).unwrap_err();
    // The message names a tensor of the file.
    assert!(e.to_string().contains("`t"), "{e}");
}

#[test]
fn crafted_headers_are_errors_naming_the_problem() {
    let template = Tensor::zeros(&[1], DType::F32);
    for (what, bytes) in seeds() {
        let e = match io::from_bytes(&template, &bytes) {
            Err(e @ (Error::BadHeader { .. } | Error::Truncated { .. })) => e,
            other => panic!("{what}: {other:?}"),
        };
        let message = e.to_string();
        // Each error about one tensor names it.
        let names: &[&str] = match what {
            "negative_shape"
            | "float_shape"
            | "shape_past_u64"
            | "absurd_shape_2p40_2p40"
            | "reversed_offsets"
            | "offset_past_u64"
            | "one_offset"
            | "huge_shape_small_file" => &["`x`"],
            "overlapping_tensors" | "gap_between_tensors" => &["`b`"],
            _ => &[],
        };
        for n in names {
            assert!(message.contains(n), "{what}: {message}");
        }
    }
    // A header length past the file is a cut-off file; past the 100 MB limit, a bad header.
    let by_name: BTreeMap<_, _> = seeds().into_iter().collect();
    assert!(matches!(io::from_bytes(&template, &by_name["header_len_beyond_file"]), Err(Error::Truncated { .. })));
    assert!(matches!(io::from_bytes(&template, &by_name["header_len_u64_max"]), Err(Error::BadHeader { .. })));
    let huge = io::from_bytes(&template, &by_name["huge_shape_small_file"]);
    assert!(matches!(huge, Err(Error::Truncated { .. })), "{huge:?}");
}

#[test]
fn seed_files_match_the_builders_and_are_rejected() {
    let template = Tensor::zeros(&[1], DType::F32);
    let seeds = seeds();
    if std::env::var_os("COTANGENT_WRITE_IO_SEEDS").is_some() {
        std::fs::create_dir_all(seed_dir()).unwrap();
        for (what, bytes) in &seeds {
            std::fs::write(seed_dir().join(format!("{what}.safetensors")), bytes).unwrap();
        }
    }
    for (what, bytes) in &seeds {
        let path = seed_dir().join(format!("{what}.safetensors"));
        let on_disk = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(&on_disk, bytes, "{what}: the seed file differs from its builder");
    }
    let files = std::fs::read_dir(seed_dir()).unwrap().count();
    assert_eq!(files, seeds.len(), "every seed file has a builder");
    for entry in std::fs::read_dir(seed_dir()).unwrap() {
        let path = entry.unwrap().path();
        assert!(io::load(&template, &path).is_err(), "{}", path.display());
    }
}

// ---------------------------------------------------------------------------------------
// Saving: concurrent writers, stale temporaries, error paths.

/// A fresh empty directory for one test.
fn fresh_dir(name: &str) -> std::path::PathBuf {
    let dir = tmp(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The names in `dir` other than `keep`.
fn others(dir: &std::path::Path, keep: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != keep)
        .collect();
    v.sort();
    v
}

#[test]
fn concurrent_saves_to_one_path_leave_one_whole_tree() {
    const WRITERS: usize = 8;
    const ROUNDS: usize = 25;
    let dir = fresh_dir("concurrent");
    let path = dir.join("ckpt.safetensors");
    // Writer k saves three leaves filled with k; sizes differ between writers, so a file
    // mixing two writers' bytes could not even parse.
    let tree = |k: usize| {
        let n = 2000 + 300 * k;
        vec![
            Tensor::from_vec(vec![k as f32; n], &[n]),
            Tensor::from_vec(vec![k as i64; 7], &[7]),
            Tensor::from_vec(vec![k as f64; n / 2], &[n / 2]),
        ]
    };
    let template = |k: usize| tree(k).map_leaves(|t| t.zeros_like());
    for round in 0..ROUNDS {
        let barrier = std::sync::Barrier::new(WRITERS);
        let results: Vec<Result<(), Error>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..WRITERS)
                .map(|k| {
                    let (barrier, path, t) = (&barrier, &path, tree(k));
                    s.spawn(move || {
                        barrier.wait();
                        io::save(&t, path)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (k, r) in results.iter().enumerate() {
            assert!(r.is_ok(), "round {round}, writer {k}: {r:?}");
        }
        // The file holds exactly one writer's tree, every leaf of it.
        let winner = (0..WRITERS).find(|&k| io::load(&template(k), &path).is_ok_and(|back| same(&tree(k), &back)));
        assert!(winner.is_some(), "round {round}: the file is no writer's tree");
        assert_eq!(others(&dir, "ckpt.safetensors"), Vec::<String>::new(), "round {round}: temporaries left");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failed_save_leaves_no_temporary() {
    let dir = fresh_dir("failed");
    // The target is a non-empty directory: the temporary is written, the rename fails.
    let target = dir.join("ckpt.safetensors");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("inside"), b"x").unwrap();
    let e = io::save(&Tensor::scalar(1.0f32), &target).unwrap_err();
    assert!(matches!(e, Error::Io { action: "write", .. }), "{e:?}");
    assert_eq!(others(&dir, "ckpt.safetensors"), Vec::<String>::new());
    // The parent directory does not exist.
    let e = io::save(&Tensor::scalar(1.0f32), dir.join("missing/ckpt.safetensors")).unwrap_err();
    assert!(matches!(e, Error::Io { action: "write", .. }), "{e:?}");
    assert_eq!(others(&dir, "ckpt.safetensors"), Vec::<String>::new());
    // A path naming no file.
    assert!(matches!(io::save(&Tensor::scalar(1.0f32), "/"), Err(Error::Io { action: "write", .. })));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(target_os = "linux")]
#[test]
fn a_later_save_removes_temporaries_of_dead_processes() {
    let dir = fresh_dir("stale");
    let path = dir.join("ckpt.safetensors");
    // A pid above any pid_max, and the pid of a child that has exited.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead_child = child.id();
    child.wait().unwrap();
    let (me, live) = (std::process::id(), std::os::unix::process::parent_id());
    let stale = [
        format!("ckpt.safetensors.tmp.{}.0.0", 0x7fff_ffff),
        format!("ckpt.safetensors.tmp.{dead_child}.1f.3"),
        // Our pid, but another token: an earlier process that had our pid (pid 1 in a
        // restarted container).
        format!("ckpt.safetensors.tmp.{me}.0.0"),
    ];
    let kept = [
        format!("ckpt.safetensors.tmp.{live}.0.0"), // a live process may still be writing it
        "ckpt.safetensors.tmp.notes".to_string(),   // not a temporary of ours
        "other.safetensors.tmp.2147483647.0.0".to_string(), // another file's
        "ckpt.safetensors.tmp.2147483647.x.0".to_string(), // not our pattern
        "ckpt.safetensors.tmp.2147483647.0.0.1".to_string(),
        "ckpt.safetensors.tmp.2147483647.0.1f".to_string(),
        "ckpt.safetensors.tmp2147483647".to_string(),
    ];
    for name in stale.iter().chain(&kept) {
        std::fs::write(dir.join(name), b"partial").unwrap();
    }
    // A live process's temporary untouched for two days is removed too (pids are reused).
    let old_live = format!("ckpt.safetensors.tmp.{live}.1.0");
    let two_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 24 * 3600);
    std::fs::File::create(dir.join(&old_live)).unwrap().set_modified(two_days_ago).unwrap();
    io::save(&Tensor::scalar(2.0f32), &path).unwrap();
    assert_eq!(io::load(&Tensor::scalar(0.0f32), &path).unwrap().item::<f32>(), 2.0);
    let mut expected: Vec<String> = kept.to_vec();
    expected.sort();
    assert_eq!(others(&dir, "ckpt.safetensors"), expected);
    std::fs::remove_dir_all(&dir).unwrap();
}

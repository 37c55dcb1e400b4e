//! The object-store artifact mode against a real S3-compatible server (moto, started by the
//! tests on 127.0.0.1 with credential checks on).

use std::io::Read;
use std::time::{Duration, Instant};

use tuna_runners::objstore::{ObjectBlobs, ObjectStoreConfig, ObjectStoreError};
use tuna_runners::{BlobError, BlobStore, CheckProblem, Removed, StoredBlob};
use tuna_tests::moto::{self, Moto};

const TIMEOUT: Duration = Duration::from_secs(20);

fn config(moto: &Moto, url: &str) -> ObjectStoreConfig {
    ObjectStoreConfig {
        url: url.into(),
        endpoint: Some(moto.endpoint()),
        region: None,
    }
}

fn blobs(moto: &Moto, prefix: &str) -> ObjectBlobs {
    let cfg = config(moto, &format!("s3://{}/{prefix}", moto::BUCKET));
    ObjectBlobs::with_env("cloud", &cfg, &moto.env()).unwrap()
}

/// `n` pseudo-random bytes from `seed`.
fn data(seed: &str, n: usize) -> Vec<u8> {
    let mut out = vec![0; n];
    blake3::Hasher::new()
        .update(seed.as_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

fn hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

fn read_all(store: &ObjectBlobs, hex: &str) -> Vec<u8> {
    let mut session = store.session().unwrap();
    let mut out = Vec::new();
    session.open(hex).unwrap().read_to_end(&mut out).unwrap();
    out
}

/// A source that must not be read.
struct Untouchable;

impl Read for Untouchable {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        panic!("the source of a blob already stored was read")
    }
}

#[test]
fn blobs_go_in_and_out_and_gc_removes_them() {
    let moto = Moto::start();
    let store = blobs(&moto, "team/exp");
    let small = data("small", 1000);
    let empty: Vec<u8> = Vec::new();
    let (a, e, absent) = (hex(&small), hex(&empty), hex(b"never stored"));

    assert_eq!(
        store
            .missing(&[a.clone(), absent.clone()], TIMEOUT)
            .unwrap(),
        vec![a.clone(), absent.clone()]
    );
    let mut s = store.session().unwrap();
    assert_eq!(s.put(&a, false, &mut small.as_slice()).unwrap(), 1000);
    assert_eq!(s.put(&e, true, &mut empty.as_slice()).unwrap(), 0);
    // Already there: kept, the source is not read.
    assert_eq!(s.put(&a, false, &mut Untouchable).unwrap(), 0);
    assert!(s.has(&a).unwrap() && s.has(&e).unwrap() && !s.has(&absent).unwrap());
    assert_eq!(
        store
            .missing(&[a.clone(), absent.clone(), e.clone()], TIMEOUT)
            .unwrap(),
        vec![absent.clone()]
    );
    // Many names at once: one listing instead of a HEAD each.
    let mut many: Vec<String> = (0..1500)
        .map(|i| hex(format!("absent {i}").as_bytes()))
        .collect();
    many.push(a.clone());
    let lacking = store.missing(&many, TIMEOUT).unwrap();
    assert_eq!(lacking, many[..1500].to_vec());
    assert_eq!(read_all(&store, &a), small);
    assert_eq!(read_all(&store, &e), empty);
    match s.open(&absent) {
        Err(BlobError::Missing { runner, hex }) => {
            assert_eq!((runner.as_str(), hex), ("cloud", absent.clone()))
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a blob never stored opened"),
    }
    assert!(store.key(&a).ends_with(&format!("team/exp/cas/{a}")));

    let mut listed = store.list(TIMEOUT).unwrap();
    listed.sort_by(|x, y| x.hex.cmp(&y.hex));
    let mut expected = vec![
        StoredBlob {
            hex: a.clone(),
            size: 1000,
        },
        StoredBlob {
            hex: e.clone(),
            size: 0,
        },
    ];
    expected.sort_by(|x, y| x.hex.cmp(&y.hex));
    assert_eq!(listed, expected);

    // gc: a HEAD for each name, then (the blob put back) one listing for many names.
    for names in [vec![a.clone(), absent.clone()], many] {
        s.put(&a, false, &mut small.as_slice()).unwrap();
        let removed = store.remove(&names, TIMEOUT).unwrap();
        assert_eq!(
            removed,
            Removed {
                blobs: 1,
                bytes: 1000
            }
        );
        let left = store.list(TIMEOUT).unwrap();
        assert_eq!(
            left,
            vec![StoredBlob {
                hex: e.clone(),
                size: 0
            }]
        );
    }
}

#[test]
fn a_blob_bigger_than_a_part_goes_up_in_parts_and_comes_back_whole() {
    let moto = Moto::start();
    let store = blobs(&moto, "parts");
    // Two and a half parts: a multipart upload, and ranged reads across part boundaries.
    let big = data("big", 20 << 20);
    let h = hex(&big);
    let mut s = store.session().unwrap();
    assert_eq!(s.put(&h, false, &mut big.as_slice()).unwrap(), 20 << 20);
    let back = read_all(&store, &h);
    assert!(back == big, "the blob came back different");
    assert_eq!(
        store.list(TIMEOUT).unwrap(),
        vec![StoredBlob {
            hex: h,
            size: 20 << 20
        }]
    );
}

#[test]
fn content_that_does_not_hash_to_its_name_never_lands() {
    let moto = Moto::start();
    let store = blobs(&moto, "corrupt");
    let mut s = store.session().unwrap();
    for size in [100, 12 << 20] {
        let content = data("content", size);
        let claimed = hex(&data("other", size));
        match s.put(&claimed, false, &mut content.as_slice()) {
            Err(BlobError::Corrupt { hex, got }) => {
                assert_eq!((hex, got), (claimed.clone(), self::hex(&content)));
            }
            other => panic!("a {size}-byte corrupt upload gave {other:?}"),
        }
        assert!(
            !s.has(&claimed).unwrap(),
            "a {size}-byte corrupt blob landed"
        );
    }
    assert_eq!(store.list(TIMEOUT).unwrap(), vec![]);
    // A source that fails halfway aborts the upload too.
    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("disk on fire"));
            }
            let n = buf.len().min(self.0);
            buf[..n].fill(7);
            self.0 -= n;
            Ok(n)
        }
    }
    let claimed = hex(b"whatever");
    let e = s.put(&claimed, false, &mut Failing(10 << 20)).unwrap_err();
    assert!(e.to_string().contains("disk on fire"), "{e}");
    assert!(!s.has(&claimed).unwrap());
}

#[test]
fn prefixes_in_one_bucket_are_separate_stores() {
    let moto = Moto::start();
    let a = blobs(&moto, "team-a");
    let a_deeper = blobs(&moto, "team-a/nested");
    let b = blobs(&moto, "team-ab");
    let bytes = data("shared", 4096);
    let h = hex(&bytes);
    a.session()
        .unwrap()
        .put(&h, false, &mut bytes.as_slice())
        .unwrap();

    for other in [&a_deeper, &b] {
        assert_eq!(
            other.missing(std::slice::from_ref(&h), TIMEOUT).unwrap(),
            vec![h.clone()]
        );
        assert_eq!(other.list(TIMEOUT).unwrap(), vec![]);
        // gc of the other store leaves this one's blob alone.
        let removed = other.remove(std::slice::from_ref(&h), TIMEOUT).unwrap();
        assert_eq!(removed, Removed::default());
    }
    assert!(a.session().unwrap().has(&h).unwrap());
    assert_eq!(a.list(TIMEOUT).unwrap().len(), 1);
}

#[test]
fn check_names_the_runner_and_what_to_fix() {
    let moto = Moto::start();
    let good = blobs(&moto, "checked");
    let detail = good.check(TIMEOUT).unwrap();
    assert!(detail.contains("s3://tuna-artifacts/checked"), "{detail}");

    let expect = |e: ObjectStoreError, problem: CheckProblem, words: &[&str]| {
        let text = e.to_string();
        eprintln!("{text}");
        assert_eq!(e.problem(), problem, "{text}");
        assert!(text.contains("runner `cloud`"), "{text}");
        for w in words {
            assert!(text.contains(w), "`{w}` not in: {text}");
        }
    };

    // A bucket nobody created.
    let cfg = config(&moto, "s3://no-such-bucket/x");
    let missing = ObjectBlobs::with_env("cloud", &cfg, &moto.env()).unwrap();
    expect(
        missing.check(TIMEOUT).unwrap_err(),
        CheckProblem::Broken,
        &[
            "bucket `no-such-bucket` does not exist",
            "create it",
            "artifacts.url",
        ],
    );

    // A wrong secret, then a key the server does not know.
    let cfg = config(&moto, &format!("s3://{}/x", moto::BUCKET));
    for (key, secret, code) in [
        (
            moto.access_key.clone(),
            "not-the-secret".to_owned(),
            "SignatureDoesNotMatch",
        ),
        (
            "AKIAUNKNOWNKEY000000".to_owned(),
            moto.secret_key.clone(),
            "InvalidAccessKeyId",
        ),
    ] {
        let env = move |k: &str| match k {
            "AWS_ACCESS_KEY_ID" => Some(key.clone()),
            "AWS_SECRET_ACCESS_KEY" => Some(secret.clone()),
            _ => None,
        };
        let refused = ObjectBlobs::with_env("cloud", &cfg, &env).unwrap();
        let e = refused.check(TIMEOUT).unwrap_err();
        expect(
            e,
            CheckProblem::AuthFailed,
            &[code, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
        );
        // The orchestrator's calls fail with the same message, not as "missing".
        let e = refused.missing(&[hex(b"x")], TIMEOUT).unwrap_err();
        assert!(matches!(e, BlobError::Other(_)), "{e}");
    }

    // No keys in the environment: the machine's own identity is tried, and is no good here
    // (refused, or its metadata service does not answer, depending on the machine).
    let nothing = |_: &str| None;
    let anonymous = ObjectBlobs::with_env("cloud", &cfg, &nothing).unwrap();
    let e = anonymous.check(TIMEOUT).unwrap_err();
    let problem = e.problem();
    assert!(
        matches!(
            problem,
            CheckProblem::AuthFailed | CheckProblem::Unreachable
        ),
        "{e}"
    );
    expect(e, problem, &["no AWS_ACCESS_KEY_ID", "tuna's environment"]);

    // Nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = ObjectStoreConfig {
        url: format!("s3://{}", moto::BUCKET),
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        region: Some("us-east-1".into()),
    };
    let down = ObjectBlobs::with_env("cloud", &cfg, &moto.env()).unwrap();
    let started = Instant::now();
    expect(
        down.check(TIMEOUT).unwrap_err(),
        CheckProblem::Unreachable,
        &[
            "does not answer",
            "artifacts.endpoint",
            &format!("127.0.0.1:{port}"),
        ],
    );
    let e = down
        .missing(&[hex(b"x")], Duration::from_secs(3))
        .unwrap_err();
    assert!(matches!(e, BlobError::Unreachable(_)), "{e}");
    assert!(started.elapsed() < TIMEOUT, "took {:?}", started.elapsed());
}

/// The orchestrator calls stores from `spawn_blocking` on its runtime: the same round trip
/// works there (the store's own runtime does the requests).
#[test]
fn works_from_blocking_threads_of_a_tokio_runtime() {
    let moto = Moto::start();
    let store = std::sync::Arc::new(blobs(&moto, "from-tokio"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bytes = data("tokio", 10_000);
    let h = hex(&bytes);
    let back = rt.block_on(async {
        let store = std::sync::Arc::clone(&store);
        let h = h.clone();
        tokio::task::spawn_blocking(move || {
            let mut s = store.session().unwrap();
            s.put(&h, false, &mut bytes.as_slice()).unwrap();
            let mut out = Vec::new();
            s.open(&h).unwrap().read_to_end(&mut out).unwrap();
            out
        })
        .await
        .unwrap()
    });
    assert_eq!(hex(&back), h);
    // Even called on a runtime's own thread (which it blocks, as any blocking call does), a
    // read does not panic or hang: it waits on the store's runtime, not the caller's.
    let again = rt.block_on(async {
        let mut out = Vec::new();
        let mut s = store.session().unwrap();
        s.open(&h).unwrap().read_to_end(&mut out).unwrap();
        out
    });
    assert_eq!(hex(&again), h);
}

#[test]
fn attempt_records_are_written_whole_listed_and_removed_with_their_folder() {
    use tuna_runners::{AttemptFolders, RemoteAttempt};
    let moto = Moto::start();
    let store = blobs(&moto, "team/exp");
    assert_eq!(store.get_object("runs/r1/train/1/exit.json").unwrap(), None);
    for (rel, body) in [
        ("runs/r1/train/1/job.json", "{}"),
        ("runs/r1/train/1/exit.json", "{\"code\": 0}"),
        ("runs/r1/train/2/job.json", "{}"),
        ("runs/r2/eval/1/job.json", "{}"),
    ] {
        store.put_object(rel, body.as_bytes().to_vec()).unwrap();
    }
    assert_eq!(
        store.get_object("runs/r1/train/1/exit.json").unwrap(),
        Some(b"{\"code\": 0}".to_vec())
    );
    // Names that would leave the attempt's place are refused.
    for bad in ["../x", "runs//a", "/abs", ""] {
        assert!(store.put_object(bad, Vec::new()).is_err(), "{bad}");
    }
    let at = |run: &str, step: &str, attempt: &str| RemoteAttempt {
        run: run.into(),
        step: step.into(),
        attempt: attempt.into(),
    };
    assert_eq!(
        store.attempts(TIMEOUT).unwrap(),
        vec![
            at("r1", "train", "1"),
            at("r1", "train", "2"),
            at("r2", "eval", "1")
        ]
    );
    let gone = store
        .remove_attempts(&[at("r1", "train", "1"), at("r9", "x", "1")], TIMEOUT)
        .unwrap();
    assert_eq!(gone, 1);
    assert_eq!(
        store.attempts(TIMEOUT).unwrap(),
        vec![at("r1", "train", "2"), at("r2", "eval", "1")]
    );
    assert_eq!(store.get_object("runs/r1/train/1/exit.json").unwrap(), None);
    // Another prefix of the same bucket sees none of them.
    assert!(
        blobs(&moto, "team/other")
            .attempts(TIMEOUT)
            .unwrap()
            .is_empty()
    );
}

//! Bad input, part 3: a full disk, on the JSONL sink's file system and on
//! the state directory's (small tmpfs mounts: the tests run as root and
//! unmount in a drop guard). The run must stop with exit code 1 and an
//! `error:` saying no space is left, acknowledge nothing that is not
//! durable (the stored offset and the slot stay at or behind what is on
//! disk), and after space is freed the next run delivers every row exactly
//! once.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness::{changes, read_jsonl, Outflow, TestDb};
use crate::intact::{Error, Image};

/// A tmpfs mounted on a fresh directory, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs on {} failed (these tests need root): {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir: dir.to_path_buf() }
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.dir)
            .status()
            .expect("running mount");
        assert!(status.success(), "resizing the tmpfs on {}", self.dir.display());
    }

    /// Writes `name` until the file system is full.
    fn fill(&self, name: &str) {
        let mut f = std::fs::File::create(self.dir.join(name)).unwrap();
        for chunk in [65536, 4096, 512, 1] {
            let buf = vec![0u8; chunk];
            while f.write_all(&buf).and_then(|_| f.flush()).is_ok() {}
        }
        let _ = f.sync_all();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

async fn confirmed_flush_lsn(db: &TestDb) -> u64 {
    let rows = db
        .query(&format!(
            "SELECT (confirmed_flush_lsn - '0/0')::bigint FROM pg_replication_slots WHERE slot_name = '{}'",
            db.name()
        ))
        .await;
    rows[0].get::<_, i64>(0) as u64
}

/// The LSN of a stored `lsn:X/Y[:N]` position.
fn position_lsn(offset: &Value) -> u64 {
    let p = offset["position"].as_str().unwrap_or_else(|| panic!("no position in {offset}"));
    let lsn = p.strip_prefix("lsn:").unwrap().split(':').next().unwrap();
    let (hi, lo) = lsn.split_once('/').unwrap();
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

fn offset(outflow_state: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(outflow_state.join("sinks/events.json")).unwrap()).unwrap()
}

/// Inserts ids `from..=to` with ~700 bytes of payload, 100 rows per transaction.
async fn insert(db: &TestDb, from: i64, to: i64) {
    let mut next = from;
    while next <= to {
        let end = (next + 99).min(to);
        db.execute(&format!("INSERT INTO t SELECT g, repeat('x', 700) FROM generate_series({next}, {end}) g")).await;
        next = end + 1;
    }
}

fn ids(events: &[Value]) -> Vec<i64> {
    changes(events, "t").iter().map(|e| e["after"]["id"].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn disk_full_on_the_jsonl_sink_stops_and_a_rerun_delivers_everything_once() {
    let db = TestDb::create("disk_full_sink").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let base = Outflow::new(&db, &["public.t"]);
    let fs = Tmpfs::mount(&base.state_dir().with_file_name("sinkfs"), "1m");
    let out_path = fs.dir.join("events.jsonl");
    let text = base.config_text().replace(&*base.out_path().to_string_lossy(), &out_path.to_string_lossy());
    let outflow = base.raw_config(text);
    outflow.run_until_caught_up().await.assert_success();

    insert(&db, 1, 3000).await; // ~3 MB of JSON for a 1 MB file system
    let out = outflow.run_until_caught_up().await;
    let error = Error::of(&out, 1);
    error.names(&["No space left on device", &out_path.to_string_lossy()]);
    assert!(error.hint.contains("free space"), "{}", error.hint);

    // Nothing acknowledged past what is durable: the stored length holds
    // whole lines, and the slot is not past the stored position.
    let stored = offset(&outflow.state_dir());
    let len = stored["checkpoint"]["len"].as_u64().unwrap() as usize;
    let bytes = std::fs::read(&out_path).unwrap();
    assert!(bytes.len() >= len, "the file is shorter ({}) than the stored length {len}", bytes.len());
    let committed = &bytes[..len];
    assert!(committed.is_empty() || committed.ends_with(b"\n"), "the stored length cuts a line");
    let delivered: Vec<Value> = committed
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let got = ids(&delivered);
    assert_eq!(got, (1..=got.len() as i64).collect::<Vec<_>>(), "the committed part is a prefix of the rows");
    assert!(got.len() < 3000, "everything fit: the file system was not full");
    assert!(confirmed_flush_lsn(&db).await <= position_lsn(&stored), "the slot is past the stored offset {stored}");

    fs.resize("16m");
    outflow.run_until_caught_up().await.assert_success();
    assert_eq!(ids(&read_jsonl(&out_path)), (1..=3000).collect::<Vec<_>>(), "every row exactly once, in order");
    drop(fs);
    db.cleanup().await;
}

#[tokio::test]
async fn disk_full_on_the_state_directory_stops_with_state_intact_and_a_rerun_delivers_everything_once() {
    let db = TestDb::create("disk_full_state").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let base = Outflow::new(&db, &["public.t"]);
    let fs = Tmpfs::mount(&base.state_dir().with_file_name("statefs"), "1m");
    let state_dir = fs.dir.join("state");
    let text = base.config_text().replace(&*base.state_dir().to_string_lossy(), &state_dir.to_string_lossy());
    let outflow = base.raw_config(text);
    outflow.run_until_caught_up().await.assert_success();
    insert(&db, 1, 1).await;
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;

    fs.fill("filler");
    insert(&db, 2, 500).await;
    let before = Image::take(&[&state_dir]);
    let lsn = confirmed_flush_lsn(&db).await;
    let out = outflow.run_until_caught_up().await;
    let error = Error::of(&out, 1);
    error.names(&["No space left on device", &state_dir.to_string_lossy()]);
    assert!(error.hint.contains("free space"), "{}", error.hint);
    before.assert_unchanged(&Image::take(&[&state_dir]));
    assert_eq!(confirmed_flush_lsn(&db).await, lsn, "the slot moved while no offset could be stored");

    std::fs::remove_file(fs.dir.join("filler")).unwrap();
    outflow.run_until_caught_up().await.assert_success();
    assert_eq!(ids(&outflow.events()), (1..=500).collect::<Vec<_>>(), "every row exactly once, in order");
    drop(fs);
    db.cleanup().await;
}

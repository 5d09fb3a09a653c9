//! Proof that a failed run left things as they were: [`Image`] records every
//! file under some roots (path → bytes) and [`Image::assert_unchanged`]
//! names each file that changed, appeared or disappeared since; [`Error`]
//! splits a failed run's stderr into its `error:` and `hint:` lines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::harness::Outcome;

/// The bytes of every file under some roots (`LOCK` files excepted: each
/// run that takes the lock writes its pid there).
#[derive(Debug, PartialEq)]
pub struct Image(BTreeMap<PathBuf, Vec<u8>>);

impl Image {
    /// Files under each of `roots` (a root may be a single file, or missing).
    pub fn take(roots: &[&Path]) -> Image {
        let mut files = BTreeMap::new();
        for root in roots {
            let mut stack = vec![root.to_path_buf()];
            while let Some(path) = stack.pop() {
                if path.is_dir() {
                    for entry in std::fs::read_dir(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
                    {
                        stack.push(entry.unwrap().path());
                    }
                } else if path.exists() && path.file_name().is_some_and(|n| n != "LOCK") {
                    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
                    files.insert(path, bytes);
                }
            }
        }
        Image(files)
    }

    pub fn files(&self) -> usize {
        self.0.len()
    }

    /// Panics naming every file that differs between `self` and `now`.
    #[track_caller]
    pub fn assert_unchanged(&self, now: &Image) {
        let mut diffs = Vec::new();
        for (path, bytes) in &self.0 {
            match now.0.get(path) {
                None => diffs.push(format!("{} was removed", path.display())),
                Some(b) if b != bytes => diffs.push(format!(
                    "{} changed ({} bytes → {} bytes): {:?}",
                    path.display(),
                    bytes.len(),
                    b.len(),
                    String::from_utf8_lossy(&b[..b.len().min(300)])
                )),
                Some(_) => {}
            }
        }
        for path in now.0.keys().filter(|p| !self.0.contains_key(*p)) {
            diffs.push(format!("{} appeared", path.display()));
        }
        assert!(diffs.is_empty(), "the failed run changed state:\n{}", diffs.join("\n"));
    }
}

/// A clean failure's two lines.
pub struct Error {
    pub error: String,
    pub hint: String,
}

impl Error {
    /// Asserts `out` exited with `code`, without a panic, its stderr ending
    /// in an `error: ` line directly followed by a `hint: ` line (log lines
    /// may come before them), and returns both.
    #[track_caller]
    pub fn of(out: &Outcome, code: i32) -> Error {
        assert_eq!(out.code, Some(code), "exit code; stderr:\n{}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "outflow panicked:\n{}", out.stderr);
        let lines: Vec<&str> = out.stderr.lines().collect();
        let i = lines
            .iter()
            .position(|l| l.starts_with("error: "))
            .unwrap_or_else(|| panic!("no `error: ` line; stderr:\n{}", out.stderr));
        let hint = lines
            .get(i + 1)
            .filter(|l| l.starts_with("hint: "))
            .unwrap_or_else(|| panic!("no `hint: ` after the error; stderr:\n{}", out.stderr));
        assert_eq!(i + 2, lines.len(), "lines after the hint; stderr:\n{}", out.stderr);
        Error { error: lines[i].to_string(), hint: hint.to_string() }
    }

    /// Asserts the error line contains each of `words`.
    #[track_caller]
    pub fn names(&self, words: &[&str]) -> &Error {
        for w in words {
            assert!(self.error.contains(w), "the error should name {w:?}: {}\n{}", self.error, self.hint);
        }
        self
    }
}

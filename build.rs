//! Stamps the binary with the git revision it was built from, for
//! `outflow --version`: `OUTFLOW_GIT_REVISION` from the environment (for
//! packagers building outside a checkout), else `git rev-parse`, else
//! "unknown"; `-dirty` when tracked files differ from that revision.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=OUTFLOW_GIT_REVISION");
    let revision = std::env::var("OUTFLOW_GIT_REVISION").ok().filter(|r| !r.is_empty()).or_else(|| {
        // Rebuild when HEAD moves (a commit, a checkout) or the index changes.
        for path in ["HEAD", "index"] {
            if let Some(p) = git(&["rev-parse", "--git-path", path]) {
                println!("cargo:rerun-if-changed={p}");
            }
        }
        if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]).and_then(|r| git(&["rev-parse", "--git-path", &r])) {
            println!("cargo:rerun-if-changed={r}");
        }
        let rev = git(&["rev-parse", "--short=12", "HEAD"])?;
        let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
        Some(if dirty { format!("{rev}-dirty") } else { rev })
    });
    println!("cargo:rustc-env=OUTFLOW_GIT_REVISION={}", revision.as_deref().unwrap_or("unknown"));
}

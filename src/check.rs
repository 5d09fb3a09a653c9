//! `outflow check`: a preflight of the config, the source server (each
//! source's own `check.rs`) and the sinks. Every item prints ✓ or ✗; each
//! ✗ carries the exact SQL or setting that fixes it. Exit code 1 when
//! anything failed.

use std::path::Path;

use crate::config::{Config, SnapshotMode};
use crate::error::{Error, ErrorClass, Result};
use crate::report::Checklist;

pub async fn check(config_path: &Path) -> Result<()> {
    let config = Config::load(config_path)?;
    println!("✓ config {} is valid", config_path.display());
    check_config(&config).await
}

/// The checks of a loaded config (`outflow init` runs them on the config it
/// wrote).
pub async fn check_config(config: &Config) -> Result<()> {
    let mut report = Checklist::default();
    let snapshots = config.snapshot.mode != SnapshotMode::Never;
    config.source.factory().preflight(snapshots, &mut report).await?;
    if !config.transforms.is_empty() {
        match crate::cli::check_transforms(config).await {
            Ok(n) => report.item(true, &format!("the transforms fit the {n} captured table(s)"), ""),
            Err(e) => report.item(false, &e.message, e.hint.as_deref().unwrap_or("fix the [[transform]]")),
        }
    }
    check_sinks(config, &mut report).await;
    if report.failed > 0 {
        return Err(Error {
            class: ErrorClass::Fatal,
            message: format!("{} check(s) failed", report.failed),
            hint: Some("apply the fixes above and run `outflow check` again".into()),
        });
    }
    println!("all checks passed");
    Ok(())
}

async fn check_sinks(config: &Config, report: &mut Checklist) {
    for probe in crate::check_sinks::preflight(&config.sinks).await {
        report.item(probe.ok, &probe.what, &probe.fix);
    }
    let state = &config.state.dir;
    let base = if state.exists() {
        state.as_path()
    } else {
        state.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
    };
    report.item(
        writable_dir(base),
        &format!("state directory {} is writable", state.display()),
        &format!("create {} and make it writable for this user", state.display()),
    );
}

fn writable_dir(dir: &Path) -> bool {
    let probe = dir.join(format!(".outflow-check-{}", std::process::id()));
    let ok = std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

//! `outflow init URL`: inspects a PostgreSQL or MySQL/MariaDB database
//! (`pg.rs`, `mysql.rs`), prints what it found to stderr (server settings
//! and privileges with their fixes, every table with its key, rows and
//! size: `inspect.rs`), writes a commented `outflow.toml` for the chosen
//! tables (`render.rs`; the URL's password as `${OUTFLOW_SOURCE_PASSWORD}`,
//! `url.rs`), and runs `outflow check` on it.
//!
//! Without `--tables`, every table whose rows can be told apart (a primary
//! key, or on PostgreSQL a replica identity) is captured; the others are
//! left out with the reason and the fix. An existing file is never
//! replaced without `--force`.

mod inspect;
mod mysql;
mod pg;
mod render;
mod url;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::ValueEnum;

pub use render::SinkKind;

use crate::config::Config;
use crate::error::{Error, Result};
use inspect::Inspection;
use url::{Kind, SourceUrl, PASSWORD_VAR};

/// How long the inspection may take (an address that drops packets
/// otherwise waits for the system's TCP timeout).
const INSPECT_TIMEOUT: Duration = Duration::from_secs(30);

/// `outflow init`'s arguments.
pub struct InitArgs {
    pub url: String,
    /// `schema.table` (or a table name found in one schema only).
    pub tables: Vec<String>,
    pub output: PathBuf,
    pub sink: SinkKind,
    pub name: Option<String>,
    pub force: bool,
}

pub async fn init(args: InitArgs) -> Result<()> {
    let source = SourceUrl::parse(&args.url)?;
    refuse_existing(&args.output, args.force)?;
    let dir = config_dir(&args.output)?;
    let inspection = match tokio::time::timeout(INSPECT_TIMEOUT, inspect(&source)).await {
        Ok(result) => result.map_err(for_init)?,
        Err(_) => {
            return Err(Error::fatal(
                format!("the server in the URL did not answer within {}s", INSPECT_TIMEOUT.as_secs()),
                "check the URL's host and port, and that no firewall drops the connection",
            ))
        }
    };
    let tables = choose_tables(&inspection, &args.tables);
    eprint!("{}", inspection.report(tables.as_ref().ok().map(|t| t.as_slice())));
    let tables = tables?;
    let left_out: Vec<String> =
        inspection.tables.iter().map(|t| t.qualified()).filter(|t| !tables.contains(t)).collect();

    let name = match &args.name {
        Some(name) => name.clone(),
        None => default_name(&inspection.database),
    };
    let text = render::config(&render::Plan {
        name: &name,
        source: &source,
        tables: &tables,
        left_out: &left_out,
        slot: &slot_name(&name),
        server_id: server_id(&inspection.location, &name),
        dir: &dir,
        sink: args.sink,
        location: &inspection.location,
    });
    // What `run` will read, checked before anything is written.
    let config = Config::parse(&source.with_password(&text), &args.output.display().to_string())?;
    write(&args.output, &text, args.force)?;
    let sink = args.sink.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default();
    eprintln!("\nwrote {} ({} table(s), a {sink} sink)", args.output.display(), tables.len());
    if source.password.is_some() {
        eprintln!(
            "the URL's password is not in the file: outflow reads it from ${{{PASSWORD_VAR}}}; \
             export {PASSWORD_VAR}='<the password as written in the URL>' before `outflow run`"
        );
    }
    eprintln!("running `outflow check -c {}`:", args.output.display());
    match crate::check::check_config(&config).await {
        Ok(()) => {
            eprintln!("next: outflow run -c {}", args.output.display());
            Ok(())
        }
        Err(e) => Err(Error::fatal(
            format!("{} was written, but {}", args.output.display(), e.message),
            format!("apply the fixes above, then run `outflow check -c {}`", args.output.display()),
        )),
    }
}

async fn inspect(source: &SourceUrl) -> Result<Inspection> {
    match source.kind {
        Kind::Postgres => pg::inspect(&source.url).await,
        Kind::Mysql => mysql::inspect(&source.url).await,
    }
}

/// Refuses a server nobody answers on with the operating system's reason
/// (the drivers' own messages say only "error connecting to server").
pub(super) async fn reachable(host: &str, port: u16, kind: &str) -> Result<()> {
    match tokio::net::TcpStream::connect((host, port)).await {
        Ok(_) => Ok(()),
        Err(e) => Err(Error::fatal(
            format!("cannot connect to {kind} at {host}:{port}: {e}"),
            "check the URL's host and port, and that the server is running and accepts TCP connections",
        )),
    }
}

/// The sources' errors name `[source] url`; here it is the URL argument.
fn for_init(mut e: Error) -> Error {
    let reword = |s: &str| s.replace("the [source] url", "the URL").replace("[source] url", "the URL");
    e.message = reword(&e.message);
    e.hint = e.hint.map(|h| reword(&h));
    e
}

fn refuse_existing(output: &Path, force: bool) -> Result<()> {
    if output.exists() && !force {
        return Err(Error::config(
            format!("{} already exists; outflow init does not replace it", output.display()),
            "pass --force to replace it, or -o to write another file",
        ));
    }
    Ok(())
}

/// The config file's directory, absolute: the state and the JSONL file go
/// next to it.
fn config_dir(output: &Path) -> Result<PathBuf> {
    let parent = output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    parent.canonicalize().map_err(|e| {
        Error::config(
            format!("cannot write {}: directory {}: {e}", output.display(), parent.display()),
            "create the directory first, or pass -o with a path in an existing one",
        )
    })
}

fn write(output: &Path, text: &str, force: bool) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    match force {
        true => options.create(true).truncate(true),
        false => options.create_new(true),
    };
    let written = options.open(output).and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()));
    written.map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => Error::config(
            format!("{} already exists; outflow init does not replace it", output.display()),
            "pass --force to replace it, or -o to write another file",
        ),
        _ => Error::fatal(format!("cannot write {}: {e}", output.display()), "pass -o with a path this user may write"),
    })
}

/// The `[source] tables`: those `--tables` names (each must exist), or
/// every table whose rows can be told apart.
fn choose_tables(inspection: &Inspection, wanted: &[String]) -> Result<Vec<String>> {
    let place = match inspection.database.as_str() {
        "" => format!("the server at {}", inspection.location),
        db => format!("database {db}"),
    };
    if wanted.is_empty() {
        let keyed: Vec<String> =
            inspection.tables.iter().filter(|t| t.captured_by_default()).map(|t| t.qualified()).collect();
        if keyed.is_empty() {
            return Err(match inspection.tables.is_empty() {
                true => Error::config(
                    format!("{place} has no tables to capture"),
                    "create the tables first, or give the URL of the database that has them",
                ),
                false => Error::config(
                    format!("no table in {place} has a primary key"),
                    "pass --tables with the tables to capture anyway (see above what that means for them)",
                ),
            });
        }
        return Ok(keyed);
    }
    let mut chosen = Vec::new();
    for want in wanted.iter().flat_map(|w| w.split(',')).map(str::trim).filter(|w| !w.is_empty()) {
        let found: Vec<String> = inspection
            .tables
            .iter()
            .filter(|t| t.qualified() == want || (!want.contains('.') && t.name == want))
            .map(|t| t.qualified())
            .collect();
        match found.as_slice() {
            [one] => {
                if !chosen.contains(one) {
                    chosen.push(one.clone());
                }
            }
            [] => {
                let known: Vec<String> = inspection.tables.iter().take(10).map(|t| t.qualified()).collect();
                return Err(Error::config(
                    format!("table {want} does not exist in {place}"),
                    match known.is_empty() {
                        true => "it has no tables yet".to_string(),
                        false => format!("its tables: {}", known.join(", ")),
                    },
                ));
            }
            many => {
                return Err(Error::config(
                    format!("table {want} is in more than one schema: {}", many.join(", ")),
                    "name it as schema.table",
                ))
            }
        }
    }
    Ok(chosen)
}

/// The pipeline's name from the database's: letters, digits and `_`.
fn default_name(database: &str) -> String {
    let name: String =
        database.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    match name.trim_matches('_') {
        "" => "outflow".to_string(),
        n => n.to_string(),
    }
}

/// The slot (and publication) name: the pipeline's, prefixed `outflow_`,
/// within PostgreSQL's rules (lowercase letters, digits, `_`; 63 bytes).
fn slot_name(name: &str) -> String {
    let clean = default_name(name);
    let slot = if clean.starts_with("outflow") { clean } else { format!("outflow_{clean}") };
    slot.chars().take(63).collect()
}

/// A MySQL replica id from the server, database and pipeline name (FNV-1a):
/// the same for the same pipeline, different between pipelines, and far
/// from the small ids servers and replicas are usually given.
fn server_id(location: &str, name: &str) -> u32 {
    let hash =
        format!("{location} {name}").bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    100_000 + hash % 2_000_000_000
}

#[cfg(test)]
mod tests {
    use super::inspect::{Key, TableInfo};
    use super::*;

    fn inspection(tables: &[(&str, &str, bool)]) -> Inspection {
        Inspection {
            kind: Kind::Postgres,
            server: "PostgreSQL 15".into(),
            location: "h:5432/app".into(),
            user: "cdc".into(),
            database: "app".into(),
            findings: Vec::new(),
            tables: tables
                .iter()
                .map(|(schema, name, keyed)| TableInfo {
                    schema: schema.to_string(),
                    name: name.to_string(),
                    key: if *keyed { Key::Primary(vec!["id".into()]) } else { Key::None },
                    rows: None,
                    rows_exact: false,
                    bytes: None,
                    selectable: true,
                })
                .collect(),
        }
    }

    #[test]
    fn tables_default_to_the_keyed_ones_and_tables_must_exist() {
        let i = inspection(&[("public", "orders", true), ("public", "log", false), ("app", "orders", true)]);
        assert_eq!(choose_tables(&i, &[]).unwrap(), ["public.orders", "app.orders"]);
        assert_eq!(choose_tables(&i, &["log".into(), "public.log".into()]).unwrap(), ["public.log"]);
        assert_eq!(choose_tables(&i, &["app.orders,public.log".into()]).unwrap(), ["app.orders", "public.log"]);
        let e = choose_tables(&i, &["orders".into()]).unwrap_err();
        assert!(e.message.contains("more than one schema"), "{}", e.message);
        let e = choose_tables(&i, &["public.nope".into()]).unwrap_err();
        assert_eq!(e.message, "table public.nope does not exist in database app");
        let e = choose_tables(&inspection(&[("public", "log", false)]), &[]).unwrap_err();
        assert_eq!(e.message, "no table in database app has a primary key");
        assert!(choose_tables(&inspection(&[]), &[]).unwrap_err().message.contains("has no tables"));
    }

    #[test]
    fn names_follow_the_database() {
        assert_eq!(default_name("Shop-EU"), "shop_eu");
        assert_eq!(default_name(""), "outflow");
        assert_eq!(slot_name("shop_eu"), "outflow_shop_eu");
        assert_eq!(slot_name("outflow"), "outflow");
        assert_eq!(slot_name(&"x".repeat(80)).len(), 63);
        assert_ne!(server_id("h:3306/a", "a"), server_id("h:3306/b", "b"));
        assert!(server_id("h:3306/a", "a") >= 100_000);
    }
}

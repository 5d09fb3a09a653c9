//! PostgreSQL's snapshot watermarks: non-transactional logical decoding
//! messages the snapshot reader (`snapshot.rs`) writes around each chunk,
//! and their handling on the stream side: a low watermark opens the chunk's
//! window, a high one closes it and puts the chunk in its place (the
//! algorithm is in `src/snapshot/`).

use outflow_model::{LogicalMessage, Position, SourceInfo, StreamItem, TableId};

use crate::error::Result;
use crate::snapshot::Windows;

/// Prefix of the logical decoding messages used as watermarks.
pub const WATERMARK_PREFIX: &str = "outflow.watermark";

/// A watermark's content: `<run>:<low|high>:<chunk id>:<schema>.<table>`
/// (`run` has no colon; the table name, last, may).
pub fn watermark(run: &str, high: bool, chunk: u64, table: &TableId) -> String {
    format!("{run}:{}:{chunk}:{table}", if high { "high" } else { "low" })
}

struct Watermark<'a> {
    run: &'a str,
    high: bool,
    chunk: u64,
    table: &'a str,
}

fn parse_watermark(content: &[u8]) -> Option<Watermark<'_>> {
    let text = std::str::from_utf8(content).ok()?;
    let mut parts = text.splitn(4, ':');
    let run = parts.next()?;
    let high = match parts.next()? {
        "high" => true,
        "low" => false,
        _ => return None,
    };
    let chunk = parts.next()?.parse().ok()?;
    Some(Watermark { run, high, chunk, table: parts.next()? })
}

/// Handles a logical decoding message: returns true if it was one of this
/// run's watermarks (which never reach the sinks). A low watermark opens
/// its chunk's window; at a high watermark the chunk's group is appended to
/// `out`, at positions right after the watermark's.
pub async fn on_message(windows: &mut Windows, m: &LogicalMessage, out: &mut Vec<StreamItem>) -> Result<bool> {
    if m.prefix != WATERMARK_PREFIX {
        return Ok(false);
    }
    let Some(wm) = parse_watermark(&m.content) else { return Ok(true) };
    if wm.run != windows.run() {
        // A previous run's watermark, replayed: its chunks are gone.
        return Ok(true);
    }
    if !wm.high {
        windows.open_window(wm.chunk, wm.table.to_string());
        return Ok(true);
    }
    let Some((chunk, changed)) = windows.close_window(wm.chunk).await? else { return Ok(true) };
    let Position::Pg { lsn, index } = m.position.clone() else {
        let _ = chunk.emitted.send(());
        return Ok(true);
    };
    let mut next = index;
    let mut position = || {
        next += 1;
        Position::Pg { lsn, index: next }
    };
    let source = SourceInfo { lsn: Some(lsn), ..chunk.source.clone() };
    windows.emit(chunk, &changed, source, &mut position, out);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermarks_round_trip() {
        let w = watermark("run1", true, 42, &TableId::new("public", "odd:name"));
        let parsed = parse_watermark(w.as_bytes()).unwrap();
        assert_eq!((parsed.run, parsed.high, parsed.chunk, parsed.table), ("run1", true, 42, "public.odd:name"));
        let low = parse_watermark(b"r:low:7:s.t").unwrap();
        assert_eq!((low.high, low.chunk), (false, 7));
        assert!(parse_watermark(b"r:mid:7:s.t").is_none());
        assert!(parse_watermark(b"garbage").is_none());
    }
}

//! State directory files → the readers `run`, `status` and `offsets` use:
//! a sink offset (with its position), `source.json`, a schema history,
//! `detached.json` and the `LOCK` holder. Any bytes may be rejected as
//! corrupt (naming the file), never panic. Seeds: real state files in
//! `fuzz/seeds/state/`.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use outflow::state::{parse_sink_offset, parse_state, LockInfo, SourceIdentity};

fuzz_target!(|data: &[u8]| {
    let _ = parse_sink_offset(Path::new("state/sinks/events.json"), data);
    let _ = parse_state::<SourceIdentity>(Path::new("state/source.json"), data);
    let _ = parse_state::<Vec<serde_json::Value>>(Path::new("state/schemas/public.t.json"), data);
    let _ = parse_state::<BTreeMap<String, String>>(Path::new("state/detached.json"), data);
    let _ = parse_state::<LockInfo>(Path::new("state/LOCK"), data);
});

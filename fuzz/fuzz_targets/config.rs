//! `outflow.toml` text → `Config::parse` (TOML, `${VAR}` expansion, serde
//! into the config structs, validation including the source URL and each
//! sink's settings): it may reject, never panic. Seeds: real configs in
//! `fuzz/seeds/config/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = outflow::config::Config::parse(&text, "fuzz.toml");
});

//! PostgreSQL text output → `pgtypes::parse_text`, and the same bytes as a
//! binary send format → `pgtypes::binary::parse_binary`: each may reject,
//! never panic.
//!
//! Input: a type OID (first 4 bytes, big-endian; OIDs 1 and 2 stand for a
//! user enum and an array of one), then the value's text (or bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use outflow_decoders::pg_type_registry::{PgType, TypeRegistry};
use outflow_decoders::pgtypes;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let oid = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
    let ty = match oid {
        1 => PgType::Enum(Vec::new()),
        2 => PgType::Array(Box::new(PgType::Enum(Vec::new()))),
        oid => TypeRegistry::new().resolve(oid),
    };
    let _ = pgtypes::binary::parse_binary(&ty, &data[4..]);
    if let Ok(text) = std::str::from_utf8(&data[4..]) {
        let _ = pgtypes::parse_text(&ty, text);
    }
});

//! pgoutput bytes → `pgoutput::parse` and a `PgDecoder`: neither may panic.
//!
//! Input: a sequence of messages, each `[u16 big-endian length][bytes]`. Each
//! is parsed on its own, then fed to one decoder that already knows a table
//! with columns of many types and is inside a transaction, so tuple bytes
//! reach the value parsers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outflow_decoders::pg_decoder::PgDecoder;
use outflow_decoders::pg_type_registry::PgType;
use outflow_decoders::pgoutput;

/// Relation 1, `public.t`: (key flag, name, type OID) per column.
const COLUMNS: &[(u8, &str, u32)] = &[
    (1, "id", 23),
    (0, "i8", 20),
    (0, "num", 1700),
    (0, "txt", 25),
    (0, "ts", 1184),
    (0, "tsl", 1114),
    (0, "d", 1082),
    (0, "iv", 1186),
    (0, "js", 3802),
    (0, "arr", 1007),
    (0, "mood", 90_000),
    (0, "moods", 90_001),
    (0, "b", 17),
    (0, "bits", 1562),
    (0, "f8", 701),
    (0, "tz", 1266),
];

fn relation() -> Vec<u8> {
    let mut m = vec![b'R'];
    m.extend_from_slice(&1u32.to_be_bytes());
    m.extend_from_slice(b"public\0t\0d");
    m.extend_from_slice(&(COLUMNS.len() as u16).to_be_bytes());
    for &(flags, name, oid) in COLUMNS {
        m.push(flags);
        m.extend_from_slice(name.as_bytes());
        m.push(0);
        m.extend_from_slice(&oid.to_be_bytes());
        m.extend_from_slice(&(-1i32).to_be_bytes());
    }
    m
}

fn begin() -> Vec<u8> {
    let mut m = vec![b'B'];
    m.extend_from_slice(&0x5000u64.to_be_bytes());
    m.extend_from_slice(&0i64.to_be_bytes());
    m.extend_from_slice(&7u32.to_be_bytes());
    m
}

fuzz_target!(|data: &[u8]| {
    let mut dec = PgDecoder::new();
    dec.types_mut().register(90_000, PgType::Enum(Vec::new()));
    dec.types_mut().register(90_001, PgType::Array(Box::new(PgType::Enum(Vec::new()))));
    let mut out = Vec::new();
    dec.decode(0x4000, &begin(), &mut out).expect("seed begin");
    dec.decode(0x4000, &relation(), &mut out).expect("seed relation");

    let mut rest = data;
    let mut wal_start = 0x4100u64;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let msg = &rest[2..(2 + len).min(rest.len())];
        rest = &rest[2 + msg.len()..];
        if let Ok(parsed) = pgoutput::parse(msg) {
            let _ = PgDecoder::unknown_types(&parsed, dec.types());
        }
        out.clear();
        let _ = dec.decode(wal_start, msg, &mut out);
        wal_start += 0x10;
    }
});

//! Binlog bytes → mysql_common's event framing → `BinlogDecoder`: bad bytes
//! must be an error, never a panic. Seeds: events from a real MariaDB binlog
//! (`mariadb-binlog --raw` output without the 4-byte magic) belong in
//! `fuzz/seeds/binlog/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = outflow_decoders::binlog::decode_bytes(data);
});

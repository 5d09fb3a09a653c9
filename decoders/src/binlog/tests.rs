//! Scenario tests are in the e2e suite against a real MariaDB; here only what
//! needs no server: event parsing limits and type mapping.

use super::*;

/// Found by the `binlog` fuzz target: a header claiming more bytes than are
/// left made mysql_common's reader panic.
#[test]
fn event_sizes_beyond_the_input_are_errors_not_panics() {
    let crash = [4u8, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 10];
    assert!(super::decode_bytes(&crash).is_err());
    assert!(super::decode_bytes(&crash[..10]).is_err());
    let mut tiny = [0u8; 19];
    tiny[9] = 5; // smaller than a header
    assert!(super::decode_bytes(&tiny).is_err());
}

/// The fuzz seed captured from the test MariaDB (`fuzz/seeds/binlog/whole`:
/// the type corpus, an update, a delete, ALTER TABLE, a two-row transaction,
/// TRUNCATE) decodes to its changes in order, each with its table's schema
/// version (the ALTER moves the table to version 2).
#[test]
fn a_real_mariadb_binlog_decodes_to_its_changes() {
    let data = include_bytes!("../../../fuzz/seeds/binlog/whole");
    let items = decode_bytes(data).expect("a real binlog decodes");
    let changes: Vec<(&str, u32)> = items
        .iter()
        .filter_map(|i| match i {
            StreamItem::Change(e) => Some((e.op.code(), e.table.version)),
            _ => None,
        })
        .collect();
    assert_eq!(changes, [("c", 1), ("c", 1), ("c", 1), ("u", 1), ("d", 1), ("c", 2), ("c", 2), ("c", 2)]);
}

/// Fuzz finding (binlog target): a DECIMAL digit group out of range made
/// mysql_common's decimal reader overflow and panic. Now an error.
#[test]
fn fuzz_regression_decimal_digit_group_overflow_is_an_error() {
    let data = include_bytes!("../../../fuzz/regressions/binlog/decimal-group-overflow");
    assert!(decode_bytes(data).is_err());
}

/// Fuzz finding (binlog target): a TIME/DATETIME integer part no value can
/// have made mysql_common's packed-time arithmetic overflow. Now an error.
#[test]
fn fuzz_regression_packed_time_overflow_is_an_error() {
    let data = include_bytes!("../../../fuzz/regressions/binlog/time-packed-overflow");
    assert!(decode_bytes(data).is_err());
}

/// Fuzz finding (binlog target): an event body shorter than its checksum
/// made mysql_common's reader underflow. Now an error.
#[test]
fn fuzz_regression_event_shorter_than_its_checksum_is_an_error() {
    let data = include_bytes!("../../../fuzz/regressions/binlog/short-event-checksum");
    assert!(decode_bytes(data).is_err());
}

/// Fuzz finding (binlog target): a negative TIME(1)/TIME(2) with a fraction
/// made mysql_common's reader subtract from an unsigned fraction (a panic in
/// debug builds, a wrong value in release ones). Decoded by hand now.
#[test]
fn fuzz_regression_negative_time_fraction_does_not_panic() {
    let data = include_bytes!("../../../fuzz/regressions/binlog/negative-time-fraction");
    let _ = decode_bytes(data);
}

/// Fuzz finding (binlog target): the same underflow after a Format
/// Description naming an unknown checksum algorithm (mysql_common then
/// still cuts a checksum off).
#[test]
fn fuzz_regression_short_event_after_an_unknown_checksum_algorithm_is_an_error() {
    let data = include_bytes!("../../../fuzz/regressions/binlog/unknown-checksum-alg");
    assert!(decode_bytes(data).is_err());
}

/// Fuzz finding (binlog target, out of memory): a rows event whose images
/// have no column present looped forever, adding empty rows. Now an error.
#[test]
fn fuzz_regression_empty_row_images_are_an_error_not_a_loop() {
    let data = include_bytes!("../../../fuzz/regressions/binlog/empty-row-image-loop");
    assert!(decode_bytes(data).is_err());
}

/// Fuzz finding (binlog target): a TableMap whose optional metadata
/// announces an absurd ENUM label count made mysql_common reserve that many
/// labels up front and panic ("capacity overflow"). The label lists are
/// parsed by hand now, bounded by the bytes present: an error.
#[test]
fn fuzz_regression_absurd_enum_label_count_is_an_error() {
    let data = include_bytes!("../../../fuzz/regressions/binlog/enum-labels-capacity-overflow");
    assert!(decode_bytes(data).is_err());
}

/// The hand-written ENUM/SET label reader: real lists decode, and every
/// count or length beyond the bytes present is an error.
#[test]
fn enum_and_set_label_lists_are_bounded_by_their_bytes() {
    use super::table::label_lists;
    // Two columns: ('small','large') and ('a').
    let raw = b"\x02\x05small\x05large\x01\x01a";
    assert_eq!(label_lists(raw).unwrap(), vec![vec!["small".to_string(), "large".to_string()], vec!["a".to_string()]]);
    assert_eq!(label_lists(b"").unwrap(), Vec::<Vec<String>>::new());
    // A 2-byte length (0xfc) for a 300-byte label.
    let mut long = vec![1u8, 0xfc, 0x2c, 0x01];
    long.extend(std::iter::repeat_n(b'x', 300));
    assert_eq!(label_lists(&long).unwrap()[0][0].len(), 300);
    // An 8-byte count of 2^63 labels, a label longer than the input, cut-off lengths.
    assert!(label_lists(b"\xfe\x00\x00\x00\x00\x00\x00\x00\x80\x01a").is_err());
    assert!(label_lists(b"\x01\x09abc").is_err());
    assert!(label_lists(b"\x01\xfd\x01").is_err());
    assert!(label_lists(b"\xff").is_err());
}

#[test]
fn mysql_types_have_logical_types() {
    use mysql_common::constants::ColumnType::*;
    use outflow_model::ColumnType as T;
    use table::logical_type;
    assert_eq!(logical_type(MYSQL_TYPE_LONGLONG, -1, true, false, &[]), T::Int { bits: 64, signed: false });
    assert_eq!(logical_type(MYSQL_TYPE_INT24, -1, false, false, &[]), T::Int { bits: 24, signed: true });
    assert_eq!(logical_type(MYSQL_TYPE_YEAR, -1, false, false, &[]), T::Year);
    let decimal = outflow_model::numeric_typmod(30, 10);
    assert_eq!(logical_type(MYSQL_TYPE_NEWDECIMAL, decimal, true, false, &[]), T::Decimal(Some((30, 10))));
    assert_eq!(logical_type(MYSQL_TYPE_TIME2, 3, false, false, &[]), T::Duration { precision: Some(3) });
    assert_eq!(logical_type(MYSQL_TYPE_TIMESTAMP2, 0, false, false, &[]), T::TimestampTz { precision: Some(0) });
    assert_eq!(logical_type(MYSQL_TYPE_DATETIME2, 6, false, false, &[]), T::Timestamp { precision: Some(6) });
    assert_eq!(logical_type(MYSQL_TYPE_BIT, 1, false, false, &[]), T::Bool);
    assert_eq!(logical_type(MYSQL_TYPE_BIT, 12, false, false, &[]), T::Bits { length: Some(12), varying: false });
    assert_eq!(logical_type(MYSQL_TYPE_VARCHAR, -1, false, true, &[]), T::Bytes);
    assert_eq!(logical_type(MYSQL_TYPE_BLOB, -1, false, false, &[]), T::Text { max_chars: None });
    assert_eq!(logical_type(MYSQL_TYPE_GEOMETRY, -1, false, true, &[]), T::Geometry);
}

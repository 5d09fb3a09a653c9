//! Scenario tests of the PgDecoder: hand-built pgoutput messages in, stream items out.

use super::*;
use crate::pgoutput::build::{self, Col};

const TS: i64 = 1_704_164_645_123_456;
const ORDERS: u32 = 16_384;
const ITEMS: u32 = 16_390;

/// What pgtypes makes of a built-in type's text: the tests check wiring, not parsing.
fn v(oid: u32, text: &str) -> Value {
    pgtypes::parse_text(&PgType::Builtin(oid), text).unwrap()
}

fn orders_relation(identity: u8) -> Vec<u8> {
    build::relation(ORDERS, "public", "orders", identity, &[(true, "id", 23, -1), (false, "note", 25, -1)])
}

/// Feeds messages, each at its own WAL start (0x1000, 0x1100, ...), and returns every item.
fn feed(dec: &mut PgDecoder, msgs: &[Vec<u8>]) -> Vec<StreamItem> {
    let mut out = Vec::new();
    for (i, msg) in msgs.iter().enumerate() {
        dec.decode(0x1000 + 0x100 * i as u64, msg, &mut out).unwrap();
    }
    out
}

fn changes(items: &[StreamItem]) -> Vec<&ChangeEvent> {
    items.iter().filter_map(|i| if let StreamItem::Change(c) = i { Some(c) } else { None }).collect()
}

/// A decoder that has seen the orders relation and is inside transaction 700 committing at 0x5000.
fn in_transaction() -> PgDecoder {
    let mut dec = PgDecoder::new();
    feed(&mut dec, &[build::begin(0x5000, TS, 700), orders_relation(b'd')]);
    dec
}

#[test]
fn a_transaction_of_insert_update_delete() {
    let mut dec = PgDecoder::new();
    let items = feed(
        &mut dec,
        &[
            build::begin(0x5000, TS, 700),
            orders_relation(b'd'),
            build::insert(ORDERS, &[Col::Text("1"), Col::Text("new")]),
            build::update(ORDERS, None, &[Col::Text("1"), Col::Text("changed")]),
            build::delete(ORDERS, b'K', &[Col::Text("1"), Col::Null]),
            build::commit(0x5000, 0x5030, TS),
        ],
    );
    assert_eq!(items.len(), 6);
    assert_eq!(items[0], StreamItem::Begin { tx_id: Some(700), commit_ts_us: TS, position: Position::pg(0x5000) });
    let StreamItem::SchemaChange(SchemaChange { schema, .. }) = &items[1] else { panic!("{:?}", items[1]) };
    assert_eq!(schema.id, TableId::new("public", "orders"));
    assert_eq!(schema.version, 1);
    assert_eq!(items[5], StreamItem::Commit { tx_id: Some(700), commit_ts_us: TS, position: Position::pg(0x5030) });

    let c = changes(&items);
    assert_eq!(c.iter().map(|c| c.op).collect::<Vec<_>>(), [Op::Create, Op::Update, Op::Delete]);
    for (n, change) in c.iter().enumerate() {
        assert_eq!(change.position, Position::Pg { lsn: 0x5000, index: n as u32 + 1 });
        assert!(Arc::ptr_eq(&change.table, schema));
        assert_eq!(
            change.source,
            SourceInfo {
                commit_ts_us: TS,
                tx_id: Some(700),
                lsn: Some(0x1200 + 0x100 * n as u64),
                last_commit_lsn: None,
                snapshot: false,
                binlog: None,
            }
        );
    }
    assert_eq!(c[0].before, None);
    assert_eq!(c[0].after, Some(vec![v(23, "1"), v(25, "new")]));
    // No old tuple under the default identity when the key did not change.
    assert_eq!(c[1].before, None);
    assert_eq!(c[1].after, Some(vec![v(23, "1"), v(25, "changed")]));
    // A delete's key-only old tuple: key filled, the rest null.
    assert_eq!(c[2].before, Some(vec![v(23, "1"), Value::Null]));
    assert_eq!(c[2].after, None);
    assert!(!dec.in_transaction());
}

#[test]
fn the_next_transaction_remembers_the_last_commit_and_restarts_its_index() {
    let mut dec = in_transaction();
    let items = feed(
        &mut dec,
        &[
            build::insert(ORDERS, &[Col::Text("1"), Col::Null]),
            build::commit(0x5000, 0x5030, TS),
            build::begin(0x6000, TS + 1, 701),
            build::insert(ORDERS, &[Col::Text("2"), Col::Null]),
            build::commit(0x6000, 0x6030, TS + 1),
        ],
    );
    let c = changes(&items);
    assert_eq!(c[0].source.last_commit_lsn, None);
    assert_eq!(c[1].source.last_commit_lsn, Some(0x5000));
    assert_eq!(c[1].position, Position::Pg { lsn: 0x6000, index: 1 });
    assert_eq!(c[1].source.tx_id, Some(701));
    // Positions of the whole stream only ever increase.
    let positions: Vec<Position> = items.iter().filter_map(StreamItem::position).cloned().collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
}

#[test]
fn a_changed_key_and_a_full_identity_send_the_old_row() {
    let mut dec = in_transaction();
    let items = feed(
        &mut dec,
        &[
            build::update(ORDERS, Some((b'K', &[Col::Text("1"), Col::Null])), &[Col::Text("2"), Col::Text("x")]),
            orders_relation(b'f'),
            build::update(ORDERS, Some((b'O', &[Col::Text("2"), Col::Text("x")])), &[Col::Text("2"), Col::Text("y")]),
            build::delete(ORDERS, b'O', &[Col::Text("2"), Col::Text("y")]),
        ],
    );
    let c = changes(&items);
    assert_eq!(c[0].before, Some(vec![v(23, "1"), Value::Null]));
    assert_eq!(c[1].before, Some(vec![v(23, "2"), v(25, "x")]));
    assert_eq!(c[2].before, Some(vec![v(23, "2"), v(25, "y")]));
    assert_eq!(dec.replica_identity(ORDERS), Some(ReplicaIdentity::Full));
}

#[test]
fn unchanged_toast_is_taken_from_the_old_row_when_it_was_sent() {
    let mut dec = in_transaction();
    let items = feed(
        &mut dec,
        &[
            build::update(ORDERS, None, &[Col::Text("1"), Col::Toast]),
            // Key changed: the key-only old tuple's NULL means "not sent", not a value.
            build::update(ORDERS, Some((b'K', &[Col::Text("1"), Col::Null])), &[Col::Text("2"), Col::Toast]),
            // REPLICA IDENTITY FULL: the server sends the old row detoasted.
            build::update(ORDERS, Some((b'O', &[Col::Text("2"), Col::Text("big")])), &[Col::Text("2"), Col::Toast]),
        ],
    );
    let c = changes(&items);
    assert_eq!(c[0].after, Some(vec![v(23, "1"), Value::Unchanged]));
    assert_eq!(c[1].after, Some(vec![v(23, "2"), Value::Unchanged]));
    assert_eq!(c[2].before, Some(vec![v(23, "2"), v(25, "big")]));
    assert_eq!(c[2].after, Some(vec![v(23, "2"), v(25, "big")]));
}

#[test]
fn schemas_are_versioned_only_when_their_shape_changes() {
    let mut dec = in_transaction();
    let v1 = dec.relation(ORDERS).unwrap().clone();
    // The server re-sends Relation after reconnects and cache invalidations.
    assert!(feed(&mut dec, &[orders_relation(b'd')]).is_empty());
    assert!(Arc::ptr_eq(dec.relation(ORDERS).unwrap(), &v1));

    let added = build::relation(
        ORDERS,
        "public",
        "orders",
        b'd',
        &[(true, "id", 23, -1), (false, "note", 25, -1), (false, "qty", 21, -1)],
    );
    let items = feed(&mut dec, &[added.clone(), build::insert(ORDERS, &[Col::Text("1"), Col::Null, Col::Text("3")])]);
    let StreamItem::SchemaChange(SchemaChange { schema: v2, .. }) = &items[0] else { panic!("{:?}", items[0]) };
    assert_eq!(v2.version, 2);
    assert_eq!(v2.columns[2].name, "qty");
    assert_eq!(v2.columns[2].type_name, "int2");
    assert!(Arc::ptr_eq(&changes(&items)[0].table, v2));
    assert!(feed(&mut dec, &[added]).is_empty());

    // A retyped column is a new version too.
    let retyped = build::relation(
        ORDERS,
        "public",
        "orders",
        b'd',
        &[(true, "id", 20, -1), (false, "note", 25, -1), (false, "qty", 21, -1)],
    );
    let StreamItem::SchemaChange(SchemaChange { schema: v3, .. }) = &feed(&mut dec, &[retyped])[0] else { panic!() };
    assert_eq!((v3.version, v3.columns[0].type_name.as_str()), (3, "int8"));
    // Old events keep the schema they were decoded with.
    assert_eq!(v1.version, 1);
    assert_eq!(v1.columns.len(), 2);
}

#[test]
fn relation_columns_become_the_table_schema() {
    let mut dec = PgDecoder::new();
    let items = feed(
        &mut dec,
        &[
            build::type_msg(16_500, "public", "mood"),
            build::relation(
                77,
                "",
                "pg_thing",
                b'i',
                &[(true, "m", 16_500, -1), (false, "tags", 1009, -1), (false, "amount", 1700, 655_366)],
            ),
        ],
    );
    let StreamItem::SchemaChange(SchemaChange { schema: s, .. }) = &items[0] else { panic!() };
    assert_eq!(s.id, TableId::new("pg_catalog", "pg_thing"));
    let names: Vec<(&str, &str, u32, i32, bool, bool)> = s
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.type_name.as_str(), c.type_id, c.type_modifier, c.key, c.nullable))
        .collect();
    assert_eq!(
        names,
        [
            ("m", "mood", 16_500, -1, true, true),
            ("tags", "_text", 1009, -1, false, true),
            ("amount", "numeric", 1700, 655_366, false, true)
        ]
    );
    assert_eq!(s.key_indexes().collect::<Vec<_>>(), [0]);
}

#[test]
fn unknown_user_types_are_reported_then_decoded_as_registered() {
    let rel = build::relation(
        ORDERS,
        "public",
        "orders",
        b'd',
        &[
            (true, "id", 23, -1),
            (false, "mood", 16_500, -1),
            (false, "moods", 16_499, -1),
            (false, "again", 16_500, -1),
        ],
    );
    let mut dec = PgDecoder::new();
    let msg = pgoutput::parse(&rel).unwrap();
    assert_eq!(PgDecoder::unknown_types(&msg, dec.types()), [16_500, 16_499]);
    assert!(PgDecoder::unknown_types(&pgoutput::parse(&build::begin(1, 0, 1)).unwrap(), dec.types()).is_empty());

    dec.types_mut().register(16_500, PgType::Enum(Vec::new()));
    dec.types_mut().register(16_499, PgType::Array(Box::new(PgType::Enum(Vec::new()))));
    assert!(PgDecoder::unknown_types(&msg, dec.types()).is_empty());
    let items = feed(
        &mut dec,
        &[
            build::begin(0x5000, TS, 1),
            rel,
            build::insert(ORDERS, &[Col::Text("1"), Col::Text("happy"), Col::Text("{happy,sad}"), Col::Null]),
        ],
    );
    let after = changes(&items)[0].after.clone().unwrap();
    assert_eq!(after[1], pgtypes::parse_text(&PgType::Enum(Vec::new()), "happy").unwrap());
    assert_eq!(
        after[2],
        pgtypes::parse_text(&PgType::Array(Box::new(PgType::Enum(Vec::new()))), "{happy,sad}").unwrap()
    );
}

#[test]
fn truncate_is_one_event_per_table() {
    let mut dec = in_transaction();
    let items = feed(
        &mut dec,
        &[
            build::relation(ITEMS, "public", "items", b'd', &[(true, "id", 23, -1)]),
            build::truncate(1, &[ORDERS, ITEMS]),
        ],
    );
    let c = changes(&items);
    assert_eq!(c.len(), 2);
    assert_eq!(
        (c[0].op, c[0].table.id.name.as_str(), c[0].position.clone()),
        (Op::Truncate, "orders", Position::Pg { lsn: 0x5000, index: 1 })
    );
    assert_eq!(
        (c[1].op, c[1].table.id.name.as_str(), c[1].position.clone()),
        (Op::Truncate, "items", Position::Pg { lsn: 0x5000, index: 2 })
    );
    assert!(c.iter().all(|c| c.before.is_none() && c.after.is_none()));
}

#[test]
fn logical_messages_inside_and_between_transactions() {
    let mut dec = in_transaction();
    let items = feed(
        &mut dec,
        &[
            build::insert(ORDERS, &[Col::Text("1"), Col::Null]),
            build::message(true, 0x4800, "app", b"in tx"),
            build::commit(0x5000, 0x5030, TS),
            // A message's LSN is its record's end; the next commit record may start right there.
            build::message(false, 0x5060, "app", b"between"),
            build::origin(0x10, "upstream"),
            build::begin(0x5060, TS, 701),
            build::commit(0x5060, 0x5090, TS),
        ],
    );
    let msgs: Vec<&LogicalMessage> =
        items.iter().filter_map(|i| if let StreamItem::Message(m) = i { Some(m) } else { None }).collect();
    assert_eq!(msgs[0].position, Position::Pg { lsn: 0x5000, index: 2 });
    assert_eq!(
        (msgs[0].transactional, msgs[0].prefix.as_str(), msgs[0].content.as_slice()),
        (true, "app", &b"in tx"[..])
    );
    assert_eq!(msgs[0].source.tx_id, Some(700));
    // After the commit before it, and before a transaction whose commit
    // record starts where the message's record ends.
    assert_eq!(msgs[1].position, Position::Pg { lsn: 0x505f, index: 1 });
    assert!(msgs[1].position > Position::pg(0x5030));
    assert!(msgs[1].position < Position::pg(0x5060));
    assert_eq!(
        (msgs[1].source.tx_id, msgs[1].source.lsn, msgs[1].source.last_commit_lsn),
        (None, Some(0x5060), Some(0x5000))
    );
    let positions: Vec<Position> = items.iter().filter_map(StreamItem::position).cloned().collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
}

#[test]
fn changes_that_contradict_the_stream_state_are_errors() {
    let mut fresh = PgDecoder::new();
    feed(&mut fresh, &[orders_relation(b'd')]);
    let cases: Vec<(&str, PgDecoder, Vec<u8>)> = vec![
        ("insert outside a transaction", fresh.clone(), build::insert(ORDERS, &[Col::Text("1"), Col::Null])),
        ("truncate outside a transaction", fresh.clone(), build::truncate(0, &[ORDERS])),
        ("transactional message outside", fresh.clone(), build::message(true, 1, "p", b"")),
        ("commit without begin", fresh.clone(), build::commit(0x5000, 0x5030, TS)),
        ("unknown relation", in_transaction(), build::insert(99, &[Col::Text("1")])),
        ("truncate of an unknown relation", in_transaction(), build::truncate(0, &[ORDERS, 99])),
        ("too few columns", in_transaction(), build::insert(ORDERS, &[Col::Text("1")])),
        (
            "too many old columns",
            in_transaction(),
            build::delete(ORDERS, b'K', &[Col::Text("1"), Col::Null, Col::Null]),
        ),
        ("nested begin", in_transaction(), build::begin(0x6000, TS, 701)),
        ("commit of another lsn", in_transaction(), build::commit(0x5001, 0x5030, TS)),
    ];
    for (what, mut dec, msg) in cases {
        let mut out = Vec::new();
        let err = dec.decode(0x1000, &msg, &mut out).expect_err(what);
        assert!(matches!(err, DecodeError::State(_)), "{what}: {err}");
        assert!(out.is_empty(), "{what}: pushed {out:?}");
    }
}

#[test]
fn a_failed_message_leaves_the_transaction_as_it_was() {
    let mut dec = in_transaction();
    let mut out = Vec::new();
    assert!(dec.decode(0x1000, &build::truncate(0, &[ORDERS, 99]), &mut out).is_err());
    assert!(dec.decode(0x1000, &build::insert(ORDERS, &[Col::Text("1")]), &mut out).is_err());
    let items = feed(&mut dec, &[build::insert(ORDERS, &[Col::Text("1"), Col::Null])]);
    assert_eq!(changes(&items)[0].position, Position::Pg { lsn: 0x5000, index: 1 });
}

#[test]
fn truncated_messages_never_panic_the_decoder() {
    let msgs = [
        build::begin(0x6000, TS, 701),
        orders_relation(b'f'),
        build::insert(ORDERS, &[Col::Text("1"), Col::Text("x")]),
        build::update(ORDERS, Some((b'O', &[Col::Text("1"), Col::Null])), &[Col::Text("1"), Col::Toast]),
        build::delete(ORDERS, b'K', &[Col::Text("1"), Col::Null]),
        build::truncate(3, &[ORDERS]),
        build::message(false, 9, "p", b"c"),
        build::commit(0x5000, 0x5030, TS),
    ];
    for msg in &msgs {
        for end in 0..msg.len() {
            let mut dec = in_transaction();
            let mut out = Vec::new();
            assert!(dec.decode(0x1000, &msg[..end], &mut out).is_err());
            assert!(out.is_empty());
        }
    }
}

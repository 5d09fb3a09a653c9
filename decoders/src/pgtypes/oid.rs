//! OIDs of the built-in PostgreSQL types `parse_text` models, and the map
//! from built-in array types (`_int4`, OID 1007) to their element types.
//! Values are fixed by `pg_type.dat` and identical in every PostgreSQL version.

pub const BOOL: u32 = 16;
pub const BYTEA: u32 = 17;
pub const CHAR: u32 = 18;
pub const NAME: u32 = 19;
pub const INT8: u32 = 20;
pub const INT2: u32 = 21;
pub const INT4: u32 = 23;
pub const TEXT: u32 = 25;
pub const OID: u32 = 26;
pub const XID: u32 = 28;
pub const CID: u32 = 29;
pub const JSON: u32 = 114;
pub const XML: u32 = 142;
pub const CIDR: u32 = 650;
pub const FLOAT4: u32 = 700;
pub const FLOAT8: u32 = 701;
pub const BOX: u32 = 603;
pub const MACADDR8: u32 = 774;
pub const MONEY: u32 = 790;
pub const MACADDR: u32 = 829;
pub const INET: u32 = 869;
pub const BPCHAR: u32 = 1042;
pub const VARCHAR: u32 = 1043;
pub const DATE: u32 = 1082;
pub const TIME: u32 = 1083;
pub const TIMESTAMP: u32 = 1114;
pub const TIMESTAMPTZ: u32 = 1184;
pub const INTERVAL: u32 = 1186;
pub const TIMETZ: u32 = 1266;
pub const BIT: u32 = 1560;
pub const VARBIT: u32 = 1562;
pub const NUMERIC: u32 = 1700;
pub const UUID: u32 = 2950;
pub const JSONB: u32 = 3802;

/// (array type OID, element type OID) for the built-in arrays.
const ARRAYS: &[(u32, u32)] = &[
    (1000, BOOL),
    (1001, BYTEA),
    (1002, CHAR),
    (1003, NAME),
    (1016, INT8),
    (1005, INT2),
    (1007, INT4),
    (1009, TEXT),
    (1028, OID),
    (1011, XID),
    (1012, CID),
    (199, JSON),
    (143, XML),
    (651, CIDR),
    (1021, FLOAT4),
    (1022, FLOAT8),
    (1020, BOX),
    (775, MACADDR8),
    (791, MONEY),
    (1040, MACADDR),
    (1041, INET),
    (1014, BPCHAR),
    (1015, VARCHAR),
    (1182, DATE),
    (1183, TIME),
    (1115, TIMESTAMP),
    (1185, TIMESTAMPTZ),
    (1187, INTERVAL),
    (1270, TIMETZ),
    (1561, BIT),
    (1563, VARBIT),
    (1231, NUMERIC),
    (2951, UUID),
    (3807, JSONB),
];

/// The element type of a built-in array type, `None` for anything else.
pub fn array_element(type_oid: u32) -> Option<u32> {
    ARRAYS.iter().find(|(a, _)| *a == type_oid).map(|(_, e)| *e)
}

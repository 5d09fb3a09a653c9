-- PostgreSQL type fidelity golden input: one column per type, one row per
-- edge-case group. Expected Debezium `after` objects, in insert order, are in
-- pg_types.expected.json (see README.md in this directory).
-- Assumes the server runs with TimeZone=UTC (timestamptz literals carry offsets anyway).
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'quote''d');
CREATE DOMAIN amount AS numeric(12,2);

CREATE TABLE pg_types (
  id            int PRIMARY KEY,
  c_int2        smallint,
  c_int4        integer,
  c_int8        bigint,
  c_oid         oid,
  c_numeric     numeric,
  c_numeric_ps  numeric(10,3),
  c_float4      real,
  c_float8      double precision,
  c_bool        boolean,
  c_text        text,
  c_varchar     varchar(20),
  c_bpchar      char(5),
  c_name        name,
  c_char        "char",
  c_bytea       bytea,
  c_date        date,
  c_time        time,
  c_time3       time(3),
  c_timetz      timetz,
  c_timestamp   timestamp,
  c_timestamp3  timestamp(3),
  c_timestamptz timestamptz,
  c_interval    interval,
  c_uuid        uuid,
  c_json        json,
  c_jsonb       jsonb,
  c_enum        mood,
  c_domain      amount,
  c_inet        inet,
  c_cidr        cidr,
  c_macaddr     macaddr,
  c_macaddr8    macaddr8,
  c_money       money,
  c_bit1        bit(1),
  c_bit8        bit(8),
  c_varbit      varbit,
  c_xml         xml,
  c_range       int4range,
  c_int4_arr    int4[],
  c_int4_2d     int4[][],
  c_text_arr    text[],
  c_numeric_arr numeric[],
  c_date_arr    date[],
  c_tstz_arr    timestamptz[],
  c_enum_arr    mood[],
  c_uuid_arr    uuid[],
  c_bool_arr    boolean[],
  c_float8_arr  float8[],
  c_bytea_arr   bytea[]
);

-- 1: ordinary values
INSERT INTO pg_types VALUES (1,
  12, 345678, 9876543210, 4242,
  '12.50', '3.140', 1.5, 2.25,
  true, 'hello', 'varchar', 'ab', 'a_name', 'x',
  '\x0102feff',
  '2024-01-02', '10:11:12.345678', '10:11:12.345', '10:11:12.5+05:30',
  '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.123', '2024-01-02 03:04:05.123456+00',
  '1 year 2 mons 3 days 04:05:06.789',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": 1, "b": [true, null]}', '{"b": [true, null], "a": 1}',
  'happy', '1234.50',
  '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05',
  '1234.56', B'1', B'10100101', B'101',
  '<a>b</a>', '[1,10)',
  '{1,2,3}', '{{1,2},{3,4}}', '{a,b}', '{1.5,2}', '{2024-01-02,1970-01-01}',
  '{"2024-01-02 03:04:05+00"}', '{sad,happy}', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}',
  '{t,f}', '{1.5,-2}', '{"\\x00ff"}');

-- 2: all NULL
INSERT INTO pg_types (id) VALUES (2);

-- 3: integer and numeric extremes, float precision
INSERT INTO pg_types (id, c_int2, c_int4, c_int8, c_oid, c_numeric, c_numeric_ps,
  c_float4, c_float8, c_bool, c_money, c_domain, c_numeric_arr, c_float8_arr) VALUES (3,
  -32768, -2147483648, -9223372036854775808, 4294967295,
  '-12345678901234567890123456789012345678901234567890.000123456789012345678901234567890', '-1234567.891',
  0.1, '-0', false, '-92233720368547758.08', '-0.01',
  '{-0.000000000000000000001,123456789012345678901234567890,NULL}', '{0.1,1e300,-1e-300}');

-- 4: NaN and infinities
INSERT INTO pg_types (id, c_numeric, c_float4, c_float8, c_date, c_timestamp, c_timestamp3, c_timestamptz,
  c_numeric_arr, c_float8_arr, c_date_arr, c_tstz_arr) VALUES (4,
  'NaN', 'Infinity', 'NaN', 'infinity', '-infinity', 'infinity', 'infinity',
  '{NaN,Infinity,-Infinity}', '{NaN,Infinity,-Infinity}', '{infinity,-infinity}', '{-infinity,infinity}');
INSERT INTO pg_types (id, c_numeric, c_float4, c_float8, c_date, c_timestamp, c_timestamptz) VALUES (5,
  '-Infinity', '-Infinity', 'Infinity', '-infinity', 'infinity', '-infinity');

-- 6: BC and pre-Gregorian dates, far future, microseconds, negative intervals
INSERT INTO pg_types (id, c_date, c_time, c_time3, c_timetz, c_timestamp, c_timestamp3, c_timestamptz, c_interval, c_date_arr) VALUES (6,
  '0044-03-15 BC', '00:00:00.000001', '23:59:59.999', '00:00:00-12:34',
  '0044-03-15 12:34:56.789012 BC', '1582-10-04 23:59:59.999', '0001-01-01 00:00:00+00 BC',
  '-1 years -2 mons +3 days -04:05:06.000007', '{0001-01-01 BC,1582-10-15,9999-12-31}');
INSERT INTO pg_types (id, c_date, c_time, c_timetz, c_timestamp, c_timestamptz, c_interval) VALUES (7,
  '1969-12-31', '24:00:00', '23:59:59.999999+14', '1969-12-31 23:59:59.999999', '2262-04-12 00:00:00+02', '-00:00:01');
INSERT INTO pg_types (id, c_date, c_timestamp, c_timestamptz, c_interval, c_timetz) VALUES (8,
  '5874897-12-31', '294276-12-31 23:59:59.999999', '1900-01-01 00:00:00+01:30', '178000000 years', '12:00:00+00');

-- 9: text escaping, arrays with NULLs, quotes, backslashes, braces, empty and decorated arrays
INSERT INTO pg_types (id, c_text, c_varchar, c_bpchar, c_char, c_bytea, c_json, c_jsonb, c_enum, c_xml,
  c_int4_arr, c_int4_2d, c_text_arr, c_enum_arr, c_uuid_arr, c_bool_arr, c_bytea_arr, c_bit1, c_bit8, c_varbit, c_money, c_range, c_inet, c_cidr) VALUES (9,
  E'quote " backslash \\ tab \t nl \n cr \r bell \x07 del \x7f é 😀 \u2028', E'\\', 'a', '"', '\x',
  '{"k":"v\"q","n":1.50e3}', '{"k":"v\"q","n":1.50e3}', 'quote''d', E'<a x="1">&amp;\n</a>',
  '{}', '[0:1][1:2]={{1,NULL},{3,4}}', E'{"a,b","c\\"d","e\\\\f",NULL,"NULL","",x y,"{}"}', E'{"quote''d",NULL}',
  '{NULL}', '{t,NULL}', E'{"\\\\x",NULL,"\\\\x0a"}', B'0', B'00000001', B'', '0', 'empty', '::1', '2001:db8::/32');

-- 10: numeric +Infinity, all-zero and long bit strings
INSERT INTO pg_types (id, c_numeric, c_numeric_arr, c_bit1, c_bit8, c_varbit) VALUES (10,
  'Infinity', '{0,-0.0}', B'1', B'00000000', B'0000000100000010');

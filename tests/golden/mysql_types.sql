-- MySQL/MariaDB type corpus: see tests/golden/README.md (mysql_types).
CREATE TABLE types (
  id INT PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED, mi MEDIUMINT, miu MEDIUMINT UNSIGNED,
  i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
  dec1 DECIMAL(30,10), dec0 DECIMAL(5,0), f FLOAT, d DOUBLE,
  b1 BIT(1), b12 BIT(12), bo BOOL,
  e ENUM('small','medium','large'), st SET('a','b','c'),
  y YEAR, dt DATE, tm TIME, tm3 TIME(3), tm6 TIME(6),
  dtm DATETIME, dtm3 DATETIME(3), dtm6 DATETIME(6),
  ts TIMESTAMP NULL, ts3 TIMESTAMP(3) NULL, ts6 TIMESTAMP(6) NULL,
  c CHAR(5), vc VARCHAR(50), tx TEXT, l1 VARCHAR(20) CHARACTER SET latin1,
  bn BINARY(4), vb VARBINARY(10), bl BLOB,
  js JSON, g GEOMETRY
);
SET sql_mode = "";
SET time_zone = '+00:00';
INSERT INTO types VALUES (1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,
  -9223372036854775808, 18446744073709551615, '-12345678901234567890.0123456789', 99999, 1.5, -2.25e300,
  b'1', b'101010101010', TRUE, 'medium', 'a,c', 2024, '2024-01-02', '-838:59:59', '12:34:56.789', '-01:02:03.000004',
  '2024-01-02 03:04:05', '2024-01-02 03:04:05.123', '1969-12-31 23:59:59.999999',
  '2024-01-02 03:04:05', '2024-01-02 03:04:05.120', '2038-01-19 03:14:07.999999',
  'ab', 'héllo ☃ 😀', 'long text', 'café', x'00010203', x'ff00', x'deadbeef',
  '{"a": [1, 2.5, "x"], "b": null}', ST_GeomFromText('POINT(1 2)'));
INSERT INTO types (id, dt, dtm, y) VALUES (2, '0000-00-00', '0000-00-00 00:00:00', 0);
INSERT INTO types (id) VALUES (3);

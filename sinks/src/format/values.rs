//! Rendering column values as JSON the way Debezium's JSON converter does.

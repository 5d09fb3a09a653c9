//! `[sink.debezium]`'s converter classes: `key.converter` and
//! `value.converter` as Kafka's JSON converter (the default) or Confluent's
//! `io.confluent.connect.avro.AvroConverter` with its registry settings
//! (`*.converter.schema.registry.url`, `*.converter.basic.auth.*`).
//! outflow has one registry client per sink, so key and value settings
//! must agree; the Avro records themselves are the Kafka sink's.

/// Confluent's Avro converter and Kafka's JSON converter (the default).
pub(super) const AVRO_CONVERTER: &str = "io.confluent.connect.avro.AvroConverter";
pub(super) const JSON_CONVERTER: &str = "org.apache.kafka.connect.json.JsonConverter";
/// The Avro converter's settings, after `key.converter.`/`value.converter.`.
pub(super) const AVRO_KEYS: &[&str] = &["schema.registry.url", "basic.auth.credentials.source", "basic.auth.user.info"];

/// The Avro converter's registry settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvroConverter {
    /// `*.converter.schema.registry.url`.
    pub url: String,
    /// `*.converter.basic.auth.user.info` split at its first `:`.
    pub user_info: Option<(String, String)>,
}

/// `key.converter`, `value.converter` and the Avro converter's settings.
pub(super) fn converter_key(key: &str) -> bool {
    ["key.converter", "value.converter"].iter().any(|c| {
        key == *c || key.strip_prefix(c).and_then(|r| r.strip_prefix('.')).is_some_and(|r| AVRO_KEYS.contains(&r))
    })
}

/// The converters: both Avro (with the registry settings), or both JSON.
pub(super) fn parse_converters(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<AvroConverter>, String> {
    let mut converters = Vec::new();
    for side in ["key", "value"] {
        let key = format!("{side}.converter");
        let class = get(&key).unwrap_or_else(|| JSON_CONVERTER.to_string());
        if class != AVRO_CONVERTER && class != JSON_CONVERTER {
            return Err(format!("`{key} = {class:?}` is not supported; supported: {AVRO_CONVERTER}, {JSON_CONVERTER}"));
        }
        converters.push((key, class));
    }
    let [(_, key_class), (_, value_class)] = [&converters[0], &converters[1]];
    if key_class != value_class {
        return Err(format!(
            "`key.converter = {key_class:?}` and `value.converter = {value_class:?}` differ; \
             outflow writes keys and values with the same converter: set both to the same class"
        ));
    }
    // One setting given for the key, the value or both (then equal).
    let one = |name: &str| -> Result<Option<String>, String> {
        let (k, v) = (get(&format!("key.converter.{name}")), get(&format!("value.converter.{name}")));
        match (k, v) {
            (Some(k), Some(v)) if k != v => Err(format!(
                "`key.converter.{name}` and `value.converter.{name}` differ; outflow uses one registry client per sink: make them equal"
            )),
            (k, v) => Ok(k.or(v)),
        }
    };
    let (url, source, info) =
        (one("schema.registry.url")?, one("basic.auth.credentials.source")?, one("basic.auth.user.info")?);
    if key_class == JSON_CONVERTER {
        if url.is_some() || source.is_some() || info.is_some() {
            return Err(format!(
                "`*.converter.schema.registry.url` and `*.converter.basic.auth.*` belong to the Avro converter: \
                 set `key.converter` and `value.converter` to {AVRO_CONVERTER} or remove them"
            ));
        }
        return Ok(None);
    }
    let url = url.ok_or_else(|| {
        format!("{AVRO_CONVERTER} needs `key.converter.schema.registry.url` (or `value.converter.schema.registry.url`)")
    })?;
    let user_info =
        match (source.as_deref(), info) {
            (None, None) => None,
            (Some("USER_INFO") | None, Some(info)) => match info.split_once(':') {
                Some((user, password)) => Some((user.to_string(), password.to_string())),
                None => return Err("`*.converter.basic.auth.user.info` must be `user:password`".into()),
            },
            (Some("USER_INFO"), None) => return Err(
                "`basic.auth.credentials.source = USER_INFO` needs `*.converter.basic.auth.user.info = user:password`"
                    .into(),
            ),
            (Some(other), _) => {
                return Err(format!(
                    "`*.converter.basic.auth.credentials.source = {other:?}` is not supported; supported: USER_INFO"
                ))
            }
        };
    Ok(Some(AvroConverter { url, user_info }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::debezium::{Debezium, DebeziumProperties};
    use crate::format::values::UnsignedMode;
    use crate::settings::Setting;

    const SCHEMAS_VALUE: &str = "value.converter.schemas.enable";

    fn props(pairs: &[(&str, &str)]) -> DebeziumProperties {
        pairs.iter().map(|(k, v)| (k.to_string(), Setting::Text(v.to_string()))).collect()
    }

    #[test]
    fn avro_converters_parse_with_their_registry_settings() {
        let avro = |extra: &[(&str, &str)]| {
            let mut p = vec![("key.converter", AVRO_CONVERTER), ("value.converter", AVRO_CONVERTER)];
            p.extend_from_slice(extra);
            Debezium::parse(&props(&p), false)
        };
        let d = avro(&[
            ("key.converter.schema.registry.url", "http://r:8081"),
            ("value.converter.schema.registry.url", "http://r:8081"),
            ("value.converter.basic.auth.credentials.source", "USER_INFO"),
            ("value.converter.basic.auth.user.info", "u:p:w"),
        ])
        .unwrap();
        let expected = AvroConverter { url: "http://r:8081".into(), user_info: Some(("u".into(), "p:w".into())) };
        assert_eq!(d.avro, Some(expected));
        assert_eq!(d.values.unsigned, UnsignedMode::Precise, "as with schemas: a Decimal the schema describes");

        let err = |r: Result<Debezium, String>| r.unwrap_err();
        assert!(err(avro(&[])).contains("schema.registry.url"));
        let differ =
            [("key.converter.schema.registry.url", "http://a"), ("value.converter.schema.registry.url", "http://b")];
        assert!(err(avro(&differ)).contains("differ"));
        let sasl = [
            ("key.converter.schema.registry.url", "http://a"),
            ("key.converter.basic.auth.credentials.source", "SASL_INHERIT"),
        ];
        assert!(err(avro(&sasl)).contains("USER_INFO"));
        let mixed = props(&[("key.converter", AVRO_CONVERTER), ("key.converter.schema.registry.url", "http://a")]);
        assert!(err(Debezium::parse(&mixed, false)).contains("differ"));
        let json_with_url = props(&[("value.converter.schema.registry.url", "http://a")]);
        assert!(err(Debezium::parse(&json_with_url, false)).contains("Avro converter"));
        let unknown = props(&[("value.converter.auto.register.schemas", "true")]);
        assert!(err(Debezium::parse(&unknown, false)).contains("not supported"));
        let with_schemas = [("key.converter.schema.registry.url", "http://a"), (SCHEMAS_VALUE, "true")];
        assert!(err(avro(&with_schemas)).contains("JSON converter"));
    }
}

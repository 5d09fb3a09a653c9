//! The effective configuration with its secrets masked, for the console's
//! `/api/config`: the TOML as parsed after `${VAR}` expansion (so a secret
//! taken from the environment is there in clear, and must be masked too),
//! walked generically so that a setting added to any source or sink is
//! covered without a list to keep up to date.
//!
//! Masked, as `****`:
//! - the value of every key named like a secret, at any depth (tables,
//!   arrays of tables, librdkafka `properties`): a name containing
//!   `password`, `passwd`, `secret`, `token`, `salt`, `credential`,
//!   `passphrase`, `private` or `signature`, or a word `key`/`apikey` unless
//!   the name is one of outflow's settings that hold column names, routing
//!   keys or file paths (`key_columns`, `routing_key`, `tls_key`, ...);
//! - in every string: the password of a URL's user info
//!   (`postgres://user:****@host`), a user info without password on schemes
//!   where that is a token (`nats://****@host`), and `name=value` pairs with a
//!   secret name (`?password=****`, libpq's `password=**** host=...`).

use toml::Value;

pub const MASK: &str = "****";

/// Settings whose name says `key` but which hold no secret.
const NOT_SECRET: &[&str] = &[
    "key",
    "keys",
    "key_columns",
    "key_column",
    "key_field",
    "key_format",
    "keyed",
    "routing_key",
    "partition_key",
    "message_key",
    "tls_key",
    "ssl_key_file",
    "sort_key",
];

/// The config tree with every secret replaced by [`MASK`].
pub fn masked(config: &toml::Table) -> toml::Table {
    config.iter().map(|(k, v)| (k.clone(), mask_entry(k, v))).collect()
}

fn mask_entry(key: &str, value: &Value) -> Value {
    if secret_name(key) && !matches!(value, Value::Table(_)) {
        return Value::String(MASK.into());
    }
    mask_value(value)
}

fn mask_value(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(mask_string(s)),
        Value::Array(items) => Value::Array(items.iter().map(mask_value).collect()),
        Value::Table(t) => Value::Table(masked(t)),
        other => other.clone(),
    }
}

/// Whether a setting named `name` holds a secret.
pub fn secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    const WORDS: &[&str] =
        &["password", "passwd", "secret", "token", "salt", "credential", "passphrase", "private", "signature"];
    if WORDS.iter().any(|w| lower.contains(w)) {
        return true;
    }
    if NOT_SECRET.contains(&lower.as_str()) || lower.ends_with("_file") || lower.ends_with("_path") {
        return false;
    }
    lower.split(|c: char| !c.is_ascii_alphanumeric()).any(|w| w == "key" || w == "apikey" || w == "pwd")
}

/// `s` with URL user-info passwords and secret `name=value` pairs masked.
pub fn mask_string(s: &str) -> String {
    mask_pairs(&mask_userinfo(s))
}

/// Masks the password of every `scheme://user:password@` in `s` (and a
/// lone user info on token schemes).
fn mask_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let scheme_start =
            rest[..i].rfind(|c: char| !(c.is_ascii_alphanumeric() || "+-.".contains(c))).map_or(0, |p| p + 1);
        let scheme = rest[scheme_start..i].to_ascii_lowercase();
        out.push_str(&rest[..i + 3]);
        rest = &rest[i + 3..];
        let authority_end = rest.find(['/', '?', '#', ' ', '\t', '\n', ',']).unwrap_or(rest.len());
        let Some(at) = rest[..authority_end].rfind('@') else { continue };
        let userinfo = &rest[..at];
        match userinfo.split_once(':') {
            Some((user, _)) => {
                out.push_str(user);
                out.push(':');
                out.push_str(MASK);
            }
            None if scheme.starts_with("nats") || scheme == "tls" => out.push_str(MASK),
            None => out.push_str(userinfo),
        }
        rest = &rest[at..];
    }
    out.push_str(rest);
    out
}

/// Masks the value of every `name=value` (in a query string or a libpq
/// keyword/value string) whose name is a secret's.
fn mask_pairs(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(eq) = rest.find('=') {
        let name_start =
            rest[..eq].rfind(|c: char| !(c.is_ascii_alphanumeric() || "_.-".contains(c))).map_or(0, |p| p + 1);
        let name = &rest[name_start..eq];
        out.push_str(&rest[..=eq]);
        rest = &rest[eq + 1..];
        if !name.is_empty() && secret_name(name) {
            let quoted = rest.starts_with('\'');
            let end = if quoted {
                rest[1..].find('\'').map_or(rest.len(), |p| p + 2)
            } else {
                rest.find(['&', ' ', '\t', '\n', ';', ',']).unwrap_or(rest.len())
            };
            out.push_str(MASK);
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask_toml(text: &str) -> String {
        toml::to_string(&masked(&toml::from_str(text).unwrap())).unwrap()
    }

    #[test]
    fn url_passwords_are_masked_and_the_rest_kept() {
        for (url, want) in [
            ("postgres://app:Hunter2-pg@db.internal:5432/shop", "postgres://app:****@db.internal:5432/shop"),
            (
                "mysql://root:S3cr3t!my@10.0.0.5/shop?ssl-mode=REQUIRED",
                "mysql://root:****@10.0.0.5/shop?ssl-mode=REQUIRED",
            ),
            ("redis://:redisPW123@cache:6379/0", "redis://:****@cache:6379/0"),
            ("rediss://default:pw%40x@cache:6380", "rediss://default:****@cache:6380"),
            ("amqp://guest:rabbitPW@mq:5672/%2f", "amqp://guest:****@mq:5672/%2f"),
            ("nats://natsTOKEN42@nats:4222", "nats://****@nats:4222"),
            ("nats://user:natsPW@nats:4222", "nats://user:****@nats:4222"),
            ("postgres://app@db/shop", "postgres://app@db/shop"),
            (
                "postgres://db/shop?user=app&password=QueryPW9&sslmode=require",
                "postgres://db/shop?user=app&password=****&sslmode=require",
            ),
            ("host=db user=app password=KeywordPW7 dbname=shop", "host=db user=app password=**** dbname=shop"),
            ("host=db password='quoted PW' dbname=shop", "host=db password=**** dbname=shop"),
            ("https://hooks.example.com/in?x=1", "https://hooks.example.com/in?x=1"),
            ("kafka-1:9092,kafka-2:9092", "kafka-1:9092,kafka-2:9092"),
        ] {
            assert_eq!(mask_string(url), want, "{url}");
        }
        // Two URLs in one string (a comma-separated server list).
        assert_eq!(
            mask_string("nats://a:pw1@n1:4222,nats://b:pw2@n2:4222"),
            "nats://a:****@n1:4222,nats://b:****@n2:4222"
        );
    }

    #[test]
    fn secret_names_are_recognised() {
        for name in [
            "password",
            "schema_registry_password",
            "sasl.password",
            "ssl.key.password",
            "secret",
            "aws_secret_access_key",
            "s3.secret-access-key",
            "token",
            "hash_salt",
            "api_key",
            "apikey",
            "sasl.oauthbearer.client.secret",
            "ssl.key.pem",
            "private_key",
        ] {
            assert!(secret_name(name), "{name} should be masked");
        }
        for name in
            ["url", "key_columns", "routing_key", "tls_key", "tls_cert", "user", "tables", "key", "creds", "name"]
        {
            assert!(!secret_name(name), "{name} should be shown");
        }
    }

    #[test]
    fn a_whole_config_keeps_no_recognisable_secret() {
        let text = r#"
            name = "shop"
            [source]
            kind = "postgres"
            url = "postgres://cdc:PgSecret-111@db:5432/shop"
            tables = ["public.orders"]
            [admin]
            listen = "127.0.0.1:9187"
            token = "AdminToken-222"
            tls_key = "/etc/outflow/admin.key"
            [[sink]]
            name = "kafka"
            kind = "kafka"
            brokers = "k1:9092"
            schema_registry_password = "RegistryPW-333"
            [sink.properties]
            "sasl.password" = "SaslPW-444"
            "sasl.username" = "outflow"
            [[sink]]
            name = "hook"
            kind = "http"
            url = "https://user:HookPW-555@hooks.example.com/in"
            secret = "HmacSecret-666"
            [[sink]]
            name = "lake"
            kind = "iceberg"
            [sink.s3]
            access_key_id = "AKIAEXAMPLE777"
            secret_access_key = "AwsSecret-888"
            [[transform]]
            name = "mask-pii"
            hash_salt = "Salt-999"
            mask = [{ column = "email", hash_salt = "InnerSalt-000" }]
        "#;
        let shown = mask_toml(text);
        for secret in [
            "PgSecret-111",
            "AdminToken-222",
            "RegistryPW-333",
            "SaslPW-444",
            "HookPW-555",
            "HmacSecret-666",
            "AKIAEXAMPLE777",
            "AwsSecret-888",
            "Salt-999",
            "InnerSalt-000",
        ] {
            assert!(!shown.contains(secret), "{secret} is shown in:\n{shown}");
        }
        for kept in
            ["postgres://cdc:****@db:5432/shop", "/etc/outflow/admin.key", "k1:9092", "outflow", "public.orders"]
        {
            assert!(shown.contains(kept), "{kept} is missing from:\n{shown}");
        }
        assert_eq!(shown.matches(MASK).count(), 10, "{shown}");
    }
}

//! The signal actions of the admin HTTP server:
//!
//! - `POST /api/snapshot` `{"tables": [...], "filter": "SQL condition"}`
//! - `POST /api/snapshot/stop` `{"tables": [...]}` (none: every ad-hoc snapshot)
//! - `POST /api/sinks/{name}/pause`, `POST /api/sinks/{name}/resume`
//! - `POST /api/tables` `{"tables": [...]}`
//! - `GET /api/signals`: the records, newest first (no token needed).
//!
//! Actions need `Authorization: Bearer <[admin] token>`; without a token
//! configured they are off (403). A bad or missing token is 401 and nothing
//! is done; a malformed body, an unknown sink or a table outside the capture
//! is 400. An accepted action is 202 `{"id": ...}`: the driver runs it
//! between two reads of the source, and its record says how it went.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use outflow_model::TableFilter;
use serde_json::{json, Value as Json};

use super::{signals, snapshot_data, Origin};

struct Api {
    token: Option<String>,
    sinks: Vec<String>,
}

/// The routes, for merging into the admin server's router.
pub fn router(token: Option<String>, sinks: Vec<String>) -> Router {
    let api = Arc::new(Api { token: token.filter(|t| !t.is_empty()), sinks });
    Router::new()
        .route("/api/signals", get(list))
        .route("/api/snapshot", post(snapshot))
        .route("/api/snapshot/stop", post(stop_snapshot))
        .route("/api/sinks/{name}/{action}", post(sink_action))
        .route("/api/tables", post(add_tables))
        .with_state(api)
}

type Answer = Result<Response, Response>;

async fn list() -> Response {
    json_response(StatusCode::OK, &json!({ "signals": signals().list() }))
}

async fn snapshot(State(api): State<Arc<Api>>, headers: HeaderMap, body: Bytes) -> Response {
    answer((|| {
        api.authorize(&headers)?;
        let body = parse_body(&body)?;
        let tables = tables_of(&body, true)?;
        let filter = match body.get("filter") {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) => Some(s.as_str()),
            Some(_) => return Err(bad_request("\"filter\" must be a string (an SQL condition)")),
        };
        captured_only(&tables)?;
        Ok(accept("execute-snapshot", snapshot_data(&tables, filter)))
    })())
}

async fn stop_snapshot(State(api): State<Arc<Api>>, headers: HeaderMap, body: Bytes) -> Response {
    answer((|| {
        api.authorize(&headers)?;
        let body = if body.is_empty() { json!({}) } else { parse_body(&body)? };
        let tables = tables_of(&body, false)?;
        Ok(accept("stop-snapshot", json!({ "data-collections": tables, "type": "incremental" })))
    })())
}

async fn sink_action(
    State(api): State<Arc<Api>>,
    Path((name, action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    answer((|| {
        api.authorize(&headers)?;
        let kind = match action.as_str() {
            "pause" => "pause-sink",
            "resume" => "resume-sink",
            _ => return Err(error(StatusCode::NOT_FOUND, "use /api/sinks/<name>/pause or /resume")),
        };
        if !api.sinks.contains(&name) {
            return Err(bad_request(&format!("no sink named {name:?}; the sinks are {:?}", api.sinks)));
        }
        Ok(accept(kind, json!({ "sink": name })))
    })())
}

async fn add_tables(State(api): State<Arc<Api>>, headers: HeaderMap, body: Bytes) -> Response {
    answer((|| {
        api.authorize(&headers)?;
        let tables = tables_of(&parse_body(&body)?, true)?;
        Ok(accept("add-tables", json!({ "data-collections": tables })))
    })())
}

impl Api {
    fn authorize(&self, headers: &HeaderMap) -> Result<(), Response> {
        let Some(token) = &self.token else {
            return Err(error(StatusCode::FORBIDDEN, "actions are off: set [admin] token to enable them"));
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match given {
            Some(given) if same(given.as_bytes(), token.as_bytes()) => Ok(()),
            Some(_) => Err(error(StatusCode::UNAUTHORIZED, "wrong token")),
            None => Err(error(StatusCode::UNAUTHORIZED, "missing Authorization: Bearer <[admin] token>")),
        }
    }
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn accept(kind: &str, data: Json) -> Response {
    match signals().submit(None, kind, data, Origin::Api) {
        Some(id) => json_response(StatusCode::ACCEPTED, &json!({ "id": id })),
        None => error(StatusCode::CONFLICT, "signal id already used; send it again"),
    }
}

fn parse_body(body: &[u8]) -> Result<Json, Response> {
    match serde_json::from_slice::<Json>(body) {
        Ok(v) if v.is_object() => Ok(v),
        Ok(_) => Err(bad_request("the body must be a JSON object")),
        Err(e) => Err(bad_request(&format!("the body is not JSON: {e}"))),
    }
}

/// The body's `tables`, each a valid pattern; `required`: at least one.
fn tables_of(body: &Json, required: bool) -> Result<Vec<String>, Response> {
    let tables: Vec<String> = match body.get("tables") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| bad_request("\"tables\" must be a list of \"schema.table\" strings"))?,
        Some(_) => return Err(bad_request("\"tables\" must be a list of \"schema.table\" strings")),
    };
    if required && tables.is_empty() {
        return Err(bad_request("\"tables\" lists no table"));
    }
    TableFilter::new(&tables, &[]).map_err(|e| bad_request(&format!("\"tables\": {e}")))?;
    Ok(tables)
}

/// Every pattern must match a captured table.
fn captured_only(tables: &[String]) -> Result<(), Response> {
    let captured = signals().captured();
    for pattern in tables {
        let filter = TableFilter::new(std::slice::from_ref(pattern), &[]).map_err(|e| bad_request(&e))?;
        if !captured.iter().any(|t| filter.matches(&t.schema, &t.name)) {
            return Err(bad_request(&format!(
                "{pattern:?} matches no captured table; add it first (POST /api/tables)"
            )));
        }
    }
    Ok(())
}

fn answer(result: Answer) -> Response {
    result.unwrap_or_else(|e| e)
}

fn bad_request(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, message)
}

fn error(status: StatusCode, message: &str) -> Response {
    json_response(status, &json!({ "error": message }))
}

fn json_response(status: StatusCode, body: &Json) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], format!("{body}\n")).into_response()
}

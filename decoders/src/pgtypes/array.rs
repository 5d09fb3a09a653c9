//! Array text format (`array_out`): `{1,2}`, `{{1,2},{3,4}}`, `{}`,
//! `[0:1]={1,2}` when a lower bound is not 1, `"..."` quoting with backslash
//! escapes, unquoted `NULL` for a null element (the quoted `"NULL"` is text).
//! Elements are delimited by `,` except for `box`, which uses `;`.
//! Lower bounds are dropped: a `Value::Array` is a plain nested list.

use super::{clip, oid, parse_text};
use crate::pg_type_registry::PgType;
use crate::DecodeError;
use outflow_model::Value;

/// PostgreSQL's MAXDIM: no array has more dimensions.
const MAX_DIMS: usize = 6;

pub(super) fn parse(elem: &PgType, text: &str) -> Result<Value, DecodeError> {
    let b = text.as_bytes();
    let mut pos = 0;
    if b.first() == Some(&b'[') {
        let eq = text.find('=').ok_or_else(|| bad(text, "dimension decoration without '='"))?;
        if !b[..eq].iter().all(|c| matches!(c, b'[' | b']' | b':' | b'-' | b'0'..=b'9')) {
            return Err(bad(text, "malformed dimension decoration"));
        }
        pos = eq + 1;
    }
    let delim = if *elem == PgType::Builtin(oid::BOX) { b';' } else { b',' };
    let mut p = Parser { text, b, pos, elem, delim };
    let v = p.level(1)?;
    p.skip_ws();
    if p.pos != b.len() {
        return Err(bad(text, "text after the closing brace"));
    }
    Ok(v)
}

fn bad(text: &str, why: &str) -> DecodeError {
    DecodeError::invalid("array", format!("{why} in {:?}", clip(text)))
}

struct Parser<'a> {
    text: &'a str,
    b: &'a [u8],
    pos: usize,
    elem: &'a PgType,
    delim: u8,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.b.get(self.pos).is_some_and(|c| c.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    /// Parses `{ ... }` at `pos`; `dim` is 1 for the outermost braces.
    fn level(&mut self, dim: usize) -> Result<Value, DecodeError> {
        if dim > MAX_DIMS {
            return Err(bad(self.text, "more than 6 dimensions"));
        }
        self.skip_ws();
        if self.b.get(self.pos) != Some(&b'{') {
            return Err(bad(self.text, "expected '{'"));
        }
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.b.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            let item = match self.b.get(self.pos) {
                Some(b'{') => self.level(dim + 1)?,
                Some(b'"') => {
                    let s = self.quoted()?;
                    parse_text(self.elem, &s)?
                }
                Some(_) => match self.unquoted()? {
                    None => Value::Null,
                    Some(s) => parse_text(self.elem, &s)?,
                },
                None => return Err(bad(self.text, "unterminated array")),
            };
            items.push(item);
            self.skip_ws();
            match self.b.get(self.pos) {
                Some(&c) if c == self.delim => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(bad(self.text, "expected a delimiter or '}'")),
            }
        }
    }

    /// A `"..."` element; `\x` stands for `x`.
    fn quoted(&mut self) -> Result<String, DecodeError> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.b.get(self.pos) {
                None => return Err(bad(self.text, "unterminated quoted element")),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    let c = *self.b.get(self.pos + 1).ok_or_else(|| bad(self.text, "dangling backslash"))?;
                    out.push(c);
                    self.pos += 2;
                }
                Some(&c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
        into_string(out, self.text)
    }

    /// An unquoted element up to the delimiter or `}`; `None` for `NULL`.
    fn unquoted(&mut self) -> Result<Option<String>, DecodeError> {
        let mut out = Vec::new();
        let mut escaped = false;
        // Length of `out` up to its last escaped byte: trailing whitespace
        // after it is trimmed, escaped whitespace is kept.
        let mut keep = 0;
        loop {
            match self.b.get(self.pos) {
                None => return Err(bad(self.text, "unterminated array")),
                Some(&c) if c == self.delim || c == b'}' => break,
                Some(b'{') | Some(b'"') => return Err(bad(self.text, "unexpected character in element")),
                Some(b'\\') => {
                    let c = *self.b.get(self.pos + 1).ok_or_else(|| bad(self.text, "dangling backslash"))?;
                    out.push(c);
                    keep = out.len();
                    escaped = true;
                    self.pos += 2;
                }
                Some(&c) => {
                    out.push(c);
                    if !c.is_ascii_whitespace() {
                        keep = out.len();
                    }
                    self.pos += 1;
                }
            }
        }
        out.truncate(keep);
        if out.is_empty() {
            return Err(bad(self.text, "empty unquoted element"));
        }
        if !escaped && out.eq_ignore_ascii_case(b"NULL") {
            return Ok(None);
        }
        into_string(out, self.text).map(Some)
    }
}

fn into_string(bytes: Vec<u8>, text: &str) -> Result<String, DecodeError> {
    // Only ASCII bytes are ever removed, so a valid &str stays valid UTF-8;
    // the check is kept for safety rather than unsafely assumed.
    String::from_utf8(bytes).map_err(|_| bad(text, "invalid UTF-8 in element"))
}

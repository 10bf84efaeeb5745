//! SCIM filters and attribute paths (RFC 7644 §3.4.2.2, §3.5.2): parsed into a small
//! tree, bounded in size, and evaluated against a resource's JSON form. Attribute names
//! compare without case; string values compare without case except where the attribute
//! is case-exact (`id`, `externalId`, `meta.version`); `meta.created` and
//! `meta.lastModified` compare as instants.

use serde_json::Value;

use crate::domain::time::Timestamp;

/// The longest filter taken, in bytes.
const MAX_LEN: usize = 2048;
/// The most comparisons and operators in one filter.
const MAX_NODES: usize = 64;
/// The deepest nesting of parentheses, `not` and value filters.
const MAX_DEPTH: usize = 16;

/// An attribute path: `name`, `name.sub`, or `urn:…:name.sub` (the schema URN dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    /// The attribute, lower case.
    pub attr: String,
    /// The sub-attribute, lower case.
    pub sub: Option<String>,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Both.
    And(Box<Filter>, Box<Filter>),
    /// Either.
    Or(Box<Filter>, Box<Filter>),
    /// Not.
    Not(Box<Filter>),
    /// `path pr`.
    Present(AttrPath),
    /// `path op value`.
    Compare(AttrPath, Op, Value),
    /// `attr[filter]`: some value of multi-valued `attr` matches the inner filter
    /// (whose paths name its sub-attributes).
    Within(String, Box<Filter>),
}

/// A PATCH path: `attr`, `attr.sub`, `attr[filter]` or `attr[filter].sub`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    /// The attribute, lower case.
    pub attr: String,
    /// Which values of a multi-valued attribute.
    pub filter: Option<Filter>,
    /// The sub-attribute, lower case.
    pub sub: Option<String>,
}

/// Why a filter or path was refused (`invalidFilter`, or `invalidPath` for a path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

/// Parse a filter.
pub fn parse(text: &str) -> Result<Filter, Invalid> {
    if text.len() > MAX_LEN {
        return Err(Invalid(format!("the filter is over {MAX_LEN} bytes")));
    }
    let mut parser = Parser::new(text)?;
    let filter = parser.or(0)?;
    parser.expect_end()?;
    Ok(filter)
}

/// Parse a PATCH path.
pub fn parse_path(text: &str) -> Result<PatchPath, Invalid> {
    if text.len() > MAX_LEN {
        return Err(Invalid(format!("the path is over {MAX_LEN} bytes")));
    }
    let mut parser = Parser::new(text)?;
    let Some(Token::Word(word)) = parser.next() else {
        return Err(Invalid("a path starts with an attribute name".into()));
    };
    let path = attr_path(&word)?;
    let (filter, sub) = if parser.peek() == Some(&Token::Open('[')) {
        if path.sub.is_some() {
            return Err(Invalid(
                "a value filter follows the attribute, not a sub-attribute".into(),
            ));
        }
        parser.next();
        let inner = parser.or(1)?;
        parser.expect(&Token::Close(']'))?;
        let sub = match parser.next() {
            Some(Token::Word(rest)) => {
                let rest = rest.strip_prefix('.').ok_or_else(|| {
                    Invalid(format!("unexpected {rest:?} after the value filter"))
                })?;
                Some(name(rest)?)
            }
            None => None,
            Some(other) => return Err(Invalid(format!("unexpected {other:?} in the path"))),
        };
        (Some(inner), sub)
    } else {
        (None, path.sub)
    };
    parser.expect_end()?;
    Ok(PatchPath {
        attr: path.attr,
        filter,
        sub,
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Literal(Value),
    Open(char),
    Close(char),
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    nodes: usize,
}

impl Parser {
    fn new(text: &str) -> Result<Parser, Invalid> {
        Ok(Parser {
            tokens: tokenize(text)?,
            at: 0,
            nodes: 0,
        })
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn expect(&mut self, want: &Token) -> Result<(), Invalid> {
        match self.next() {
            Some(token) if &token == want => Ok(()),
            Some(other) => Err(Invalid(format!("expected {want:?}, found {other:?}"))),
            None => Err(Invalid(format!("expected {want:?} at the end"))),
        }
    }

    fn expect_end(&self) -> Result<(), Invalid> {
        match self.peek() {
            None => Ok(()),
            Some(extra) => Err(Invalid(format!("unexpected {extra:?}"))),
        }
    }

    fn node(&mut self, depth: usize) -> Result<(), Invalid> {
        self.nodes += 1;
        if self.nodes > MAX_NODES || depth > MAX_DEPTH {
            return Err(Invalid(format!(
                "the filter is too complex (at most {MAX_NODES} terms, {MAX_DEPTH} levels deep)"
            )));
        }
        Ok(())
    }

    /// `op value` (or `pr`) after `path`.
    fn comparison(&mut self, path: AttrPath, word: &str) -> Result<Filter, Invalid> {
        let op = match self.next() {
            Some(Token::Word(op)) => op.to_ascii_lowercase(),
            _ => return Err(Invalid(format!("{word} needs an operator"))),
        };
        let op = match op.as_str() {
            "pr" => return Ok(Filter::Present(path)),
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "co" => Op::Co,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            other => return Err(Invalid(format!("{other:?} is not an operator"))),
        };
        let value = match self.next() {
            Some(Token::Literal(value)) => value,
            Some(Token::Word(w)) => keyword_value(&w)
                .ok_or_else(|| Invalid(format!("{w:?} is not a value: quote strings")))?,
            _ => return Err(Invalid(format!("{word} needs a value to compare"))),
        };
        Ok(Filter::Compare(path, op, value))
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    /// `and` binds tighter than `or`.
    fn or(&mut self, depth: usize) -> Result<Filter, Invalid> {
        let mut left = self.and(depth)?;
        while self.keyword("or") {
            self.next();
            self.node(depth)?;
            let right = self.and(depth)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Filter, Invalid> {
        let mut left = self.unary(depth)?;
        while self.keyword("and") {
            self.next();
            self.node(depth)?;
            let right = self.unary(depth)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Filter, Invalid> {
        self.node(depth)?;
        if self.keyword("not") {
            self.next();
            self.expect(&Token::Open('('))?;
            let inner = self.or(depth + 1)?;
            self.expect(&Token::Close(')'))?;
            return Ok(Filter::Not(Box::new(inner)));
        }
        match self.next() {
            Some(Token::Open('(')) => {
                let inner = self.or(depth + 1)?;
                self.expect(&Token::Close(')'))?;
                Ok(inner)
            }
            Some(Token::Word(word)) => {
                let path = attr_path(&word)?;
                if self.peek() == Some(&Token::Open('[')) {
                    if path.sub.is_some() {
                        return Err(Invalid(
                            "a value filter follows the attribute, not a sub-attribute".into(),
                        ));
                    }
                    self.next();
                    let mut inner = self.or(depth + 1)?;
                    self.expect(&Token::Close(']'))?;
                    // `emails[type eq "work"].value eq "…"`: a sub-attribute of the
                    // values the filter selects, compared.
                    if let Some(Token::Word(rest)) = self.peek().cloned()
                        && let Some(sub) = rest.strip_prefix('.')
                    {
                        self.next();
                        let sub = AttrPath {
                            attr: name(sub)?,
                            sub: None,
                        };
                        let compared = self.comparison(sub, &word)?;
                        inner = Filter::And(Box::new(inner), Box::new(compared));
                    }
                    return Ok(Filter::Within(path.attr, Box::new(inner)));
                }
                self.comparison(path, &word)
            }
            Some(other) => Err(Invalid(format!("unexpected {other:?}"))),
            None => Err(Invalid("the filter ends too soon".into())),
        }
    }
}

fn keyword_value(word: &str) -> Option<Value> {
    match word.to_ascii_lowercase().as_str() {
        "true" => Some(Value::Bool(true)),
        "false" => Some(Value::Bool(false)),
        "null" => Some(Value::Null),
        _ => word
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number),
    }
}

/// An attribute name: letters, digits, `_`, `-`, `$`.
fn name(text: &str) -> Result<String, Invalid> {
    let ok = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$'));
    if ok {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(Invalid(format!("{text:?} is not an attribute name")))
    }
}

/// `[urn:…:]attr[.sub]`: a schema URN before the attribute is dropped.
fn attr_path(word: &str) -> Result<AttrPath, Invalid> {
    let bare = if word.to_ascii_lowercase().starts_with("urn:") {
        word.rsplit_once(':').map_or(word, |(_, attr)| attr)
    } else {
        word
    };
    match bare.split_once('.') {
        Some((attr, sub)) => Ok(AttrPath {
            attr: name(attr)?,
            sub: Some(name(sub)?),
        }),
        None => Ok(AttrPath {
            attr: name(bare)?,
            sub: None,
        }),
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, Invalid> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {}
            '(' | '[' => tokens.push(Token::Open(c)),
            ')' | ']' => tokens.push(Token::Close(c)),
            '"' => {
                // A JSON string: read to its closing quote, escapes included.
                let mut end = None;
                let mut escaped = false;
                for (i, d) in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if d == '\\' {
                        escaped = true;
                    } else if d == '"' {
                        end = Some(i);
                        break;
                    }
                }
                let end = end.ok_or_else(|| Invalid("a string is not closed".into()))?;
                let literal = text
                    .get(at..=end)
                    .and_then(|s| serde_json::from_str::<Value>(s).ok())
                    .ok_or_else(|| Invalid("a string is not valid JSON".into()))?;
                tokens.push(Token::Literal(literal));
            }
            _ => {
                let mut end = at + c.len_utf8();
                while let Some((i, d)) = chars.peek().copied() {
                    if matches!(d, ' ' | '\t' | '\n' | '\r' | '(' | ')' | '[' | ']' | '"') {
                        break;
                    }
                    end = i + d.len_utf8();
                    chars.next();
                }
                tokens.push(Token::Word(
                    text.get(at..end).unwrap_or_default().to_owned(),
                ));
            }
        }
    }
    // `]` followed directly by `.sub` tokenizes as Close then Word(".sub").
    Ok(tokens)
}

/// The name a plain `userName eq "…"` filter asks for (the check providers make before
/// a create), to be answered from the index.
pub fn user_name_eq(filter: &Filter) -> Option<&str> {
    match filter {
        Filter::Compare(AttrPath { attr, sub: None }, Op::Eq, Value::String(name))
            if attr == "username" =>
        {
            Some(name)
        }
        _ => None,
    }
}

/// The value of attribute `name` of `object` (a JSON object), its name compared
/// without case.
pub fn get_ci<'v>(object: &'v Value, name: &str) -> Option<&'v Value> {
    object
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Whether `resource` (a resource's JSON form) matches `filter`.
pub fn matches(filter: &Filter, resource: &Value) -> bool {
    match filter {
        Filter::And(a, b) => matches(a, resource) && matches(b, resource),
        Filter::Or(a, b) => matches(a, resource) || matches(b, resource),
        Filter::Not(inner) => !matches(inner, resource),
        Filter::Present(path) => values(resource, path).iter().any(|v| present(v)),
        Filter::Compare(path, op, wanted) => {
            let found = values(resource, path);
            match op {
                // `ne` holds where no value equals (an absent attribute included).
                Op::Ne => !found.iter().any(|v| compare(path, Op::Eq, v, wanted)),
                Op::Eq if wanted.is_null() => found.iter().all(|v| !present(v)),
                _ => found.iter().any(|v| compare(path, *op, v, wanted)),
            }
        }
        Filter::Within(attr, inner) => match get_ci(resource, attr) {
            Some(Value::Array(items)) => items.iter().any(|item| matches(inner, item)),
            Some(single @ Value::Object(_)) => matches(inner, single),
            _ => false,
        },
    }
}

fn present(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

/// Every value `path` names in `resource`: a multi-valued attribute gives each value
/// (or each value's sub-attribute).
fn values<'v>(resource: &'v Value, path: &AttrPath) -> Vec<&'v Value> {
    let Some(top) = get_ci(resource, &path.attr) else {
        return Vec::new();
    };
    let items: Vec<&Value> = match top {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    match &path.sub {
        None => items
            .into_iter()
            .map(|item| match item {
                // A multi-valued attribute compared as a whole compares its `value`s.
                Value::Object(_) => get_ci(item, "value").unwrap_or(item),
                other => other,
            })
            .collect(),
        Some(sub) => items
            .into_iter()
            .filter_map(|item| get_ci(item, sub))
            .collect(),
    }
}

fn case_exact(path: &AttrPath) -> bool {
    matches!(
        (path.attr.as_str(), path.sub.as_deref()),
        ("id" | "externalid", None) | ("meta", Some("version"))
    )
}

fn is_instant(path: &AttrPath) -> bool {
    path.attr == "meta" && matches!(path.sub.as_deref(), Some("created" | "lastmodified"))
}

fn compare(path: &AttrPath, op: Op, found: &Value, wanted: &Value) -> bool {
    use std::cmp::Ordering;
    let ordering: Option<Ordering> = match (found, wanted) {
        (Value::String(a), Value::String(b)) if is_instant(path) => {
            match (
                Timestamp::parse_rfc3339("filter", a),
                Timestamp::parse_rfc3339("filter", b),
            ) {
                (Ok(a), Ok(b)) => Some(a.as_millis().cmp(&b.as_millis())),
                _ => None,
            }
        }
        (Value::String(a), Value::String(b)) => {
            let (a, b) = if case_exact(path) {
                (a.clone(), b.clone())
            } else {
                (a.to_lowercase(), b.to_lowercase())
            };
            return match op {
                Op::Eq => a == b,
                Op::Ne => a != b,
                Op::Co => a.contains(&b),
                Op::Sw => a.starts_with(&b),
                Op::Ew => a.ends_with(&b),
                Op::Gt => a > b,
                Op::Ge => a >= b,
                Op::Lt => a < b,
                Op::Le => a <= b,
            };
        }
        (Value::Number(a), Value::Number(b)) => a
            .as_f64()
            .zip(b.as_f64())
            .and_then(|(a, b)| a.partial_cmp(&b)),
        (Value::Bool(a), Value::Bool(b)) => {
            return match op {
                Op::Eq => a == b,
                Op::Ne => a != b,
                _ => false,
            };
        }
        _ => None,
    };
    let Some(ordering) = ordering else {
        return false;
    };
    match op {
        Op::Eq => ordering == Ordering::Equal,
        Op::Ne => ordering != Ordering::Equal,
        Op::Gt => ordering == Ordering::Greater,
        Op::Ge => ordering != Ordering::Less,
        Op::Lt => ordering == Ordering::Less,
        Op::Le => ordering != Ordering::Greater,
        Op::Co | Op::Sw | Op::Ew => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> Value {
        json!({
            "id": "usr_ABC",
            "userName": "Dana@Example.com",
            "externalId": "00uXYZ",
            "active": true,
            "name": {"givenName": "Dana", "familyName": "Lee"},
            "emails": [
                {"value": "dana@example.com", "type": "work", "primary": true},
                {"value": "dana@home.example", "type": "home"}
            ],
            "meta": {"lastModified": "2026-12-03T07:00:00.000Z", "version": "W/\"abc\""}
        })
    }

    fn hit(filter: &str) -> bool {
        matches(
            &parse(filter).unwrap_or_else(|e| panic!("{filter}: {e:?}")),
            &user(),
        )
    }

    #[test]
    fn every_operator_on_strings_without_case() {
        assert!(hit(r#"userName eq "dana@example.com""#));
        assert!(hit(r#"USERNAME Eq "DANA@EXAMPLE.COM""#));
        assert!(!hit(r#"userName ne "dana@example.com""#));
        assert!(hit(r#"userName co "example""#));
        assert!(hit(r#"userName sw "dana@""#));
        assert!(hit(r#"userName ew ".COM""#));
        assert!(hit(r#"userName gt "a""#) && hit(r#"userName lt "z""#));
        assert!(
            hit(r#"userName ge "dana@example.com""#) && hit(r#"userName le "dana@example.com""#)
        );
        assert!(hit("name.givenName pr") && !hit("displayName pr"));
        assert!(hit(
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "dana@example.com""#
        ));
    }

    #[test]
    fn case_exact_attributes_booleans_and_instants() {
        assert!(hit(r#"externalId eq "00uXYZ""#) && !hit(r#"externalId eq "00uxyz""#));
        assert!(hit("active eq true") && !hit("active eq false") && hit("active ne false"));
        assert!(hit(r#"meta.lastModified gt "2026-12-03T06:59:59Z""#));
        assert!(hit(r#"meta.lastModified ge "2026-12-03T07:00:00Z""#));
        assert!(!hit(r#"meta.lastModified lt "2026-12-03T07:00:00Z""#));
        assert!(hit(r#"meta.lastModified le "2026-12-03T07:00:00.000Z""#));
    }

    #[test]
    fn logic_precedence_grouping_and_value_filters() {
        assert!(hit(
            r#"userName eq "x" or userName eq "dana@example.com" and active eq true"#
        ));
        assert!(!hit(
            r#"(userName eq "x" or userName eq "dana@example.com") and active eq false"#
        ));
        assert!(hit(r#"not (userName eq "x")"#));
        assert!(hit(r#"emails[type eq "work" and value co "example.com"]"#));
        assert!(!hit(r#"emails[type eq "other"]"#));
        assert!(hit(r#"emails.value eq "dana@home.example""#));
        assert!(hit(r#"emails eq "dana@home.example""#));
        assert!(hit(r#"emails[not (type eq "home")]"#));
        assert!(hit(r#"emails[type eq "work"].value eq "DANA@example.com""#));
        assert!(!hit(
            r#"emails[type eq "home"].value eq "dana@example.com""#
        ));
        assert!(hit(r#"emails[type eq "home"].value pr"#));
        assert!(hit(r#"userName ne "x" and title eq null"#));
    }

    #[test]
    fn malformed_and_oversized_filters_are_refused() {
        for bad in [
            "",
            "userName",
            r#"userName eq"#,
            r#"userName xx "a""#,
            r#"userName eq "a"#,
            r#"userName eq unquoted"#,
            r#"(userName eq "a""#,
            r#"userName eq "a" and"#,
            r#"emails[type eq "work""#,
            r#"not userName eq "a""#,
            r#"user%Name eq "a""#,
            r#"userName eq "a")"#,
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        let deep = format!("{}userName pr{}", "(".repeat(40), ")".repeat(40));
        assert!(parse(&deep).is_err());
        let wide = vec![r#"userName eq "a""#; 100].join(" or ");
        assert!(parse(&wide).is_err());
        assert!(parse(&"a".repeat(3000)).is_err());
    }

    #[test]
    fn patch_paths() {
        assert_eq!(
            parse_path("name.givenName").unwrap(),
            PatchPath {
                attr: "name".into(),
                filter: None,
                sub: Some("givenname".into())
            }
        );
        let p = parse_path(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(
            (p.attr.as_str(), p.sub.as_deref()),
            ("emails", Some("value"))
        );
        assert!(p.filter.is_some());
        let p = parse_path(r#"members[value eq "usr_1"]"#).unwrap();
        assert!(p.filter.is_some() && p.sub.is_none());
        assert!(parse_path(r#"emails[type eq "work"]x"#).is_err());
        assert!(parse_path("").is_err());
        assert!(parse_path(r#"name.givenName[value eq "a"]"#).is_err());
    }
}

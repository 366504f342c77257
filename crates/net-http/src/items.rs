//! Request items in httpie's syntax: `Header:Value`, `field=value`, `field:=json`,
//! `param==value`, `field@file` (`field@file;type=MIME`), `field=@file`, `field:=@file`,
//! `param==@file`, `Header:@file`, `Header:` to remove, `Header;` for an empty value; a backslash makes a
//! separator character literal (`a\=b=c`). JSON field names nest as httpie's: `user[name]=x`,
//! `tags[]=a`, `[0][id]:=1`.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::Error;
use crate::client::{Part, Request};

/// One request item from the command line.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub enum Item {
    /// `Name:Value`
    Header(String, String),
    /// `Name:`: do not send this header.
    RemoveHeader(String),
    /// `Name;`: send this header with an empty value.
    EmptyHeader(String),
    /// `name==value`: a query parameter.
    Query(String, String),
    /// `name=value`: a string field.
    Field(String, String),
    /// `name:=json`: a raw JSON field.
    Json(String, Value),
    /// `name@path`, or `name@path;type=MIME` to name its `Content-Type`: a file upload
    /// (multipart).
    Upload(String, PathBuf, Option<String>),
}

// By hand: a header's value is a credential when the header is one (`Authorization:Bearer
// TOKEN`), shown `<redacted>` as in `Request`'s and `Session`'s Debug, which may reach a log.
impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Item::Header(name, value) => {
                let header = [(name.clone(), value.clone())];
                let shown = crate::error::redacted_headers(&header);
                f.debug_tuple("Header")
                    .field(&shown[0].0)
                    .field(&shown[0].1)
                    .finish()
            }
            Item::RemoveHeader(name) => f.debug_tuple("RemoveHeader").field(name).finish(),
            Item::EmptyHeader(name) => f.debug_tuple("EmptyHeader").field(name).finish(),
            Item::Query(name, value) => f.debug_tuple("Query").field(name).field(value).finish(),
            Item::Field(name, value) => f.debug_tuple("Field").field(name).field(value).finish(),
            Item::Json(name, value) => f.debug_tuple("Json").field(name).field(value).finish(),
            Item::Upload(name, path, mime) => f
                .debug_tuple("Upload")
                .field(name)
                .field(path)
                .field(mime)
                .finish(),
        }
    }
}

/// How data items become the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BodyKind {
    /// A JSON object (the default).
    #[default]
    Json,
    /// `application/x-www-form-urlencoded` (or multipart when a file is uploaded).
    Form,
    /// `multipart/form-data`.
    Multipart,
}

const SEPARATORS: [&str; 9] = ["==@", "==", ":=@", "=@", ":=", "=", ":", ";", "@"];

/// The characters a backslash makes literal, so that a name or value can hold them.
const SEPARATOR_CHARS: &[char] = &['=', ':', ';', '@'];

/// Splits `item` at its first separator (the longest of those starting there) that is not
/// escaped, and drops the backslashes of escaped separator characters, as httpie does.
fn split_item(item: &str) -> Option<(String, &'static str, String)> {
    // Each char, and whether a backslash made it literal.
    let mut chars: Vec<(char, bool)> = Vec::with_capacity(item.len());
    let mut rest = item.chars().peekable();
    while let Some(c) = rest.next() {
        if c != '\\' {
            chars.push((c, false));
            continue;
        }
        // A backslash takes the next char with it: `\\=` is two backslashes, then `=`.
        match rest.next() {
            Some(next) if SEPARATOR_CHARS.contains(&next) => chars.push((next, true)),
            Some(next) => chars.extend([(c, false), (next, false)]),
            None => chars.push((c, false)),
        }
    }
    let starts_at = |at: usize, sep: &str| {
        let mut here = chars[at..].iter();
        sep.chars().all(|c| {
            here.next()
                .is_some_and(|&(got, escaped)| !escaped && got == c)
        })
    };
    let (at, sep) = (0..chars.len()).find_map(|at| {
        SEPARATORS
            .iter()
            .filter(|sep| starts_at(at, sep))
            .max_by_key(|sep| sep.len())
            .map(|sep| (at, *sep))
    })?;
    let text = |part: &[(char, bool)]| part.iter().map(|&(c, _)| c).collect::<String>();
    Some((text(&chars[..at]), sep, text(&chars[at + sep.len()..])))
}

impl Item {
    /// Parses one item; `name=@file` and `name:=@file` read the file now.
    ///
    /// # Errors
    /// [`Error::BadRequest`] naming the item when it has no separator or bad JSON;
    /// [`Error::File`] when a file it names cannot be read.
    pub fn parse(item: &str) -> Result<Item, Error> {
        let bad = |why: &str| Error::BadRequest(format!("bad item {item:?}: {why}"));
        let (name, sep, value) = split_item(item).ok_or_else(|| {
            bad("expected Header:Value, field=value, field:=json, param==value or field@file")
        })?;
        // A JSON body may have an empty key (`=x` is {"": "x"}), a header or a file part not.
        if name.is_empty() && !matches!(sep, "=" | ":=" | "=@" | ":=@") {
            return Err(bad("empty name"));
        }
        // `netkit http URL1 URL2` read the second URL as the header `http: //...` and fetched
        // the first alone (httpie does the same, silently); curl fetches both.
        if sep == ":"
            && value.starts_with("//")
            && ["http", "https"]
                .iter()
                .any(|s| name.eq_ignore_ascii_case(s))
        {
            return Err(bad(
                "a second URL: netkit http fetches one URL a run (loop over them, or use curl's URL globs)",
            ));
        }
        if sep == ";" && !value.is_empty() {
            return Err(bad(
                "`Header;` sends an empty header; a `;` in a name is written `\\;`",
            ));
        }
        let read = |path: &str| {
            crate::files::read_capped(Path::new(path), crate::files::DATA_CAP).map_err(|source| {
                Error::File {
                    path: PathBuf::from(path),
                    source,
                }
            })
        };
        // A byte-order mark was "expected value at line 1 column 1".
        let json = |text: &[u8]| {
            serde_json::from_slice::<Value>(crate::decode::without_bom(text))
                .map_err(|e| bad(&format!("not JSON: {e}")))
        };
        let text = |path: &str| {
            String::from_utf8(read(path)?).map_err(|_| bad("the file is not UTF-8 text"))
        };
        // A query value or header from a file loses its last line's end, as httpie's: a
        // token written by `echo` must not send `%0A`.
        let line = |path: &str| text(path).map(|t| t.trim_end_matches(['\r', '\n']).to_owned());
        Ok(match sep {
            "==@" => Item::Query(name, line(&value)?),
            "==" => Item::Query(name, value),
            ":=@" => Item::Json(name, json(&read(&value)?)?),
            "=@" => Item::Field(name, text(&value)?),
            ":=" => Item::Json(name, json(value.as_bytes())?),
            "=" => Item::Field(name, value),
            ";" => Item::EmptyHeader(name),
            ":" if value.is_empty() => Item::RemoveHeader(name),
            // httpie 3's `Header:@file`: the value from a file.
            ":" if value.starts_with('@') => Item::Header(name, line(&value[1..])?),
            ":" => Item::Header(name, value.trim_start().into()),
            _ => match value.rsplit_once(";type=") {
                Some((path, mime)) => Item::Upload(name, path.into(), Some(mime.into())),
                None => Item::Upload(name, value.into(), None),
            },
        })
    }

    /// Whether the item goes into the body.
    #[must_use]
    pub fn is_data(&self) -> bool {
        matches!(self, Item::Field(..) | Item::Json(..) | Item::Upload(..))
    }
}

impl Request {
    /// Applies items: headers and query parameters, and a body of the data items.
    ///
    /// # Errors
    /// [`Error::BadRequest`] when an item does not fit the body kind (`:=` in a form, a file
    /// upload in JSON).
    pub fn items(mut self, items: &[Item], kind: BodyKind) -> Result<Request, Error> {
        let mut fields = Vec::new();
        let (mut json, mut padded) = (None, 0);
        let mut parts = Vec::new();
        // A header given replaces one of its name set before (a session's), as httpie's;
        // the items' own repeats all go.
        for item in items {
            if let Item::Header(name, _) | Item::EmptyHeader(name) = item {
                self = self.without_header(name);
            }
        }
        let uploads = items.iter().any(|i| matches!(i, Item::Upload(..)));
        let kind = if kind == BodyKind::Form && uploads {
            BodyKind::Multipart
        } else {
            kind
        };
        for item in items {
            match item {
                Item::Header(name, value) => self = self.header(name, value),
                Item::RemoveHeader(name) => self = self.remove_header(name),
                Item::EmptyHeader(name) => self = self.header(name, ""),
                Item::Query(name, value) => self = self.query(name, value),
                Item::Field(name, value) => {
                    if kind == BodyKind::Json {
                        nest(&mut json, &mut padded, name, Value::String(value.clone()))?;
                    }
                    fields.push((name.clone(), value.clone()));
                    parts.push(Part::Text {
                        name: name.clone(),
                        value: value.clone(),
                    });
                }
                Item::Json(name, value) => {
                    if kind != BodyKind::Json {
                        return Err(Error::BadRequest(format!(
                            "{name}:= is a JSON field: it cannot go in a form"
                        )));
                    }
                    nest(&mut json, &mut padded, name, value.clone())?;
                }
                Item::Upload(name, path, content_type) => {
                    if kind == BodyKind::Json {
                        return Err(Error::BadRequest(format!(
                            "{name}@{} uploads a file: use --form or --multipart",
                            path.display()
                        )));
                    }
                    crate::client::upload_file(path)?;
                    parts.push(Part::File {
                        name: name.clone(),
                        path: path.clone(),
                        content_type: content_type.clone(),
                    });
                }
            }
        }
        if !items.iter().any(Item::is_data) {
            return Ok(self);
        }
        Ok(match kind {
            BodyKind::Json => self.json(&json.unwrap_or_else(|| Value::Object(Map::new())))?,
            BodyKind::Form => self.form(&fields),
            BodyKind::Multipart => self.multipart(parts),
        })
    }
}

/// An index past this in a JSON field name is refused: `a[99999999999]=x` would otherwise
/// build an array of that many nulls.
const MAX_INDEX: usize = 1 << 20;

/// The places all indexes together may add to arrays: held per index only, forty
/// `a[N][1048576]=x` items took 2 GB.
const MAX_PADDING: usize = 2 * MAX_INDEX;

/// One step of a nested JSON field name.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// `name` or `[name]`: a key of an object.
    Key(String),
    /// `[N]`: an index of an array.
    Index(usize),
    /// `[]`: a new element at the end of an array.
    Append,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Key(key) => write!(f, "[{key}]"),
            Step::Index(n) => write!(f, "[{n}]"),
            Step::Append => f.write_str("[]"),
        }
    }
}

/// A piece of a field name: a bracket, or text with whether a backslash was in it (an
/// escaped number like `\5` is a key, not an index).
#[derive(Debug, PartialEq)]
enum Token {
    Open,
    Close,
    Text(String, bool),
}

/// Splits a field name at its brackets; `\[`, `\]` and `\\` are literal.
fn tokens(name: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut escaped = false;
    let mut chars = name.chars().peekable();
    let flush = |out: &mut Vec<Token>, text: &mut String, escaped: &mut bool| {
        if !text.is_empty() {
            out.push(Token::Text(std::mem::take(text), std::mem::take(escaped)));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '[' | ']' => {
                flush(&mut out, &mut text, &mut escaped);
                out.push(if c == '[' { Token::Open } else { Token::Close });
            }
            '\\' => match chars.peek() {
                Some(&next @ ('[' | ']' | '\\')) => {
                    text.push(next);
                    escaped = true;
                    chars.next();
                }
                _ => text.push(c),
            },
            _ => text.push(c),
        }
    }
    flush(&mut out, &mut text, &mut escaped);
    out
}

/// What a text token means inside brackets: an index when it is a plain number, else a
/// key (`\5` is the key "5").
fn step_for(text: &str, escaped: bool, whole: &str) -> Result<Step, String> {
    if !escaped {
        if let Some(digits) = text.strip_prefix('-')
            && !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(format!("{whole}: negative indexes are not supported"));
        }
        if text.bytes().all(|b| b.is_ascii_digit()) {
            return match text.parse::<usize>() {
                Ok(n) if n <= MAX_INDEX => Ok(Step::Index(n)),
                _ => Err(format!("{whole}: index {text} is over {MAX_INDEX}")),
            };
        }
        if let Some(number) = text.strip_prefix('\\')
            && !number.is_empty()
            && number.bytes().all(|b| b.is_ascii_digit())
        {
            return Ok(Step::Key(number.to_owned()));
        }
    }
    Ok(Step::Key(text.to_owned()))
}

/// Parses a JSON field name into steps, as httpie's nested JSON: a first key (or `[N]`,
/// `[]` for a top-level array), then any of `[key]`, `[N]`, `[]`.
fn path(name: &str) -> Result<Vec<Step>, String> {
    let mut tokens = tokens(name).into_iter().peekable();
    let mut steps = Vec::new();
    let expected = |what: &str, after: &[Step]| match show(after) {
        seen if seen.is_empty() => format!("{name}: expected {what} at the start"),
        seen => format!("{name}: expected {what} after {seen}"),
    };
    if let Some(Token::Text(..)) = tokens.peek()
        && let Some(Token::Text(text, escaped)) = tokens.next()
    {
        // A leading number is a key: `5=x` is {"5": "x"}, `-1=x` {"-1": "x"}.
        steps.push(match step_for(&text, escaped, name) {
            Ok(Step::Key(key)) => Step::Key(key),
            _ => Step::Key(text),
        });
    } else if tokens.peek().is_none() {
        steps.push(Step::Key(String::new()));
    }
    while let Some(token) = tokens.next() {
        if token != Token::Open {
            return Err(expected("'['", &steps));
        }
        let step = match tokens.next() {
            Some(Token::Close) => Step::Append,
            Some(Token::Text(text, escaped)) => {
                let step = step_for(&text, escaped, name)?;
                // Only a number or nothing may open a top-level array.
                if steps.is_empty() && matches!(step, Step::Key(_)) {
                    return Err(expected("a number or ']'", &steps));
                }
                if tokens.next() != Some(Token::Close) {
                    return Err(expected("']'", &steps));
                }
                step
            }
            _ => return Err(expected("a text, a number or ']'", &steps)),
        };
        steps.push(step);
    }
    Ok(steps)
}

/// A JSON type's name, for errors.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// An empty container for `step` to go into.
fn container_for(step: &Step) -> Value {
    match step {
        Step::Key(_) => Value::Object(Map::new()),
        Step::Index(_) | Step::Append => Value::Array(Vec::new()),
    }
}

/// Steps written back as a field name: `a[b][0]`.
fn show(steps: &[Step]) -> String {
    steps
        .iter()
        .enumerate()
        .map(|(i, step)| match step {
            Step::Key(key) if i == 0 => key.clone(),
            step => step.to_string(),
        })
        .collect()
}

/// Puts `value` into `body` at the place `name` says, creating objects and arrays on the way,
/// as httpie's nested JSON does: `a[b]=1` then `a[c]=2` share the object `a`; a later value
/// for the same place replaces the earlier one.
fn nest(
    body: &mut Option<Value>,
    padded: &mut usize,
    name: &str,
    value: Value,
) -> Result<(), Error> {
    let bad = |why: String| Error::BadRequest(format!("bad JSON field name {why}"));
    let steps = path(name).map_err(bad)?;
    let mut here = body.get_or_insert_with(|| container_for(&steps[0]));
    for (i, step) in steps.iter().enumerate() {
        let next = steps.get(i + 1);
        let wrong = |found: &Value, wanted: &str| {
            let reached = match show(&steps[..i]) {
                r if r.is_empty() => "the body".to_owned(),
                r => r,
            };
            let found = type_name(found);
            let article = if found.starts_with(['a', 'o']) {
                "an"
            } else {
                "a"
            };
            let step = if i == 0 {
                show(&steps[..1])
            } else {
                step.to_string()
            };
            bad(format!(
                "{name}: {reached} is {article} {found}, and {step} needs {wanted}"
            ))
        };
        here = match (step, here) {
            (Step::Key(key), Value::Object(map)) => {
                let Some(next) = next else {
                    map.insert(key.clone(), value);
                    return Ok(());
                };
                map.entry(key.clone())
                    .or_insert_with(|| container_for(next))
            }
            (Step::Index(n), Value::Array(items)) => {
                if items.len() <= *n {
                    *padded += n + 1 - items.len();
                    if *padded > MAX_PADDING {
                        return Err(bad(format!(
                            "{name}: the field names' indexes add up to over {MAX_PADDING} \
                             array places"
                        )));
                    }
                    items.resize(n + 1, Value::Null);
                }
                let Some(next) = next else {
                    items[*n] = value;
                    return Ok(());
                };
                if items[*n].is_null() {
                    items[*n] = container_for(next);
                }
                &mut items[*n]
            }
            (Step::Append, Value::Array(items)) => {
                let Some(next) = next else {
                    items.push(value);
                    return Ok(());
                };
                items.push(container_for(next));
                let last = items.len() - 1;
                &mut items[last]
            }
            (Step::Key(_), found) => return Err(wrong(found, "an object")),
            (Step::Index(_) | Step::Append, found) => return Err(wrong(found, "an array")),
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_values_of_credential_headers() {
        for (item, secret) in [
            ("Authorization:Bearer ITEMTOKEN", "ITEMTOKEN"),
            ("proxy-authorization:Basic UFJPWFk=", "UFJPWFk="),
            ("Cookie:sid=COOKIEVALUE", "COOKIEVALUE"),
        ] {
            let shown = format!("{:?}", Item::parse(item).unwrap());
            assert!(!shown.contains(secret), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
        }
        assert_eq!(
            format!("{:?}", Item::parse("Accept:text/plain").unwrap()),
            r#"Header("Accept", "text/plain")"#
        );
        assert_eq!(
            format!("{:?}", Item::parse("q==rust").unwrap()),
            r#"Query("q", "rust")"#
        );
    }

    /// The JSON body the items make.
    fn body(items: &[&str]) -> Result<Value, Error> {
        let (mut body, mut padded) = (None, 0);
        for item in items {
            match Item::parse(item)? {
                Item::Field(name, value) => {
                    nest(&mut body, &mut padded, &name, Value::String(value))?;
                }
                Item::Json(name, value) => nest(&mut body, &mut padded, &name, value)?,
                other => panic!("not a data item: {other:?}"),
            }
        }
        Ok(body.unwrap_or_default())
    }

    #[test]
    fn values_from_files_lose_their_last_line_end_where_httpie_drops_it() {
        let scratch = tempfile::tempdir().unwrap();
        let file = scratch.path().join("item");
        std::fs::write(&file, "s3cret\n").unwrap();
        let path = file.to_str().unwrap();
        let items = [
            Item::parse(&format!("X-Token:@{path}")),
            Item::parse(&format!("q==@{path}")),
            Item::parse(&format!("f=@{path}")),
        ];
        assert_eq!(
            items.map(Result::unwrap),
            [
                Item::Header("X-Token".into(), "s3cret".into()),
                Item::Query("q".into(), "s3cret".into()),
                Item::Field("f".into(), "s3cret\n".into()),
            ]
        );
    }

    #[test]
    fn array_places_are_bounded_in_all_not_only_each() {
        assert!(body(&["a[0][1048575]=x"]).is_ok());
        let many: Vec<String> = (0..4).map(|i| format!("a[{i}][600000]=x")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        match body(&many) {
            Err(Error::BadRequest(why)) => assert!(why.contains("add up to over"), "{why}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn json_names_nest_as_in_httpie() {
        use serde_json::json;
        let cases: &[(&[&str], Value)] = &[
            (
                &["pet[0][kind]=dog", "pet[0][name]=Rex", "pet[1][kind]=cat"],
                json!({"pet": [{"kind": "dog", "name": "Rex"}, {"kind": "cat"}]}),
            ),
            (
                &["deep[a][2][b]=x"],
                json!({"deep": {"a": [null, null, {"b": "x"}]}}),
            ),
            (
                &["mix[]=s", "mix[2]=t", "mix[4]:=\"u\""],
                json!({"mix": ["s", null, "t", null, "u"]}),
            ),
            (
                &["[]:=0", "[]:=1", "[4]:=4", "[]:=5"],
                json!([0, 1, null, null, 4, 5]),
            ),
            (
                &["[][a][b][]:=1", "[0][a][b][]:=2", "[][]:=2"],
                json!([{"a": {"b": [1, 2]}}, [2]]),
            ),
            (
                &[r"\[\]:=1", r"escape\[d\]:=1", r"e\[s\][c][\[ed\]][]:=1"],
                json!({"[]": 1, "escape[d]": 1, "e[s]": {"c": {"[ed]": [1]}}}),
            ),
            (
                &[r"foo[\1][t]=m", r"\2012[x]:=2", "5=five", "-1=neg"],
                json!({"foo": {"1": {"t": "m"}}, "2012": {"x": 2}, "5": "five", "-1": "neg"}),
            ),
            (
                &["=empty", "k=v", "k=w", "x:=[1]", "x[]:=2"],
                json!({"": "empty", "k": "w", "x": [1, 2]}),
            ),
            (&["key[]:=1", "key[][]:=2"], json!({"key": [1, [2]]})),
        ];
        for (items, want) in cases {
            assert_eq!(&body(items).unwrap(), want, "{items:?}");
        }
        for (items, why) in [
            (&["a[:=1"][..], "expected a text, a number or ']' after a"),
            (&["a[1:=1"][..], "expected ']' after a"),
            (&["a[x]1:=1"][..], "expected '[' after a[x]"),
            (
                &["a=1", "a[0]:=2"][..],
                "a is a string, and [0] needs an array",
            ),
            (
                &["d[k]=v", "d[]=w"][..],
                "d is an object, and [] needs an array",
            ),
            (
                &["x=y", "[]:=2"][..],
                "the body is an object, and [] needs an array",
            ),
            (
                &["[]:=2", "x=y"][..],
                "the body is an array, and x needs an object",
            ),
            (&["[k]=v"][..], "expected a number or ']' at the start"),
            (&["a[-10]:=1"][..], "negative indexes are not supported"),
        ] {
            match body(items) {
                Err(Error::BadRequest(m)) => assert!(m.contains(why), "{items:?}: {m}"),
                other => panic!("{items:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_json_file_with_a_byte_order_mark_is_read() {
        let scratch = tempfile::tempdir().unwrap();
        let path = scratch.path().join("bom.json");
        std::fs::write(&path, b"\xEF\xBB\xBF{\"a\": 1}\r\n").unwrap();
        let item = Item::parse(&format!("x:=@{}", path.display())).unwrap();
        assert_eq!(item, Item::Json("x".into(), serde_json::json!({"a": 1})));
    }

    #[test]
    fn backslashes_make_separators_literal() {
        assert_eq!(
            Item::parse(r"a\=b=c\@d").unwrap(),
            Item::Field("a=b".into(), "c@d".into())
        );
        assert_eq!(
            Item::parse(r"X\:Y:v").unwrap(),
            Item::Header("X:Y".into(), "v".into())
        );
        // Other backslashes stay, for paths and for nested names; `\\` is two of them.
        assert_eq!(
            Item::parse(r"a\\=b").unwrap(),
            Item::Field(r"a\\".into(), "b".into())
        );
        assert_eq!(
            Item::parse(r"p=C:\new").unwrap(),
            Item::Field("p".into(), r"C:\new".into())
        );
        assert_eq!(
            Item::parse("X-Empty;").unwrap(),
            Item::EmptyHeader("X-Empty".into())
        );
        assert!(matches!(Item::parse("a;b"), Err(Error::BadRequest(m)) if m.contains("\\;")));
        assert!(matches!(Item::parse(":v"), Err(Error::BadRequest(m)) if m.contains("empty name")));
    }

    #[test]
    fn separators() {
        assert_eq!(
            Item::parse("X-A:b:c").unwrap(),
            Item::Header("X-A".into(), "b:c".into())
        );
        assert_eq!(
            Item::parse("Accept:").unwrap(),
            Item::RemoveHeader("Accept".into())
        );
        assert_eq!(
            Item::parse("q==a b").unwrap(),
            Item::Query("q".into(), "a b".into())
        );
        assert_eq!(
            Item::parse("url=http://x/?a=b").unwrap(),
            Item::Field("url".into(), "http://x/?a=b".into())
        );
        assert_eq!(
            Item::parse("n:=[1,2]").unwrap(),
            Item::Json("n".into(), serde_json::json!([1, 2]))
        );
        assert_eq!(
            Item::parse("f@/tmp/x").unwrap(),
            Item::Upload("f".into(), "/tmp/x".into(), None)
        );
        assert_eq!(
            Item::parse("f@/tmp/x.bin;type=image/png").unwrap(),
            Item::Upload("f".into(), "/tmp/x.bin".into(), Some("image/png".into()))
        );
        assert!(
            matches!(Item::parse("n:={bad"), Err(Error::BadRequest(m)) if m.contains("n:={bad"))
        );
        assert!(matches!(Item::parse("plain"), Err(Error::BadRequest(_))));
        assert!(matches!(
            Item::parse("f=@/no/such/file"),
            Err(Error::File { .. })
        ));
    }
}

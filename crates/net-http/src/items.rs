//! Request items in httpie's syntax: `Header:Value`, `field=value`, `field:=json`,
//! `param==value`, `field@file`, `field=@file`, `field:=@file`, `Header:` to remove.

use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::Error;
use crate::client::{Part, Request};

/// One request item from the command line.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Item {
    /// `Name:Value`
    Header(String, String),
    /// `Name:`: do not send this header.
    RemoveHeader(String),
    /// `name==value`: a query parameter.
    Query(String, String),
    /// `name=value`: a string field.
    Field(String, String),
    /// `name:=json`: a raw JSON field.
    Json(String, Value),
    /// `name@path`: a file upload (multipart).
    Upload(String, PathBuf),
}

/// How data items become the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BodyKind {
    /// A JSON object (the default).
    #[default]
    Json,
    /// `application/x-www-form-urlencoded` (or multipart when a file is uploaded).
    Form,
    /// `multipart/form-data`.
    Multipart,
}

const SEPARATORS: [&str; 7] = ["==", ":=@", "=@", ":=", "=", ":", "@"];

impl Item {
    /// Parses one item; `name=@file` and `name:=@file` read the file now.
    ///
    /// # Errors
    /// [`Error::BadRequest`] naming the item when it has no separator or bad JSON;
    /// [`Error::File`] when a file it names cannot be read.
    pub fn parse(item: &str) -> Result<Item, Error> {
        let bad = |why: &str| Error::BadRequest(format!("bad item {item:?}: {why}"));
        let (at, sep) = SEPARATORS
            .iter()
            .filter_map(|sep| item.find(sep).map(|at| (at, *sep)))
            // The leftmost separator wins; at the same place, the longest.
            .min_by_key(|(at, sep)| (*at, usize::MAX - sep.len()))
            .ok_or_else(|| {
                bad("expected Header:Value, field=value, field:=json, param==value or field@file")
            })?;
        let (name, value) = (&item[..at], &item[at + sep.len()..]);
        if name.is_empty() {
            return Err(bad("empty name"));
        }
        let read = |path: &str| {
            std::fs::read(path).map_err(|source| Error::File {
                path: PathBuf::from(path),
                source,
            })
        };
        let json = |text: &[u8]| {
            serde_json::from_slice::<Value>(text).map_err(|e| bad(&format!("not JSON: {e}")))
        };
        Ok(match sep {
            "==" => Item::Query(name.into(), value.into()),
            ":=@" => Item::Json(name.into(), json(&read(value)?)?),
            "=@" => Item::Field(
                name.into(),
                String::from_utf8(read(value)?).map_err(|_| bad("the file is not UTF-8 text"))?,
            ),
            ":=" => Item::Json(name.into(), json(value.as_bytes())?),
            "=" => Item::Field(name.into(), value.into()),
            ":" if value.is_empty() => Item::RemoveHeader(name.into()),
            ":" => Item::Header(name.into(), value.trim_start().into()),
            _ => Item::Upload(name.into(), PathBuf::from(value)),
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
        let mut object = Map::new();
        let mut parts = Vec::new();
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
                Item::Query(name, value) => self = self.query(name, value),
                Item::Field(name, value) => {
                    object.insert(name.clone(), Value::String(value.clone()));
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
                    object.insert(name.clone(), value.clone());
                }
                Item::Upload(name, path) => {
                    if kind == BodyKind::Json {
                        return Err(Error::BadRequest(format!(
                            "{name}@{} uploads a file: use --form or --multipart",
                            path.display()
                        )));
                    }
                    std::fs::metadata(path).map_err(|source| Error::File {
                        path: path.clone(),
                        source,
                    })?;
                    parts.push(Part::File {
                        name: name.clone(),
                        path: path.clone(),
                    });
                }
            }
        }
        if !items.iter().any(Item::is_data) {
            return Ok(self);
        }
        Ok(match kind {
            BodyKind::Json => self.json(&Value::Object(object))?,
            BodyKind::Form => self.form(&fields),
            BodyKind::Multipart => self.multipart(parts),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            Item::Upload("f".into(), "/tmp/x".into())
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

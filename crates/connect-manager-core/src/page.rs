//! Keyset pagination shared by every list: newest first, ordered by `(created_at, id)`
//! descending, with an opaque cursor naming the last item returned. Stable under concurrent
//! inserts: a new row sorts before the cursor and never shifts a later page.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Error, Result};

pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: i64,
    pub id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}.{}", self.created_at, self.id))
    }

    pub fn decode(s: &str) -> Result<Self> {
        let bad = Error::invalid_cursor;
        let raw = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let (at, id) = raw.split_once('.').ok_or_else(bad)?;
        let created_at = at.parse().map_err(|_| bad())?;
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(bad());
        }
        Ok(Cursor {
            created_at,
            id: id.to_owned(),
        })
    }
}

/// What page to read: at most `limit` items after `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub after: Option<Cursor>,
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest {
            limit: DEFAULT_LIMIT,
            after: None,
        }
    }
}

impl PageRequest {
    pub fn parse(limit: Option<u32>, cursor: Option<&str>) -> Result<Self> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(Error::invalid_field(
                "limit",
                format_args!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let after = cursor
            .filter(|c| !c.is_empty())
            .map(Cursor::decode)
            .transpose()?;
        Ok(PageRequest { limit, after })
    }

    /// The keyset bounds to bind: `(created_at, id) < (after_at, after_id)`. Without a cursor the
    /// bound is above every real row.
    pub fn bounds(&self) -> (i64, String) {
        match &self.after {
            Some(c) => (c.created_at, c.id.clone()),
            None => (i64::MAX, String::new()),
        }
    }

    /// How many rows to fetch: one more than the limit tells whether another page exists.
    pub fn fetch(&self) -> i64 {
        i64::from(self.limit) + 1
    }

    /// Cuts the fetched rows to a page; the last item kept is the next page's cursor.
    pub fn finish<T: Keyed>(&self, mut rows: Vec<T>) -> Page<T> {
        let next_cursor = if rows.len() > self.limit as usize {
            rows.truncate(self.limit as usize);
            rows.last().map(|last| last.cursor().encode())
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }
}

/// What a list is ordered by: `(created_at, id)`, newest first.
pub trait Keyed {
    fn cursor(&self) -> Cursor;
}

macro_rules! keyed {
    ($($t:ty => $at:ident),* $(,)?) => {$(
        impl Keyed for $t {
            fn cursor(&self) -> Cursor {
                Cursor { created_at: self.$at.micros(), id: self.id.clone() }
            }
        }
    )*};
}
keyed!(
    crate::model::User => created_at,
    crate::model::ApiKeyInfo => created_at,
    crate::model::Group => created_at,
    crate::model::Vault => created_at,
    crate::model::Server => created_at,
    crate::model::TokenRecord => created_at,
    crate::audit::AuditEvent => at,
);

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to read the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor {
            created_at: 1_700_000_000_000_000,
            id: "abc".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert!(Cursor::decode("!!").is_err());
        assert!(Cursor::decode(&URL_SAFE_NO_PAD.encode("x.y")).is_err());
        assert!(PageRequest::parse(Some(0), None).is_err());
        assert!(PageRequest::parse(Some(MAX_LIMIT + 1), None).is_err());
    }
}

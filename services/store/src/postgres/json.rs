//! JSON columns without the detour through `serde_json::Value`.
//!
//! tokio-postgres reads and writes `jsonb` as a `Value` tree; on the hot
//! paths (accepting, claiming and completing messages) that tree is built
//! only to be serialized again. [`RawJson`] sends text serialized once;
//! [`JsonText`] hands the received text straight to serde.

use std::error::Error;

use bytes::{BufMut, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

use crate::{Result, StoreError};

/// JSON text, sent as `json` or `jsonb`.
#[derive(Debug, Clone)]
pub(super) struct RawJson(String);

impl RawJson {
    /// Serializes a value.
    pub(super) fn of<T: Serialize + ?Sized>(value: &T) -> Result<RawJson> {
        serde_json::to_string(value)
            .map(RawJson)
            .map_err(StoreError::backend)
    }

    /// Text that is JSON already.
    pub(super) fn from_text(text: String) -> RawJson {
        RawJson(text)
    }
}

impl ToSql for RawJson {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn Error + Sync + Send>> {
        if *ty == Type::JSONB {
            // The jsonb binary format: a version byte, then the text.
            out.put_u8(1);
        }
        out.put_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSON || *ty == Type::JSONB
    }

    to_sql_checked!();
}

/// JSON text as received from a `json` or `jsonb` column.
#[derive(Debug)]
pub(super) struct JsonText<'a>(&'a [u8]);

impl<'a> FromSql<'a> for JsonText<'a> {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<JsonText<'a>, Box<dyn Error + Sync + Send>> {
        if *ty == Type::JSONB {
            match raw.split_first() {
                Some((1, text)) => Ok(JsonText(text)),
                _ => Err("unsupported jsonb version".into()),
            }
        } else {
            Ok(JsonText(raw))
        }
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSON || *ty == Type::JSONB
    }
}

/// Reads column `index` of `row`, a JSON column, as a `T`.
pub(super) fn column<T: DeserializeOwned>(row: &Row, index: usize) -> Result<T> {
    let text: JsonText<'_> = row.try_get(index).map_err(StoreError::backend)?;
    serde_json::from_slice(text.0).map_err(StoreError::backend)
}

/// Reads column `index` of `row`, a nullable JSON column, as a `T`.
pub(super) fn optional_column<T: DeserializeOwned>(row: &Row, index: usize) -> Result<Option<T>> {
    let text: Option<JsonText<'_>> = row.try_get(index).map_err(StoreError::backend)?;
    text.map(|t| serde_json::from_slice(t.0).map_err(StoreError::backend))
        .transpose()
}

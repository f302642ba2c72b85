//! The Arrow schema of a segment, built from the one definition in `schemas/`.

use std::sync::{Arc, OnceLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::Deserialize;

/// The versioned event schema, shared with the analyzer and the docs.
pub const SCHEMA_JSON: &str = include_str!("../../../schemas/events.json");

#[derive(Debug, Deserialize)]
pub struct SchemaDef {
    pub version: u32,
    pub columns: Vec<ColumnDef>,
}

#[derive(Debug, Deserialize)]
pub struct ColumnDef {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub nullable: bool,
}

pub fn definition() -> &'static SchemaDef {
    static DEF: OnceLock<SchemaDef> = OnceLock::new();
    DEF.get_or_init(|| serde_json::from_str(SCHEMA_JSON).expect("schemas/events.json is valid (checked by tests)"))
}

pub fn version() -> u32 {
    definition().version
}

fn data_type(ty: &str) -> DataType {
    match ty {
        "utf8" => DataType::Utf8,
        "uint16" => DataType::UInt16,
        "uint32" => DataType::UInt32,
        "uint64" => DataType::UInt64,
        "int32" => DataType::Int32,
        "int64" => DataType::Int64,
        "timestamp_ns_utc" => DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        other => panic!("schemas/events.json: unknown column type {other}"),
    }
}

/// The Arrow schema every segment is written with.
pub fn arrow_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let fields: Vec<Field> =
                definition().columns.iter().map(|c| Field::new(&c.name, data_type(&c.ty), c.nullable)).collect();
            Arc::new(Schema::new(fields))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_type_maps() {
        let schema = arrow_schema();
        assert_eq!(schema.fields().len(), definition().columns.len());
        assert_eq!(schema.field(0).name(), "kind");
        assert_eq!(version(), 3);
    }
}

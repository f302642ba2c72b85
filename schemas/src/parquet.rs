//! How segments are written: the Arrow schema and the Parquet writer's
//! settings. The capture writes with these, and so do the analyzer's tests
//! when they make segments by hand.

use std::sync::{Arc, OnceLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::basic::{Compression, Encoding as ColumnEncoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::{definition, ColumnType};

pub fn data_type(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::Utf8 => DataType::Utf8,
        ColumnType::Uint16 => DataType::UInt16,
        ColumnType::Uint32 => DataType::UInt32,
        ColumnType::Uint64 => DataType::UInt64,
        ColumnType::Int32 => DataType::Int32,
        ColumnType::Int64 => DataType::Int64,
        ColumnType::TimestampNsUtc => DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
    }
}

/// The Arrow schema of the newest version, every column in order.
pub fn arrow_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let fields: Vec<Field> =
                definition().columns.iter().map(|c| Field::new(&c.name, data_type(c.ty), c.nullable)).collect();
            Arc::new(Schema::new(fields))
        })
        .clone()
}

/// The schema of an older version: the columns it already had.
pub fn arrow_schema_of(version: u32) -> SchemaRef {
    let fields: Vec<Field> = definition()
        .columns
        .iter()
        .filter(|c| c.since <= version)
        .map(|c| Field::new(&c.name, data_type(c.ty), c.nullable))
        .collect();
    Arc::new(Schema::new(fields))
}

/// How segments are encoded. The defaults were chosen by measurement (the
/// capture's `encoding_settings` benchmark; BENCHMARKS.md).
#[derive(Debug, Clone, Copy)]
pub struct Encoding {
    /// Columns with a dictionary; None: every column (Parquet's default).
    pub dictionary: Option<&'static [&'static str]>,
    /// Columns with page statistics; None: every column.
    pub statistics: Option<&'static [&'static str]>,
    pub zstd_level: i32,
}

impl Default for Encoding {
    fn default() -> Self {
        // Measured: dictionaries pay on every column but the timestamps
        // (plain integers cost zstd more than their hashing saves);
        // statistics cost a fifth of the encoding where nobody reads them.
        Encoding { dictionary: None, statistics: Some(STATISTICS_COLUMNS), zstd_level: 3 }
    }
}

/// Columns readers filter on (time ranges, kinds, processes, sockets,
/// ports): their min/max let DuckDB, polars and Spark skip pages.
pub const STATISTICS_COLUMNS: &[&str] = &["ts", "ts_kernel_ns", "kind", "pid", "comm", "sock_id", "lport", "rport"];

/// The writer's settings for `enc`; `created_by` names the writing program.
pub fn writer_properties(enc: Encoding, created_by: &str) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(enc.zstd_level).expect("valid zstd level")))
        .set_max_row_group_row_count(Some(1 << 20))
        .set_created_by(created_by.to_string());
    if let Some(cols) = enc.dictionary {
        b = b.set_dictionary_enabled(false);
        for col in cols {
            b = b.set_column_dictionary_enabled(ColumnPath::from(*col), true);
        }
    }
    if let Some(cols) = enc.statistics {
        b = b.set_statistics_enabled(EnabledStatistics::None);
        for col in cols {
            b = b.set_column_statistics_enabled(ColumnPath::from(*col), EnabledStatistics::Page);
        }
    }
    // Timestamps rise almost monotonically: deltas pack far better than dictionaries.
    for col in ["ts", "ts_kernel_ns"] {
        b = b
            .set_column_dictionary_enabled(ColumnPath::from(col), false)
            .set_column_encoding(ColumnPath::from(col), ColumnEncoding::DELTA_BINARY_PACKED);
    }
    b.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_maps_and_older_versions_are_prefixes() {
        let schema = arrow_schema();
        assert_eq!(schema.fields().len(), definition().columns.len());
        let v1 = arrow_schema_of(1);
        assert!(v1.fields().len() < schema.fields().len());
        assert!(v1.field_with_name("samples").is_err());
        assert_eq!(arrow_schema_of(crate::version()), schema);
    }
}

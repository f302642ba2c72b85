//! Parquet segments: schema, batches, writing, retention.

pub mod batch;
pub mod retention;
pub mod schema;
pub mod sockets;
pub mod writer;

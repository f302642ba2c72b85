//! Parquet segments: batches, writing, retention (the schema: netrec-schema).

pub mod batch;
pub mod manifest;
pub mod retention;
pub mod sockets;
pub mod writer;

//! A chunk of events as typed columns, read row by row by the printers and
//! views (polars' row access through `AnyValue` costs several times more).

use polars::prelude::*;

/// A column of the chunk, by type; absent columns are `None` in [`Rows`].
#[derive(Clone, Copy)]
pub enum Col<'a> {
    Str(&'a StringChunked),
    U16(&'a UInt16Chunked),
    U32(&'a UInt32Chunked),
    U64(&'a UInt64Chunked),
    I32(&'a Int32Chunked),
    I64(&'a Int64Chunked),
}

pub struct Rows<'a> {
    pub len: usize,
    /// `ts_ns`: never null.
    pub ts: &'a [i64],
    /// Every column but `ts_ns`, in the chunk's order (the schema's, then host).
    pub columns: Vec<(&'a str, Col<'a>)>,
    pub kind: Option<&'a StringChunked>,
    pub host: Option<&'a StringChunked>,
    pub capture_id: Option<&'a StringChunked>,
    pub pid: Option<&'a UInt32Chunked>,
    pub comm: Option<&'a StringChunked>,
    pub sock_id: Option<&'a UInt64Chunked>,
    pub protocol: Option<&'a StringChunked>,
    pub laddr: Option<&'a StringChunked>,
    pub lport: Option<&'a UInt16Chunked>,
    pub raddr: Option<&'a StringChunked>,
    pub rport: Option<&'a UInt16Chunked>,
    pub bytes: Option<&'a UInt64Chunked>,
    pub samples: Option<&'a UInt32Chunked>,
    pub old_state: Option<&'a StringChunked>,
    pub new_state: Option<&'a StringChunked>,
    pub srtt_us: Option<&'a UInt32Chunked>,
    pub ppid: Option<&'a UInt32Chunked>,
    pub filename: Option<&'a StringChunked>,
    pub exit_status: Option<&'a Int32Chunked>,
    pub probe: Option<&'a StringChunked>,
    pub duration_ns: Option<&'a UInt64Chunked>,
    pub depth: Option<&'a UInt32Chunked>,
    pub args: [Option<&'a Int64Chunked>; 3],
    pub retval: Option<&'a Int64Chunked>,
}

fn typed(c: &Column) -> Option<Col<'_>> {
    Some(match c.dtype() {
        DataType::String => Col::Str(c.str().ok()?),
        DataType::UInt16 => Col::U16(c.u16().ok()?),
        DataType::UInt32 => Col::U32(c.u32().ok()?),
        DataType::UInt64 => Col::U64(c.u64().ok()?),
        DataType::Int32 => Col::I32(c.i32().ok()?),
        DataType::Int64 => Col::I64(c.i64().ok()?),
        _ => return None,
    })
}

impl<'a> Rows<'a> {
    /// `df` must be one chunk per column, with `ts_ns` (see [`single_chunk`]).
    pub fn new(df: &'a DataFrame) -> PolarsResult<Rows<'a>> {
        let ts = df.column("ts_ns")?.i64()?.cont_slice()?;
        let columns: Vec<(&str, Col)> = df
            .columns()
            .iter()
            .filter(|c| c.name().as_str() != "ts_ns")
            .filter_map(|c| typed(c).map(|t| (c.name().as_str(), t)))
            .collect();
        let s = |n: &str| df.column(n).ok().and_then(|c| c.str().ok());
        let u16 = |n: &str| df.column(n).ok().and_then(|c| c.u16().ok());
        let u32 = |n: &str| df.column(n).ok().and_then(|c| c.u32().ok());
        let u64 = |n: &str| df.column(n).ok().and_then(|c| c.u64().ok());
        let i64 = |n: &str| df.column(n).ok().and_then(|c| c.i64().ok());
        Ok(Rows {
            len: df.height(),
            ts,
            columns,
            kind: s("kind"),
            host: s("host"),
            capture_id: s("capture_id"),
            pid: u32("pid"),
            comm: s("comm"),
            sock_id: u64("sock_id"),
            protocol: s("protocol"),
            laddr: s("laddr"),
            lport: u16("lport"),
            raddr: s("raddr"),
            rport: u16("rport"),
            bytes: u64("bytes"),
            samples: u32("samples"),
            old_state: s("old_state"),
            new_state: s("new_state"),
            srtt_us: u32("srtt_us"),
            ppid: u32("ppid"),
            filename: s("filename"),
            exit_status: df.column("exit_status").ok().and_then(|c| c.i32().ok()),
            probe: s("probe"),
            duration_ns: u64("duration_ns"),
            depth: u32("depth"),
            args: [i64("arg0"), i64("arg1"), i64("arg2")],
            retval: i64("retval"),
        })
    }
}

/// The value of row `i`, null where the column is absent.
pub fn at<'a, T: PolarsDataType>(c: Option<&'a ChunkedArray<T>>, i: usize) -> Option<T::Physical<'a>> {
    c.and_then(|c| c.get(i))
}

/// `df` with one chunk per column, as [`Rows`] reads it.
pub fn single_chunk(mut df: DataFrame) -> DataFrame {
    df.rechunk_mut_par();
    df
}

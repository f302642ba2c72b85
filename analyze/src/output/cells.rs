//! Columns as text: times as RFC 3339, key=value records, histogram buckets.

use chrono::{DateTime, Local, SecondsFormat, Utc};
use polars::prelude::*;

pub fn time_text(ns: i64, local: bool) -> String {
    let t = DateTime::<Utc>::from_timestamp_nanos(ns);
    // Whole seconds print as such; sub-second buckets with the digits they need.
    let fmt = SecondsFormat::AutoSi;
    if local {
        t.with_timezone(&Local).to_rfc3339_opts(fmt, true)
    } else {
        t.to_rfc3339_opts(fmt, true)
    }
}

/// A float as people read it: at most four decimals, no trailing zeros.
fn float_text(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{v:.0}");
    }
    let s = format!("{v:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Whether a column holds histogram buckets: a list of {le_us, count}.
pub fn is_buckets(dtype: &DataType) -> bool {
    matches!(dtype, DataType::List(inner) if matches!(&**inner, DataType::Struct(f) if f.iter().any(|f| f.name() == "le_us")))
}

/// The (le_us, count) pairs of each row of a buckets column.
pub fn buckets(c: &Column) -> PolarsResult<Vec<Vec<(u64, u64)>>> {
    let mut rows = Vec::with_capacity(c.len());
    let list = c.list()?;
    for i in 0..list.len() {
        let Some(s) = list.get_as_series(i) else {
            rows.push(Vec::new());
            continue;
        };
        let st = s.struct_()?;
        let le = st.field_by_name("le_us")?.cast(&DataType::UInt64)?;
        let n = st.field_by_name("count")?.cast(&DataType::UInt64)?;
        rows.push(le.u64()?.iter().zip(n.u64()?.iter()).map(|(a, b)| (a.unwrap_or(0), b.unwrap_or(0))).collect());
    }
    Ok(rows)
}

/// Every cell of a column as text; nulls as None.
pub fn texts(c: &Column, local: bool) -> PolarsResult<Vec<Option<String>>> {
    let dtype = c.dtype();
    Ok(match dtype {
        DataType::String => c.str()?.iter().map(|v| v.map(str::to_string)).collect(),
        DataType::Boolean => c.bool()?.iter().map(|v| v.map(|b| b.to_string())).collect(),
        DataType::Datetime(..) => {
            c.cast(&DataType::Int64)?.i64()?.iter().map(|v| v.map(|ns| time_text(ns, local))).collect()
        }
        DataType::Float32 | DataType::Float64 => {
            c.cast(&DataType::Float64)?.f64()?.iter().map(|v| v.map(float_text)).collect()
        }
        d if d.is_unsigned_integer() => {
            c.cast(&DataType::UInt64)?.u64()?.iter().map(|v| v.map(|n| n.to_string())).collect()
        }
        d if d.is_integer() => c.cast(&DataType::Int64)?.i64()?.iter().map(|v| v.map(|n| n.to_string())).collect(),
        d if is_buckets(d) => buckets(c)?
            .into_iter()
            .map(|b| Some(b.iter().map(|(le, n)| format!("{le}:{n}")).collect::<Vec<_>>().join(";")))
            .collect(),
        DataType::Struct(_) => {
            // key=value per field that is set, one per line.
            let fields = c.struct_()?.fields_as_series();
            let named: Vec<(String, Vec<Option<String>>)> = fields
                .iter()
                .map(|f| Ok((f.name().to_string(), texts(&f.clone().into_column(), local)?)))
                .collect::<PolarsResult<_>>()?;
            (0..c.len())
                .map(|i| {
                    let set: Vec<String> =
                        named.iter().filter_map(|(k, v)| v[i].as_ref().map(|v| format!("{k}={v}"))).collect();
                    Some(set.join("\n"))
                })
                .collect()
        }
        other => polars_bail!(ComputeError: "no text form for column {} of type {other}", c.name()),
    })
}

/// Datetime columns as RFC 3339 strings (JSON keeps numbers and nesting).
pub fn plain_times(mut df: DataFrame, local: bool) -> PolarsResult<DataFrame> {
    let names: Vec<PlSmallStr> =
        df.columns().iter().filter(|c| matches!(c.dtype(), DataType::Datetime(..))).map(|c| c.name().clone()).collect();
    for name in names {
        let text = texts(df.column(&name)?, local)?;
        df.with_column(Column::new(name, text))?;
    }
    Ok(df)
}

/// Every column CSV cannot hold (times, records, lists) as text.
pub fn flat(mut df: DataFrame, local: bool) -> PolarsResult<DataFrame> {
    let names: Vec<PlSmallStr> = df
        .columns()
        .iter()
        .filter(|c| matches!(c.dtype(), DataType::Datetime(..) | DataType::Struct(_) | DataType::List(_)))
        .map(|c| c.name().clone())
        .collect();
    for name in names {
        let text: Vec<Option<String>> =
            texts(df.column(&name)?, local)?.into_iter().map(|t| t.map(|t| t.replace('\n', "; "))).collect();
        df.with_column(Column::new(name, text))?;
    }
    Ok(df)
}

//! Reading collected polars columns into report values.

use polars::prelude::*;

use crate::output::Value;

/// A column as report values: integers as U64, strings as Str, nulls as Null.
pub fn values(df: &DataFrame, name: &str) -> PolarsResult<Vec<Value>> {
    let c = value_column(df, name)?;
    Ok(match c.dtype() {
        DataType::String => c.str()?.iter().map(|v| v.map_or(Value::Null, Value::from)).collect(),
        _ => c.u64()?.iter().map(Value::from).collect(),
    })
}

/// A column ready for `value_at`: integers as UInt64, in one chunk.
pub fn value_column(df: &DataFrame, name: &str) -> PolarsResult<Column> {
    let c = df.column(name)?;
    let c = if c.dtype() == &DataType::String { c.clone() } else { c.cast(&DataType::UInt64)? };
    Ok(c.rechunk())
}

/// Row `i` of a `value_column` as a report value.
pub fn value_at(c: &Column, i: usize) -> Value {
    match c.get(i) {
        Ok(AnyValue::UInt64(v)) => Value::U64(v),
        Ok(AnyValue::String(s)) => Value::from(s),
        Ok(AnyValue::StringOwned(s)) => Value::from(s.as_str()),
        _ => Value::Null,
    }
}

/// A column of integers (ns timestamps and the like).
pub fn i64s(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<i64>>> {
    let c = df.column(name)?.cast(&DataType::Int64)?;
    Ok(c.i64()?.iter().collect())
}

pub fn u64s(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<u64>>> {
    let c = df.column(name)?.cast(&DataType::UInt64)?;
    Ok(c.u64()?.iter().collect())
}

/// Runs the plan on the streaming engine: memory stays bounded on big traces.
pub fn collect(lf: LazyFrame) -> PolarsResult<DataFrame> {
    // A plan with one sink always yields a single frame.
    Ok(lf.collect_with_engine(Engine::Streaming)?.unwrap_single())
}

/// Runs the plan on the streaming engine and folds each output batch into
/// `state` as it arrives: the plan's whole output is never in memory at once.
pub fn fold_batches<S: Send + 'static>(
    lf: LazyFrame,
    state: S,
    fold: impl Fn(&mut S, DataFrame) -> PolarsResult<()> + Send + Sync + 'static,
) -> PolarsResult<S> {
    let shared = std::sync::Arc::new(std::sync::Mutex::new(Some(state)));
    let inner = std::sync::Arc::clone(&shared);
    let callback = PlanCallback::new(move |df: DataFrame| {
        let mut guard = inner.lock().map_err(|_| polars_err!(ComputeError: "a batch callback panicked"))?;
        fold(guard.as_mut().expect("taken only after the run"), df)?;
        Ok(false) // never stop early
    });
    lf.sink_batches(callback, false, None)?.collect_with_engine(Engine::Streaming)?;
    let mut guard = shared.lock().map_err(|_| polars_err!(ComputeError: "a batch callback panicked"))?;
    Ok(guard.take().expect("taken once"))
}

//! Values bound to placeholders and read from result rows.
//!
//! Datetimes are [`Value::Time`]: whole seconds since the epoch, SER's
//! `time_t`. Seconds, because `datetime` columns keep whole seconds (a
//! `SystemTime` with nanoseconds would not come back equal); an instant
//! rather than a civil time, because callers compare expiries with "now".
//! Each backend stores the local civil time (see [`super::time`]), so all
//! three round-trip it exactly and read SER 0.9's rows unchanged.

use super::DbError;

/// One value: a parameter or a column of a result row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// Any integer column (int, smallint, tinyint, unsigned up to i64).
    Int(i64),
    /// float, double, real.
    Float(f64),
    /// Text columns (varchar, char, text).
    Str(String),
    /// Binary columns (blob, bytea) and text that is not UTF-8.
    Bytes(Vec<u8>),
    /// datetime / timestamp: seconds since the epoch.
    Time(i64),
}

impl Value {
    /// The text, for `Str` (and `Bytes` that are UTF-8).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The integer, for `Int` (and text holding a decimal integer, as
    /// MySQL's loose typing returns some numbers).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// The number, for `Float` and `Int` (and decimal text).
    pub fn as_float(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// Seconds since the epoch, for `Time`.
    pub fn as_time(&self) -> Option<i64> {
        match self {
            Value::Time(t) => Some(*t),
            _ => None,
        }
    }

    /// SQL NULL?
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The variant's name, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::Time(_) => "time",
        }
    }

    /// A `Str` from bytes when they are UTF-8, else `Bytes`.
    pub(crate) fn text_or_bytes(b: Vec<u8>) -> Value {
        match String::from_utf8(b) {
            Ok(s) => Value::Str(s),
            Err(e) => Value::Bytes(e.into_bytes()),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}

impl From<&String> for Value {
    fn from(s: &String) -> Value {
        Value::Str(s.clone())
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

impl From<i32> for Value {
    fn from(i: i32) -> Value {
        Value::Int(i64::from(i))
    }
}

impl From<u32> for Value {
    fn from(i: u32) -> Value {
        Value::Int(i64::from(i))
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::Float(f)
    }
}

impl From<&[u8]> for Value {
    fn from(b: &[u8]) -> Value {
        Value::Bytes(b.to_vec())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(o: Option<T>) -> Value {
        o.map_or(Value::Null, Into::into)
    }
}

/// One result row: the values of the statement's columns, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    values: Vec<Value>,
}

impl Row {
    pub(crate) fn new(values: Vec<Value>) -> Row {
        Row { values }
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// No columns?
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Column `i`, if there is one.
    pub fn get(&self, i: usize) -> Option<&Value> {
        self.values.get(i)
    }

    /// All columns.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The columns, owned.
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }

    fn col(&self, i: usize) -> Result<&Value, DbError> {
        self.values.get(i).ok_or(DbError::Type {
            column: i,
            expected: "a column",
            found: format!("a row of {} columns", self.values.len()),
        })
    }

    fn want<'a, T>(
        &'a self,
        i: usize,
        expected: &'static str,
        f: impl Fn(&'a Value) -> Option<T>,
    ) -> Result<Option<T>, DbError> {
        let v = self.col(i)?;
        if v.is_null() {
            return Ok(None);
        }
        f(v).map(Some).ok_or_else(|| DbError::Type {
            column: i,
            expected,
            found: v.kind().to_string(),
        })
    }

    fn required<T>(&self, i: usize, expected: &'static str, v: Option<T>) -> Result<T, DbError> {
        v.ok_or(DbError::Type {
            column: i,
            expected,
            found: "NULL".into(),
        })
    }

    /// Text of column `i`, NULL allowed.
    pub fn opt_str(&self, i: usize) -> Result<Option<&str>, DbError> {
        self.want(i, "string", Value::as_str)
    }

    /// Text of column `i`; NULL is an error.
    pub fn str(&self, i: usize) -> Result<&str, DbError> {
        let v = self.opt_str(i)?;
        self.required(i, "string", v)
    }

    /// Integer of column `i`, NULL allowed.
    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, DbError> {
        self.want(i, "integer", Value::as_int)
    }

    /// Integer of column `i`; NULL is an error.
    pub fn int(&self, i: usize) -> Result<i64, DbError> {
        let v = self.opt_int(i)?;
        self.required(i, "integer", v)
    }

    /// Number of column `i`, NULL allowed.
    pub fn opt_float(&self, i: usize) -> Result<Option<f64>, DbError> {
        self.want(i, "number", Value::as_float)
    }

    /// Number of column `i`; NULL is an error.
    pub fn float(&self, i: usize) -> Result<f64, DbError> {
        let v = self.opt_float(i)?;
        self.required(i, "number", v)
    }

    /// Time of column `i` (seconds since the epoch), NULL allowed.
    pub fn opt_time(&self, i: usize) -> Result<Option<i64>, DbError> {
        self.want(i, "time", Value::as_time)
    }

    /// Time of column `i`; NULL is an error.
    pub fn time(&self, i: usize) -> Result<i64, DbError> {
        let v = self.opt_time(i)?;
        self.required(i, "time", v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_access_says_what_was_there() {
        let r = Row::new(vec![
            Value::from("alice"),
            Value::Int(42),
            Value::Null,
            Value::Time(5),
            Value::Float(0.5),
        ]);
        assert_eq!(r.str(0).unwrap(), "alice");
        assert_eq!(r.int(1).unwrap(), 42);
        assert_eq!(r.opt_str(2).unwrap(), None);
        assert_eq!(r.time(3).unwrap(), 5);
        assert_eq!(r.float(4).unwrap(), 0.5);
        assert_eq!(r.float(1).unwrap(), 42.0);
        assert!(matches!(r.str(2), Err(DbError::Type { column: 2, .. })));
        assert!(matches!(r.int(0), Err(DbError::Type { column: 0, .. })));
        assert!(matches!(r.str(9), Err(DbError::Type { column: 9, .. })));
        assert_eq!(Value::from(None::<&str>), Value::Null);
        assert_eq!(Value::text_or_bytes(vec![0xff]), Value::Bytes(vec![0xff]));
    }
}

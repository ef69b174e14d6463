//! What the filtered, newest-first listings (tokens, audit) share: a statement that grows with
//! the filters given, LIKE patterns, and cutting the rows into a page.

use sqlx::any::AnyArguments;
use sqlx::{Any, Arguments, Encode, Type};

use crate::model::Page;

/// A statement built piece by piece, numbering its placeholders as it goes.
pub(crate) struct Sql {
    text: String,
    args: AnyArguments<'static>,
    n: usize,
}

impl Sql {
    pub(crate) fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            args: AnyArguments::default(),
            n: 0,
        }
    }

    pub(crate) fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    pub(crate) fn bind<T: Encode<'static, Any> + Type<Any> + 'static>(
        &mut self,
        v: T,
    ) -> &mut Self {
        self.n += 1;
        self.text.push_str(&format!("${}", self.n));
        self.args
            .add(v)
            .expect("values of supported types always encode");
        self
    }

    /// The statement with its arguments (taken: a statement runs once).
    pub(crate) fn query(&mut self) -> sqlx::query::Query<'_, Any, AnyArguments<'_>> {
        sqlx::query_with(&self.text, std::mem::take(&mut self.args))
    }
}

/// `%text%` for LIKE, with LIKE's own wildcards escaped (the statement says `ESCAPE '\'`).
pub(crate) fn like_contains(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Cuts rows fetched with `LIMIT limit + 1` into a page: the extra row only says there is more,
/// and the position of the last row kept is where the next page starts.
pub(crate) fn page<T>(mut rows: Vec<(i64, T)>, limit: u32) -> Page<T> {
    let next = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|(seq, _)| *seq)
    } else {
        None
    };
    Page {
        items: rows.into_iter().map(|(_, t)| t).collect(),
        next,
    }
}

//! Permission queries: a condition over a token's scopes, such as
//! `(documents.read OR documents.write) AND users.view`, asked by the caller of a verification
//! instead of a flat list of scopes.
//!
//! The grammar, with `AND` binding tighter than `OR` as in SQL and in boolean algebra:
//!
//! ```text
//! query  = or
//! or     = and { "OR" and }
//! and    = atom { "AND" atom }
//! atom   = NAME | "(" or ")"
//! ```
//!
//! `AND` and `OR` are keywords only in capitals, so that a scope may be named `and`; a name is any
//! run of characters other than white space and parentheses. Whether a name is held is the
//! caller's question (with a [`crate::ScopeSet`], wildcards in granted scopes apply as
//! everywhere). Queries are bounded in length and in nesting, so that a request cannot make the
//! parser or the evaluator recurse without end.

use std::fmt;

/// Longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 1000;
/// Deepest nesting of parentheses accepted.
pub const MAX_DEPTH: usize = 32;

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    Scope(String),
    And(Vec<Query>),
    Or(Vec<Query>),
}

/// Why a query was refused, with the byte offset where it went wrong when there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("the permission query is empty")]
    Empty,
    #[error("the permission query is longer than {MAX_QUERY_BYTES} bytes")]
    TooLong,
    #[error("the permission query nests parentheses deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("the permission query has {found} at byte {at} where {expected} was expected")]
    Unexpected {
        at: usize,
        found: String,
        expected: &'static str,
    },
}

impl Query {
    /// Parses a query; see the module's grammar.
    pub fn parse(text: &str) -> Result<Query, QueryError> {
        if text.len() > MAX_QUERY_BYTES {
            return Err(QueryError::TooLong);
        }
        let tokens = lex(text);
        if tokens.is_empty() {
            return Err(QueryError::Empty);
        }
        let mut parser = Parser {
            tokens,
            next: 0,
            end: text.len(),
        };
        let query = parser.or(0)?;
        match parser.peek() {
            None => Ok(query),
            Some(t) => Err(parser.unexpected(t, "AND, OR or the end")),
        }
    }

    /// Is the query met when `holds` says which names are held?
    pub fn is_met_by(&self, holds: &impl Fn(&str) -> bool) -> bool {
        match self {
            Query::Scope(name) => holds(name),
            Query::And(parts) => parts.iter().all(|q| q.is_met_by(holds)),
            Query::Or(parts) => parts.iter().any(|q| q.is_met_by(holds)),
        }
    }

    /// The names of a plain conjunction (`a AND b AND c`, or a single name): then what is
    /// missing can be named scope by scope. `None` for a query with an `OR`.
    pub fn conjunction(&self) -> Option<Vec<&str>> {
        match self {
            Query::Scope(name) => Some(vec![name.as_str()]),
            Query::And(parts) => {
                let mut names = Vec::new();
                for part in parts {
                    names.extend(part.conjunction()?);
                }
                Some(names)
            }
            Query::Or(_) => None,
        }
    }
}

/// Written back in the query syntax, with the parentheses that precedence needs and no others.
impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Query::Scope(name) => f.write_str(name),
            Query::And(parts) => join(f, parts, " AND ", |q| matches!(q, Query::Or(_))),
            Query::Or(parts) => join(f, parts, " OR ", |_| false),
        }
    }
}

fn join(
    f: &mut fmt::Formatter<'_>,
    parts: &[Query],
    separator: &str,
    needs_parentheses: impl Fn(&Query) -> bool,
) -> fmt::Result {
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            f.write_str(separator)?;
        }
        if needs_parentheses(part) {
            write!(f, "({part})")?;
        } else {
            write!(f, "{part}")?;
        }
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token<'a> {
    Open,
    Close,
    And,
    Or,
    Name(&'a str),
}

/// The tokens of `text`, each with its byte offset.
fn lex(text: &str) -> Vec<(usize, Token<'_>)> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(at, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' => {
                chars.next();
                tokens.push((at, if c == '(' { Token::Open } else { Token::Close }));
            }
            _ => {
                let mut end = text.len();
                while let Some(&(i, c)) = chars.peek() {
                    if c.is_whitespace() || c == '(' || c == ')' {
                        end = i;
                        break;
                    }
                    chars.next();
                }
                let word = &text[at..end];
                tokens.push((
                    at,
                    match word {
                        "AND" => Token::And,
                        "OR" => Token::Or,
                        name => Token::Name(name),
                    },
                ));
            }
        }
    }
    tokens
}

struct Parser<'a> {
    tokens: Vec<(usize, Token<'a>)>,
    next: usize,
    /// The query's length: where "the end" is, for errors.
    end: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&(usize, Token<'a>)> {
        self.tokens.get(self.next)
    }

    fn unexpected(&self, (at, token): &(usize, Token<'a>), expected: &'static str) -> QueryError {
        let found = match token {
            Token::Open => "'('".to_owned(),
            Token::Close => "')'".to_owned(),
            Token::And => "AND".to_owned(),
            Token::Or => "OR".to_owned(),
            Token::Name(n) => format!("{n:?}"),
        };
        QueryError::Unexpected {
            at: *at,
            found,
            expected,
        }
    }

    fn or(&mut self, depth: usize) -> Result<Query, QueryError> {
        let mut parts = vec![self.and(depth)?];
        while matches!(self.peek(), Some((_, Token::Or))) {
            self.next += 1;
            parts.push(self.and(depth)?);
        }
        Ok(flatten(parts, Query::Or))
    }

    fn and(&mut self, depth: usize) -> Result<Query, QueryError> {
        let mut parts = vec![self.atom(depth)?];
        while matches!(self.peek(), Some((_, Token::And))) {
            self.next += 1;
            parts.push(self.atom(depth)?);
        }
        Ok(flatten(parts, Query::And))
    }

    fn atom(&mut self, depth: usize) -> Result<Query, QueryError> {
        let Some(token) = self.peek().cloned() else {
            return Err(QueryError::Unexpected {
                at: self.end,
                found: "the end".into(),
                expected: "a scope name or '('",
            });
        };
        self.next += 1;
        match token.1 {
            Token::Name(name) => Ok(Query::Scope(name.to_owned())),
            Token::Open => {
                if depth + 1 > MAX_DEPTH {
                    return Err(QueryError::TooDeep);
                }
                let inner = self.or(depth + 1)?;
                match self.peek().cloned() {
                    Some((_, Token::Close)) => {
                        self.next += 1;
                        Ok(inner)
                    }
                    Some(other) => Err(self.unexpected(&other, "AND, OR or ')'")),
                    None => Err(QueryError::Unexpected {
                        at: self.end,
                        found: "the end".into(),
                        expected: "')'",
                    }),
                }
            }
            _ => Err(self.unexpected(&token, "a scope name or '('")),
        }
    }
}

/// One part stands for itself; an `AND` of `AND`s (from parentheses) is one `AND`, and so for `OR`.
fn flatten(parts: Vec<Query>, make: fn(Vec<Query>) -> Query) -> Query {
    if parts.len() == 1 {
        return parts.into_iter().next().expect("one part");
    }
    let same = |q: &Query| {
        matches!(
            (q, make(Vec::new())),
            (Query::And(_), Query::And(_)) | (Query::Or(_), Query::Or(_))
        )
    };
    let mut flat = Vec::with_capacity(parts.len());
    for part in parts {
        if same(&part) {
            match part {
                Query::And(inner) | Query::Or(inner) => flat.extend(inner),
                Query::Scope(_) => unreachable!("a scope is neither AND nor OR"),
            }
        } else {
            flat.push(part);
        }
    }
    make(flat)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn met(query: &str, held: &[&str]) -> bool {
        Query::parse(query)
            .unwrap()
            .is_met_by(&|name| held.contains(&name))
    }

    #[test]
    fn and_binds_tighter_than_or() {
        // a OR (b AND c), not (a OR b) AND c.
        assert!(met("a OR b AND c", &["a"]));
        assert!(!met("a OR b AND c", &["b"]));
        assert!(met("b AND c OR a", &["a"]));
        assert_eq!(
            Query::parse("a OR b AND c").unwrap().to_string(),
            "a OR b AND c"
        );
    }

    #[test]
    fn parentheses_group() {
        assert!(met("(a OR b) AND c", &["b", "c"]));
        assert!(!met("(a OR b) AND c", &["a"]));
        assert!(met("((a))", &["a"]));
        assert!(met(
            "(documents.read OR documents.write) AND users.view",
            &["documents.write", "users.view"]
        ));
        assert_eq!(
            Query::parse("(a OR b) AND c").unwrap().to_string(),
            "(a OR b) AND c"
        );
    }

    #[test]
    fn white_space_is_free_and_keywords_are_capitals() {
        assert!(met("  (a)AND(b)  ", &["a", "b"]));
        assert!(met("a\tAND\nb", &["a", "b"]));
        // `and` is a scope name: three names in a row are an error.
        assert!(matches!(
            Query::parse("a and b"),
            Err(QueryError::Unexpected { at: 2, .. })
        ));
        assert!(met("and", &["and"]));
    }

    #[test]
    fn wildcards_are_the_holders_business() {
        let held = crate::ScopeSet::parse(["metrics:*"]).unwrap();
        let q = Query::parse("metrics:read AND (metrics:write OR tokens:read)").unwrap();
        assert!(q.is_met_by(&|name| held.allows(name)));
        let q = Query::parse("metrics:read AND tokens:read").unwrap();
        assert!(!q.is_met_by(&|name| held.allows(name)));
    }

    #[test]
    fn errors_say_where() {
        for (query, expected) in [
            ("", QueryError::Empty),
            ("   ", QueryError::Empty),
            (
                "a AND",
                QueryError::Unexpected {
                    at: 5,
                    found: "the end".into(),
                    expected: "a scope name or '('",
                },
            ),
            (
                "OR a",
                QueryError::Unexpected {
                    at: 0,
                    found: "OR".into(),
                    expected: "a scope name or '('",
                },
            ),
            (
                "(a OR b",
                QueryError::Unexpected {
                    at: 7,
                    found: "the end".into(),
                    expected: "')'",
                },
            ),
            (
                "a)",
                QueryError::Unexpected {
                    at: 1,
                    found: "')'".into(),
                    expected: "AND, OR or the end",
                },
            ),
            (
                "()",
                QueryError::Unexpected {
                    at: 1,
                    found: "')'".into(),
                    expected: "a scope name or '('",
                },
            ),
            (
                "a AND AND b",
                QueryError::Unexpected {
                    at: 6,
                    found: "AND".into(),
                    expected: "a scope name or '('",
                },
            ),
        ] {
            assert_eq!(Query::parse(query), Err(expected), "{query:?}");
        }
        assert_eq!(
            Query::parse(&"x".repeat(MAX_QUERY_BYTES + 1)),
            Err(QueryError::TooLong)
        );
        let deep = format!("{}a{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(Query::parse(&deep).is_ok());
        let deeper = format!(
            "{}a{}",
            "(".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        assert_eq!(Query::parse(&deeper), Err(QueryError::TooDeep));
    }

    #[test]
    fn a_conjunction_names_its_scopes() {
        let q = Query::parse("a AND (b AND c)").unwrap();
        assert_eq!(q.conjunction(), Some(vec!["a", "b", "c"]));
        assert_eq!(Query::parse("a").unwrap().conjunction(), Some(vec!["a"]));
        assert_eq!(Query::parse("a AND (b OR c)").unwrap().conjunction(), None);
    }

    /// An expression over the names `s0`…`s4`, as a tree, and how to write it out with every
    /// group in parentheses: the reference the parser is checked against.
    #[derive(Debug, Clone)]
    enum Expr {
        Name(u8),
        And(Box<Expr>, Box<Expr>),
        Or(Box<Expr>, Box<Expr>),
    }

    impl Expr {
        fn truth(&self, held: u8) -> bool {
            match self {
                Expr::Name(n) => held & (1 << n) != 0,
                Expr::And(a, b) => a.truth(held) && b.truth(held),
                Expr::Or(a, b) => a.truth(held) || b.truth(held),
            }
        }

        fn parenthesised(&self) -> String {
            match self {
                Expr::Name(n) => format!("s{n}"),
                Expr::And(a, b) => format!("({} AND {})", a.parenthesised(), b.parenthesised()),
                Expr::Or(a, b) => format!("({} OR {})", a.parenthesised(), b.parenthesised()),
            }
        }
    }

    fn expr() -> impl Strategy<Value = Expr> {
        (0u8..5)
            .prop_map(Expr::Name)
            .prop_recursive(6, 40, 2, |inner| {
                prop_oneof![
                    (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::And(a.into(), b.into())),
                    (inner.clone(), inner).prop_map(|(a, b)| Expr::Or(a.into(), b.into())),
                ]
            })
    }

    fn holds(held: u8) -> impl Fn(&str) -> bool {
        move |name: &str| {
            let n: u8 = name[1..].parse().unwrap();
            held & (1 << n) != 0
        }
    }

    proptest! {
        /// Fully parenthesised, the parser agrees with the tree on every one of the 32
        /// assignments of the five names; written back without the needless parentheses,
        /// precedence alone gives the same truth table again.
        #[test]
        fn every_truth_table_matches(e in expr()) {
            let parsed = Query::parse(&e.parenthesised()).unwrap();
            let minimal = Query::parse(&parsed.to_string()).unwrap();
            for held in 0u8..32 {
                prop_assert_eq!(parsed.is_met_by(&holds(held)), e.truth(held));
                prop_assert_eq!(minimal.is_met_by(&holds(held)), e.truth(held));
            }
        }

        /// Whatever text comes in, parsing ends with a query or an error, never a panic.
        #[test]
        fn any_text_parses_or_is_refused(text in "[ ()a-cANDOR]{0,60}") {
            let _ = Query::parse(&text);
        }
    }
}

//! The free-text fields clients send, as values that can only exist once checked: a token's
//! name, description, metadata and chosen external id, and a person's username. Each is parsed
//! once where a request arrives, so the rules live here and nowhere else, and a refusal is a
//! [`FieldError`] that names the field, which every surface words its own way.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
pub const MAX_METADATA_BYTES: usize = 4096;
/// Readers of a token's metadata (the CLI, clients in any language) parse it into a tree;
/// deep nesting breaks them long before the size limit does.
pub const MAX_METADATA_DEPTH: usize = 16;
pub const MAX_EXTERNAL_ID_CHARS: usize = 200;
pub const MAX_USERNAME_CHARS: usize = 64;

/// Why a field was refused, and which field: its text is the message clients read, so a
/// surface that calls the field differently renames it with [`FieldError::for_field`] rather
/// than editing the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    field: &'static str,
    problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    Empty,
    TooManyChars {
        chars: usize,
        max: usize,
    },
    ControlChars,
    LongerThan {
        max_chars: usize,
    },
    NotAnObject,
    LargerThan {
        max_bytes: usize,
    },
    TooDeep {
        depth: usize,
        max: usize,
    },
    /// A chosen id that could be mistaken for an id keygate gave.
    IdShaped,
    NotAUsername,
    /// Given together with the field that means the same thing another way.
    NotBoth {
        other: &'static str,
    },
    InPast,
    TooFarAway,
    TooShortLifetime,
    TooLongLifetime,
    OutOfRange,
}

impl FieldError {
    pub fn new(field: &'static str, problem: Problem) -> Self {
        Self { field, problem }
    }

    pub fn field(&self) -> &'static str {
        self.field
    }

    pub fn problem(&self) -> &Problem {
        &self.problem
    }

    /// The same refusal for a surface that names the field otherwise (Instana's `expiresOn`
    /// is the native `expiresAt`).
    pub fn for_field(self, field: &'static str) -> Self {
        Self { field, ..self }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = self.field;
        match &self.problem {
            Problem::Empty => write!(f, "{field} must not be empty"),
            Problem::TooManyChars { chars, max } => write!(
                f,
                "{field} is {chars} characters long; at most {max} are allowed"
            ),
            Problem::ControlChars => write!(f, "{field} must not contain control characters"),
            Problem::LongerThan { max_chars } => {
                write!(f, "{field} is longer than {max_chars} characters")
            }
            Problem::NotAnObject => write!(f, "{field} must be a JSON object"),
            Problem::LargerThan { max_bytes } => {
                write!(f, "{field} is larger than {max_bytes} bytes")
            }
            Problem::TooDeep { depth, max } => write!(
                f,
                "{field} is nested {depth} levels deep; at most {max} levels are allowed"
            ),
            Problem::IdShaped => write!(
                f,
                "{field} must not have the shape of a keygate token id (`<prefix>_` and 16 \
                 letters or digits): a path id of that shape always means a keygate id"
            ),
            Problem::NotAUsername => write!(
                f,
                "{field} must be 1-{MAX_USERNAME_CHARS} characters: letters, digits, '.', '_', \
                 '-', '@', starting with a letter or digit"
            ),
            Problem::NotBoth { other } => write!(f, "give {field} or {other}, not both"),
            Problem::InPast => write!(f, "{field} is in the past"),
            Problem::TooFarAway => write!(f, "{field} is more than ten years away"),
            Problem::TooShortLifetime => write!(f, "{field} must be at least 1 second"),
            Problem::TooLongLifetime => write!(f, "{field} is more than ten years"),
            Problem::OutOfRange => write!(f, "{field} is out of range"),
        }
    }
}

impl std::error::Error for FieldError {}

/// A line of text of at most `max` characters, without control characters, not blank.
fn one_line(field: &'static str, text: &str, max: usize) -> Result<(), FieldError> {
    let chars = text.chars().count();
    if text.trim().is_empty() {
        return Err(FieldError::new(field, Problem::Empty));
    }
    if chars > max {
        return Err(FieldError::new(field, Problem::TooManyChars { chars, max }));
    }
    if text.chars().any(char::is_control) {
        return Err(FieldError::new(field, Problem::ControlChars));
    }
    Ok(())
}

/// Gives a checked string type its conversions: the check runs on every way in, and serde
/// deserialises through it.
macro_rules! checked_text {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = FieldError;

            fn try_from(s: String) -> Result<Self, FieldError> {
                let check: fn(String) -> Result<String, FieldError> = $check;
                check(s).map($name)
            }
        }

        impl std::str::FromStr for $name {
            type Err = FieldError;

            fn from_str(s: &str) -> Result<Self, FieldError> {
                Self::try_from(s.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

checked_text!(
    /// A token's name: 1–200 characters without control characters, surrounding blanks
    /// dropped.
    TokenName,
    |s| {
        let name = s.trim();
        one_line("name", name, MAX_NAME_CHARS)?;
        Ok(if name.len() == s.len() {
            s
        } else {
            name.to_owned()
        })
    }
);

checked_text!(
    /// A token's description: free text of at most 1000 characters.
    Description,
    |s| {
        if s.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(FieldError::new(
                "description",
                Problem::LongerThan {
                    max_chars: MAX_DESCRIPTION_CHARS,
                },
            ));
        }
        Ok(s)
    }
);

checked_text!(
    /// An id a client chose for its token (Instana's `internalId`): 1–200 characters without
    /// control characters, and never shaped like an id keygate gives, so that one path id can
    /// never name two tokens.
    ExternalId,
    |s| {
        one_line("externalId", &s, MAX_EXTERNAL_ID_CHARS)?;
        if crate::token::has_id_shape(&s) {
            return Err(FieldError::new("externalId", Problem::IdShaped));
        }
        Ok(s)
    }
);

checked_text!(
    /// A person's login name: letters, digits and `.`, `_`, `-`, `@`, starting with a letter
    /// or digit, so that it reads the same in a log line, a URL and a table.
    Username,
    |s| {
        let ok = !s.is_empty()
            && s.chars().count() <= MAX_USERNAME_CHARS
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
        if ok {
            Ok(s)
        } else {
            Err(FieldError::new("username", Problem::NotAUsername))
        }
    }
);

/// A token's metadata: a JSON object of at most 4096 bytes, nested at most 16 levels, kept as
/// the client wrote it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "Box<RawValue>", into = "Box<RawValue>")]
pub struct Metadata(Box<RawValue>);

impl Metadata {
    /// Metadata sent as JSON `null` is no metadata.
    pub fn optional(raw: Option<Box<RawValue>>) -> Result<Option<Self>, FieldError> {
        match raw {
            Some(m) if m.get() != "null" => Self::try_from(m).map(Some),
            _ => Ok(None),
        }
    }

    pub fn get(&self) -> &str {
        self.0.get()
    }

    pub fn into_raw(self) -> Box<RawValue> {
        self.0
    }
}

impl TryFrom<Box<RawValue>> for Metadata {
    type Error = FieldError;

    fn try_from(m: Box<RawValue>) -> Result<Self, FieldError> {
        let refuse = |problem| Err(FieldError::new("metadata", problem));
        if !m.get().trim_start().starts_with('{') {
            return refuse(Problem::NotAnObject);
        }
        if m.get().len() > MAX_METADATA_BYTES {
            return refuse(Problem::LargerThan {
                max_bytes: MAX_METADATA_BYTES,
            });
        }
        let depth = nesting_depth(m.get());
        if depth > MAX_METADATA_DEPTH {
            return refuse(Problem::TooDeep {
                depth,
                max: MAX_METADATA_DEPTH,
            });
        }
        Ok(Metadata(m))
    }
}

impl From<Metadata> for Box<RawValue> {
    fn from(m: Metadata) -> Self {
        m.0
    }
}

/// How deeply objects and arrays nest in `json` (valid JSON; the outermost object is level 1).
/// Counted on the text: parsing it into a tree is what fails on deep input (serde_json, and
/// so the CLI, stops at 128 levels; Python clients hit their recursion limit).
fn nesting_depth(json: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for b in json.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).unwrap()
    }

    fn nested(depth: usize) -> String {
        format!(
            "{}{}",
            r#"{"a":"#.repeat(depth - 1) + "{}",
            "}".repeat(depth - 1)
        )
    }

    fn problem<T: std::fmt::Debug>(r: Result<T, FieldError>) -> Problem {
        r.unwrap_err().problem
    }

    #[test]
    fn nesting_depth_counts_objects_and_arrays_not_brackets_in_strings() {
        assert_eq!(nesting_depth("{}"), 1);
        assert_eq!(nesting_depth(r#"{"a":[1,{"b":[]}],"c":{}}"#), 4);
        assert_eq!(nesting_depth(r#"{"a":"[[[{{{","b":"\"[[[\\"}"#), 1);
        assert_eq!(nesting_depth(r#"{"\\":{"x":"\\\"{"}}"#), 2);
    }

    #[test]
    fn names_are_trimmed_and_bounded_in_characters() {
        assert_eq!(
            TokenName::try_from("  ci deploy \t".to_owned())
                .unwrap()
                .as_str(),
            "ci deploy"
        );
        let max = "é".repeat(MAX_NAME_CHARS);
        assert_eq!(max.parse::<TokenName>().unwrap().as_str(), max);
        let over = format!("{max}x");
        assert_eq!(
            problem(over.parse::<TokenName>()),
            Problem::TooManyChars {
                chars: MAX_NAME_CHARS + 1,
                max: MAX_NAME_CHARS
            }
        );
        assert_eq!(problem(" \n ".parse::<TokenName>()), Problem::Empty);
        assert_eq!(
            problem("a\u{7}b".parse::<TokenName>()),
            Problem::ControlChars
        );
    }

    #[test]
    fn messages_name_the_field() {
        let e = "".parse::<TokenName>().unwrap_err();
        assert_eq!(e.to_string(), "name must not be empty");
        let e = "x".repeat(201).parse::<TokenName>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "name is 201 characters long; at most 200 are allowed"
        );
        let e = "x".repeat(1001).parse::<Description>().unwrap_err();
        assert_eq!(e.to_string(), "description is longer than 1000 characters");
        let e = "-x".parse::<Username>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "username must be 1-64 characters: letters, digits, '.', '_', '-', '@', starting \
             with a letter or digit"
        );
        let e = FieldError::new("expiresAt", Problem::InPast).for_field("expiresOn");
        assert_eq!(e.to_string(), "expiresOn is in the past");
        assert_eq!(e.field(), "expiresOn");
    }

    #[test]
    fn descriptions_are_bounded_at_1000_characters() {
        assert!("ü".repeat(1000).parse::<Description>().is_ok());
        assert!("".parse::<Description>().is_ok());
        assert_eq!(
            problem("ü".repeat(1001).parse::<Description>()),
            Problem::LongerThan { max_chars: 1000 }
        );
    }

    #[test]
    fn external_ids_are_bounded_and_never_shaped_like_keygate_ids() {
        assert!("ci-token-1".parse::<ExternalId>().is_ok());
        assert!("x".repeat(200).parse::<ExternalId>().is_ok());
        assert!(matches!(
            problem("x".repeat(201).parse::<ExternalId>()),
            Problem::TooManyChars { chars: 201, .. }
        ));
        assert_eq!(problem("  ".parse::<ExternalId>()), Problem::Empty);
        assert_eq!(problem("a\tb".parse::<ExternalId>()), Problem::ControlChars);
        for shaped in ["kg_0123456789abcdef", "dt0c01_ABCDEFGHIJKLMNOP"] {
            assert_eq!(problem(shaped.parse::<ExternalId>()), Problem::IdShaped);
        }
    }

    #[test]
    fn usernames_are_checked() {
        for good in [
            "admin",
            "mia.k",
            "ci-bot_2",
            "a@example.com",
            &"x".repeat(64),
        ] {
            assert!(good.parse::<Username>().is_ok(), "{good}");
        }
        for bad in ["", "-x", "has space", "ümlaut", "a\nb", &"x".repeat(65)] {
            assert!(bad.parse::<Username>().is_err(), "{bad}");
        }
    }

    #[test]
    fn metadata_is_an_object_within_size_and_depth() {
        assert!(Metadata::try_from(raw(&nested(16))).is_ok());
        assert_eq!(
            problem(Metadata::try_from(raw(&nested(17)))),
            Problem::TooDeep { depth: 17, max: 16 }
        );
        assert_eq!(
            problem(Metadata::try_from(raw("[1]"))),
            Problem::NotAnObject
        );
        let filler = |n: usize| format!(r#"{{"a":"{}"}}"#, "x".repeat(n - 8));
        assert_eq!(filler(MAX_METADATA_BYTES).len(), MAX_METADATA_BYTES);
        assert!(Metadata::try_from(raw(&filler(MAX_METADATA_BYTES))).is_ok());
        assert_eq!(
            problem(Metadata::try_from(raw(&filler(MAX_METADATA_BYTES + 1)))),
            Problem::LargerThan { max_bytes: 4096 }
        );
        assert!(Metadata::optional(Some(raw("null"))).unwrap().is_none());
        assert!(Metadata::optional(None).unwrap().is_none());
    }

    #[test]
    fn serde_parses_through_the_checks() {
        let name: TokenName = serde_json::from_str(r#"" ci ""#).unwrap();
        assert_eq!(name.as_str(), "ci");
        let e = serde_json::from_str::<TokenName>(r#""""#).unwrap_err();
        assert!(e.to_string().starts_with("name must not be empty"), "{e}");
        assert!(serde_json::from_str::<Metadata>("[]").is_err());
        let m: Option<Metadata> = serde_json::from_str("null").unwrap();
        assert!(m.is_none());
        assert_eq!(serde_json::to_string(&name).unwrap(), r#""ci""#);
    }

    proptest! {
        #[test]
        fn a_name_is_accepted_exactly_when_its_trimmed_text_follows_the_rules(s in "\\PC{0,210}|.{0,5}") {
            let trimmed = s.trim();
            let chars = trimmed.chars().count();
            let ok = (1..=MAX_NAME_CHARS).contains(&chars) && !trimmed.chars().any(char::is_control);
            match s.parse::<TokenName>() {
                Ok(n) => {
                    prop_assert!(ok);
                    prop_assert_eq!(n.as_str(), trimmed);
                }
                Err(e) => {
                    prop_assert!(!ok);
                    prop_assert_eq!(e.field(), "name");
                }
            }
        }

        #[test]
        fn metadata_depth_is_accepted_up_to_16(depth in 1usize..40) {
            prop_assert_eq!(
                Metadata::try_from(raw(&nested(depth))).is_ok(),
                depth <= MAX_METADATA_DEPTH
            );
        }
    }
}

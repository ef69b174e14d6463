//! The two databases keygate runs on, and the macro that runs one test against each.

/// Which database a server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in the server's own temporary directory.
    Sqlite,
    /// A fresh database on the machine's PostgreSQL server, dropped with the server.
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// `both_backends!(name);` above `fn name(backend: Backend)` makes it two tests,
/// `name::sqlite` and `name::postgres`: the same behaviour is promised on both databases.
/// A function left without it is never run, and the compiler says so (it is dead code).
macro_rules! both_backends {
    ($test:ident) => {
        mod $test {
            #[test]
            fn sqlite() {
                super::$test($crate::common::Backend::Sqlite)
            }

            #[test]
            fn postgres() {
                super::$test($crate::common::Backend::Postgres)
            }
        }
    };
}
pub(crate) use both_backends;

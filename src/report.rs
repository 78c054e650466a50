//! [`Report`]: an error that remembers where it was raised.
//!
//! Most failures are an `Err` returned through `?`; by the time a crash
//! REPL opens, the frames that raised it have returned. A `Report` is
//! made by the `?` that converts an error into it (its `From` is
//! `#[track_caller]`), so it records that `?`'s `file:line:col` and a
//! backtrace taken there: the crash REPL's header, `bt` and `l` show the
//! site, in this actor and, labelled remote, in every actor the failure
//! climbs through.
//!
//! An entry may also fail with any error ([`IntoFailure`]): then nothing
//! was captured where it was raised, and the crash REPL says so; with the
//! crate's `anyhow` or `eyre` feature, an `anyhow::Error` or an
//! `eyre::Report` keeps what those captured.
//!
//! The backtrace is captured always in a debug build, and in a release
//! build as `RUST_LIB_BACKTRACE` / `RUST_BACKTRACE` say (std's
//! [`Backtrace::capture`]); capturing is cheap, resolving it to text is
//! done only when the failure is boxed for the trip up the tree.
//!
//! ```
//! use smol_devx::Report;
//!
//! fn parse_port(text: &str) -> Result<u16, Report> {
//!     Ok(text.parse::<u16>()?)
//! }
//!
//! let err = parse_port("eighty").unwrap_err();
//! assert!(err.site().file().ends_with(".rs"));
//! assert_eq!(err.type_name(), "ParseIntError");
//! assert_eq!(err.to_string(), "invalid digit found in string");
//! ```

use std::any::Any;
use std::backtrace::{Backtrace, BacktraceStatus};
use std::error::Error;
use std::fmt;
use std::panic::Location;

use crate::msg::{short_type_name, ActorUid, RemoteError, Site};

/// An error with the site of the `?` that made it, and a backtrace taken
/// there. Converts from any `Error + Send + Sync + 'static`.
///
/// Like `anyhow::Error`, it does not implement [`Error`] itself (that
/// would clash with its blanket `From`); it derefs to the error it holds.
pub struct Report(Box<Inner>);

struct Inner {
    error: Box<dyn Error + Send + Sync + 'static>,
    type_name: &'static str,
    site: &'static Location<'static>,
    backtrace: Backtrace,
}

impl Report {
    /// Wraps `error`, recording the caller's location as the site.
    #[track_caller]
    pub fn new<E: Error + Send + Sync + 'static>(error: E) -> Self {
        let backtrace = if cfg!(debug_assertions) {
            Backtrace::force_capture()
        } else {
            Backtrace::capture()
        };
        Report(Box::new(Inner {
            type_name: short_type_name::<E>(),
            error: Box::new(error),
            site: Location::caller(),
            backtrace,
        }))
    }

    /// Where the error was raised: the `?` (or [`Report::new`]) that made
    /// this report.
    pub fn site(&self) -> &'static Location<'static> {
        self.0.site
    }

    /// The backtrace taken at the site, when one was captured.
    pub fn backtrace(&self) -> Option<&Backtrace> {
        let bt = &self.0.backtrace;
        (bt.status() == BacktraceStatus::Captured).then_some(bt)
    }

    /// The short type name of the error it holds (`ParseIntError`).
    pub fn type_name(&self) -> &'static str {
        self.0.type_name
    }

    /// The error it holds.
    pub fn error(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.0.error
    }
}

impl<E: Error + Send + Sync + 'static> From<E> for Report {
    #[track_caller]
    fn from(error: E) -> Self {
        Report::new(error)
    }
}

impl std::ops::Deref for Report {
    type Target = dyn Error + Send + Sync + 'static;
    fn deref(&self) -> &Self::Target {
        &*self.0.error
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.error, f)
    }
}

impl fmt::Debug for Report {
    /// The error, its site and its causes, as a `main` returning
    /// `Result<(), Report>` prints them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} at {}",
            self.0.type_name, self.0.error, self.0.site
        )?;
        let mut source = self.0.error.source();
        while let Some(cause) = source {
            write!(f, "\n  caused by: {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// A failure as it was raised in an actor, ready to be boxed for the trip
/// up the tree: the error (its message and `source()` chain), its type
/// name, and what it captured where it was raised.
pub struct Raised {
    /// The error.
    pub error: Box<dyn Error + Send + Sync + 'static>,
    /// Its short type name (`ParseIntError`).
    pub type_name: &'static str,
    /// Where it was raised, when it knows.
    pub site: Option<Site>,
    /// The backtrace taken there, as text; empty when none was.
    pub backtrace: String,
}

impl Raised {
    /// The failure boxed, raised in actor `src_uid`, named `type_name`.
    pub fn to_remote(&self, type_name: &str, src_uid: ActorUid) -> RemoteError {
        boxed(
            &*self.error,
            type_name,
            self.site.clone(),
            self.backtrace.clone(),
            src_uid,
        )
    }
}

/// A failure boxed with what it captured where it was raised.
fn boxed(
    error: &(dyn Error + 'static),
    type_name: &str,
    site: Option<Site>,
    backtrace: String,
    src_uid: ActorUid,
) -> RemoteError {
    let mut boxed = RemoteError::from_dyn(error, type_name, src_uid).with_backtrace(backtrace);
    boxed.site = site;
    boxed
}

/// What an actor's entry, a handler or the root's body may fail with:
/// any error, a [`Report`] (with its site and backtrace), and, with the
/// crate's features of those names, an `anyhow::Error` or an
/// `eyre::Report` (with what they captured).
pub trait IntoFailure: Send + 'static {
    /// The failure, taken apart for boxing.
    fn into_raised(self) -> Raised;
}

impl<E> IntoFailure for E
where
    E: Into<Box<dyn Error + Send + Sync + 'static>> + Send + 'static,
{
    fn into_raised(self) -> Raised {
        let type_name = short_type_name::<E>();
        let any: Box<dyn Any + Send> = Box::new(self);
        let any = match any.downcast::<Report>() {
            Ok(report) => return report.into_raised_here(),
            Err(any) => any,
        };
        #[cfg(feature = "anyhow")]
        let any = match any.downcast::<anyhow::Error>() {
            Ok(error) => return from_anyhow(*error),
            Err(any) => any,
        };
        #[cfg(feature = "eyre")]
        let any = match any.downcast::<eyre::Report>() {
            Ok(report) => return from_eyre(*report),
            Err(any) => any,
        };
        let Ok(error) = any.downcast::<E>() else {
            unreachable!("the box holds an E")
        };
        Raised {
            error: (*error).into(),
            type_name,
            site: None,
            backtrace: String::new(),
        }
    }
}

impl Report {
    /// The backtrace as text, empty when none was captured.
    fn backtrace_text(&self) -> String {
        self.backtrace()
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    fn into_raised_here(self) -> Raised {
        let backtrace = self.backtrace_text();
        let Inner {
            error,
            type_name,
            site,
            ..
        } = *self.0;
        Raised {
            error,
            type_name,
            site: Some(site.into()),
            backtrace,
        }
    }
}

/// The error a report holds (its site and backtrace are dropped: take
/// them first).
impl From<Report> for Box<dyn Error + Send + Sync + 'static> {
    fn from(report: Report) -> Self {
        report.0.error
    }
}

/// An `anyhow::Error`: its chain, and its backtrace when anyhow captured
/// one (`RUST_BACKTRACE`/`RUST_LIB_BACKTRACE`).
#[cfg(feature = "anyhow")]
fn from_anyhow(error: anyhow::Error) -> Raised {
    let captured = error.backtrace();
    let backtrace = match captured.status() {
        BacktraceStatus::Captured => captured.to_string(),
        _ => String::new(),
    };
    Raised {
        error: error.into(),
        type_name: "anyhow::Error",
        site: None,
        backtrace,
    }
}

/// An `eyre::Report`: its chain, and the site its default handler
/// records (the `Location:` of its report).
#[cfg(feature = "eyre")]
fn from_eyre(report: eyre::Report) -> Raised {
    let shown = format!("{report:?}");
    let site = shown
        .split_once("Location:")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(Site::parse);
    Raised {
        error: report.into(),
        type_name: "eyre::Report",
        site,
        backtrace: String::new(),
    }
}

/// What [`post_mortem`](crate::debug::pause::post_mortem) opens a crash
/// REPL on: any error (sized, or as `&dyn Error`), a [`Report`], or a
/// [`RemoteError`] as it came up the tree.
pub trait Inspect {
    /// The failure as a crash REPL shows it, raised in actor `here`
    /// unless it says where (a [`RemoteError`] keeps its own source).
    fn to_remote(&self, here: &ActorUid) -> RemoteError;
}

impl<E: Error + 'static> Inspect for E {
    fn to_remote(&self, here: &ActorUid) -> RemoteError {
        inspect_dyn(self, short_type_name::<E>(), here)
    }
}

impl Inspect for dyn Error + 'static {
    fn to_remote(&self, here: &ActorUid) -> RemoteError {
        inspect_dyn(self, dyn_type_name(self), here)
    }
}

impl Inspect for dyn Error + Send + Sync + 'static {
    fn to_remote(&self, here: &ActorUid) -> RemoteError {
        Inspect::to_remote(self as &(dyn Error + 'static), here)
    }
}

impl Inspect for Report {
    fn to_remote(&self, here: &ActorUid) -> RemoteError {
        boxed(
            self.error(),
            self.type_name(),
            Some(self.site().into()),
            self.backtrace_text(),
            here.clone(),
        )
    }
}

fn inspect_dyn(err: &(dyn Error + 'static), type_name: &str, here: &ActorUid) -> RemoteError {
    match err.downcast_ref::<RemoteError>() {
        Some(remote) => remote.clone(),
        None => RemoteError::from_dyn(err, type_name, here.clone()),
    }
}

/// A type name for an error whose type is erased: `dyn Error` keeps no
/// name, so a generic one.
fn dyn_type_name(err: &(dyn Error + 'static)) -> &'static str {
    if err.is::<std::io::Error>() {
        "io::Error"
    } else {
        "Error"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_question_mark_site_is_recorded_with_a_backtrace() {
        fn via_question_mark(text: &str) -> Result<u16, Report> {
            Ok(text.parse::<u16>()?)
        }
        let line = line!() - 2;
        let err = via_question_mark("eighty").unwrap_err();
        assert_eq!(err.site().file(), file!());
        assert_eq!(err.site().line(), line);
        assert_eq!(err.type_name(), "ParseIntError");
        // Debug builds always capture.
        assert!(err.backtrace().is_some());
        assert!(err.is::<std::num::ParseIntError>());
    }

    #[test]
    fn causes_show_in_debug_form() {
        let inner = std::io::Error::other("disk on fire");
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("cannot load")
            }
        }
        impl Error for Outer {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                Some(&self.0)
            }
        }
        let report = Report::from(Outer(inner));
        let shown = format!("{report:?}");
        assert!(
            shown.starts_with("Outer: cannot load at src/report.rs:"),
            "{shown}"
        );
        assert!(shown.ends_with("\n  caused by: disk on fire"), "{shown}");
    }

    #[test]
    fn post_mortem_takes_errors_dyn_errors_reports_and_remote_errors() {
        let here = ActorUid::new("here", "1");
        let err = "x".parse::<u16>().unwrap_err();
        let sized = Inspect::to_remote(&err, &here);
        assert_eq!(
            (sized.type_name.as_str(), sized.site.is_none()),
            ("ParseIntError", true)
        );
        let erased: &(dyn Error + 'static) = &err;
        assert_eq!(erased.to_remote(&here).message, err.to_string());
        let report = Report::new(err.clone());
        let boxed = report.to_remote(&here);
        assert_eq!(
            boxed.site.as_ref().map(|s| s.line),
            Some(report.site().line())
        );
        assert!(!boxed.backtrace.is_empty());
        let from_child = RemoteError::new("NameError", "gone", ActorUid::new("child", "2"));
        assert_eq!(from_child.to_remote(&here), from_child, "kept as it came");
    }
}

//! R1: every server, vault, group and token argument is an ID or a name. An exact ID wins;
//! otherwise a case-insensitive name match; several matches are ambiguous (409), none is 404.
//!
//! The store looks in R1's order, among what the viewer may see (A4), and says what it found as a
//! [`Found`]: the object whose ID is the reference, or else the objects whose name matches it (at
//! most [`MAX_NAME_MATCHES`] + 1, so that a name shared by too many objects is refused as such,
//! never answered with a cut list), or else that only objects the viewer may not see matched.
//! [`resolve`] decides.

use crate::model::User;
use crate::{Error, Result};

/// The most objects a name may match and still be listed as the candidates of an ambiguous
/// reference. A name matching more is refused (409 `too_many_matches`) without a list: the store
/// reads at most this many + 1 name matches, so that it can tell.
pub const MAX_NAME_MATCHES: usize = 100;

pub trait Named {
    fn id(&self) -> &str;
    fn name(&self) -> &str;
}

/// What a reference found (R1), among the objects the viewer may see (A4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found<T> {
    /// The object whose ID is the reference: it wins, whatever the names.
    Id(T),
    /// No object has that ID; these match it by name (none, one or several; at most
    /// [`MAX_NAME_MATCHES`] + 1).
    Names(Vec<T>),
    /// Nothing the viewer may see matched, but this object (its ID) did: the caller gets 404 as
    /// if nothing existed, and the attempt is audited as denied (A4, A5).
    Hidden(String),
}

impl<T> Found<T> {
    /// The ID of the hidden object that matched, when nothing visible did.
    pub fn hidden(&self) -> Option<&str> {
        match self {
            Found::Hidden(id) => Some(id),
            _ => None,
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Found<U> {
        let mut f = f;
        match self {
            Found::Id(t) => Found::Id(f(t)),
            Found::Names(v) => Found::Names(v.into_iter().map(f).collect()),
            Found::Hidden(id) => Found::Hidden(id),
        }
    }

    /// Every object found, by ID or by name (tests, and callers that list candidates).
    pub fn into_vec(self) -> Vec<T> {
        match self {
            Found::Id(t) => vec![t],
            Found::Names(v) => v,
            Found::Hidden(_) => Vec::new(),
        }
    }
}

/// R1: the one object a reference names, or why there is none.
pub fn resolve<T: Named>(kind: &'static str, reference: &str, found: Found<T>) -> Result<T> {
    let mut names = match found {
        Found::Id(t) => return Ok(t),
        Found::Hidden(_) => return Err(Error::not_found(kind, reference)),
        Found::Names(names) => names,
    };
    match names.len() {
        0 => Err(Error::not_found(kind, reference)),
        1 => Ok(names.remove(0)),
        n if n > MAX_NAME_MATCHES => Err(Error::conflict(
            "too_many_matches",
            format!(
                "more than {MAX_NAME_MATCHES} {kind}s are named '{reference}'; use an ID \
                 (the list would be cut, so none is given)"
            ),
        )),
        _ => Err(Error::Ambiguous {
            kind,
            reference: reference.to_owned(),
            candidates: names.iter().map(|c| c.id().to_owned()).collect(),
        }),
    }
}

/// R1 for users, the one way to resolve a user reference: a user is named by ID or by email. The
/// user whose ID is the reference wins; else the one whose email matches it case-insensitively
/// (the store compares the trimmed, lower-cased reference with the lower-cased email); emails are
/// unique, so never several. The API and `connect-manager admin owner-key` both resolve users
/// with what `Store::find_users` found, here.
pub fn resolve_user(reference: &str, found: Found<User>) -> Result<User> {
    resolve(crate::audit::TargetType::User.as_str(), reference, found)
}

macro_rules! named {
    ($($t:ty),*) => {$(
        impl Named for $t {
            fn id(&self) -> &str { &self.id }
            fn name(&self) -> &str { &self.name }
        }
    )*};
}
named!(
    crate::model::Server,
    crate::model::Vault,
    crate::model::Group,
    crate::model::User
);

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct T(&'static str, &'static str);
    impl Named for T {
        fn id(&self) -> &str {
            self.0
        }
        fn name(&self) -> &str {
            self.1
        }
    }

    #[test]
    fn r1_exact_id_wins_then_unique_name_then_ambiguous() {
        let r = resolve("server", "b", Found::Id(T("b", "x"))).unwrap();
        assert_eq!(r.0, "b");
        let r = resolve("server", "PROD", Found::Names(vec![T("a", "prod")])).unwrap();
        assert_eq!(r.0, "a");
        match resolve(
            "token",
            "ci",
            Found::Names(vec![T("a", "CI"), T("b", "ci")]),
        ) {
            Err(Error::Ambiguous { candidates, .. }) => assert_eq!(candidates, ["a", "b"]),
            other => panic!("{:?}", other.map(|t| t.0)),
        }
        assert!(matches!(
            resolve::<T>("vault", "nope", Found::Names(vec![])),
            Err(Error::NotFound { kind: "vault", .. })
        ));
        assert!(matches!(
            resolve::<T>("token", "x", Found::Hidden("h".into())),
            Err(Error::NotFound { kind: "token", .. })
        ));
    }

    fn user(id: &str, email: &str) -> User {
        User {
            id: id.into(),
            name: "Same Name".into(),
            email: email.into(),
            created_at: crate::Timestamp::now(),
        }
    }

    #[test]
    fn r1_users_by_exact_id_then_by_email_never_by_name() {
        let by_id = resolve_user("U1", Found::Id(user("U1", "ops@example.com"))).unwrap();
        assert_eq!(by_id.id, "U1");
        let by_email = resolve_user(
            "OPS@example.com",
            Found::Names(vec![user("U2", "ops@example.com")]),
        )
        .unwrap();
        assert_eq!(by_email.id, "U2");
        for found in [Found::Names(vec![]), Found::Hidden("U3".into())] {
            assert!(matches!(
                resolve_user("Same Name", found),
                Err(Error::NotFound { kind: "user", .. })
            ));
        }
    }

    #[test]
    fn r1_a_name_matching_more_than_the_cap_says_so_instead_of_a_cut_list() {
        let many: Vec<T> = (0..=MAX_NAME_MATCHES).map(|_| T("x", "ci")).collect();
        match resolve("token", "ci", Found::Names(many)) {
            Err(Error::Conflict {
                code: "too_many_matches",
                message,
            }) => assert!(message.contains("use an ID"), "{message}"),
            other => panic!("{:?}", other.map(|t| t.0)),
        }
        let at_cap: Vec<T> = (0..MAX_NAME_MATCHES).map(|_| T("x", "ci")).collect();
        match resolve("token", "ci", Found::Names(at_cap)) {
            Err(Error::Ambiguous { candidates, .. }) => {
                assert_eq!(candidates.len(), MAX_NAME_MATCHES)
            }
            other => panic!("{:?}", other.map(|t| t.0)),
        }
    }
}

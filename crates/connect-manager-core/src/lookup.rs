//! R1: every server, vault, group and token argument is an ID or a name. An exact ID wins;
//! otherwise a case-insensitive name match; several matches are ambiguous (409), none is 404.
//! The store returns the candidates (rows whose ID equals the reference or whose name key equals
//! its name key); this function decides.

use crate::{Error, Result};

pub trait Named {
    fn id(&self) -> &str;
    fn name(&self) -> &str;
}

pub fn resolve<T: Named>(kind: &'static str, reference: &str, mut candidates: Vec<T>) -> Result<T> {
    if let Some(pos) = candidates.iter().position(|c| c.id() == reference) {
        return Ok(candidates.swap_remove(pos));
    }
    let key = crate::name::name_key(reference);
    candidates.retain(|c| crate::name::name_key(c.name()) == key);
    match candidates.len() {
        0 => Err(Error::not_found(kind, reference)),
        1 => Ok(candidates.remove(0)),
        _ => Err(Error::Ambiguous {
            kind,
            reference: reference.to_owned(),
            candidates: candidates.iter().map(|c| c.id().to_owned()).collect(),
        }),
    }
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
        let r = resolve("server", "b", vec![T("a", "b"), T("b", "x")]).unwrap();
        assert_eq!(r.0, "b");
        let r = resolve("server", "PROD", vec![T("a", "prod")]).unwrap();
        assert_eq!(r.0, "a");
        match resolve("token", "ci", vec![T("a", "CI"), T("b", "ci")]) {
            Err(Error::Ambiguous { candidates, .. }) => assert_eq!(candidates, ["a", "b"]),
            other => panic!("{:?}", other.map(|t| t.0)),
        }
        assert!(matches!(
            resolve::<T>("vault", "nope", vec![]),
            Err(Error::NotFound { kind: "vault", .. })
        ));
    }
}

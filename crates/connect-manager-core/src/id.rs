//! 26-character base32 identifiers like 1Password's: servers and users upper case
//! (`^[0-9A-Z]{26}$`), vaults, groups, tokens, keys and events lower case (`^[0-9a-z]{26}$`).

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
pub const ID_LEN: usize = 26;

/// `n` random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("the operating system's random source failed");
    buf
}

/// A new lower-case ID (vaults, groups, tokens, API keys, audit events): 130 random bits.
pub fn new_lower() -> String {
    random_bytes::<ID_LEN>()
        .iter()
        .map(|b| ALPHABET[(b & 31) as usize] as char)
        .collect()
}

/// A new upper-case ID (servers, users, the installation's account).
pub fn new_upper() -> String {
    new_lower().to_ascii_uppercase()
}

pub fn is_lower(s: &str) -> bool {
    s.len() == ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

pub fn is_upper(s: &str) -> bool {
    s.len() == ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_documented_shape() {
        for _ in 0..100 {
            let l = new_lower();
            let u = new_upper();
            assert!(is_lower(&l), "{l}");
            assert!(is_upper(&u), "{u}");
            assert!(!is_upper(&l) || l.bytes().all(|b| b.is_ascii_digit()));
        }
        assert_ne!(new_lower(), new_lower());
        assert!(!is_lower("short"));
        assert!(!is_upper("ABCDEFGHIJKLMNOPQRSTUVWXY!"));
    }
}

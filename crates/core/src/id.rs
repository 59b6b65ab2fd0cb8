//! Container group ids: `eci-` followed by 20 lower-case letters and digits, as ECI's look.

use std::fmt;

use serde::{Deserialize, Serialize};

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const SUFFIX_LEN: usize = 20;

/// The id of a container group.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GroupId(String);

impl GroupId {
    /// Builds an id from 20 random bytes (each mapped onto the 36-letter alphabet).
    pub fn from_random(bytes: [u8; SUFFIX_LEN]) -> Self {
        let mut s = String::with_capacity(4 + SUFFIX_LEN);
        s.push_str("eci-");
        for b in bytes {
            s.push(ALPHABET[(b as usize) % ALPHABET.len()] as char);
        }
        GroupId(s)
    }

    /// Parses an id, refusing anything that is not of ECI's form.
    pub fn parse(s: &str) -> Option<Self> {
        is_group_id(s).then(|| GroupId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `s` has the form of a container group id.
pub fn is_group_id(s: &str) -> bool {
    s.len() == 4 + SUFFIX_LEN
        && s.starts_with("eci-")
        && s[4..]
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_eci_form() {
        let id = GroupId::from_random([
            0, 1, 25, 26, 35, 36, 255, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
        ]);
        assert_eq!(id.as_str().len(), 24);
        assert!(is_group_id(id.as_str()));
        assert!(GroupId::parse(id.as_str()).is_some());
        assert!(GroupId::parse("eci-ABCDEFGHIJKLMNOPQRST").is_none());
        assert!(GroupId::parse("eci-abc").is_none());
        assert!(GroupId::parse("ecx-abcdefghijklmnopqrst").is_none());
    }
}

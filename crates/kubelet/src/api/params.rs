//! Query strings of the kubelet API: bounded, every key known, booleans and integers as the
//! kubelet reads them (Go's `strconv.ParseBool`: `1`, `t`, `true`, `0`, `f`, `false`, …).

use super::reply::Refusal;

/// Longest query string accepted.
pub const MAX_QUERY: usize = 16 * 1024;
/// Most key/value pairs in a query.
const MAX_PAIRS: usize = 64;

/// The decoded pairs of a query, in order.
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    /// Decodes `raw`; a key not in `known` is refused (berth does not ignore what it is
    /// asked).
    pub fn parse(raw: Option<&str>, known: &[&str]) -> Result<Self, Refusal> {
        let raw = raw.unwrap_or_default();
        if raw.len() > MAX_QUERY {
            return Err(Refusal::bad_request(format!(
                "the query is longer than {MAX_QUERY} bytes"
            )));
        }
        let mut pairs = Vec::new();
        for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
            if pairs.len() == MAX_PAIRS {
                return Err(Refusal::bad_request(format!(
                    "the query has more than {MAX_PAIRS} parameters"
                )));
            }
            if !known.contains(&k.as_ref()) {
                return Err(Refusal::bad_request(format!(
                    "unknown parameter {k:?}; known: {}",
                    known.join(", ")
                )));
            }
            pairs.push((k.into_owned(), v.into_owned()));
        }
        Ok(Self(pairs))
    }

    /// Every value of `key`, in order.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The one value of `key`; given twice is refused.
    pub fn one(&self, key: &str) -> Result<Option<&str>, Refusal> {
        let mut it = self.0.iter().filter(|(k, _)| k == key);
        let first = it.next().map(|(_, v)| v.as_str());
        if it.next().is_some() {
            return Err(Refusal::bad_request(format!(
                "{key} is given more than once"
            )));
        }
        Ok(first)
    }

    pub fn bool(&self, key: &str) -> Result<bool, Refusal> {
        match self.one(key)? {
            None => Ok(false),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
            Some("" | "0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
            Some(v) => Err(Refusal::bad_request(format!(
                "{key}={v:?} is not a boolean"
            ))),
        }
    }

    /// A non-negative integer (at least `min`).
    pub fn int(&self, key: &str, min: u64) -> Result<Option<u64>, Refusal> {
        self.one(key)?
            .map(|v| {
                v.parse::<u64>().ok().filter(|n| *n >= min).ok_or_else(|| {
                    Refusal::bad_request(format!("{key}={v:?} is not an integer of at least {min}"))
                })
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        let q = Query::parse(
            Some("command=ls&command=-l&tty=1&stdin=false"),
            &["command", "tty", "stdin"],
        )
        .unwrap();
        assert_eq!(q.all("command"), ["ls", "-l"]);
        assert!(q.bool("tty").unwrap());
        assert!(!q.bool("stdin").unwrap());
        assert!(q.one("command").is_err());
        assert!(Query::parse(Some("x=1"), &["y"]).is_err());
        assert!(Query::parse(Some("tty=yes"), &["tty"])
            .unwrap()
            .bool("tty")
            .is_err());
        let q = Query::parse(Some("n=-1&m=5"), &["n", "m"]).unwrap();
        assert!(q.int("n", 0).is_err());
        assert_eq!(q.int("m", 1).unwrap(), Some(5));
        assert!(q.int("m", 6).is_err());
        assert_eq!(q.int("absent", 0).unwrap(), None);
        let long = "a".repeat(MAX_QUERY + 1);
        assert!(Query::parse(Some(&long), &["a"]).is_err());
    }
}

//! The decoded parameters of one request (query plus form body) and typed getters that read
//! them the way the SDKs write them (ECI_API.md §2.3): booleans as `True`/`false`, `None` for
//! unset, numbers as `1`, `1.0`, `0.5`, 1-based flattened lists (`Container.2.Command.1`) and
//! JSON-string lists (`ContainerGroupIds='["eci-…"]'`).

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use crate::canon;
use crate::error::ApiError;

/// Most parameters one request may carry.
pub const MAX_PARAMS: usize = 4096;

/// Decoded parameters by name. When a name repeats, its first value counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params {
    map: BTreeMap<String, String>,
}

impl Params {
    /// Decodes a raw query and, if given, a form-urlencoded body.
    pub fn parse(raw_query: &str, form_body: Option<&[u8]>) -> Result<Self, ApiError> {
        let bad = |e: canon::DecodeError| ApiError::invalid_parameter("the request", e);
        let mut pairs = canon::form_decode(raw_query).map_err(bad)?;
        if let Some(body) = form_body {
            let body = std::str::from_utf8(body)
                .map_err(|_| ApiError::invalid_parameter("the request body", "is not UTF-8"))?;
            pairs.extend(canon::form_decode(body).map_err(bad)?);
        }
        if pairs.len() > MAX_PARAMS {
            return Err(ApiError::value_exceeded(
                "the request",
                format!("carries more than {MAX_PARAMS} parameters"),
            ));
        }
        Ok(Self::from_pairs(pairs))
    }

    pub fn from_pairs<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Self {
        let mut map = BTreeMap::new();
        for (k, v) in pairs {
            map.entry(k).or_insert(v);
        }
        Self { map }
    }

    /// The value as sent, empty or not.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
    }

    /// A non-empty string value.
    pub fn string(&self, name: &str) -> Option<String> {
        self.raw(name).filter(|v| !v.is_empty()).map(str::to_string)
    }

    /// A non-empty string value that must be there.
    pub fn required(&self, name: &str) -> Result<String, ApiError> {
        self.string(name)
            .ok_or_else(|| ApiError::missing_parameter(name))
    }

    /// A value that is absent when missing, empty or the literal `None`.
    fn scalar(&self, name: &str) -> Option<&str> {
        self.raw(name)
            .map(str::trim)
            .filter(|v| !v.is_empty() && *v != "None")
    }

    /// `true`/`false` in any case.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.scalar(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(ApiError::invalid_parameter(
                name,
                format!("must be true or false, got {v:?}"),
            )),
        }
    }

    /// A finite number (`1`, `1.0`, `0.5`).
    pub fn f64(&self, name: &str) -> Result<Option<f64>, ApiError> {
        match self.scalar(name) {
            None => Ok(None),
            Some(v) => match v.parse::<f64>() {
                Ok(n) if n.is_finite() => Ok(Some(n)),
                _ => Err(ApiError::invalid_parameter(
                    name,
                    format!("must be a number, got {v:?}"),
                )),
            },
        }
    }

    /// An integer of type `T` (`u16`, `u32`, `u64`, `i64`…).
    pub fn int<T: FromStr>(&self, name: &str) -> Result<Option<T>, ApiError> {
        match self.scalar(name) {
            None => Ok(None),
            Some(v) => v.parse::<T>().map(Some).map_err(|_| {
                ApiError::invalid_parameter(name, format!("must be an integer in range, got {v:?}"))
            }),
        }
    }

    /// An integer of at most `max`; larger values are refused with
    /// `InvalidParameter.ValueExceeded` (they would overflow a time or a size further on).
    pub fn int_at_most(&self, name: &str, max: u64) -> Result<Option<u64>, ApiError> {
        match self.int::<u64>(name)? {
            Some(n) if n > max => Err(ApiError::value_exceeded(
                name,
                format!("must be at most {max}, got {n}"),
            )),
            n => Ok(n),
        }
    }

    /// The indexes N present under `prefix.N` (alone or with children), sorted numerically.
    /// Indexes start at 1 and may be sparse; `prefix.0`, `prefix.01` or `prefix.x` are refused.
    pub fn indexes(&self, prefix: &str) -> Result<Vec<u32>, ApiError> {
        let start = format!("{prefix}.");
        let mut found = BTreeSet::new();
        for key in self
            .map
            .range(start.clone()..)
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(&start))
        {
            let rest = &key[start.len()..];
            let idx = rest.split('.').next().unwrap_or_default();
            let ok =
                !idx.is_empty() && !idx.starts_with('0') && idx.bytes().all(|b| b.is_ascii_digit());
            match idx.parse::<u32>() {
                Ok(n) if ok => {
                    found.insert(n);
                }
                _ => {
                    return Err(ApiError::invalid_parameter(
                        key,
                        "does not have a list index of 1 or more after its list name",
                    ))
                }
            }
        }
        Ok(found.into_iter().collect())
    }

    /// The values of `prefix.1`, `prefix.2`… in index order; empty values are kept.
    pub fn string_list(&self, prefix: &str) -> Result<Vec<String>, ApiError> {
        let mut out = Vec::new();
        for i in self.indexes(prefix)? {
            let key = format!("{prefix}.{i}");
            match self.raw(&key) {
                Some(v) => out.push(v.to_string()),
                None => {
                    return Err(ApiError::invalid_parameter(
                        &key,
                        "must be a plain value, not a structure",
                    ))
                }
            }
        }
        Ok(out)
    }

    /// A list sent as one JSON array of strings (`["eci-a","eci-b"]`) of at most `max` items.
    /// A value that does not start with `[` is read as a comma-separated list.
    pub fn json_list(&self, name: &str, max: usize) -> Result<Option<Vec<String>>, ApiError> {
        let Some(v) = self.raw(name).map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let items: Vec<String> = if v.starts_with('[') {
            serde_json::from_str(v).map_err(|_| {
                ApiError::invalid_parameter(
                    name,
                    "must be a JSON array of strings, such as [\"eci-…\"]",
                )
            })?
        } else {
            v.split(',').map(|s| s.trim().to_string()).collect()
        };
        let items: Vec<String> = items.into_iter().filter(|s| !s.is_empty()).collect();
        if items.len() > max {
            return Err(ApiError::value_exceeded(
                name,
                format!("holds {} items, at most {max} are allowed", items.len()),
            ));
        }
        Ok(Some(items))
    }

    /// Every parameter with its value, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether any parameter is `name` or lies under `name.`.
    pub fn has_any(&self, name: &str) -> bool {
        let start = format!("{name}.");
        self.map.contains_key(name)
            || self
                .map
                .range(start.clone()..)
                .next()
                .is_some_and(|(k, _)| k.starts_with(&start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(q: &str) -> Params {
        Params::parse(q, None).unwrap()
    }

    #[test]
    fn scalars() {
        let ps = p("A=True&B=false&C=None&D=FALSE&E=yes&F=1&G=1.0&H=0.5&I=x&J=80&K=-1&L=+");
        assert_eq!(ps.bool("A").unwrap(), Some(true));
        assert_eq!(ps.bool("B").unwrap(), Some(false));
        assert_eq!(ps.bool("C").unwrap(), None);
        assert_eq!(ps.bool("D").unwrap(), Some(false));
        assert_eq!(ps.bool("Z").unwrap(), None);
        let e = ps.bool("E").unwrap_err();
        assert_eq!(e.code, "InvalidParameter");
        assert!(
            e.message.contains("E must be true or false"),
            "{}",
            e.message
        );
        assert_eq!(ps.f64("F").unwrap(), Some(1.0));
        assert_eq!(ps.f64("G").unwrap(), Some(1.0));
        assert_eq!(ps.f64("H").unwrap(), Some(0.5));
        assert_eq!(ps.f64("C").unwrap(), None);
        assert!(ps
            .f64("I")
            .unwrap_err()
            .message
            .contains("I must be a number"));
        assert_eq!(ps.int::<u16>("J").unwrap(), Some(80));
        assert!(ps.int::<u32>("K").is_err());
        assert!(ps.int::<u32>("G").is_err());
        assert_eq!(ps.int::<i64>("K").unwrap(), Some(-1));
        assert_eq!(ps.string("L"), Some(" ".into()));
        assert_eq!(ps.required("Q").unwrap_err().code, "MissingParameter");
        assert!(p("X=1e999").f64("X").is_err());
        assert!(p("X=NaN").f64("X").is_err());
    }

    #[test]
    fn lists_sort_numerically_and_may_be_sparse() {
        let ps = p("C.10.Name=j&C.2.Name=b&C.2.Command.3=z&C.2.Command.1=a&C.1.Name=a&Cx=1&C.2.Command.10=y");
        assert_eq!(ps.indexes("C").unwrap(), vec![1, 2, 10]);
        assert_eq!(ps.string_list("C.2.Command").unwrap(), vec!["a", "z", "y"]);
        assert!(ps.indexes("D").unwrap().is_empty());
        assert!(p("C.0.Name=a").indexes("C").is_err());
        assert!(p("C.01.Name=a").indexes("C").is_err());
        assert!(p("C.x=a").indexes("C").is_err());
        assert!(p("C.1.X=a").string_list("C").is_err());
        assert!(ps.has_any("C"));
        assert!(!ps.has_any("Container"));
    }

    #[test]
    fn json_lists() {
        let ps = p("Ids=%5B%22eci-a%22%2C%22eci-b%22%5D&Bad=%5B1%5D&Csv=eci-a,+eci-b&E=");
        assert_eq!(
            ps.json_list("Ids", 20).unwrap().unwrap(),
            vec!["eci-a", "eci-b"]
        );
        assert_eq!(
            ps.json_list("Csv", 20).unwrap().unwrap(),
            vec!["eci-a", "eci-b"]
        );
        assert!(ps.json_list("Bad", 20).is_err());
        assert_eq!(
            ps.json_list("Ids", 1).unwrap_err().code,
            "InvalidParameter.ValueExceeded"
        );
        assert_eq!(ps.json_list("E", 20).unwrap(), None);
    }

    #[test]
    fn query_and_body_merge_first_wins() {
        let ps = Params::parse("A=1&A=2", Some(b"B=3&A=4")).unwrap();
        assert_eq!(ps.raw("A"), Some("1"));
        assert_eq!(ps.raw("B"), Some("3"));
        assert!(Params::parse("A=%FF", None).is_err());
        assert!(Params::parse("", Some(&[0xff])).is_err());
    }
}

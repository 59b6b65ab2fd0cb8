//! Canonical forms shared by the signer and the verifier: RFC 3986 percent-encoding,
//! form decoding (`+` is a space) and sorted query strings.

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// RFC 3986 percent-encoding of the UTF-8 bytes of `s` as the SDKs do it: `A–Z a–z 0–9 - _ . ~`
/// are kept, every other byte becomes `%XX` with upper-case hex (space is `%20`, never `+`).
pub fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0x0f) as usize] as char);
        }
    }
    out
}

/// A form-encoded piece that is not UTF-8 once decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{piece:?} is not valid UTF-8 once percent-decoded")]
pub struct DecodeError {
    pub piece: String,
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes one form-encoded component: `+` is a space, `%XX` a byte; a `%` not followed by two
/// hex digits stays as it is (as Python's `unquote_plus` does).
pub fn form_decode_component(s: &str) -> Result<String, DecodeError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_val);
                let lo = bytes.get(i + 2).copied().and_then(hex_val);
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    out.push(hi << 4 | lo);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| DecodeError {
        piece: s.to_string(),
    })
}

/// Decodes an `application/x-www-form-urlencoded` string (a raw query or a form body) into
/// pairs in wire order. Empty pieces are skipped; a piece without `=` has an empty value.
pub fn form_decode(raw: &str) -> Result<Vec<(String, String)>, DecodeError> {
    let mut pairs = Vec::new();
    for piece in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = piece.split_once('=').unwrap_or((piece, ""));
        pairs.push((form_decode_component(k)?, form_decode_component(v)?));
    }
    Ok(pairs)
}

/// `pct(key)=pct(value)` for every pair, sorted by key then value (byte order), joined by `&`:
/// the canonical query of ACS3 and the canonicalized parameters of RPC HMAC-SHA1.
pub fn sorted_query<'a, I>(pairs: I) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut sorted: Vec<(&str, &str)> = pairs.into_iter().collect();
    sorted.sort();
    join_pairs(sorted)
}

/// `pct(key)=pct(value)` for every pair in the given order, joined by `&`: a query string to
/// put in a URL.
pub fn encode_query<'a, I>(pairs: I) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    join_pairs(pairs)
}

fn join_pairs<'a, I>(pairs: I) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(&pct(k));
        out.push('=');
        out.push_str(&pct(v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pct_is_rfc3986_upper_case() {
        assert_eq!(pct("a b*c~/é"), "a%20b%2Ac~%2F%C3%A9");
        assert_eq!(pct("busybox:latest"), "busybox%3Alatest");
        assert_eq!(pct("-_.~AZaz09"), "-_.~AZaz09");
    }

    #[test]
    fn form_decoding() {
        let pairs = form_decode("a=v%3D1%262%2B3+%25&b=&c&&d=%zz%4").unwrap();
        assert_eq!(
            pairs,
            vec![
                ("a".into(), "v=1&2+3 %".into()),
                ("b".into(), "".into()),
                ("c".into(), "".into()),
                ("d".into(), "%zz%4".into()),
            ]
        );
        assert!(form_decode("a=%FF").is_err());
        assert_eq!(form_decode("x=%C3%A9").unwrap()[0].1, "é");
    }

    #[test]
    fn sorted_and_encoded() {
        let q = sorted_query([("b", "2 3"), ("a", "1"), ("SignatureType", "")]);
        assert_eq!(q, "SignatureType=&a=1&b=2%203");
        assert_eq!(encode_query([("b", "/"), ("a", "")]), "b=%2F&a=");
    }
}

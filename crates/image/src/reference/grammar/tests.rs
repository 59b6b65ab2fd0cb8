//! The hand-written grammar against `oci-spec`'s regular expression, on chosen and on random
//! strings.

use oci_client::{ParseError, Reference};

use super::parse;

const SHA256: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

/// Where the two may differ on purpose: a tag with non-ASCII word characters (`\w` is Unicode
/// in Rust's regex, ASCII in Docker's), and a repository with an upper-case first component.
fn differs_on_purpose(input: &str, theirs: &Result<Reference, ParseError>) -> bool {
    let Ok(r) = theirs else { return false };
    !r.tag().unwrap_or_default().is_ascii()
        || r.repository().bytes().any(|b| b.is_ascii_uppercase())
        || !input.is_ascii()
}

/// Whether the input is a reference (both agree on that).
fn same_as_oci_spec(input: &str) -> bool {
    let theirs = Reference::try_from(input);
    let ours = parse(input);
    if differs_on_purpose(input, &theirs) {
        assert!(ours.is_err(), "{input:?}: {ours:?}, oci-spec {theirs:?}");
        return false;
    }
    assert_eq!(ours, theirs, "{input:?}");
    ours.is_ok()
}

#[test]
fn chosen_references_parse_as_oci_spec_parses_them() {
    let long = "a".repeat(256);
    for input in [
        "busybox",
        "test.com:tag",
        "test.com:5000",
        "test.com/repo:tag",
        "test:5000/repo",
        "test:5000/repo:tag",
        &format!("test:5000/repo@{SHA256}"),
        &format!("test:5000/repo:tag@{SHA256}"),
        "lowercase:Uppercase",
        "sub-dom1.foo.com/bar/baz/quux",
        "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
        "b.gcr.io/test.example.com/my-app:test.example.com",
        "xn--n3h.com/myimage:xn--n3h.com",
        "foo_bar.com:8080",
        "foo/foo_bar.com:8080",
        "opensuse/leap:15.3",
        "localhost/x",
        "localhost:5000/a/b/c:v1",
        "index.docker.io/busybox",
        "127.0.0.1:5000/busybox:latest",
        "a__b/c---d/e.f_g:1",
        "",
        ":justtag",
        &format!("@{SHA256}"),
        "repo@sha256:ffffffffffffffffffffffffffffffffff",
        "validname@invaliddigest:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "repo@sha256:fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffz",
        "Uppercase:tag",
        "test:5000/Uppercase/lowercase:tag",
        &long,
        "aa/asdf$$^/aa",
        "a___b",
        "a._b",
        "-a",
        "a-",
        "a:",
        "a/",
        "/a",
        "a//b",
        "busybox:-x",
        &format!("busybox:{}", "t".repeat(128)),
        &format!("busybox:{}", "t".repeat(129)),
        "host-.com/a",
        "host:/a",
        "host:5000x/a",
        "Not A Reference",
    ] {
        same_as_oci_spec(input);
    }
    assert!(same_as_oci_spec("busybox") && !same_as_oci_spec("a//b"));
}

#[test]
fn an_upper_case_first_component_is_not_a_repository() {
    assert_eq!(
        parse("Uppercase/lowercase:tag"),
        Err(ParseError::NameContainsUppercase)
    );
    assert!(parse("Upper.case/lowercase:tag").is_ok(), "a domain");
}

#[test]
fn random_strings_parse_as_oci_spec_parses_them() {
    const ALPHABET: &[&str] = &[
        "a",
        "b",
        "z",
        "0",
        "9",
        "A",
        "Z",
        ".",
        "_",
        "-",
        ":",
        "/",
        "@",
        "é",
        "localhost",
        "sha256:",
        "ffffffff",
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut valid = 0;
    for _ in 0..20_000 {
        let len = (next() % 12) as usize;
        let input: String = (0..len)
            .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
            .collect();
        valid += usize::from(same_as_oci_spec(&input));
    }
    // Both kinds are well represented.
    assert!((1_000..19_000).contains(&valid), "{valid} valid");
}

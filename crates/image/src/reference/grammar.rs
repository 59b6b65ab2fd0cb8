//! The grammar of image references, checked by hand.
//!
//! The reference type of `oci-spec` (what `oci-client` takes) parses with one large regular
//! expression whose tag class (`\w`, Unicode-aware) compiles to ~8 MB of automaton in ~90 ms,
//! the first time a process parses a reference: a whole `berth image pull` of busybox took
//! 170 ms, over half of it there, and `berth serve` kept the automaton for good. These checks
//! follow the same grammar, from distribution's `reference/regexp.go`, with ASCII `\w` as Docker
//! has it, and build the reference with its plain constructors. One difference on purpose: a
//! first component that the grammar allows as a domain but that is not taken as one
//! (`Uppercase/name`) must be a valid repository component, as Docker requires.
//!
//! ```text
//! reference      := name [ ":" tag ] [ "@" digest ]
//! name           := [ domain "/" ] path-component ( "/" path-component )*
//! domain         := host-component ( "." host-component )* [ ":" [0-9]+ ]
//! host-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
//! path-component := [a-z0-9]+ ( separator [a-z0-9]+ )*
//! separator      := "." | "_" | "__" | "-"+
//! tag            := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//! digest         := algorithm ":" [0-9a-fA-F]{32,}
//! algorithm      := [A-Za-z][A-Za-z0-9]* ( [-_+.] [A-Za-z][A-Za-z0-9]* )*
//! ```

use oci_client::{ParseError, Reference};

/// The longest repository (after the registry is split off) a reference may name.
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// Parses `s` as `oci-spec`'s `Reference::from_str` does: `busybox` is
/// `docker.io/library/busybox:latest`, `index.docker.io` is `docker.io`.
pub(crate) fn parse(s: &str) -> Result<Reference, ParseError> {
    if s.is_empty() {
        return Err(ParseError::NameEmpty);
    }
    let (rest, digest) = match s.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (s, None),
    };
    // A ':' after the last '/' starts the tag; one before it can only be a domain's port.
    let (name, tag) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    if !valid_name(name) || !tag.is_none_or(valid_tag) || !digest.is_none_or(valid_digest) {
        return Err(ParseError::ReferenceInvalidFormat);
    }
    let (registry, repository) = split_domain(name);
    // "Uppercase/name" matches the grammar with "Uppercase" as the domain, but only a
    // component with a '.' or a ':' or `localhost` is taken as one: Docker refuses it.
    if !repository.split('/').all(valid_path_component) {
        return Err(ParseError::NameContainsUppercase);
    }
    if repository.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(ParseError::NameTooLong);
    }
    if let Some(d) = digest {
        check_digest_length(d)?;
    }
    let tag = tag.map(str::to_owned);
    Ok(match (tag, digest.map(str::to_owned)) {
        (Some(t), Some(d)) => Reference::with_tag_and_digest(registry, repository, t, d),
        (None, Some(d)) => Reference::with_digest(registry, repository, d),
        (t, None) => Reference::with_tag(registry, repository, t.unwrap_or("latest".into())),
    })
}

fn valid_name(name: &str) -> bool {
    let all_paths = |s: &str| s.split('/').all(valid_path_component);
    match name.split_once('/') {
        Some((first, rest)) => all_paths(name) || (valid_domain(first) && all_paths(rest)),
        None => valid_path_component(name),
    }
}

fn valid_domain(s: &str) -> bool {
    let (host, port) = match s.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    let host_component = |c: &str| {
        let b = c.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
    };
    host.split('.').all(host_component)
        && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn valid_path_component(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    // Runs of separators between alphanumerics: ".", "_", "__" or any number of "-".
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        match &s[start..i] {
            "." | "_" | "__" => {}
            sep if sep.bytes().all(|x| x == b'-') => {}
            _ => return false,
        }
    }
    true
}

fn valid_tag(t: &str) -> bool {
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

fn valid_digest(d: &str) -> bool {
    let Some((algorithm, hex)) = d.split_once(':') else {
        return false;
    };
    let component = |c: &str| {
        let b = c.as_bytes();
        !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(u8::is_ascii_alphanumeric)
    };
    algorithm.split(['-', '_', '+', '.']).all(component)
        && hex.len() >= 32
        && hex.bytes().all(|x| x.is_ascii_hexdigit())
}

fn check_digest_length(d: &str) -> Result<(), ParseError> {
    let (algorithm, hex) = d.split_once(':').ok_or(ParseError::DigestInvalidFormat)?;
    let want = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(ParseError::DigestUnsupported),
    };
    if hex.len() == want {
        Ok(())
    } else {
        Err(ParseError::DigestInvalidLength)
    }
}

/// distribution's `splitDockerDomain`: the first component is a registry only if it has a
/// '.' or a ':' or is `localhost`; Docker Hub's official images live under `library/`.
fn split_domain(name: &str) -> (String, String) {
    let (mut domain, mut rest) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (first.to_owned(), rest.to_owned())
        }
        _ => ("docker.io".to_owned(), name.to_owned()),
    };
    if domain == "index.docker.io" {
        domain = "docker.io".to_owned();
    }
    if domain == "docker.io" && !rest.contains('/') {
        rest = format!("library/{rest}");
    }
    (domain, rest)
}

#[cfg(test)]
mod tests;

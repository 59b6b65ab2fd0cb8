//! Image references: normalisation (`busybox` → `docker.io/library/busybox:latest`) and the
//! registry host used to pick credentials, plain HTTP and insecure TLS.

mod grammar;

use oci_client::Reference;

use crate::error::ImageError;

/// Parses `reference` into its canonical form.
pub(crate) fn parse(reference: &str) -> Result<Reference, ImageError> {
    grammar::parse(reference.trim()).map_err(|source| ImageError::InvalidReference {
        reference: reference.to_owned(),
        source,
    })
}

/// The normalised form of `reference` (`docker.io/library/busybox:latest`), under which the
/// store records it.
pub fn normalize(reference: &str) -> Result<String, ImageError> {
    parse(reference).map(|r| r.whole())
}

/// How many of the references `wanted` are among `held`, both compared normalised (a
/// reference that does not parse matches nothing).
pub fn count_held<'a>(wanted: &[String], held: impl IntoIterator<Item = &'a str>) -> usize {
    let held: Vec<String> = held.into_iter().filter_map(|r| normalize(r).ok()).collect();
    wanted
        .iter()
        .filter_map(|r| normalize(r).ok())
        .filter(|w| held.contains(w))
        .count()
}

/// A registry host as written in credentials or registry lists (`https://index.docker.io/v1/`,
/// `Registry.example.com:5000`) reduced to the form a reference carries (`docker.io`,
/// `registry.example.com:5000`).
pub(crate) fn registry_host(server: &str) -> String {
    let server = server.trim();
    let server = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .unwrap_or(server);
    let host = server
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_owned()
        }
        _ => host,
    }
}

/// Whether `host` (a reference's registry) is named in `list`.
pub(crate) fn host_listed(list: &[String], host: &str) -> bool {
    let host = registry_host(host);
    list.iter().any(|entry| registry_host(entry) == host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_references_are_counted_normalised() {
        let wanted = [
            "busybox".to_string(),
            "reg.example/a:1".into(),
            "::bad".into(),
        ];
        let held = ["docker.io/library/busybox:latest", "reg.example/a:2"];
        assert_eq!(count_held(&wanted, held), 1);
        assert_eq!(
            count_held(&wanted, ["reg.example/a:1", "busybox:latest"]),
            2
        );
    }

    #[test]
    fn normalizes_short_names() {
        assert_eq!(
            normalize("busybox").unwrap(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            normalize("docker.io/library/busybox:1.36").unwrap(),
            "docker.io/library/busybox:1.36"
        );
        assert_eq!(
            normalize("127.0.0.1:5000/busybox:latest").unwrap(),
            "127.0.0.1:5000/busybox:latest"
        );
        assert_eq!(
            normalize("127.0.0.1:5000/busybox").unwrap(),
            "127.0.0.1:5000/busybox:latest"
        );
        assert!(normalize("Not A Reference").is_err());
    }

    #[test]
    fn matches_registry_hosts() {
        assert_eq!(registry_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(
            registry_host("Reg.example.com:5000"),
            "reg.example.com:5000"
        );
        let list = vec!["http://127.0.0.1:5000".to_owned()];
        assert!(host_listed(&list, "127.0.0.1:5000"));
        assert!(!host_listed(&list, "127.0.0.1:5001"));
    }
}

//! CreateContainerGroup: a container's probes (`LivenessProbe.*`, `ReadinessProbe.*` and
//! berth's `StartupProbe.*`) and lifecycle hooks (`LifecyclePostStartHandler*`,
//! `LifecyclePreStopHandler*`), bounded and checked.
//!
//! berth makes the HTTP and TCP checks from inside the group's network namespace, to the
//! group's own address; a `Host` may only name a loopback address there (berth never
//! connects anywhere else on a tenant's word).

use berth_core::{Handler, HttpHeader, Probe, Scheme};

use super::validate;
use crate::error::ApiError;
use crate::params::Params;

/// Most arguments of an exec handler.
pub const MAX_EXEC_ARGS: usize = 64;
/// Longest argument of an exec handler, in bytes.
pub const MAX_EXEC_ARG_LEN: usize = 4096;
/// Longest HTTP path, in bytes.
pub const MAX_PATH_LEN: usize = 2048;
/// Most headers of an HTTP GET handler (a hook's, or a probe's as berth's extension).
pub const MAX_HEADERS: usize = 16;
const MAX_HEADER_NAME_LEN: usize = 256;
const MAX_HEADER_VALUE_LEN: usize = 4096;
/// Largest `InitialDelaySeconds` (one day).
pub const MAX_INITIAL_DELAY_SECS: u32 = 86_400;
/// Largest `PeriodSeconds` and `TimeoutSeconds` (one hour).
pub const MAX_PERIOD_SECS: u32 = 3_600;
/// Largest `SuccessThreshold` and `FailureThreshold`.
pub const MAX_THRESHOLD: u32 = 1_000;

/// Which probe: liveness and startup probes must have `SuccessThreshold` 1.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Liveness,
    Readiness,
    Startup,
}

impl Kind {
    fn param(self) -> &'static str {
        match self {
            Self::Liveness => "LivenessProbe",
            Self::Readiness => "ReadinessProbe",
            Self::Startup => "StartupProbe",
        }
    }
}

/// A value that counts as given: not empty, not the SDKs' `None`.
fn given(p: &Params, name: &str) -> Option<String> {
    p.string(name).filter(|v| v.trim() != "None")
}

/// Whether any parameter under `prefix` carries a value.
fn any_given(p: &Params, prefix: &str) -> bool {
    p.iter()
        .any(|(k, v)| k.starts_with(prefix) && !v.trim().is_empty() && v.trim() != "None")
}

fn bounded(p: &Params, name: &str, min: u32, max: u32) -> Result<Option<u32>, ApiError> {
    match p.int::<u64>(name)? {
        None => Ok(None),
        Some(n) if n >= u64::from(min) && n <= u64::from(max) => Ok(Some(n as u32)),
        Some(n) => Err(ApiError::value_exceeded(
            name,
            format!("must be {min} to {max}, got {n}"),
        )),
    }
}

fn port(p: &Params, name: &str) -> Result<u16, ApiError> {
    match p.int::<u64>(name)? {
        None => Err(ApiError::missing_parameter(name)),
        Some(n @ 1..=65535) => Ok(n as u16),
        Some(n) => Err(ApiError::invalid_parameter(
            name,
            format!("must be 1 to 65535, got {n}"),
        )),
    }
}

/// A `Host`: only a loopback address inside the group's namespace (the group's own
/// address when left out).
fn host(p: &Params, name: &str) -> Result<Option<String>, ApiError> {
    let Some(h) = given(p, name) else {
        return Ok(None);
    };
    let loopback = h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(ApiError::invalid_parameter(
            name,
            format!("may only be a loopback address (berth checks the group's own address when it is left out), got {h:?}"),
        ));
    }
    let ip = if h.eq_ignore_ascii_case("localhost") {
        "127.0.0.1".to_string()
    } else {
        h
    };
    Ok(Some(ip))
}

fn path(p: &Params, name: &str) -> Result<String, ApiError> {
    let path = given(p, name).unwrap_or_else(|| "/".into());
    if path.len() > MAX_PATH_LEN {
        return Err(ApiError::length_exceeded(name, MAX_PATH_LEN));
    }
    // Printable ASCII without spaces: nothing that could end the request line.
    if !path.starts_with('/') || !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid_parameter(
            name,
            "must be an absolute path of printable ASCII without spaces (percent-encode the rest)",
        ));
    }
    Ok(path)
}

fn scheme(p: &Params, name: &str) -> Result<Scheme, ApiError> {
    match given(p, name) {
        None => Ok(Scheme::Http),
        Some(s) => Scheme::parse(&s).ok_or_else(|| {
            ApiError::invalid_parameter(name, format!("must be HTTP or HTTPS, got {s:?}"))
        }),
    }
}

fn exec(p: &Params, list: &str) -> Result<Vec<String>, ApiError> {
    let command = p.string_list(list)?;
    if command.len() > MAX_EXEC_ARGS {
        return Err(ApiError::value_exceeded(
            list,
            format!("allows at most {MAX_EXEC_ARGS} arguments"),
        ));
    }
    for a in &command {
        validate::no_nul(list, a)?;
        if a.len() > MAX_EXEC_ARG_LEN {
            return Err(ApiError::length_exceeded(list, MAX_EXEC_ARG_LEN));
        }
    }
    if command.first().is_none_or(|c| c.is_empty()) {
        return Err(ApiError::invalid_parameter(
            list,
            "must name a command as its first item",
        ));
    }
    Ok(command)
}

fn headers(p: &Params, list: &str) -> Result<Vec<HttpHeader>, ApiError> {
    let idx = p.indexes(list)?;
    if idx.len() > MAX_HEADERS {
        return Err(ApiError::value_exceeded(
            list,
            format!("allows at most {MAX_HEADERS} headers"),
        ));
    }
    let mut out = Vec::new();
    for i in idx {
        let name_param = format!("{list}.{i}.Name");
        let name = p.required(&name_param)?;
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.len() > MAX_HEADER_NAME_LEN || !name.bytes().all(token) {
            return Err(ApiError::invalid_parameter(
                &name_param,
                "must be an HTTP header name (letters, digits and !#$%&'*+-.^_`|~, at most 256)",
            ));
        }
        let value_param = format!("{list}.{i}.Value");
        let value = p.raw(&value_param).unwrap_or_default().to_string();
        if value.len() > MAX_HEADER_VALUE_LEN
            || !value
                .bytes()
                .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        {
            return Err(ApiError::invalid_parameter(
                &value_param,
                "must be printable ASCII of at most 4096 bytes",
            ));
        }
        out.push(HttpHeader { name, value });
    }
    Ok(out)
}

/// Exactly one handler, else `name` is refused.
fn one_handler(name: &str, found: Vec<Handler>) -> Result<Option<Handler>, ApiError> {
    let n = found.len();
    let mut it = found.into_iter();
    match n {
        0 | 1 => Ok(it.next()),
        _ => Err(ApiError::invalid_parameter(
            name,
            "may have only one handler: Exec, HttpGet or TcpSocket",
        )),
    }
}

/// `{container}.{Kind}Probe.*`, `None` when no part of it is given.
pub fn probe(p: &Params, container: &str, kind: Kind) -> Result<Option<Probe>, ApiError> {
    let base = format!("{container}.{}", kind.param());
    if !any_given(p, &format!("{base}.")) {
        return Ok(None);
    }
    let k = |s: &str| format!("{base}.{s}");
    let mut found = Vec::new();
    if any_given(p, &k("Exec.")) {
        found.push(Handler::Exec {
            command: exec(p, &k("Exec.Command"))?,
        });
    }
    if any_given(p, &k("HttpGet.")) {
        found.push(Handler::HttpGet {
            host: None,
            path: path(p, &k("HttpGet.Path"))?,
            port: port(p, &k("HttpGet.Port"))?,
            scheme: scheme(p, &k("HttpGet.Scheme"))?,
            // berth's extension: ECI's probes have no headers, Kubernetes' do.
            headers: headers(p, &k("HttpGet.HttpHeader"))?,
        });
    }
    if any_given(p, &k("TcpSocket.")) {
        found.push(Handler::TcpSocket {
            host: None,
            port: port(p, &k("TcpSocket.Port"))?,
        });
    }
    let Some(handler) = one_handler(&base, found)? else {
        return Err(ApiError::missing_parameter(&k("Exec.Command.1")));
    };
    let mut probe = Probe::new(handler);
    if let Some(v) = bounded(p, &k("InitialDelaySeconds"), 0, MAX_INITIAL_DELAY_SECS)? {
        probe.initial_delay_secs = v;
    }
    if let Some(v) = bounded(p, &k("PeriodSeconds"), 1, MAX_PERIOD_SECS)? {
        probe.period_secs = v;
    }
    if let Some(v) = bounded(p, &k("TimeoutSeconds"), 1, MAX_PERIOD_SECS)? {
        probe.timeout_secs = v;
    }
    if let Some(v) = bounded(p, &k("FailureThreshold"), 1, MAX_THRESHOLD)? {
        probe.failure_threshold = v;
    }
    if let Some(v) = bounded(p, &k("SuccessThreshold"), 1, MAX_THRESHOLD)? {
        if v != 1 && kind != Kind::Readiness {
            return Err(ApiError::invalid_parameter(
                &k("SuccessThreshold"),
                "must be 1 for liveness and startup probes",
            ));
        }
        probe.success_threshold = v;
    }
    Ok(Some(probe))
}

/// `{container}.Lifecycle{PostStart|PreStop}Handler*`, `None` when no part is given.
pub fn hook(p: &Params, container: &str, which: &str) -> Result<Option<Handler>, ApiError> {
    let base = format!("{container}.Lifecycle{which}Handler");
    if !any_given(p, &base) {
        return Ok(None);
    }
    let k = |s: &str| format!("{base}{s}");
    let mut found = Vec::new();
    if any_given(p, &k("Exec.")) {
        found.push(Handler::Exec {
            command: exec(p, &k("Exec"))?,
        });
    }
    if any_given(p, &k("HttpGet")) {
        found.push(Handler::HttpGet {
            host: host(p, &k("HttpGetHost"))?,
            path: path(p, &k("HttpGetPath"))?,
            port: port(p, &k("HttpGetPort"))?,
            scheme: scheme(p, &k("HttpGetScheme"))?,
            headers: headers(p, &k("HttpGetHttpHeader"))?,
        });
    }
    if any_given(p, &k("TcpSocket")) {
        found.push(Handler::TcpSocket {
            host: host(p, &k("TcpSocketHost"))?,
            port: port(p, &k("TcpSocketPort"))?,
        });
    }
    match one_handler(&base, found)? {
        Some(h) => Ok(Some(h)),
        None => Err(ApiError::missing_parameter(&k("Exec.1"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> Params {
        Params::parse(q, None).unwrap()
    }

    #[test]
    fn probes_decode_with_defaults() {
        let p = params("C.1.ReadinessProbe.HttpGet.Port=80&C.1.ReadinessProbe.HttpGet.Path=/healthz&C.1.ReadinessProbe.SuccessThreshold=2&C.1.LivenessProbe.Exec.Command.1=cat&C.1.LivenessProbe.Exec.Command.2=/tmp/ok&C.1.LivenessProbe.PeriodSeconds=1");
        let r = probe(&p, "C.1", Kind::Readiness).unwrap().unwrap();
        assert_eq!(
            r.handler,
            Handler::HttpGet {
                host: None,
                path: "/healthz".into(),
                port: 80,
                scheme: Scheme::Http,
                headers: vec![]
            }
        );
        assert_eq!(
            (r.success_threshold, r.failure_threshold, r.period_secs),
            (2, 3, 10)
        );
        let l = probe(&p, "C.1", Kind::Liveness).unwrap().unwrap();
        assert_eq!(
            l.handler,
            Handler::Exec {
                command: vec!["cat".into(), "/tmp/ok".into()]
            }
        );
        assert_eq!(l.period_secs, 1);
        assert!(probe(&p, "C.1", Kind::Startup).unwrap().is_none());
    }

    #[test]
    fn http_probes_take_headers_as_kubernetes_does() {
        let p = params("C.1.StartupProbe.HttpGet.Port=80&C.1.StartupProbe.HttpGet.HttpHeader.1.Name=X-Probe&C.1.StartupProbe.HttpGet.HttpHeader.1.Value=a%20b&C.1.StartupProbe.HttpGet.HttpHeader.2.Name=User-Agent&C.1.StartupProbe.HttpGet.HttpHeader.2.Value=k");
        let probe = probe(&p, "C.1", Kind::Startup).unwrap().unwrap();
        let Handler::HttpGet { headers, .. } = probe.handler else {
            panic!("not an HTTP probe: {probe:?}");
        };
        assert_eq!(headers.len(), 2);
        assert_eq!(
            (headers[0].name.as_str(), headers[0].value.as_str()),
            ("X-Probe", "a b")
        );
        let e = super::probe(
            &params("C.1.ReadinessProbe.HttpGet.Port=80&C.1.ReadinessProbe.HttpGet.HttpHeader.1.Name=A:B"),
            "C.1",
            Kind::Readiness,
        )
        .unwrap_err();
        assert!(
            e.message
                .contains("C.1.ReadinessProbe.HttpGet.HttpHeader.1.Name"),
            "{}",
            e.message
        );
    }

    #[test]
    fn bad_probes_are_refused_by_name() {
        for (q, name) in [
            ("C.1.LivenessProbe.TcpSocket.Port=0", "TcpSocket.Port"),
            ("C.1.LivenessProbe.TcpSocket.Port=65536", "TcpSocket.Port"),
            (
                "C.1.LivenessProbe.TcpSocket.Port=80&C.1.LivenessProbe.SuccessThreshold=2",
                "SuccessThreshold",
            ),
            (
                "C.1.LivenessProbe.TcpSocket.Port=80&C.1.LivenessProbe.FailureThreshold=0",
                "FailureThreshold",
            ),
            (
                "C.1.LivenessProbe.TcpSocket.Port=80&C.1.LivenessProbe.PeriodSeconds=0",
                "PeriodSeconds",
            ),
            (
                "C.1.LivenessProbe.TcpSocket.Port=80&C.1.LivenessProbe.PeriodSeconds=99999999999",
                "PeriodSeconds",
            ),
            (
                "C.1.LivenessProbe.TcpSocket.Port=80&C.1.LivenessProbe.Exec.Command.1=true",
                "LivenessProbe",
            ),
            ("C.1.LivenessProbe.PeriodSeconds=3", "Exec.Command.1"),
            (
                "C.1.LivenessProbe.HttpGet.Port=80&C.1.LivenessProbe.HttpGet.Scheme=FTP",
                "Scheme",
            ),
            (
                "C.1.LivenessProbe.HttpGet.Port=80&C.1.LivenessProbe.HttpGet.Path=/a%20b",
                "Path",
            ),
            (
                "C.1.LivenessProbe.HttpGet.Port=80&C.1.LivenessProbe.HttpGet.Path=/a%0d%0aX:%201",
                "Path",
            ),
            (
                "C.1.LivenessProbe.HttpGet.Port=80&C.1.LivenessProbe.HttpGet.Path=nope",
                "Path",
            ),
        ] {
            let e = probe(&params(q), "C.1", Kind::Liveness).expect_err(q);
            assert!(e.message.contains(name), "{q}: {}", e.message);
        }
    }

    #[test]
    fn hooks_decode_and_hosts_stay_local() {
        let p = params("C.1.LifecyclePreStopHandlerExec.1=sh&C.1.LifecyclePreStopHandlerExec.2=-c&C.1.LifecyclePreStopHandlerExec.3=echo%20bye&C.1.LifecyclePostStartHandlerHttpGetPort=8080&C.1.LifecyclePostStartHandlerHttpGetHost=localhost&C.1.LifecyclePostStartHandlerHttpGetHttpHeader.1.Name=X-A&C.1.LifecyclePostStartHandlerHttpGetHttpHeader.1.Value=b");
        assert_eq!(
            hook(&p, "C.1", "PreStop").unwrap().unwrap(),
            Handler::Exec {
                command: vec!["sh".into(), "-c".into(), "echo bye".into()]
            }
        );
        assert_eq!(
            hook(&p, "C.1", "PostStart").unwrap().unwrap(),
            Handler::HttpGet {
                host: Some("127.0.0.1".into()),
                path: "/".into(),
                port: 8080,
                scheme: Scheme::Http,
                headers: vec![HttpHeader {
                    name: "X-A".into(),
                    value: "b".into()
                }]
            }
        );
        for (q, name) in [
            ("C.1.LifecyclePreStopHandlerTcpSocketPort=22&C.1.LifecyclePreStopHandlerTcpSocketHost=10.0.0.1", "TcpSocketHost"),
            ("C.1.LifecyclePreStopHandlerTcpSocketPort=22&C.1.LifecyclePreStopHandlerTcpSocketHost=example.com", "TcpSocketHost"),
            ("C.1.LifecyclePreStopHandlerHttpGetPort=80&C.1.LifecyclePreStopHandlerHttpGetHttpHeader.1.Name=A:B", "Name"),
            ("C.1.LifecyclePreStopHandlerHttpGetPort=80&C.1.LifecyclePreStopHandlerHttpGetHttpHeader.1.Name=A&C.1.LifecyclePreStopHandlerHttpGetHttpHeader.1.Value=a%0d%0ab:c", "Value"),
            ("C.1.LifecyclePreStopHandlerHttpGetPath=/x", "HttpGetPort"),
        ] {
            let e = hook(&params(q), "C.1", "PreStop").expect_err(q);
            assert!(e.message.contains(name), "{q}: {}", e.message);
        }
    }
}

//! Container probes (liveness, readiness, startup) and lifecycle hooks (PostStart, PreStop):
//! what to check and how often, as decoded from the API. Kubernetes' semantics and defaults.

use serde::{Deserialize, Serialize};

/// `HTTP` or `HTTPS` for an HTTP GET handler.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scheme {
    #[default]
    Http,
    Https,
}

impl Scheme {
    /// Either spelling case of `HTTP` / `HTTPS`.
    pub fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("HTTP") {
            Some(Self::Http)
        } else if s.eq_ignore_ascii_case("HTTPS") {
            Some(Self::Https)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "HTTP",
            Self::Https => "HTTPS",
        }
    }
}

/// One header of an HTTP GET handler.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpHeader {
    pub name: String,
    pub value: String,
}

/// What a probe or hook does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Handler {
    /// A command run in the container; exit code 0 is success.
    Exec { command: Vec<String> },
    /// An HTTP GET from inside the group's network namespace; 200–399 is success.
    HttpGet {
        /// `None`: the group's own address (a loopback address is the only other one allowed).
        #[serde(default)]
        host: Option<String>,
        path: String,
        port: u16,
        #[serde(default)]
        scheme: Scheme,
        #[serde(default)]
        headers: Vec<HttpHeader>,
    },
    /// A TCP connection from inside the group's network namespace; connecting is success.
    TcpSocket {
        #[serde(default)]
        host: Option<String>,
        port: u16,
    },
}

/// A probe: a handler and when to run it (Kubernetes' defaults).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub handler: Handler,
    #[serde(default)]
    pub initial_delay_secs: u32,
    #[serde(default = "default_period")]
    pub period_secs: u32,
    #[serde(default = "one")]
    pub timeout_secs: u32,
    #[serde(default = "one")]
    pub success_threshold: u32,
    #[serde(default = "default_failure")]
    pub failure_threshold: u32,
}

/// Kubernetes' default `PeriodSeconds`.
pub const DEFAULT_PERIOD_SECS: u32 = 10;
/// Kubernetes' default `FailureThreshold`.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;

fn default_period() -> u32 {
    DEFAULT_PERIOD_SECS
}

fn one() -> u32 {
    1
}

fn default_failure() -> u32 {
    DEFAULT_FAILURE_THRESHOLD
}

impl Probe {
    /// A probe with Kubernetes' defaults around `handler`.
    pub fn new(handler: Handler) -> Self {
        Self {
            handler,
            initial_delay_secs: 0,
            period_secs: DEFAULT_PERIOD_SECS,
            timeout_secs: 1,
            success_threshold: 1,
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
        }
    }
}

/// Consecutive results of a probe folded into its verdict, as the kubelet does: the verdict
/// changes after `success_threshold` successes or `failure_threshold` failures in a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Streak {
    successes: u32,
    failures: u32,
    /// The current verdict; `None` until a threshold was first reached.
    pub verdict: Option<bool>,
}

impl Streak {
    pub fn new() -> Self {
        Self {
            successes: 0,
            failures: 0,
            verdict: None,
        }
    }

    /// Adds one result; returns the new verdict when it changed.
    pub fn push(&mut self, ok: bool, probe: &Probe) -> Option<bool> {
        if ok {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            if self.successes >= probe.success_threshold.max(1) && self.verdict != Some(true) {
                self.verdict = Some(true);
                return Some(true);
            }
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            if self.failures >= probe.failure_threshold.max(1) && self.verdict != Some(false) {
                self.verdict = Some(false);
                return Some(false);
            }
        }
        None
    }
}

impl Default for Streak {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(success: u32, failure: u32) -> Probe {
        Probe {
            success_threshold: success,
            failure_threshold: failure,
            ..Probe::new(Handler::TcpSocket {
                host: None,
                port: 80,
            })
        }
    }

    #[test]
    fn verdict_changes_after_thresholds() {
        let p = probe(2, 3);
        let mut s = Streak::new();
        assert_eq!(s.push(true, &p), None);
        assert_eq!(s.push(true, &p), Some(true));
        assert_eq!(s.push(true, &p), None);
        assert_eq!(s.push(false, &p), None);
        assert_eq!(s.push(false, &p), None);
        assert_eq!(s.push(true, &p), None, "a success resets the failures");
        for _ in 0..2 {
            assert_eq!(s.push(false, &p), None);
        }
        assert_eq!(s.push(false, &p), Some(false));
        assert_eq!(s.push(false, &p), None);
        assert_eq!(s.push(true, &p), None);
        assert_eq!(s.push(true, &p), Some(true));
    }

    #[test]
    fn old_records_load_with_defaults() {
        let p: Probe = serde_json::from_str(r#"{"handler":{"TcpSocket":{"port":8080}}}"#).unwrap();
        assert_eq!(p.period_secs, 10);
        assert_eq!(p.failure_threshold, 3);
        assert_eq!(p.timeout_secs, 1);
    }
}

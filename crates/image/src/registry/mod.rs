//! The HTTP side of the distribution protocol: one client per registry host and transport,
//! requests that follow the registry's authentication challenge (anonymous, basic, or bearer
//! tokens from the realm it names), and retries with exponential back-off on transient
//! failures (connection errors, timeouts, 408, 429, 5xx). Errors keep what the registry said.

mod auth;

use std::time::Duration;

use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, RANGE, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode};

pub(crate) use auth::Login;
use auth::{may_send_login, parse_challenge, Challenge, TokenCache, TokenResponse};

use crate::error::ImageError;

/// How often and how patiently a registry request is repeated after a transient failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, at least 1.
    pub attempts: u32,
    /// Wait before the second try; doubled for each further one.
    pub first_delay: Duration,
    /// Longest wait between two tries (also caps a registry's `Retry-After`).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            first_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.min(16);
        self.first_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// Longest error body read to find the registry's message.
const MAX_ERROR_BODY: usize = 64 << 10;
/// Largest answer of a token service accepted; real ones are a few KiB.
pub(crate) const MAX_TOKEN_BYTES: usize = 1 << 20;

/// A client for one registry host over one transport.
pub(crate) struct RegistryClient {
    http: reqwest::Client,
    /// `http://127.0.0.1:5000` or `https://registry-1.docker.io`.
    base: String,
    tokens: TokenCache,
    retry: RetryPolicy,
}

/// Who asks, for what: the reference (for errors), its repository and the login to use.
pub(crate) struct Scope<'a> {
    pub reference: &'a str,
    pub repository: &'a str,
    pub login: Option<&'a Login>,
}

impl RegistryClient {
    /// `host` as a reference names it (`docker.io` is reached at `registry-1.docker.io`).
    pub fn new(
        host: &str,
        plain_http: bool,
        insecure: bool,
        retry: RetryPolicy,
    ) -> Result<Self, ImageError> {
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(insecure)
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ImageError::Unreachable {
                reference: host.to_owned(),
                url: host.to_owned(),
                message: error_chain(&e),
            })?;
        let host = if host == "docker.io" {
            "registry-1.docker.io"
        } else {
            host
        };
        let scheme = if plain_http { "http" } else { "https" };
        Ok(Self {
            http,
            base: format!("{scheme}://{host}"),
            tokens: TokenCache::default(),
            retry,
        })
    }

    pub fn retry(&self) -> RetryPolicy {
        self.retry
    }

    /// GETs `/v2/<repository>/<path>` and returns the successful response, whose body the
    /// caller reads. `from` > 0 asks for the content from that offset on (the answer may still
    /// be the whole content, status 200).
    pub async fn get(
        &self,
        scope: &Scope<'_>,
        path: &str,
        accept: &[&str],
        from: u64,
    ) -> Result<Response, ImageError> {
        self.send(reqwest::Method::GET, scope, path, accept, from)
            .await
    }

    /// HEADs `/v2/<repository>/<path>`: whether the login of `scope` (or no login) may read
    /// it. Authenticates and retries as [`get`](Self::get) does.
    pub async fn head(
        &self,
        scope: &Scope<'_>,
        path: &str,
        accept: &[&str],
    ) -> Result<(), ImageError> {
        self.send(reqwest::Method::HEAD, scope, path, accept, 0)
            .await
            .map(drop)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        scope: &Scope<'_>,
        path: &str,
        accept: &[&str],
        from: u64,
    ) -> Result<Response, ImageError> {
        let url = format!("{}/v2/{}/{path}", self.base, scope.repository);
        let what = format!("{method} {url}");
        let token_scope = format!("repository:{}:pull", scope.repository);
        let mut authenticated = false;
        let mut attempt = 0;
        loop {
            let mut request = self.http.request(method.clone(), &url);
            if !accept.is_empty() {
                request = request.header(ACCEPT, accept.join(", "));
            }
            if from > 0 {
                request = request.header(RANGE, format!("bytes={from}-"));
            }
            if let Some(header) = self.tokens.get(scope.login, &token_scope) {
                request = request.header(AUTHORIZATION, header);
            }
            let transient = match request.send().await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) if response.status() == StatusCode::UNAUTHORIZED && !authenticated => {
                    authenticated = true;
                    self.tokens.forget(scope.login, &token_scope);
                    let challenge = response
                        .headers()
                        .get(WWW_AUTHENTICATE)
                        .and_then(|h| h.to_str().ok())
                        .and_then(parse_challenge);
                    match challenge {
                        Some(Challenge::Bearer {
                            realm,
                            service,
                            scope: asked,
                        }) => {
                            let asked = asked.unwrap_or_else(|| token_scope.clone());
                            let (header, ttl) = self
                                .fetch_token(scope, &realm, service.as_deref(), &asked)
                                .await?;
                            self.tokens
                                .put(scope.login, &token_scope, header, Some(ttl));
                            continue;
                        }
                        Some(Challenge::Basic) if scope.login.is_some() => {
                            let login = scope.login.map(Login::basic_header);
                            if let Some(header) = login {
                                self.tokens.put(scope.login, &token_scope, header, None);
                            }
                            continue;
                        }
                        _ => return Err(status_error(scope.reference, &what, response).await),
                    }
                }
                Ok(response) if is_transient_status(response.status()) => {
                    let wait = retry_after(&response);
                    let error = status_error(scope.reference, &what, response).await;
                    (error, wait)
                }
                Ok(response) => return Err(status_error(scope.reference, &what, response).await),
                Err(e) => (
                    ImageError::Unreachable {
                        reference: scope.reference.to_owned(),
                        url: url.clone(),
                        message: error_chain(&e),
                    },
                    None,
                ),
            };
            let (error, wait) = transient;
            attempt += 1;
            if attempt >= self.retry.attempts {
                return Err(error);
            }
            let delay = wait.map_or_else(
                || self.retry.delay(attempt - 1),
                |w| w.min(self.retry.max_delay),
            );
            tracing::debug!(%url, attempt, ?delay, error = %error, "retrying registry request");
            tokio::time::sleep(delay).await;
        }
    }

    /// Asks the realm for a token covering `asked`, with the login when there is one and the
    /// realm may see it (HTTPS, or the registry's own host and port); else anonymously.
    async fn fetch_token(
        &self,
        scope: &Scope<'_>,
        realm: &str,
        service: Option<&str>,
        asked: &str,
    ) -> Result<(String, Duration), ImageError> {
        let refused = |message: String| ImageError::Token {
            reference: scope.reference.to_owned(),
            realm: realm.to_owned(),
            message,
        };
        let mut url =
            reqwest::Url::parse(realm).map_err(|e| refused(format!("invalid realm: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(refused("realm is not an http(s) URL".into()));
        }
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            query.append_pair("scope", asked);
        }
        let login = scope.login.filter(|_| {
            let allowed =
                reqwest::Url::parse(&self.base).is_ok_and(|base| may_send_login(&base, &url));
            if !allowed {
                tracing::warn!(
                    registry = %self.base,
                    realm = %realm,
                    "token realm is neither HTTPS nor the registry's own host and port: asking \
                     it for an anonymous token, without the registry login"
                );
            }
            allowed
        });
        let mut attempt = 0;
        loop {
            let mut request = self.http.get(url.clone());
            if let Some(login) = login {
                request = request.header(AUTHORIZATION, login.basic_header());
            }
            let error = match request.send().await {
                Ok(response) if response.status().is_success() => {
                    let too_large =
                        || refused(format!("answer is larger than {MAX_TOKEN_BYTES} bytes"));
                    if response
                        .content_length()
                        .is_some_and(|len| len > MAX_TOKEN_BYTES as u64)
                    {
                        return Err(too_large());
                    }
                    let body = read_capped(response, MAX_TOKEN_BYTES + 1)
                        .await
                        .map_err(|e| refused(error_chain(&e)))?;
                    if body.len() > MAX_TOKEN_BYTES {
                        return Err(too_large());
                    }
                    let token: TokenResponse = serde_json::from_slice(&body)
                        .map_err(|e| refused(format!("unreadable token answer: {e}")))?;
                    let (token, ttl) = token
                        .into_parts()
                        .ok_or_else(|| refused("answer holds no token".into()))?;
                    return Ok((format!("Bearer {token}"), ttl));
                }
                Ok(response) if is_transient_status(response.status()) => {
                    refused(response_message(response).await)
                }
                Ok(response) => return Err(refused(response_message(response).await)),
                Err(e) => refused(error_chain(&e)),
            };
            attempt += 1;
            if attempt >= self.retry.attempts {
                return Err(error);
            }
            tokio::time::sleep(self.retry.delay(attempt - 1)).await;
        }
    }
}

fn is_transient_status(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
}

/// Whether a failure while reading a response body is worth another try.
pub(crate) fn is_transient_body_error(e: &reqwest::Error) -> bool {
    e.is_body() || e.is_decode() || e.is_timeout() || e.is_request() || e.is_connect()
}

fn retry_after(response: &Response) -> Option<Duration> {
    let value: &HeaderValue = response.headers().get(RETRY_AFTER)?;
    let seconds: u64 = value.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds))
}

async fn status_error(reference: &str, what: &str, response: Response) -> ImageError {
    let status = response.status().as_u16();
    ImageError::RegistryStatus {
        reference: reference.to_owned(),
        what: what.to_owned(),
        status,
        message: response_message(response).await,
    }
}

/// What the registry said: the `errors` of a distribution error body (`CODE: message`), else
/// the start of the body, else the status text.
async fn response_message(response: Response) -> String {
    let status = response.status();
    let body = read_capped(response, MAX_ERROR_BODY)
        .await
        .unwrap_or_default();
    message_of(status, &body)
}

pub(crate) fn message_of(status: StatusCode, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Body {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(parsed) = serde_json::from_slice::<Body>(body) {
        let parts: Vec<String> = parsed
            .errors
            .iter()
            .map(|e| match (e.code.is_empty(), e.message.is_empty()) {
                (false, false) => format!("{}: {}", e.code, e.message),
                (false, true) => e.code.clone(),
                _ => e.message.clone(),
            })
            .filter(|s| !s.is_empty())
            .collect();
        if !parts.is_empty() {
            return parts.join("; ");
        }
    }
    let text = String::from_utf8_lossy(body);
    let text: String = text.trim().chars().take(300).collect();
    if text.is_empty() {
        status.to_string()
    } else {
        format!("{status}: {text}")
    }
}

/// Reads at most `limit` bytes of a body; more is an error.
pub(crate) async fn read_capped(
    mut response: Response,
    limit: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if chunk.len() > room {
            break;
        }
    }
    Ok(body)
}

/// A reqwest error with its causes, which carry the useful part (`connection refused`).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_keep_what_the_registry_said() {
        let body =
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(
            message_of(StatusCode::NOT_FOUND, body),
            "MANIFEST_UNKNOWN: manifest unknown"
        );
        assert_eq!(
            message_of(StatusCode::BAD_GATEWAY, b"upstream down\n"),
            "502 Bad Gateway: upstream down"
        );
        assert_eq!(message_of(StatusCode::FORBIDDEN, b""), "403 Forbidden");
    }

    #[test]
    fn back_off_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            attempts: 5,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
        };
        let delays: Vec<_> = (0..4).map(|a| policy.delay(a).as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 350, 350]);
    }
}

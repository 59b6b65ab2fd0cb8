//! `GET /containerLogs/{namespace}/{pod}/{container}`: a container's log, from berth's log
//! stream (the whole log, or its tail, once; or followed until the container exits). The
//! parameters are the kubelet's: `follow`, `tailLines`, `limitBytes` (cut here, after that
//! many bytes, as the kubelet does), `sinceSeconds` or `sinceTime` (turned into seconds),
//! `timestamps`, `previous`. Anything else is refused. The group of a pod that ended stays
//! until the pod is deleted, so its log stays readable.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;

use super::backend::LogQuery;
use super::params::Query;
use super::pods::pod_group;
use super::reply::Refusal;
use super::AppState;

const KNOWN: &[&str] = &[
    "follow",
    "tailLines",
    "limitBytes",
    "sinceSeconds",
    "sinceTime",
    "timestamps",
    "previous",
];

/// What the request asks for, before the group is known.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct LogArgs {
    pub follow: bool,
    pub tail: Option<u32>,
    pub limit_bytes: Option<u64>,
    pub since_seconds: Option<u64>,
    pub timestamps: bool,
    pub previous: bool,
}

/// Decodes the query, `now` being the time `sinceTime` is measured from.
pub(crate) fn parse(raw: Option<&str>, now: DateTime<Utc>) -> Result<LogArgs, Refusal> {
    let q = Query::parse(raw, KNOWN)?;
    let since_seconds = q.int("sinceSeconds", 1)?;
    let since_time = q
        .one("sinceTime")?
        .map(|s| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    Refusal::bad_request(format!("sinceTime={s:?} is not an RFC 3339 time"))
                })
        })
        .transpose()?;
    let since_seconds = match (since_seconds, since_time) {
        (Some(_), Some(_)) => {
            return Err(Refusal::bad_request(
                "at most one of sinceTime or sinceSeconds may be given",
            ))
        }
        (s, None) => s,
        // Rounded up: no line written after sinceTime is left out.
        (None, Some(t)) => {
            let ms = (now - t).num_milliseconds().max(0) as u64;
            Some(ms.div_ceil(1000).max(1))
        }
    };
    let tail = q
        .int("tailLines", 0)?
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    Ok(LogArgs {
        follow: q.bool("follow")?,
        tail,
        limit_bytes: q.int("limitBytes", 1)?,
        since_seconds,
        timestamps: q.bool("timestamps")?,
        previous: q.bool("previous")?,
    })
}

/// Keeps the first `limit` bytes of the stream.
fn limit(stream: super::LogStream, limit: Option<u64>) -> super::LogStream {
    let Some(limit) = limit else { return stream };
    futures_util::stream::unfold((stream, limit), |(mut s, left)| async move {
        if left == 0 {
            return None;
        }
        match s.next().await? {
            Ok(b) => {
                let n = (b.len() as u64).min(left);
                Some((Ok(b.slice(..n as usize)), (s, left - n)))
            }
            Err(e) => Some((Err(e), (s, 0))),
        }
    })
    .boxed()
}

pub(crate) async fn container_logs(
    State(state): State<AppState>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Refusal> {
    let args = parse(raw.as_deref(), Utc::now())?;
    let permit = if args.follow {
        Some(state.streams.clone().try_acquire_owned().map_err(|_| {
            Refusal::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "too many log streams and exec sessions are open",
            )
        })?)
    } else {
        None
    };
    let group = pod_group(&state, &namespace, &pod, &container).await?;
    let q = LogQuery {
        group_id: group.container_group_id,
        container,
        follow: args.follow,
        tail: args.tail,
        since_seconds: args.since_seconds,
        timestamps: args.timestamps,
        previous: args.previous,
    };
    let stream = limit(state.backend.logs(&q).await?, args.limit_bytes);
    // The permit goes with the stream: released when the follow ends.
    let stream = stream.map(move |chunk| {
        let _held = &permit;
        chunk.map_err(std::io::Error::other)
    });
    let body = Body::from_stream(stream);
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response())
}

#[cfg(test)]
mod tests {
    use axum::body::Bytes;

    use super::*;

    #[test]
    fn parameters() {
        let now: DateTime<Utc> = "2026-01-01T00:10:00Z".parse().unwrap();
        let a = parse(
            Some("follow=true&tailLines=10&limitBytes=5&timestamps=1&previous=false"),
            now,
        )
        .unwrap();
        assert_eq!(
            a,
            LogArgs {
                follow: true,
                tail: Some(10),
                limit_bytes: Some(5),
                since_seconds: None,
                timestamps: true,
                previous: false,
            }
        );
        let a = parse(Some("sinceTime=2026-01-01T00:08:59.5Z"), now).unwrap();
        assert_eq!(a.since_seconds, Some(61));
        assert_eq!(
            parse(Some("sinceSeconds=30"), now).unwrap().since_seconds,
            Some(30)
        );
        assert_eq!(parse(None, now).unwrap().tail, None);
        for bad in [
            "sinceSeconds=1&sinceTime=2026-01-01T00:00:00Z",
            "sinceSeconds=0",
            "tailLines=-1",
            "limitBytes=0",
            "sinceTime=yesterday",
            "stream=Stdout",
            "follow=maybe",
        ] {
            assert!(parse(Some(bad), now).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn limit_cuts_the_stream() {
        let chunks = vec![
            Ok(Bytes::from_static(b"abc")),
            Ok(Bytes::from_static(b"defg")),
            Ok(Bytes::from_static(b"h")),
        ];
        let s = limit(futures_util::stream::iter(chunks).boxed(), Some(5));
        let got: Vec<_> = s.map(|c| c.unwrap()).collect().await;
        assert_eq!(got, [Bytes::from_static(b"abc"), Bytes::from_static(b"de")]);
    }
}

//! Load shedding on the gRPC listener: at most `grpc.max_concurrent_requests`
//! calls are answered at once (a streaming call counts until its stream
//! ends); one more is answered at once with RESOURCE_EXHAUSTED and
//! google.rpc.RetryInfo instead of waiting in a queue without bound, so a
//! caller under overload learns it in microseconds and backs off. Health
//! checks and reflection are never shed: probes must see a busy server as
//! alive.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::layer::{Around, Body, Next, Reply, Request, Sendable};
use crate::app::AppError;

/// Sheds calls past a limit; `limit` 0 sheds nothing.
#[derive(Debug, Clone)]
pub struct Overload {
    permits: Option<Arc<Semaphore>>,
    limit: usize,
}

impl Overload {
    /// At most `limit` calls at once (0: no limit).
    pub fn new(limit: usize) -> Overload {
        Overload {
            permits: (limit > 0).then(|| Arc::new(Semaphore::new(limit))),
            limit,
        }
    }
}

/// Paths never shed.
fn exempt(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.")
}

impl Around for Overload {
    fn around<S: Next<B>, B: Sendable>(&self, request: Request<B>, next: S) -> Reply<S::Error> {
        let permit = match &self.permits {
            Some(permits) if !exempt(request.uri().path()) => {
                match Arc::clone(permits).try_acquire_owned() {
                    Ok(permit) => Some(permit),
                    Err(_) => {
                        let status = tonic::Status::from(AppError::Overloaded(self.limit));
                        return Box::pin(async move { Ok(status.into_http()) });
                    }
                }
            }
            _ => None,
        };
        Box::pin(async move {
            let response = next.pass(request).await?;
            Ok(match permit {
                None => response,
                Some(permit) => response.map(|body| {
                    Body::new(Held {
                        body,
                        _permit: permit,
                    })
                }),
            })
        })
    }
}

/// A response body that holds its call's permit until it ends (a stream's
/// last message, or the client going away).
struct Held {
    body: Body,
    _permit: OwnedSemaphorePermit,
}

impl http_body::Body for Held {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

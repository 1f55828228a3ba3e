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

use crate::app::AppError;

/// The layer; `limit` 0 sheds nothing.
#[derive(Debug, Clone)]
pub struct OverloadLayer {
    permits: Option<Arc<Semaphore>>,
    limit: usize,
}

impl OverloadLayer {
    /// At most `limit` calls at once (0: no limit).
    pub fn new(limit: usize) -> OverloadLayer {
        OverloadLayer {
            permits: (limit > 0).then(|| Arc::new(Semaphore::new(limit))),
            limit,
        }
    }
}

impl<S> tower::Layer<S> for OverloadLayer {
    type Service = Overload<S>;

    fn layer(&self, inner: S) -> Overload<S> {
        Overload {
            inner,
            permits: self.permits.clone(),
            limit: self.limit,
        }
    }
}

/// The service the layer wraps around the gRPC services.
#[derive(Debug, Clone)]
pub struct Overload<S> {
    inner: S,
    permits: Option<Arc<Semaphore>>,
    limit: usize,
}

/// Paths never shed.
fn exempt(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.")
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for Overload<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
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
        // The clone that was made ready serves this call (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let response = inner.call(request).await?;
            Ok(match permit {
                None => response,
                Some(permit) => response.map(|body| {
                    tonic::body::Body::new(Held {
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
    body: tonic::body::Body,
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

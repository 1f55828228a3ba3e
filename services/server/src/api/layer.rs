//! The one scaffold of the layers around the gRPC services (metrics,
//! overload, authentication): each says what it does around one call
//! ([`Around`]); the tower plumbing (readiness, and the clone that was made
//! ready serving the call, as tower requires) is written once here.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A gRPC response body.
pub type Body = tonic::body::Body;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What a layer does around one call.
pub trait Around: Clone + Send + Sync + 'static {
    /// Handles `request`, calling `next` (the services it wraps) to go on,
    /// or answering itself.
    fn around<S, B>(
        &self,
        request: http::Request<B>,
        next: S,
    ) -> BoxFuture<Result<http::Response<Body>, S::Error>>
    where
        S: tower::Service<http::Request<B>, Response = http::Response<Body>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Send + 'static,
        B: Send + 'static;
}

/// The tower layer of an [`Around`].
#[derive(Debug, Clone)]
pub struct AroundLayer<A>(pub A);

impl<S, A: Clone> tower::Layer<S> for AroundLayer<A> {
    type Service = Wrapped<S, A>;

    fn layer(&self, inner: S) -> Wrapped<S, A> {
        Wrapped {
            inner,
            around: self.0.clone(),
        }
    }
}

/// The services a layer wraps, with what it does around each call.
#[derive(Debug, Clone)]
pub struct Wrapped<S, A> {
    inner: S,
    around: A,
}

impl<S, B, A> tower::Service<http::Request<B>> for Wrapped<S, A>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    A: Around,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // The clone that was made ready serves this call (tower's rule).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        self.around.around(request, inner)
    }
}

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
    fn around<S: Next<B>, B: Sendable>(&self, request: Request<B>, next: S) -> Reply<S::Error>;
}

/// A call to the services.
pub type Request<B> = http::Request<B>;

/// What may travel with a call to another task: a call's body, the
/// services, their futures and errors.
pub trait Sendable: Send + 'static {}

impl<T: Send + 'static> Sendable for T {}

/// What a layer answers: the response, or the services' error.
pub type Reply<E> = BoxFuture<Result<http::Response<Body>, E>>;

/// The services a layer wraps, as [`Around::around`] sees them: one name
/// for the bounds every layer needs.
pub trait Next<B>: Inner<B, Future: Sendable, Error: Sendable> + Sendable {
    /// Passes `request` on to the services (made ready by [`Wrapped`]).
    fn pass(mut self, request: Request<B>) -> Self::Future
    where
        Self: Sized,
    {
        self.call(request)
    }
}

impl<S: Inner<B, Future: Sendable, Error: Sendable> + Sendable, B> Next<B> for S {}

/// The gRPC services' shape: a call in, a response out.
pub trait Inner<B>: tower::Service<Request<B>, Response = http::Response<Body>> {}

impl<S: tower::Service<Request<B>, Response = http::Response<Body>>, B> Inner<B> for S {}

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
    S: Next<B> + Clone,
    B: Sendable,
    A: Around,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Reply<S::Error>;

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

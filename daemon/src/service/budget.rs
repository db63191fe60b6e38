//! One memory budget for the request data every connection is receiving.
//!
//! The per-message caps (4 MiB, 32 MiB for trust requests) bound one
//! request, not the sum: a member of the socket's group could open the
//! allowed 256 connections with 32 streams each and send every stream most
//! of a large message without ever finishing it, and the daemon would
//! buffer all of them (gigabytes) until it was killed for memory.
//!
//! Here every request body passes through [`BudgetBody`], which counts the
//! bytes it hands to the decoder. The first [`FREE_BYTES`] of each request
//! are not counted, so small requests (a status, a sign of a few tags, an
//! unlock) never wait on large ones. Beyond that, bytes are taken from one
//! shared [`RequestBudget`] as they arrive and given back when the request
//! body is dropped (the message decoded, or the request refused or
//! abandoned). A request whose next bytes do not fit is refused with
//! `RESOURCE_EXHAUSTED` at once, saying why and what to do; it is not
//! queued, so nobody can hold the daemon's memory by keeping requests
//! half-sent, only the budget.
//!
//! With the budget, the memory a socket member can make the daemon hold for
//! received request data is at most [`RequestBudget::limit`] plus
//! [`FREE_BYTES`] per stream (256 connections × 32 streams × 16 KiB =
//! 128 MiB) plus what h2 buffers per connection before it is read: at most
//! the connection's flow-control window ([`crate::server::CONNECTION_WINDOW`],
//! 256 KiB; 64 MiB over 256 connections), which is what requests waiting
//! for one of a connection's request slots can hold.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

/// A body error of any kind (what tonic and hyper take).
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Bytes of each request not counted against the shared budget.
pub const FREE_BYTES: usize = 16 * 1024;

/// The default budget: three of the largest trust requests (32 MiB) at
/// once, or eight signs of 100 000 tags.
pub const DEFAULT_LIMIT: usize = 96 * 1024 * 1024;

/// The shared count of request bytes being received (beyond each request's
/// free part).
#[derive(Debug)]
pub struct RequestBudget {
    limit: usize,
    used: AtomicUsize,
}

impl RequestBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// The most bytes counted at once.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes counted now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// Counts `n` more bytes if they fit.
    fn take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// A request body whose bytes are counted against a [`RequestBudget`].
pub struct BudgetBody<B> {
    inner: B,
    budget: Arc<RequestBudget>,
    /// Bytes received so far; those beyond [`FREE_BYTES`] are taken from
    /// the budget (given back on drop).
    received: usize,
}

impl<B> BudgetBody<B> {
    /// Wraps `inner`, counting against `budget`.
    pub fn new(inner: B, budget: Arc<RequestBudget>) -> Self {
        Self {
            inner,
            budget,
            received: 0,
        }
    }

    /// Bytes taken from the budget for `received` bytes.
    fn charged(received: usize) -> usize {
        received.saturating_sub(FREE_BYTES)
    }

    /// Accounts for `n` more received bytes: `Err` when they do not fit.
    fn receive(&mut self, n: usize) -> Result<(), tonic::Status> {
        let received = self.received.saturating_add(n);
        let charge = Self::charged(received) - Self::charged(self.received);
        if charge > 0 && !self.budget.take(charge) {
            return Err(tonic::Status::resource_exhausted(format!(
                "the daemon is receiving {} MiB of request data from other requests, its limit; \
                 this request ({} KiB so far) was refused: retry shortly, and send very large \
                 batches in smaller parts",
                self.budget.used() >> 20,
                received >> 10
            )));
        }
        self.received = received;
        Ok(())
    }
}

impl<B> Drop for BudgetBody<B> {
    fn drop(&mut self) {
        self.budget.give_back(Self::charged(self.received));
    }
}

impl<B> Body for BudgetBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref()
                    && let Err(status) = this.receive(data.len())
                {
                    return Poll::Ready(Some(Err(Box::new(status))));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Wraps every request body in a [`BudgetBody`] of one shared budget.
#[derive(Clone)]
pub struct BudgetLayer {
    budget: Arc<RequestBudget>,
}

impl BudgetLayer {
    /// A layer counting against `budget`.
    pub fn new(budget: Arc<RequestBudget>) -> Self {
        Self { budget }
    }
}

impl<S> tower::Layer<S> for BudgetLayer {
    type Service = Budgeted<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Budgeted {
            inner,
            budget: Arc::clone(&self.budget),
        }
    }
}

/// See [`BudgetLayer`].
#[derive(Clone)]
pub struct Budgeted<S> {
    inner: S,
    budget: Arc<RequestBudget>,
}

impl<S, B> tower::Service<http::Request<B>> for Budgeted<S>
where
    S: tower::Service<http::Request<BudgetBody<B>>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let budget = Arc::clone(&self.budget);
        self.inner.call(req.map(|b| BudgetBody::new(b, budget)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full, StreamBody};

    fn body_of(
        chunks: Vec<usize>,
    ) -> impl Body<Data = Bytes, Error = std::convert::Infallible> + Unpin {
        StreamBody::new(tokio_stream::iter(
            chunks
                .into_iter()
                .map(|n| Ok(Frame::data(Bytes::from(vec![7u8; n])))),
        ))
    }

    #[tokio::test]
    async fn bytes_beyond_the_free_part_are_counted_until_the_body_is_dropped() {
        let budget = RequestBudget::new(100_000);
        let mut a = BudgetBody::new(body_of(vec![FREE_BYTES, 60_000]), Arc::clone(&budget));
        a.frame().await.unwrap().unwrap();
        assert_eq!(budget.used(), 0, "the free part is not counted");
        a.frame().await.unwrap().unwrap();
        assert_eq!(budget.used(), 60_000);
        // A second request fits its free part and 40 000 bytes more, not 40 001.
        let mut b = BudgetBody::new(body_of(vec![FREE_BYTES + 40_001]), Arc::clone(&budget));
        let refused = b.frame().await.unwrap().unwrap_err();
        let status = refused.downcast::<tonic::Status>().unwrap();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(status.message().contains("retry shortly"), "{status:?}");
        drop(b);
        assert_eq!(budget.used(), 60_000, "a refused request holds nothing");
        let mut c = BudgetBody::new(body_of(vec![FREE_BYTES + 40_000]), Arc::clone(&budget));
        c.frame().await.unwrap().unwrap();
        assert_eq!(budget.used(), 100_000);
        drop(a);
        drop(c);
        assert_eq!(budget.used(), 0, "every byte given back");
    }

    #[tokio::test]
    async fn small_requests_pass_a_spent_budget() {
        let budget = RequestBudget::new(10);
        assert!(budget.take(10));
        let small = BudgetBody::new(Full::new(Bytes::from(vec![1u8; FREE_BYTES])), budget);
        assert_eq!(small.collect().await.unwrap().to_bytes().len(), FREE_BYTES);
    }
}

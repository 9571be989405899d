//! The body of a response leaving the layer: a stored body, a buffered upstream one, nothing
//! (a `HEAD` or a 304), or the upstream's own, passed through as it streams.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

/// The body of a response from [`ResponseCache`](crate::ResponseCache): the stored bytes of a
/// cached response, or the upstream body `B` itself when the response was not stored.
pub struct ResponseBody<B: Body> {
    kind: Kind<B>,
}

enum Kind<B: Body> {
    /// Whole, in memory: its data (taken when sent), then its trailers.
    Buffered {
        data: Option<Bytes>,
        trailers: Option<HeaderMap>,
    },
    /// The upstream's body, streamed through.
    Upstream(Pin<Box<B>>),
    /// The upstream's body failed while the layer read it: this error, once.
    Failed(Option<B::Error>),
}

impl<B: Body> ResponseBody<B> {
    /// Bytes in memory.
    pub(crate) fn full(data: Bytes) -> Self {
        Self::buffered(data, None)
    }

    /// Bytes in memory, then trailers.
    pub(crate) fn buffered(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        let data = (!data.is_empty()).then_some(data);
        ResponseBody {
            kind: Kind::Buffered { data, trailers },
        }
    }

    /// No body.
    pub(crate) fn empty() -> Self {
        Self::full(Bytes::new())
    }

    /// The upstream's body, as it comes.
    pub(crate) fn upstream(body: B) -> Self {
        ResponseBody {
            kind: Kind::Upstream(Box::pin(body)),
        }
    }

    /// A body that fails with `error`.
    pub(crate) fn failed(error: B::Error) -> Self {
        ResponseBody {
            kind: Kind::Failed(Some(error)),
        }
    }
}

// No field is pinned structurally: the upstream body is boxed, the rest is moved freely.
impl<B: Body> Unpin for ResponseBody<B> {}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match &mut self.get_mut().kind {
            Kind::Buffered { data, trailers } => Poll::Ready(
                data.take()
                    .map(Frame::data)
                    .or_else(|| trailers.take().map(Frame::trailers))
                    .map(Ok),
            ),
            Kind::Upstream(body) => body.as_mut().poll_frame(cx),
            Kind::Failed(error) => Poll::Ready(error.take().map(Err)),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Buffered { data, trailers } => data.is_none() && trailers.is_none(),
            Kind::Upstream(body) => body.is_end_stream(),
            Kind::Failed(error) => error.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Buffered { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |data| data.len() as u64))
            }
            Kind::Upstream(body) => body.size_hint(),
            Kind::Failed(_) => SizeHint::default(),
        }
    }
}

impl<B: Body> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Buffered { .. } => "buffered",
            Kind::Upstream(_) => "upstream",
            Kind::Failed(_) => "failed",
        };
        f.debug_struct("ResponseBody").field("kind", &kind).finish()
    }
}

/// A body read whole, or why it could not be.
pub(crate) enum Collected<B: Body> {
    /// All of it: its data and its trailers.
    Whole(Bytes, Option<HeaderMap>),
    /// It failed: the error.
    Failed(B::Error),
}

/// Reads `body` whole. The caller checked its size hint against its limit.
pub(crate) async fn collect<B: Body<Data = Bytes>>(body: B) -> Collected<B> {
    let mut body = std::pin::pin!(body);
    let mut data: Vec<Bytes> = Vec::new();
    let mut trailers: Option<HeaderMap> = None;
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(error) => return Collected::Failed(error),
        };
        match frame.into_data() {
            Ok(chunk) => data.push(chunk),
            Err(frame) => {
                if let Ok(more) = frame.into_trailers() {
                    trailers.get_or_insert_with(HeaderMap::new).extend(more);
                }
            }
        }
    }
    let whole = match data.len() {
        0 => Bytes::new(),
        1 => data.pop().unwrap_or_default(),
        _ => Bytes::from(data.concat()),
    };
    Collected::Whole(whole, trailers)
}

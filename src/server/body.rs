//! A request body that tells whether it was read to its end.
//!
//! hyper cannot reuse an HTTP/1.1 connection past a request whose body was left unread
//! (a request refused before its body mattered: a forged key, a cross-site form, a
//! method the path does not take), so it closes it after the answer. The answer must
//! say so (`Connection: close`), or a keep-alive client sends its next request on a
//! connection that is closing and sees it cut. The server's service wraps every body in
//! [`Watched`] and, when a body it carried was not read to its end, adds that header,
//! for the API, the dashboard and SCIM alike.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response};

/// `inner`, noting in `ended` when it reaches its end.
pub(super) struct Watched<B> {
    inner: B,
    ended: Option<Arc<AtomicBool>>,
}

/// Whether a body the request carried was read to its end; `None` when it carried none.
pub(super) struct BodyRead(Option<Arc<AtomicBool>>);

/// Wrap `request`'s body so that whether it was read can be told after the answer.
pub(super) fn watch<B>(request: Request<B>) -> (Request<Watched<B>>, BodyRead) {
    let carries = request.headers().contains_key(header::TRANSFER_ENCODING)
        || request
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    let ended = carries.then(|| Arc::new(AtomicBool::new(false)));
    let read = BodyRead(ended.clone());
    (request.map(|inner| Watched { inner, ended }), read)
}

impl BodyRead {
    /// `response`, saying that the connection closes when the request's body was left
    /// unread.
    pub(super) fn answer(self, mut response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
        if self.0.is_some_and(|ended| !ended.load(Ordering::Acquire)) {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl<B: Body + Unpin> Body for Watched<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Some(ended) = &this.ended
            && (matches!(polled, Poll::Ready(None)) || this.inner.is_end_stream())
        {
            ended.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn request(content_length: Option<&str>, body: &'static str) -> Request<Full<Bytes>> {
        let mut builder = Request::post("/verify");
        if let Some(length) = content_length {
            builder = builder.header(header::CONTENT_LENGTH, length);
        }
        builder
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap()
    }

    fn closes(read: BodyRead) -> bool {
        read.answer(Response::new(Full::default()))
            .headers()
            .get(header::CONNECTION)
            .is_some_and(|v| v == "close")
    }

    #[tokio::test]
    async fn only_a_body_left_unread_closes_the_connection() {
        // Carried and read whole: kept.
        let (watched, read) = watch(request(Some("2"), "{}"));
        let collected = watched.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"{}");
        assert!(!closes(read));
        // Carried, left unread: closed, and said so.
        let (watched, read) = watch(request(Some("2"), "{}"));
        drop(watched);
        assert!(closes(read));
        // Carried with chunked transfer, left unread: closed.
        let mut chunked = request(None, "{}");
        chunked.headers_mut().insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        assert!(closes(watch(chunked).1));
        // None carried (no length, or 0): kept, read or not.
        assert!(!closes(watch(request(None, "")).1));
        assert!(!closes(watch(request(Some("0"), "")).1));
    }
}

//! One write for a quick answer. A POST's answer is an event stream: its head and the
//! stream's priming event are ready at once, the answer itself a moment later, then the
//! end of the stream. Sent as they come, that is three writes and three wake-ups of the
//! client for every call. This layer holds a POST's event stream back for at most
//! [`HOLD`]: a stream that ends by then goes out whole, in one write with its length; a
//! longer one goes out as before, what was held first, with no event lost, reordered or
//! changed. Only when the first bytes leave changes, never what they are.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;

/// The longest a POST's event stream is held back before its first bytes are sent.
pub const HOLD: Duration = Duration::from_millis(10);

pub async fn coalesce(request: Request, next: Next) -> Response {
    let post = request.method() == Method::POST;
    let response = next.run(request).await;
    if !post || !is_event_stream(&response) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let mut stream = body.into_data_stream();
    let mut held: Vec<Bytes> = Vec::new();
    let deadline = tokio::time::sleep(HOLD);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            biased;
            frame = stream.next() => match frame {
                Some(Ok(bytes)) => held.push(bytes),
                Some(Err(e)) => {
                    // Pass the failure on exactly where it happened.
                    let rest = futures::stream::iter(held.into_iter().map(Ok))
                        .chain(futures::stream::once(async move { Err(e) }));
                    return Response::from_parts(parts, Body::from_stream(rest));
                }
                None => {
                    let whole: Bytes = held.concat().into();
                    parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(whole.len()));
                    return Response::from_parts(parts, Body::from(whole));
                }
            },
            () = &mut deadline => {
                let first = futures::stream::iter(held.into_iter().map(Ok::<_, axum::Error>));
                return Response::from_parts(parts, Body::from_stream(first.chain(stream)));
            }
        }
    }
}

fn is_event_stream(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;
    use tokio::sync::mpsc;
    use tower::ServiceExt;

    /// A POST whose event stream is the frames sent into the returned channel.
    async fn serve(frames: mpsc::Receiver<Bytes>) -> Response {
        let stream = futures::stream::unfold(frames, |mut rx| async move {
            rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
        });
        let body = std::sync::Arc::new(std::sync::Mutex::new(Some(Body::from_stream(stream))));
        let handler = move || async move {
            let body = body.lock().unwrap().take().unwrap();
            Response::builder()
                .header(header::CONTENT_TYPE, "text/event-stream")
                .body(body)
                .unwrap()
        };
        let router = axum::Router::new()
            .route("/", post(handler))
            .layer(axum::middleware::from_fn(coalesce));
        let request = Request::post("/").body(Body::empty()).unwrap();
        router.oneshot(request).await.unwrap()
    }

    /// A stream that ends before the hold is over goes out whole, with its length.
    #[tokio::test(start_paused = true)]
    async fn a_stream_that_ends_within_the_hold_goes_out_whole() {
        let (tx, rx) = mpsc::channel(4);
        tx.send(Bytes::from_static(b"id: 1/0\n\n")).await.unwrap();
        tokio::spawn(async move {
            tokio::time::sleep(HOLD / 2).await;
            tx.send(Bytes::from_static(b"data: answer\n\n"))
                .await
                .unwrap();
        });
        let response = serve(rx).await;
        let length = response.headers().get(header::CONTENT_LENGTH).cloned();
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], b"id: 1/0\n\ndata: answer\n\n");
        assert_eq!(length, Some(HeaderValue::from(body.len())));
    }

    /// A stream still open when the hold is over streams: what was held first, then the
    /// rest as it comes, nothing lost or reordered.
    #[tokio::test(start_paused = true)]
    async fn a_stream_longer_than_the_hold_streams_in_order() {
        let (tx, rx) = mpsc::channel(4);
        tx.send(Bytes::from_static(b"id: 1/0\n\n")).await.unwrap();
        tokio::spawn(async move {
            tokio::time::sleep(HOLD * 3).await;
            tx.send(Bytes::from_static(b"data: progress\n\n"))
                .await
                .unwrap();
            tx.send(Bytes::from_static(b"data: answer\n\n"))
                .await
                .unwrap();
        });
        let response = serve(rx).await;
        assert!(response.headers().get(header::CONTENT_LENGTH).is_none());
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], b"id: 1/0\n\ndata: progress\n\ndata: answer\n\n");
    }
}

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

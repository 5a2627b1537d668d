//! Terminal resize events: the client writes JSON objects like `{"Width":80,"Height":24}`
//! back to back (no separators) on the resize stream/channel.

use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::sync::mpsc;
use vk_core::capabilities::TermSize;

/// Decodes resize events from `input` into `tx` until EOF, a malformed document (logged
/// and ends decoding), or the receiver is dropped.
pub async fn decode_resizes<R: AsyncRead + Unpin>(mut input: R, tx: mpsc::Sender<TermSize>) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = match input.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let (sizes, consumed, malformed) = parse_available(&buf);
        buf.drain(..consumed);
        for size in sizes {
            if tx.send(size).await.is_err() {
                return;
            }
        }
        if malformed {
            tracing::debug!("malformed terminal resize event; ignoring further resizes");
            return;
        }
        if buf.len() > 64 * 1024 {
            return; // not a sane resize stream
        }
    }
}

/// Parses the complete documents at the front of `buf`: the sizes, how many bytes they
/// took, and whether a malformed (not merely incomplete) document follows.
fn parse_available(buf: &[u8]) -> (Vec<TermSize>, usize, bool) {
    let mut out = Vec::new();
    let mut stream = serde_json::Deserializer::from_slice(buf).into_iter::<TermSize>();
    let mut consumed = 0;
    loop {
        match stream.next() {
            Some(Ok(size)) => {
                out.push(size);
                consumed = stream.byte_offset();
            }
            Some(Err(e)) if e.is_eof() => return (out, consumed, false),
            Some(Err(_)) => return (out, consumed, true),
            None => return (out, consumed, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_to_back_documents_and_partial_tails() {
        let (sizes, used, bad) =
            parse_available(br#"{"Width":80,"Height":24}{"Width":100,"Height":30}{"Wid"#);
        assert_eq!(
            sizes,
            [
                TermSize {
                    width: 80,
                    height: 24
                },
                TermSize {
                    width: 100,
                    height: 30
                }
            ]
        );
        assert_eq!(used, 49);
        assert!(!bad);
        let (_, _, bad) = parse_available(b"not json");
        assert!(bad);
    }

    #[tokio::test]
    async fn decodes_a_stream_split_anywhere() {
        let (tx, mut rx) = mpsc::channel(8);
        let data = br#"{"Width":1,"Height":2} {"Width":3,"Height":4}"#.to_vec();
        let reader = tokio_test_reader(data);
        decode_resizes(reader, tx).await;
        assert_eq!(
            rx.recv().await,
            Some(TermSize {
                width: 1,
                height: 2
            })
        );
        assert_eq!(
            rx.recv().await,
            Some(TermSize {
                width: 3,
                height: 4
            })
        );
        assert_eq!(rx.recv().await, None);
    }

    /// A reader that yields one byte at a time.
    fn tokio_test_reader(data: Vec<u8>) -> impl AsyncRead + Unpin {
        struct OneByte(std::collections::VecDeque<u8>);
        impl AsyncRead for OneByte {
            fn poll_read(
                mut self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                if let Some(b) = self.0.pop_front() {
                    buf.put_slice(&[b]);
                }
                std::task::Poll::Ready(Ok(()))
            }
        }
        OneByte(data.into())
    }
}

//! What a child process writes, read as it arrives, so that a test can wait for the
//! moment the process reaches a state (a shell prompt, `kubectl port-forward`'s
//! "Forwarding from" line) instead of sleeping and hoping it did.
//!
//! ```no_run
//! # async fn demo() {
//! use vk_testkit::transcript::Transcript;
//! let mut child = tokio::process::Command::new("sh")
//!     .args(["-c", "echo ready; cat"])
//!     .stdout(std::process::Stdio::piped())
//!     .kill_on_drop(true)
//!     .spawn()
//!     .expect("spawn");
//! let mut out = Transcript::new(child.stdout.take().expect("stdout"));
//! out.wait_for("the ready line", |text| text.contains("ready\n")).await;
//! # }
//! ```

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _};

use crate::wait::PATIENCE;

/// Everything read so far from one output stream of a child process.
#[derive(Debug)]
pub struct Transcript<R> {
    reader: R,
    bytes: Vec<u8>,
    ended: bool,
    patience: Duration,
}

impl<R: AsyncRead + Unpin> Transcript<R> {
    /// Follows `reader` (a child's stdout or stderr); waits fail after
    /// [`PATIENCE`].
    pub fn new(reader: R) -> Self {
        Self::with_patience(reader, PATIENCE)
    }

    /// As [`Transcript::new`], with waits failing after `patience`.
    pub fn with_patience(reader: R, patience: Duration) -> Self {
        Self {
            reader,
            bytes: Vec::new(),
            ended: false,
            patience,
        }
    }

    /// The text read so far (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// Reads until `done` holds for the whole text read so far and returns that text.
    /// Panics, naming `what` and showing the text, when the stream ends first or the
    /// patience runs out.
    pub async fn wait_for(&mut self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + self.patience;
        loop {
            let text = self.text();
            if done(&text) {
                return text;
            }
            if self.ended {
                panic!("the output ended before {what}; it was:\n{text}");
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout_at(deadline, self.reader.read(&mut chunk)).await {
                Err(_) => panic!(
                    "timed out after {:?} waiting for {what}; the output so far:\n{text}",
                    self.patience
                ),
                Ok(Ok(0)) => self.ended = true,
                Ok(Ok(n)) => self.bytes.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) => panic!("reading the output while waiting for {what}: {e}"),
            }
        }
    }

    /// Reads to the end of the stream and returns the whole text; panics when the
    /// stream is still open after the patience.
    pub async fn wait_for_end(&mut self, what: &str) -> String {
        let deadline = tokio::time::Instant::now() + self.patience;
        let mut rest = Vec::new();
        match tokio::time::timeout_at(deadline, self.reader.read_to_end(&mut rest)).await {
            Err(_) => panic!(
                "timed out after {:?} waiting for the end of the output ({what}); so far:\n{}",
                self.patience,
                self.text()
            ),
            Ok(Err(e)) => panic!("reading the output until its end ({what}): {e}"),
            Ok(Ok(_)) => {}
        }
        self.bytes.extend_from_slice(&rest);
        self.ended = true;
        self.text()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_text_across_reads() {
        let (mut tx, rx) = tokio::io::duplex(64);
        let mut t = Transcript::new(rx);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt as _;
            tx.write_all(b"$ ").await.expect("write");
            tx.write_all(b"echo hi\r\nhi\r\n$ ").await.expect("write");
        });
        let text = t
            .wait_for("the second prompt", |t| t.matches("$ ").count() == 2)
            .await;
        assert_eq!(text, "$ echo hi\r\nhi\r\n$ ");
        writer.await.expect("writer");
        assert_eq!(t.wait_for_end("the end").await, "$ echo hi\r\nhi\r\n$ ");
    }

    #[tokio::test]
    #[should_panic(expected = "the output ended before the prompt")]
    async fn an_ended_stream_fails_the_wait() {
        let mut t = Transcript::new(&b"no prompt here"[..]);
        t.wait_for("the prompt", |t| t.contains("$ ")).await;
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for the prompt; the output so far:\nsilence")]
    async fn a_silent_stream_fails_the_wait_after_the_patience() {
        let (mut tx, rx) = tokio::io::duplex(64);
        {
            use tokio::io::AsyncWriteExt as _;
            tx.write_all(b"silence").await.expect("write");
        }
        let mut t = Transcript::with_patience(rx, Duration::from_millis(200));
        t.wait_for("the prompt", |t| t.contains("$ ")).await;
        drop(tx);
    }
}

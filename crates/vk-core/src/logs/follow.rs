//! Following a growing log file, across rotation and truncation.

use std::io::{self, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

/// How [`follow_file`] watches its file.
#[derive(Debug, Clone, Copy)]
pub struct FollowConfig {
    /// How often the file is checked for new data while none comes. Default 200 ms.
    pub poll_interval: Duration,
    /// Largest chunk read at once. Default 64 KiB.
    pub chunk_size: usize,
}

impl Default for FollowConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(200),
            chunk_size: 64 * 1024,
        }
    }
}

/// Which file an open handle is (device and inode), to notice rotation.
#[cfg(unix)]
fn identity(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn identity(_meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

struct Follower {
    path: PathBuf,
    config: FollowConfig,
    file: Option<tokio::fs::File>,
    offset: u64,
}

impl Follower {
    /// Opens the file at the path (if there is one) at `offset`.
    async fn open(&mut self, offset: u64) -> io::Result<bool> {
        match tokio::fs::File::open(&self.path).await {
            Ok(mut file) => {
                file.seek(SeekFrom::Start(offset)).await?;
                self.file = Some(file);
                self.offset = offset;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Reads what is there; an empty chunk when nothing new is.
    async fn read(&mut self) -> io::Result<Bytes> {
        if self.file.is_none() && !self.open(self.offset).await? {
            return Ok(Bytes::new());
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(Bytes::new());
        };
        let mut buf = vec![0u8; self.config.chunk_size];
        let n = file.read(&mut buf).await?;
        buf.truncate(n);
        self.offset += n as u64;
        Ok(Bytes::from(buf))
    }

    /// After a read found nothing: has the path been rotated (now another file) or
    /// truncated (shorter than what we read)? Switches to reading the new content from
    /// its start. Returns whether it switched.
    async fn check_rotation(&mut self) -> io::Result<bool> {
        let Some(file) = self.file.as_ref() else {
            return Ok(false);
        };
        let ours = file.metadata().await?;
        let at_path = match tokio::fs::metadata(&self.path).await {
            Ok(m) => m,
            // Moved away and not recreated yet: keep the old handle.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let replaced = identity(&ours) != identity(&at_path);
        let truncated = at_path.len() < self.offset && !replaced;
        if replaced || truncated {
            self.file = None;
            return self.open(0).await;
        }
        Ok(false)
    }
}

/// The bytes appended to the file at `path` after `offset`, as they are written, until
/// `ended()` is true and the file has nothing more.
///
/// Rotation is followed: when the path is renamed away and a new file created (the
/// old one is read to its end first), or the file is truncated in place
/// (`copytruncate`), reading continues at the start of the new content. A path that
/// does not exist yet is waited for. `ended` is checked before each read, so what was
/// written before it turned true is delivered.
///
/// ```no_run
/// # async fn demo() {
/// use futures::StreamExt as _;
/// let mut chunks = Box::pin(vk_core::logs::follow_file(
///     "/var/log/app.log".into(), 0, || false, Default::default()));
/// while let Some(chunk) = chunks.next().await {
///     print!("{}", String::from_utf8_lossy(&chunk.unwrap()));
/// }
/// # }
/// ```
pub fn follow_file<E>(
    path: PathBuf,
    offset: u64,
    ended: E,
    config: FollowConfig,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static
where
    E: Fn() -> bool + Send + 'static,
{
    let follower = Follower {
        path,
        config,
        file: None,
        offset,
    };
    futures::stream::unfold(
        (follower, ended, false),
        |(mut follower, ended, failed)| async move {
            if failed {
                return None;
            }
            loop {
                let was_ended = ended();
                match follower.read().await {
                    Ok(chunk) if !chunk.is_empty() => {
                        return Some((Ok(chunk), (follower, ended, false)));
                    }
                    Ok(_) => {}
                    Err(e) => return Some((Err(e), (follower, ended, true))),
                }
                match follower.check_rotation().await {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(e) => return Some((Err(e), (follower, ended, true))),
                }
                if was_ended {
                    return None;
                }
                tokio::time::sleep(follower.config.poll_interval).await;
            }
        },
    )
}

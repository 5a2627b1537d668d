//! `kubectl logs`: a task's stdout and stderr from `/v1/client/fs/logs/:alloc_id`.
//!
//! The existing log is read once per stream (`plain=true`, `follow=false`): stdout
//! first, then stderr (Nomad keeps them in separate files and records no line times,
//! so they cannot be interleaved as written). With `follow`, both streams are then
//! followed from where that read ended (`offset`, `origin=start`), so no byte is shown
//! twice or lost, and their lines are merged as they arrive.
//!
//! The kubelet options are applied by [`vk_core::logs`]: `tailLines` and `limitBytes`
//! exactly; `sinceSeconds`/`sinceTime` and `timestamps` only for followed lines, which
//! are stamped on arrival — lines already in Nomad's files have no known time and are
//! kept (and shown without a timestamp). `previous` is refused: Nomad keeps one log
//! per task across restarts.

use futures::StreamExt as _;
use k8s_openapi::jiff::Timestamp;
use vk_core::capabilities::{ByteStream, ContainerLogs, LogOptions};
use vk_core::logs::{LogLine, Stamp, lines_from_text, log_stream, split_lines};
use vk_errdefs::{Error, Result};

use crate::api::LogType;
use crate::provider::NomadProvider;

#[async_trait::async_trait]
impl ContainerLogs for NomadProvider {
    async fn container_logs(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        options: &LogOptions,
    ) -> Result<ByteStream> {
        if options.previous {
            return Err(Error::invalid_input(
                "previous logs are not available: Nomad keeps one log per task across restarts",
            ));
        }
        let alloc = self.allocation_of(namespace, pod, container).await?;
        let client = self.client();
        let mut head: Vec<LogLine> = Vec::new();
        let mut offsets = [0u64; 2];
        for (i, log_type) in [LogType::Stdout, LogType::Stderr].into_iter().enumerate() {
            let text = read_all(
                client
                    .logs(&alloc, container, log_type, false, "start", 0)
                    .await?,
            )
            .await?;
            offsets[i] = text.len() as u64;
            head.extend(lines_from_text(&text, None));
        }
        let follow = if options.follow {
            let stdout = client
                .logs(
                    &alloc,
                    container,
                    LogType::Stdout,
                    true,
                    "start",
                    offsets[0],
                )
                .await?;
            let stderr = client
                .logs(
                    &alloc,
                    container,
                    LogType::Stderr,
                    true,
                    "start",
                    offsets[1],
                )
                .await?;
            let merged = futures::stream::select(
                split_lines(stdout, Stamp::Arrival),
                split_lines(stderr, Stamp::Arrival),
            );
            Some(merged.boxed())
        } else {
            None
        };
        Ok(log_stream(head, follow, options, Timestamp::now()))
    }
}

async fn read_all(mut stream: ByteStream) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| Error::unavailable(format!("reading task logs from Nomad: {e}")))?;
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

//! The provider's error type: one variant per failed operation.

use std::path::PathBuf;

/// What went wrong, named after the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// A container has neither `command` nor an `images` mapping for its image.
    #[error(
        "container {container:?} has no command and its image {image:?} is not mapped to one \
         (set `command` in the pod or add the image to the provider's `images` table)"
    )]
    NoCommand {
        /// The container.
        container: String,
        /// Its image.
        image: String,
    },
    /// Creating a directory or file of the pod's state failed.
    #[error("preparing {path}: {source}")]
    Prepare {
        /// What was being prepared.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Starting a container's process failed.
    #[error("starting container {container:?}: {source}")]
    Spawn {
        /// The container.
        container: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A volume could not be materialised.
    #[error("materialising volume {volume:?}: {reason}")]
    Volume {
        /// The volume.
        volume: String,
        /// Why.
        reason: String,
    },
    /// A signal could not be sent.
    #[error("signalling process group {pgid}: {source}")]
    Signal {
        /// The process group.
        pgid: i32,
        /// Cause.
        source: std::io::Error,
    },
}

impl From<ProcessError> for vk_errdefs::Error {
    fn from(e: ProcessError) -> Self {
        let kind = match &e {
            ProcessError::NoCommand { .. } => vk_errdefs::ErrorKind::InvalidInput,
            ProcessError::Volume { .. } => vk_errdefs::ErrorKind::Unavailable,
            _ => vk_errdefs::ErrorKind::Unknown,
        };
        vk_errdefs::Error::new(kind, e.to_string())
    }
}

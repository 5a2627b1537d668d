//! Pods and container groups: [`pod_to_group`] (what to `PUT`), [`group_status`] (what
//! the pod's status is), [`group_to_pod`] (the pod a group stands for, at adoption),
//! [`group_name`] and the owner tags.

mod group;
mod names;
pub mod resources;
mod status;

pub use group::{
    MappedGroup, MappingContext, MappingError, MappingWarning, VolumeData, pod_to_group, spec_hash,
};
pub use names::{
    OwnerTags, TAG_NAMESPACE, TAG_NODE, TAG_POD, TAG_POD_CREATED, TAG_POD_UID, TAG_SPEC_HASH,
    group_name, owner,
};
pub use status::{PROVIDER_FAILED, group_status, group_to_pod};

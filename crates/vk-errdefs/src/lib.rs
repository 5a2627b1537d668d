//! vk-errdefs (work in progress).

//! vk-trace (work in progress).

//! vk-core (work in progress).

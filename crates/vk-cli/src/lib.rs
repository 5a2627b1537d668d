//! vk-cli (work in progress).

//! vk-node-api (work in progress).

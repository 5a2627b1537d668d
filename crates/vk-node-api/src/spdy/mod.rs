//! SPDY/3.1 (server side), as Kubernetes streaming uses it. Being written.

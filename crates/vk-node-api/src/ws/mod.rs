//! The Kubernetes WebSocket channel protocols (server side). Being written.

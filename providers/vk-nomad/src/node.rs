//! The node side: readiness from the Nomad leader, capacity from the client nodes,
//! and the pod address known before placement.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use vk_core::NodeProvider;
use vk_errdefs::{Error, Result};

use crate::api::NomadClient;
use crate::config::NomadConfig;
use crate::error::NomadError;
use crate::provider::NomadProvider;

impl NomadProvider {
    /// Refreshes the address every host-network allocation gets (see
    /// [`pod_ip_hint`](vk_core::PodLifecycleHandler::pod_ip_hint)), at most once a minute.
    pub async fn refresh_single_address(&self) {
        let fresh = self
            .single_address
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .is_some_and(|at| at.elapsed() < Duration::from_secs(60));
        if fresh || self.config.network_mode != "host" {
            return;
        }
        let Ok(nodes) = self.client.nodes().await else {
            return;
        };
        let eligible: Vec<_> = nodes
            .iter()
            .filter(|n| n.status == "ready" && n.scheduling_eligibility == "eligible" && !n.drain)
            .filter(|n| {
                self.config
                    .node_pool
                    .as_ref()
                    .is_none_or(|p| &n.node_pool == p)
            })
            .collect();
        let address = match eligible.as_slice() {
            [only] => only.address.parse::<IpAddr>().ok(),
            _ => None,
        };
        *self
            .single_address
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = (address, Some(std::time::Instant::now()));
    }
}

#[async_trait]
impl NodeProvider for NomadProvider {
    /// Ready while Nomad answers and has a leader (`/v1/status/leader`).
    async fn ping(&self) -> Result<()> {
        let leader = self.client.leader().await?;
        if leader.is_empty() {
            return Err(Error::unavailable(
                "the Nomad cluster has no leader (/v1/status/leader is empty)",
            ));
        }
        Ok(())
    }
}

/// The node capacity from the Nomad cluster's ready, eligible, non-draining client
/// nodes: their CPU (MHz ÷ `cpu_mhz_per_core`) and memory (MB) less what they
/// reserve, 110 pods per node; then the configured overrides.
pub async fn cluster_capacity(
    client: &NomadClient,
    config: &NomadConfig,
) -> std::result::Result<BTreeMap<String, String>, NomadError> {
    let nodes = client.nodes().await?;
    let mut mhz: u64 = 0;
    let mut mb: u64 = 0;
    let mut count: u64 = 0;
    for node in nodes
        .iter()
        .filter(|n| n.status == "ready" && n.scheduling_eligibility == "eligible" && !n.drain)
    {
        if let Some(pool) = &config.node_pool
            && &node.node_pool != pool
        {
            continue;
        }
        count += 1;
        let res = node.node_resources.clone().unwrap_or_default();
        let reserved = node.reserved_resources.clone().unwrap_or_default();
        mhz += res
            .cpu
            .map_or(0, |c| c.cpu_shares)
            .saturating_sub(reserved.cpu.map_or(0, |c| c.cpu_shares));
        mb += res
            .memory
            .map_or(0, |m| m.memory_mb)
            .saturating_sub(reserved.memory.map_or(0, |m| m.memory_mb));
    }
    let millicores = mhz * 1000 / u64::from(config.cpu_mhz_per_core.max(1));
    let mut capacity = BTreeMap::from([
        ("cpu".to_owned(), format!("{millicores}m")),
        ("memory".to_owned(), format!("{mb}Mi")),
        ("pods".to_owned(), (count * 110).max(110).to_string()),
    ]);
    capacity.extend(config.capacity.clone());
    Ok(capacity)
}

//! Kubernetes resource requirements → ACI `resources`, rounded to ACI's granularity.
//!
//! * CPU is sent in cores with two decimals (0.01 core = 10m), memory in GB with one
//!   decimal (0.1 GiB, the unit ACI bills in); values are rounded **up**, so a
//!   container never gets less than it asked for, and each change made by rounding is
//!   reported (the provider records it as a Warning event `ResourcesRounded`).
//! * Requests default to limits, as in Kubernetes; without either, ACI's documented
//!   default of 1 core and 1.5 GB is used.
//! * A limit below the (rounded) request is raised to it (ACI refuses limits under
//!   requests).
//! * `nvidia.com/gpu` (limit, else request) becomes a GPU resource with the SKU of the
//!   pod's `virtual-kubelet.io/gpu-type` annotation, else the configured default.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements as KubeResources;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as KubeQuantity;
use vk_core::Quantity;

use crate::arm::types::{GpuResource, ResourceLimits, ResourceRequests, ResourceRequirements};

/// The GPU resource name.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";

/// The pod annotation choosing the GPU SKU (`K80`, `P100`, `V100`).
pub const GPU_SKU_ANNOTATION: &str = "virtual-kubelet.io/gpu-type";

/// ACI's default CPU when a container asks for none.
pub const DEFAULT_CPU: f64 = 1.0;

/// ACI's default memory (GB) when a container asks for none.
pub const DEFAULT_MEMORY_GB: f64 = 1.5;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// A value changed by rounding, for the warning event.
#[derive(Debug, Clone, PartialEq)]
pub struct Rounded {
    /// `requests.cpu`, `limits.memory`...
    pub what: String,
    /// As asked (`250m`).
    pub asked: String,
    /// As sent (`0.25` cores).
    pub sent: String,
}

/// Maps one container's resources; `rounded` collects the values rounding changed.
pub fn map_resources(
    container: &str,
    resources: Option<&KubeResources>,
    gpu_sku: &str,
    rounded: &mut Vec<Rounded>,
) -> Result<ResourceRequirements, String> {
    let empty = BTreeMap::new();
    let limits = resources.and_then(|r| r.limits.as_ref()).unwrap_or(&empty);
    let requests = resources
        .and_then(|r| r.requests.as_ref())
        .unwrap_or(&empty);
    let parse =
        |map: &BTreeMap<String, KubeQuantity>, name: &str| -> Result<Option<Quantity>, String> {
            map.get(name)
                .map(|q| {
                    Quantity::parse(&q.0)
                        .map_err(|e| format!("container {container}: {name} {:?}: {e}", q.0))
                })
                .transpose()
        };
    let cpu = |map, kind: &str, rounded: &mut Vec<Rounded>| -> Result<Option<f64>, String> {
        Ok(parse(map, "cpu")?.map(|q| {
            let millis = q.millis();
            let centi = (millis + 9).div_euclid(10).max(1);
            let cores = centi as f64 / 100.0;
            if centi * 10 != millis {
                rounded.push(Rounded {
                    what: format!("{container} {kind}.cpu"),
                    asked: q.to_string(),
                    sent: format!("{cores} cores"),
                });
            }
            cores
        }))
    };
    let memory = |map, kind: &str, rounded: &mut Vec<Rounded>| -> Result<Option<f64>, String> {
        Ok(parse(map, "memory")?.map(|q| {
            let bytes = q.units_ceil() as f64;
            let tenths = (bytes * 10.0 / GIB).ceil().max(1.0);
            let gb = tenths / 10.0;
            if (gb * GIB - bytes).abs() >= 1.0 {
                rounded.push(Rounded {
                    what: format!("{container} {kind}.memory"),
                    asked: q.to_string(),
                    sent: format!("{gb} GB"),
                });
            }
            gb
        }))
    };
    let cpu_limit = cpu(limits, "limits", rounded)?;
    let mem_limit = memory(limits, "limits", rounded)?;
    let cpu_request = match cpu(requests, "requests", rounded)? {
        Some(v) => v,
        None => cpu_limit.unwrap_or(DEFAULT_CPU),
    };
    let mem_request = match memory(requests, "requests", rounded)? {
        Some(v) => v,
        None => mem_limit.unwrap_or(DEFAULT_MEMORY_GB),
    };
    let gpu = match parse(limits, GPU_RESOURCE)?.or(parse(requests, GPU_RESOURCE)?) {
        Some(q) => {
            let count = i32::try_from(q.units_ceil())
                .map_err(|_| format!("container {container}: too many GPUs"))?;
            (count > 0).then(|| GpuResource {
                count,
                sku: gpu_sku.to_string(),
            })
        }
        None => None,
    };
    let limits = (cpu_limit.is_some() || mem_limit.is_some()).then(|| ResourceLimits {
        cpu: cpu_limit.map(|l| l.max(cpu_request)),
        memory_in_gb: mem_limit.map(|l| l.max(mem_request)),
        gpu: None,
    });
    Ok(ResourceRequirements {
        requests: ResourceRequests {
            memory_in_gb: mem_request,
            cpu: cpu_request,
            gpu,
        },
        limits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> KubeResources {
        let map = |pairs: &[(&str, &str)]| {
            (!pairs.is_empty()).then(|| {
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), KubeQuantity(v.to_string())))
                    .collect()
            })
        };
        KubeResources {
            requests: map(requests),
            limits: map(limits),
            ..KubeResources::default()
        }
    }

    #[test]
    fn rounds_up_to_aci_granularity_and_reports_it() {
        let mut rounded = Vec::new();
        let r = map_resources(
            "app",
            Some(&res(
                &[("cpu", "255m"), ("memory", "1Gi")],
                &[("cpu", "1"), ("memory", "1500Mi")],
            )),
            "V100",
            &mut rounded,
        )
        .expect("maps");
        assert_eq!(r.requests.cpu, 0.26);
        assert_eq!(r.requests.memory_in_gb, 1.0);
        let limits = r.limits.expect("limits");
        assert_eq!(limits.cpu, Some(1.0));
        assert_eq!(limits.memory_in_gb, Some(1.5));
        let what: Vec<&str> = rounded.iter().map(|r| r.what.as_str()).collect();
        assert_eq!(what, ["app limits.memory", "app requests.cpu"]);
    }

    #[test]
    fn requests_default_to_limits_then_to_aci_defaults() {
        let mut rounded = Vec::new();
        let r = map_resources(
            "a",
            Some(&res(&[], &[("cpu", "2"), ("memory", "4Gi")])),
            "V100",
            &mut rounded,
        )
        .expect("maps");
        assert_eq!((r.requests.cpu, r.requests.memory_in_gb), (2.0, 4.0));
        let r = map_resources("a", None, "V100", &mut rounded).expect("maps");
        assert_eq!((r.requests.cpu, r.requests.memory_in_gb), (1.0, 1.5));
        assert!(r.limits.is_none());
        assert!(rounded.is_empty());
    }

    #[test]
    fn gpus_carry_the_sku_and_limits_never_fall_below_requests() {
        let mut rounded = Vec::new();
        let r = map_resources(
            "train",
            Some(&res(&[("cpu", "2")], &[("cpu", "1"), (GPU_RESOURCE, "2")])),
            "K80",
            &mut rounded,
        )
        .expect("maps");
        assert_eq!(
            r.requests.gpu,
            Some(GpuResource {
                count: 2,
                sku: "K80".into()
            })
        );
        assert_eq!(r.limits.and_then(|l| l.cpu), Some(2.0));
        let err = map_resources(
            "x",
            Some(&res(&[("cpu", "lots")], &[])),
            "V100",
            &mut rounded,
        )
        .expect_err("invalid quantity");
        assert!(err.contains("container x"), "{err}");
    }
}

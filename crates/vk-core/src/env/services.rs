//! Service link environment variables (`{SVC}_SERVICE_HOST`, `{SVC}_PORT_80_TCP_ADDR`...),
//! as the kubelet generates them for `enableServiceLinks` and the master service.

use k8s_openapi::api::core::v1::Service;

/// Namespace of the master service.
pub const MASTER_SERVICE_NAMESPACE: &str = "default";
/// Name of the master service, whose variables every pod gets.
pub const MASTER_SERVICE_NAME: &str = "kubernetes";

/// The services whose variables a pod in `namespace` gets: every service of its own
/// namespace when `enable_service_links`, plus the master service `default/kubernetes`
/// (unless a service of the same name in the pod's namespace shadows it).
pub fn services_for_pod<'a>(
    namespace: &str,
    enable_service_links: bool,
    own_namespace: &'a [Service],
    master: Option<&'a Service>,
) -> Vec<&'a Service> {
    let mut chosen: Vec<&Service> = Vec::new();
    if enable_service_links {
        chosen.extend(own_namespace.iter().filter(|s| has_cluster_ip(s)));
    }
    if let Some(master) = master.filter(|m| has_cluster_ip(m)) {
        let shadowed = enable_service_links
            && chosen
                .iter()
                .any(|s| s.metadata.name.as_deref() == Some(MASTER_SERVICE_NAME));
        let same_ns = namespace == MASTER_SERVICE_NAMESPACE && enable_service_links;
        if !shadowed && !same_ns {
            chosen.push(master);
        }
    }
    chosen.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    chosen
}

fn has_cluster_ip(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| !ip.is_empty() && ip != "None")
}

/// The variables of one service, in the kubelet's order.
pub fn service_env(service: &Service) -> Vec<(String, String)> {
    let Some(spec) = &service.spec else {
        return Vec::new();
    };
    let Some(ip) = spec.cluster_ip.as_deref() else {
        return Vec::new();
    };
    let name = service.metadata.name.as_deref().unwrap_or_default();
    let prefix = name.to_uppercase().replace('-', "_");
    let ports = spec.ports.as_deref().unwrap_or_default();
    let mut out = vec![(format!("{prefix}_SERVICE_HOST"), ip.to_owned())];
    if let Some(first) = ports.first() {
        out.push((format!("{prefix}_SERVICE_PORT"), first.port.to_string()));
    }
    for port in ports {
        if let Some(port_name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            out.push((
                format!(
                    "{prefix}_SERVICE_PORT_{}",
                    port_name.to_uppercase().replace('-', "_")
                ),
                port.port.to_string(),
            ));
        }
    }
    let host = |port: i32| {
        if ip.contains(':') {
            format!("[{ip}]:{port}")
        } else {
            format!("{ip}:{port}")
        }
    };
    for (i, port) in ports.iter().enumerate() {
        let protocol = port.protocol.as_deref().unwrap_or("TCP");
        let lower = protocol.to_lowercase();
        let url = format!("{lower}://{}", host(port.port));
        if i == 0 {
            out.push((format!("{prefix}_PORT"), url.clone()));
        }
        let port_prefix = format!("{prefix}_PORT_{}_{}", port.port, protocol.to_uppercase());
        out.push((port_prefix.clone(), url));
        out.push((format!("{port_prefix}_PROTO"), lower));
        out.push((format!("{port_prefix}_PORT"), port.port.to_string()));
        out.push((format!("{port_prefix}_ADDR"), ip.to_owned()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(ns: &str, name: &str, ip: &str, ports: serde_json::Value) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "ports": ports}
        }))
        .expect("service")
    }

    #[test]
    fn generates_the_kubelet_variables() {
        let s = svc(
            "ns",
            "my-db",
            "10.0.0.7",
            serde_json::json!([
                {"name": "sql", "port": 5432, "protocol": "TCP"},
                {"port": 9000, "protocol": "UDP"}
            ]),
        );
        let env = service_env(&s);
        let want = [
            ("MY_DB_SERVICE_HOST", "10.0.0.7"),
            ("MY_DB_SERVICE_PORT", "5432"),
            ("MY_DB_SERVICE_PORT_SQL", "5432"),
            ("MY_DB_PORT", "tcp://10.0.0.7:5432"),
            ("MY_DB_PORT_5432_TCP", "tcp://10.0.0.7:5432"),
            ("MY_DB_PORT_5432_TCP_PROTO", "tcp"),
            ("MY_DB_PORT_5432_TCP_PORT", "5432"),
            ("MY_DB_PORT_5432_TCP_ADDR", "10.0.0.7"),
            ("MY_DB_PORT_9000_UDP", "udp://10.0.0.7:9000"),
            ("MY_DB_PORT_9000_UDP_PROTO", "udp"),
            ("MY_DB_PORT_9000_UDP_PORT", "9000"),
            ("MY_DB_PORT_9000_UDP_ADDR", "10.0.0.7"),
        ];
        let got: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn headless_services_and_disabled_links_are_skipped_but_master_stays() {
        let own = vec![
            svc("ns", "web", "10.0.0.9", serde_json::json!([{"port": 80}])),
            svc("ns", "headless", "None", serde_json::json!([{"port": 80}])),
        ];
        let master = svc(
            "default",
            "kubernetes",
            "10.0.0.1",
            serde_json::json!([{"name": "https", "port": 443}]),
        );
        let names = |v: Vec<&Service>| -> Vec<String> {
            v.iter()
                .map(|s| s.metadata.name.clone().unwrap_or_default())
                .collect()
        };
        assert_eq!(
            names(services_for_pod("ns", true, &own, Some(&master))),
            ["kubernetes", "web"]
        );
        assert_eq!(
            names(services_for_pod("ns", false, &own, Some(&master))),
            ["kubernetes"]
        );
    }
}

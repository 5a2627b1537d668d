use serde_json::json;

use super::*;

fn ctx(ip: IpAddressType) -> MappingContext {
    MappingContext {
        node_name: "vk-aci".into(),
        region: "westeurope".into(),
        os_type: "Linux".into(),
        ip_address_type: ip,
        subnet_ids: vec!["/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/aci".into()],
        tags: [("team".to_string(), "platform".to_string())].into(),
        default_gpu_sku: "V100".into(),
        cluster_dns: None,
        cluster_domain: "cluster.local".into(),
    }
}

fn pod(value: serde_json::Value) -> Pod {
    serde_json::from_value(value).expect("pod")
}

fn web_pod() -> Pod {
    pod(json!({
        "metadata": {"name": "web-1", "namespace": "shop", "uid": "uid-1",
                      "annotations": {"virtual-kubelet.io/gpu-type": "K80"}},
        "spec": {
            "restartPolicy": "OnFailure",
            "imagePullSecrets": [{"name": "acr"}],
            "initContainers": [{"name": "init", "image": "busybox", "command": ["sh", "-c", "true"]}],
            "containers": [{
                "name": "web", "image": "nginx:1.25",
                "command": ["nginx"], "args": ["-g", "daemon off;"],
                "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 53, "protocol": "UDP"}],
                "env": [
                    {"name": "PLAIN", "value": "1"},
                    {"name": "PASSWORD", "value": "s3cret",
                     "valueFrom": {"secretKeyRef": {"name": "creds", "key": "pw"}}}
                ],
                "resources": {"requests": {"cpu": "250m", "memory": "512Mi"},
                              "limits": {"nvidia.com/gpu": "1"}},
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                                  "periodSeconds": 10},
                "readinessProbe": {"tcpSocket": {"port": 80}},
                "volumeMounts": [
                    {"name": "cache", "mountPath": "/cache"},
                    {"name": "conf", "mountPath": "/etc/conf", "readOnly": true},
                    {"name": "host", "mountPath": "/host"}
                ]
            }],
            "volumes": [
                {"name": "cache", "emptyDir": {}},
                {"name": "conf", "configMap": {"name": "web-conf"}},
                {"name": "host", "hostPath": {"path": "/"}}
            ]
        }
    }))
}

fn data() -> VolumeData {
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "web-conf"}, "data": {"nginx.conf": "hello"}
    }))
    .expect("cm");
    let docker =
        json!({"auths": {"https://myreg.azurecr.io": {"auth": STANDARD.encode("user:pa55")}}});
    let acr: Secret = serde_json::from_value(json!({
        "metadata": {"name": "acr"}, "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": STANDARD.encode(docker.to_string())}
    }))
    .expect("secret");
    VolumeData {
        secrets: [("acr".to_string(), acr)].into(),
        config_maps: [("web-conf".to_string(), cm)].into(),
    }
}

#[test]
fn a_full_pod_maps_to_the_documented_container_group_shape() {
    let mapped = pod_to_group(&web_pod(), &ctx(IpAddressType::Public), &data()).expect("maps");
    let body = serde_json::to_value(&mapped.group).expect("json");
    let props = &body["properties"];
    assert_eq!(body["location"], "westeurope");
    assert_eq!(props["osType"], "Linux");
    assert_eq!(props["restartPolicy"], "OnFailure");
    let web = &props["containers"][0]["properties"];
    assert_eq!(web["image"], "nginx:1.25");
    assert_eq!(web["command"], json!(["nginx", "-g", "daemon off;"]));
    assert_eq!(
        web["environmentVariables"],
        json!([{"name": "PLAIN", "value": "1"}, {"name": "PASSWORD", "secureValue": "s3cret"}])
    );
    assert_eq!(
        web["resources"],
        json!({"requests": {"cpu": 0.25, "memoryInGB": 0.5, "gpu": {"count": 1, "sku": "K80"}}})
    );
    assert_eq!(
        web["livenessProbe"],
        json!({"httpGet": {"path": "/healthz", "port": 80, "scheme": "http"}, "periodSeconds": 10})
    );
    assert!(web.get("readinessProbe").is_none(), "tcpSocket is dropped");
    assert_eq!(
        web["volumeMounts"],
        json!([{"name": "cache", "mountPath": "/cache"},
               {"name": "conf", "mountPath": "/etc/conf", "readOnly": true}])
    );
    assert_eq!(
        props["volumes"],
        json!([{"name": "cache", "emptyDir": {}},
               {"name": "conf", "secret": {"nginx.conf": STANDARD.encode("hello")}}])
    );
    assert_eq!(
        props["ipAddress"],
        json!({"type": "Public", "ports": [{"port": 53, "protocol": "UDP"}, {"port": 80, "protocol": "TCP"}]})
    );
    assert_eq!(
        props["imageRegistryCredentials"],
        json!([{"server": "myreg.azurecr.io", "username": "user", "password": "pa55"}])
    );
    assert_eq!(
        props["initContainers"][0]["properties"]["command"],
        json!(["sh", "-c", "true"])
    );
    assert_eq!(body["tags"]["team"], "platform");
    assert_eq!(body["tags"][super::super::names::TAG_POD_UID], "uid-1");
    assert_eq!(body["tags"][super::super::names::TAG_NAMESPACE], "shop");
    let reasons: Vec<&str> = mapped.warnings.iter().map(|w| w.reason).collect();
    assert_eq!(
        reasons,
        ["UnsupportedVolume", "UnsupportedProbe"],
        "{:?}",
        mapped.warnings
    );
    assert!(mapped.name.starts_with("shop-web-1-"));
}

#[test]
fn private_groups_always_get_an_ip_in_the_subnets() {
    let p = pod(json!({"metadata": {"name": "p", "namespace": "n"},
                       "spec": {"containers": [{"name": "c", "image": "busybox"}]}}));
    let public =
        pod_to_group(&p, &ctx(IpAddressType::Public), &VolumeData::default()).expect("maps");
    assert!(
        public.group.properties.ip_address.is_none(),
        "no port, no public IP"
    );
    let private =
        pod_to_group(&p, &ctx(IpAddressType::Private), &VolumeData::default()).expect("maps");
    let ip = private.group.properties.ip_address.expect("private ip");
    assert_eq!(ip.ip_type, "Private");
    assert_eq!(private.group.properties.subnet_ids.len(), 1);
    assert_eq!(
        private.group.properties.restart_policy.as_deref(),
        Some("Always")
    );
}

#[test]
fn missing_mandatory_volume_sources_wait_and_optional_ones_are_empty() {
    let p = pod(json!({"metadata": {"name": "p", "namespace": "n"},
                       "spec": {"containers": [{"name": "c", "image": "busybox"}],
                                "volumes": [{"name": "s", "secret": {"secretName": "nope"}}]}}));
    let err = pod_to_group(&p, &ctx(IpAddressType::Public), &VolumeData::default())
        .expect_err("missing secret");
    assert!(
        err.missing_reference && err.reason.contains("nope"),
        "{err}"
    );
    let p = pod(json!({"metadata": {"name": "p", "namespace": "n"},
                       "spec": {"containers": [{"name": "c", "image": "busybox"}],
                                "volumes": [{"name": "s", "secret": {"secretName": "nope", "optional": true}}]}}));
    let mapped =
        pod_to_group(&p, &ctx(IpAddressType::Public), &VolumeData::default()).expect("maps");
    assert_eq!(
        mapped.group.properties.volumes[0].secret,
        Some(BTreeMap::new())
    );
}

#[test]
fn the_spec_hash_ignores_tags_and_follows_the_body() {
    let a = pod_to_group(&web_pod(), &ctx(IpAddressType::Public), &data()).expect("maps");
    let mut other_ctx = ctx(IpAddressType::Public);
    other_ctx.tags.insert("extra".into(), "x".into());
    let b = pod_to_group(&web_pod(), &other_ctx, &data()).expect("maps");
    assert_eq!(spec_hash(&a.group), spec_hash(&b.group));
    let mut changed = web_pod();
    changed.spec.as_mut().expect("spec").containers[0].image = Some("nginx:1.26".into());
    let c = pod_to_group(&changed, &ctx(IpAddressType::Public), &data()).expect("maps");
    assert_ne!(spec_hash(&a.group), spec_hash(&c.group));
}

#[test]
fn cluster_first_pods_use_the_cluster_dns_when_configured() {
    let p = pod(json!({"metadata": {"name": "p", "namespace": "shop"},
                       "spec": {"containers": [{"name": "c", "image": "busybox"}],
                                "dnsConfig": {"options": [{"name": "timeout", "value": "2"}]}}}));
    let mut c = ctx(IpAddressType::Private);
    assert!(
        pod_to_group(&p, &c, &VolumeData::default())
            .expect("maps")
            .group
            .properties
            .dns_config
            .is_none()
    );
    c.cluster_dns = Some("10.0.0.10".into());
    let dns = pod_to_group(&p, &c, &VolumeData::default())
        .expect("maps")
        .group
        .properties
        .dns_config
        .expect("dns");
    assert_eq!(dns.name_servers, ["10.0.0.10"]);
    assert_eq!(
        dns.search_domains.as_deref(),
        Some("shop.svc.cluster.local svc.cluster.local cluster.local")
    );
    assert_eq!(dns.options.as_deref(), Some("ndots:5 timeout:2"));
}

#[test]
fn the_spec_hash_never_depends_on_env_or_secret_values() {
    let a = pod_to_group(&web_pod(), &ctx(IpAddressType::Public), &data()).expect("maps");
    let mut other = web_pod();
    let env = other.spec.as_mut().expect("spec").containers[0]
        .env
        .as_mut()
        .expect("env");
    env[1].value = Some("another-password".into());
    env[0].value = Some("2".into());
    let b = pod_to_group(&other, &ctx(IpAddressType::Public), &data()).expect("maps");
    assert_ne!(a.group, b.group, "the body carries the new values");
    assert_eq!(
        spec_hash(&a.group),
        spec_hash(&b.group),
        "env is fixed at creation"
    );
    let mut pull = data();
    let docker = json!({"auths": {"myreg.azurecr.io": {"username": "user", "password": "other"}}});
    pull.secrets.get_mut("acr").expect("acr").data = Some(
        [(
            ".dockerconfigjson".to_string(),
            k8s_openapi::ByteString(docker.to_string().into_bytes()),
        )]
        .into(),
    );
    let c = pod_to_group(&web_pod(), &ctx(IpAddressType::Public), &pull).expect("maps");
    assert_eq!(
        spec_hash(&a.group),
        spec_hash(&c.group),
        "registry passwords left out"
    );
}

#[test]
fn azure_files_and_projected_volumes_take_their_data_from_secrets() {
    let p = pod(json!({"metadata": {"name": "p", "namespace": "n"},
        "spec": {"containers": [{"name": "c", "image": "busybox",
                    "volumeMounts": [{"name": "share", "mountPath": "/mnt/share"},
                                     {"name": "token", "mountPath": "/var/run/secrets/x"}]}],
                 "volumes": [
                    {"name": "share", "azureFile": {"secretName": "storage", "shareName": "data", "readOnly": true}},
                    {"name": "token", "projected": {"sources": [
                        {"serviceAccountToken": {"path": "token"}},
                        {"configMap": {"name": "ca"}}]}}]}}));
    let storage: Secret = serde_json::from_value(json!({"metadata": {"name": "storage"},
        "data": {"azurestorageaccountname": STANDARD.encode("acct"),
                 "azurestorageaccountkey": STANDARD.encode("k3y")}}))
    .expect("secret");
    let ca: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "ca"}, "data": {"ca.crt": "PEM"}}))
            .expect("cm");
    let (secrets, config_maps) = VolumeData::references(&p);
    assert_eq!(secrets.into_iter().collect::<Vec<_>>(), ["storage"]);
    assert_eq!(config_maps.into_iter().collect::<Vec<_>>(), ["ca"]);
    let data = VolumeData {
        secrets: [("storage".to_string(), storage)].into(),
        config_maps: [("ca".to_string(), ca)].into(),
    };
    let mapped = pod_to_group(&p, &ctx(IpAddressType::Public), &data).expect("maps");
    let body = serde_json::to_value(&mapped.group).expect("json");
    assert_eq!(
        body["properties"]["volumes"],
        json!([
            {"name": "share", "azureFile": {"shareName": "data", "readOnly": true,
                "storageAccountName": "acct", "storageAccountKey": "k3y"}},
            {"name": "token", "secret": {"ca.crt": STANDARD.encode("PEM")}}
        ])
    );
    assert!(
        !format!("{:?}", mapped.group).contains("k3y"),
        "keys redacted in Debug"
    );
    assert_eq!(mapped.warnings.len(), 1, "{:?}", mapped.warnings);
    assert!(mapped.warnings[0].message.contains("serviceAccountToken"));
}

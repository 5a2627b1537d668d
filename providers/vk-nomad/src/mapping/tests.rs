use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::*;
use crate::config::ConstraintConfig;

fn pod(value: serde_json::Value) -> Pod {
    serde_json::from_value(value).expect("pod")
}

fn web() -> Pod {
    pod(json!({
        "metadata": {"namespace": "prod", "name": "web-0", "uid": "u-1", "labels": {"app": "web"}},
        "spec": {
            "terminationGracePeriodSeconds": 45,
            "containers": [{
                "name": "nginx",
                "image": "nginx:1.27",
                "command": ["/docker-entrypoint.sh"],
                "args": ["nginx", "-g", "daemon off;"],
                "workingDir": "/srv",
                "env": [{"name": "MODE", "value": "prod"}, {"name": "EMPTY"}],
                "ports": [{"name": "http", "containerPort": 80}, {"containerPort": 9090, "hostPort": 19090}],
                "resources": {
                    "requests": {"cpu": "250m", "memory": "64Mi"},
                    "limits": {"cpu": "1", "memory": "100M"}
                }
            }]
        }
    }))
}

fn map(pod: &Pod, config: &NomadConfig) -> Result<Job, NomadError> {
    job_for(
        pod,
        &MappingContext {
            config,
            namespace: "k8s",
            region: Some("eu"),
            node_name: "vk-nomad-1",
        },
    )
}

#[test]
fn a_service_pod_becomes_the_documented_job_shape() {
    let config = NomadConfig {
        cpu_mhz_per_core: 2400,
        ..Default::default()
    };
    let job = map(&web(), &config).expect("maps");
    let mut value = serde_json::to_value(&job).expect("json");
    let meta = value["Meta"].take();
    assert_eq!(
        value,
        json!({
            "ID": "prod_web-0",
            "Name": "web-0",
            "Type": "service",
            "Namespace": "k8s",
            "Region": "eu",
            "Datacenters": ["*"],
            "Meta": null,
            "TaskGroups": [{
                "Name": "pod",
                "Count": 1,
                "RestartPolicy": {"Attempts": 10, "Interval": 300_000_000_000u64, "Delay": 10_000_000_000u64, "Mode": "delay"},
                "ReschedulePolicy": {"Attempts": 0, "Interval": 0, "Delay": 30_000_000_000u64, "DelayFunction": "exponential", "MaxDelay": 3_600_000_000_000u64, "Unlimited": true},
                "Networks": [{
                    "Mode": "host",
                    "DynamicPorts": [{"Label": "http", "Value": 0, "To": 80}],
                    "ReservedPorts": [{"Label": "nginx_1", "Value": 19090, "To": 9090}]
                }],
                "Tasks": [{
                    "Name": "nginx",
                    "Driver": "docker",
                    "Config": {
                        "image": "nginx:1.27",
                        "entrypoint": ["/docker-entrypoint.sh"],
                        "args": ["nginx", "-g", "daemon off;"],
                        "work_dir": "/srv",
                        "ports": ["http", "nginx_1"]
                    },
                    "Env": {"EMPTY": "", "MODE": "prod"},
                    // 250m × 2400 MHz; 64 MiB reserved, 100 MB = 95.4 MiB → 96 max.
                    "Resources": {"CPU": 600, "MemoryMB": 64, "MemoryMaxMB": 96},
                    "KillTimeout": 45_000_000_000u64
                }]
            }]
        })
    );
    assert_eq!(meta[META_UID], "u-1");
    assert_eq!(meta[META_NAMESPACE], "prod");
    assert_eq!(meta[META_NAME], "web-0");
    assert_eq!(meta[META_NODE], "vk-nomad-1");
    let meta: BTreeMap<String, String> = serde_json::from_value(meta).expect("string map");
    let back = pod_from_meta(&meta).expect("pod in meta");
    assert_eq!(back.metadata.uid.as_deref(), Some("u-1"));
    assert_eq!(back.metadata.labels, web().metadata.labels);
    assert!(back.status.is_none());
}

#[test]
fn restart_policies_choose_job_type_and_restarts() {
    let with_policy = |policy: &str| {
        let mut p = web();
        p.spec.as_mut().expect("spec").restart_policy = Some(policy.to_owned());
        let job = map(&p, &NomadConfig::default()).expect("maps");
        let group = job.task_groups.expect("groups").remove(0);
        (
            job.job_type.expect("type"),
            group.restart_policy.expect("restart"),
            group.reschedule_policy.expect("reschedule"),
        )
    };
    let (t, r, s) = with_policy("Always");
    assert_eq!(
        (t.as_str(), r.mode.as_str(), s.unlimited),
        ("service", "delay", true)
    );
    let (t, r, s) = with_policy("OnFailure");
    assert_eq!(
        (t.as_str(), r.mode.as_str(), s.attempts, s.unlimited),
        ("batch", "delay", 0, false)
    );
    let (t, r, s) = with_policy("Never");
    assert_eq!(
        (t.as_str(), r.attempts, r.mode.as_str(), s.attempts),
        ("batch", 0, "fail", 0)
    );
}

#[test]
fn exec_drivers_run_command_and_args() {
    let mut p = web();
    p.metadata.annotations = Some(BTreeMap::from([(
        DRIVER_ANNOTATION.to_owned(),
        "raw_exec".to_owned(),
    )]));
    let job = map(&p, &NomadConfig::default()).expect("maps");
    let task = &job.task_groups.as_ref().expect("groups")[0].tasks[0];
    assert_eq!(task.driver, "raw_exec");
    assert_eq!(task.config["command"], "/docker-entrypoint.sh");
    assert_eq!(task.config["args"], json!(["nginx", "-g", "daemon off;"]));
    assert!(!task.config.contains_key("image") && !task.config.contains_key("ports"));

    let no_command = pod(json!({
        "metadata": {"namespace": "a", "name": "b"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }));
    let config = NomadConfig {
        driver: Driver::Exec,
        ..Default::default()
    };
    let err = map(&no_command, &config).expect_err("exec needs a command");
    assert!(
        err.to_string().contains("container \"c\" has no command"),
        "{err}"
    );
    assert_eq!(err.kind(), vk_errdefs::ErrorKind::InvalidInput);
}

#[test]
fn unmappable_pods_are_named_errors() {
    let no_image = pod(json!({
        "metadata": {"namespace": "a", "name": "b"},
        "spec": {"containers": [{"name": "c", "command": ["sleep", "1"]}]}
    }));
    let err = map(&no_image, &NomadConfig::default()).expect_err("docker needs an image");
    assert!(
        err.to_string().contains("pod a/b") && err.to_string().contains("no image"),
        "{err}"
    );

    let mut bad_driver = web();
    bad_driver.metadata.annotations = Some(BTreeMap::from([(
        DRIVER_ANNOTATION.to_owned(),
        "podman".to_owned(),
    )]));
    let err = map(&bad_driver, &NomadConfig::default()).expect_err("unknown driver");
    assert!(err.to_string().contains("\"podman\""), "{err}");

    let mut bad_constraints = web();
    bad_constraints.metadata.annotations = Some(BTreeMap::from([(
        CONSTRAINTS_ANNOTATION.to_owned(),
        "{".to_owned(),
    )]));
    assert!(map(&bad_constraints, &NomadConfig::default()).is_err());
}

#[test]
fn job_ids_of_different_namespaces_never_collide() {
    assert_ne!(job_id("", "a-b", "c"), job_id("", "a", "b-c"));
    assert_ne!(job_id("", "a", "b.c"), job_id("", "a.b", "c"));
}

#[test]
fn init_and_sidecar_containers_become_lifecycle_tasks() {
    let p = pod(json!({
        "metadata": {"namespace": "a", "name": "b", "annotations": {POSTSTART_ANNOTATION: "log"}},
        "spec": {
            "initContainers": [
                {"name": "migrate", "image": "m"},
                {"name": "proxy", "image": "p", "restartPolicy": "Always"}
            ],
            "containers": [{"name": "app", "image": "a"}, {"name": "log", "image": "l"}]
        }
    }));
    let job = map(&p, &NomadConfig::default()).expect("maps");
    let tasks = &job.task_groups.as_ref().expect("groups")[0].tasks;
    let lifecycle: Vec<(&str, Option<(&str, bool)>)> = tasks
        .iter()
        .map(|t| {
            (
                t.name.as_str(),
                t.lifecycle.as_ref().map(|l| (l.hook.as_str(), l.sidecar)),
            )
        })
        .collect();
    assert_eq!(
        lifecycle,
        [
            ("migrate", Some(("prestart", false))),
            ("proxy", Some(("prestart", true))),
            ("app", None),
            ("log", Some(("poststart", true))),
        ]
    );
}

#[test]
fn resources_round_up_and_default_to_nomad() {
    let with = |resources: serde_json::Value, factor: u32| {
        let p = pod(json!({
            "metadata": {"namespace": "a", "name": "b"},
            "spec": {"containers": [{"name": "c", "image": "i", "resources": resources}]}
        }));
        let config = NomadConfig {
            cpu_mhz_per_core: factor,
            ..Default::default()
        };
        map(&p, &config).expect("maps").task_groups.expect("groups")[0].tasks[0]
            .resources
            .clone()
    };
    assert_eq!(with(json!({}), 1000), None);
    let r = with(json!({"requests": {"cpu": "1m", "memory": "1"}}), 1000).expect("some");
    assert_eq!(
        (r.cpu, r.memory_mb, r.memory_max_mb),
        (Some(1), Some(10), None)
    );
    let r = with(json!({"limits": {"cpu": "100m", "memory": "1Gi"}}), 2400).expect("some");
    assert_eq!(
        (r.cpu, r.memory_mb, r.memory_max_mb),
        (Some(240), Some(1024), None)
    );
    let r = with(
        json!({"requests": {"memory": "1Mi"}, "limits": {"memory": "2049Ki"}}),
        1000,
    )
    .expect("some");
    assert_eq!(
        (r.memory_mb, r.memory_max_mb),
        (Some(10), None),
        "a limit not above the 10 MB floor"
    );
}

#[test]
fn placement_comes_from_config_then_annotations() {
    let config = NomadConfig {
        datacenters: vec!["dc1".into()],
        node_pool: Some("virtual".into()),
        constraints: vec![ConstraintConfig {
            attribute: "${attr.kernel.name}".into(),
            operator: "=".into(),
            value: "linux".into(),
        }],
        ..Default::default()
    };
    let job = map(&web(), &config).expect("maps");
    assert_eq!(job.datacenters, ["dc1"]);
    assert_eq!(job.node_pool.as_deref(), Some("virtual"));
    assert_eq!(job.constraints.as_ref().map(Vec::len), Some(1));

    let mut p = web();
    p.metadata.annotations = Some(BTreeMap::from([
        (DATACENTERS_ANNOTATION.to_owned(), "eu-1, eu-2".to_owned()),
        (NODE_POOL_ANNOTATION.to_owned(), "gpu".to_owned()),
        (
            CONSTRAINTS_ANNOTATION.to_owned(),
            r#"[{"LTarget":"${meta.rack}","RTarget":"r1","Operand":"="}]"#.to_owned(),
        ),
    ]));
    let job = map(&p, &config).expect("maps");
    assert_eq!(job.datacenters, ["eu-1", "eu-2"]);
    assert_eq!(job.node_pool.as_deref(), Some("gpu"));
    let constraints = job.constraints.expect("constraints");
    assert_eq!(constraints[1].l_target, "${meta.rack}");
    assert_eq!(constraints.len(), 2);
}

//! The Helm chart (deploy/helm/virtual-kubelet) with a real Helm 3 (`cargo xtask helm`)
//! on the real control plane (`cargo xtask cluster up`): lint, template, the RBAC it
//! grants (the same rules as deploy/rbac.yaml, and no more: checked with the API
//! server's own authorizer through `kubectl auth can-i`), leader election with several
//! replicas (flags, rolling update, a Role for the election Leases), install, upgrade,
//! uninstall.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const RELEASE: &str = "vk-ship-helm";
const NAMESPACE: &str = "vk-ship-helm";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chart() -> String {
    root()
        .join("deploy/helm/virtual-kubelet")
        .display()
        .to_string()
}

fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

fn ok(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The cluster's kubeconfig, from `cargo xtask cluster env`.
fn kubeconfig() -> String {
    let env = ok(Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(root())
        .args(["cluster", "env"]));
    env.lines()
        .find_map(|l| l.strip_prefix("export KUBECONFIG="))
        .expect("KUBECONFIG in cluster env (is the control plane up?)")
        .trim()
        .to_owned()
}

fn helm(kubeconfig: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.current_dir(root())
        .env("KUBECONFIG", kubeconfig)
        .args(["helm", "--"]);
    cmd
}

fn kubectl(kubeconfig: &str) -> Command {
    let mut cmd = Command::new("kubectl");
    cmd.env("KUBECONFIG", kubeconfig);
    cmd
}

/// The objects of a YAML stream as JSON (kubectl converts; nothing is created).
fn objects(kubeconfig: &str, yaml_file: &Path) -> Vec<Value> {
    let json = ok(kubectl(kubeconfig)
        .args(["create", "--dry-run=client", "-o", "json", "-f"])
        .arg(yaml_file));
    // One JSON object per input document, one after the other.
    serde_json::Deserializer::from_str(&json)
        .into_iter::<Value>()
        .map(|v| v.expect("kubectl JSON"))
        .collect()
}

fn cluster_role_rules(objects: &[Value]) -> Value {
    objects
        .iter()
        .find(|o| o["kind"] == "ClusterRole")
        .map(|o| o["rules"].clone())
        .expect("a ClusterRole")
}

fn can_i(kubeconfig: &str, sa: &str, verb: &str, resource: &str) -> bool {
    let out = output(kubectl(kubeconfig).args([
        "auth",
        "can-i",
        verb,
        resource,
        &format!("--as=system:serviceaccount:{NAMESPACE}:{sa}"),
    ]));
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

#[test]
fn chart_lints_renders_least_privilege_rbac_and_installs_upgrades_uninstalls() {
    let kc = kubeconfig();
    let tmp = tempfile::tempdir().expect("tempdir");
    ok(helm(&kc).args(["lint", "--strict", &chart()]));
    ok(helm(&kc).args(["lint", "--strict", &chart(), "--set", "provider=process,metrics.serviceMonitor.enabled=true,kubeletTls.existingSecret=tls,taint.enabled=false"]));

    // Several replicas elect a leader per node: election flags, a rolling update, and a
    // Role (not a ClusterRole) with the election's lease verbs in the release namespace.
    ok(helm(&kc).args(["lint", "--strict", &chart(), "--set", "replicaCount=2"]));
    let elected = tmp.path().join("elected.yaml");
    std::fs::write(
        &elected,
        ok(helm(&kc).args([
            "template",
            RELEASE,
            &chart(),
            "--namespace",
            NAMESPACE,
            "--set",
            "replicaCount=2,leaderElection.leaseDuration=20s",
        ])),
    )
    .expect("write rendered");
    let elected = objects(&kc, &elected);
    let deployment = elected
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("a Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(deployment["spec"]["strategy"]["type"], "RollingUpdate");
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"].clone();
    for flag in [
        "--leader-elect",
        &format!("--leader-elect-lease-namespace={NAMESPACE}"),
        "--leader-elect-lease-duration=20s",
        "--leader-elect-renew-deadline=10s",
        "--leader-elect-retry-period=2s",
    ] {
        assert!(
            args.as_array().expect("args").iter().any(|a| a == flag),
            "{flag} in {args}"
        );
    }
    let role = elected
        .iter()
        .find(|o| o["kind"] == "Role")
        .expect("a Role for the election");
    assert_eq!(role["metadata"]["namespace"], NAMESPACE);
    assert_eq!(
        role["rules"],
        serde_json::json!([{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                            "verbs": ["get", "create", "update"]}])
    );
    let binding = elected
        .iter()
        .find(|o| o["kind"] == "RoleBinding")
        .expect("a RoleBinding for the election");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    assert_eq!(binding["subjects"][0]["namespace"], NAMESPACE);
    // The ClusterRole is the same with or without election.
    assert_eq!(
        cluster_role_rules(&elected),
        cluster_role_rules(&objects(&kc, &root().join("deploy/rbac.yaml")))
    );
    // Election asked for with one replica: the upgrade rolls too.
    let single = ok(helm(&kc).args([
        "template",
        RELEASE,
        &chart(),
        "--set",
        "leaderElection.enabled=true",
    ]));
    assert!(
        single.contains("--leader-elect-renew-deadline=10s") && single.contains("RollingUpdate"),
        "{single}"
    );

    // The rendered ClusterRole grants exactly deploy/rbac.yaml's rules.
    let rendered = tmp.path().join("rendered.yaml");
    std::fs::write(
        &rendered,
        ok(helm(&kc).args(["template", RELEASE, &chart(), "--namespace", NAMESPACE])),
    )
    .expect("write rendered");
    let chart_objects = objects(&kc, &rendered);
    let manifest_objects = objects(&kc, &root().join("deploy/rbac.yaml"));
    assert_eq!(
        cluster_role_rules(&chart_objects),
        cluster_role_rules(&manifest_objects)
    );
    let deployment = chart_objects
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("a Deployment");
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"],
        65532
    );
    // Without election: no election flags, no Role.
    let default_args = deployment["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(!default_args.contains("--leader-elect"), "{default_args}");
    assert!(!chart_objects.iter().any(|o| o["kind"] == "Role"));

    // Node labels and extra taints become the kubelet-style flags.
    let with_metadata = ok(helm(&kc).args([
        "template",
        RELEASE,
        &chart(),
        "--set",
        "nodeLabels.example\\.com/team=blue,nodeLabels.example\\.com/tier=gold",
        "--set",
        "registerWithTaints[0].key=example.com/gpu,registerWithTaints[0].value=true,registerWithTaints[0].effect=NoExecute,registerWithTaints[1].key=example.com/spot,registerWithTaints[1].effect=PreferNoSchedule",
    ]));
    assert!(
        with_metadata.contains("--node-labels=example.com/team=blue,example.com/tier=gold"),
        "{with_metadata}"
    );
    assert!(
        with_metadata.contains(
            "--register-with-taints=example.com/gpu=true:NoExecute,example.com/spot:PreferNoSchedule"
        ),
        "{with_metadata}"
    );

    // Install into the real API server (the pod needs an image registry to run; this
    // checks the objects, not the pod).
    let _ = output(helm(&kc).args(["uninstall", RELEASE, "--namespace", NAMESPACE]));
    ok(helm(&kc).args([
        "install",
        RELEASE,
        &chart(),
        "--namespace",
        NAMESPACE,
        "--create-namespace",
        "--set",
        "providerConfig.inline=[capacity]\ncpu = \"4\"",
    ]));
    let sa = format!("{RELEASE}-mock");
    // Least privilege, as the API server's authorizer sees it.
    assert!(can_i(&kc, &sa, "create", "nodes"));
    assert!(can_i(&kc, &sa, "patch", "nodes/status"));
    assert!(can_i(&kc, &sa, "update", "leases.coordination.k8s.io"));
    assert!(can_i(&kc, &sa, "delete", "pods"));
    assert!(can_i(
        &kc,
        &sa,
        "create",
        "tokenreviews.authentication.k8s.io"
    ));
    assert!(
        !can_i(&kc, &sa, "create", "pods"),
        "a virtual kubelet never creates pods"
    );
    assert!(
        !can_i(&kc, &sa, "list", "secrets"),
        "secrets are read one by one"
    );
    assert!(!can_i(&kc, &sa, "delete", "namespaces"));
    assert!(!can_i(&kc, &sa, "*", "*"), "not cluster-admin");
    let config = ok(kubectl(&kc).args([
        "get",
        "configmap",
        &format!("{sa}-config"),
        "-n",
        NAMESPACE,
        "-o",
        "jsonpath={.data.provider\\.toml}",
    ]));
    assert!(config.contains("cpu = \"4\""), "{config}");

    ok(helm(&kc).args([
        "upgrade",
        RELEASE,
        &chart(),
        "--namespace",
        NAMESPACE,
        "--reuse-values",
        "--set",
        "log.level=debug,replicaCount=2",
    ]));
    let deployment_field = |jsonpath: &str| {
        ok(kubectl(&kc).args([
            "get",
            "deployment",
            &sa,
            "-n",
            NAMESPACE,
            "-o",
            &format!("jsonpath={jsonpath}"),
        ]))
    };
    let args = deployment_field("{.spec.template.spec.containers[0].args}");
    assert!(args.contains("--log-level=debug"), "{args}");
    // Two replicas: elected, rolling, with the election Role in the release namespace.
    assert!(args.contains("--leader-elect"), "{args}");
    assert_eq!(deployment_field("{.spec.strategy.type}"), "RollingUpdate");
    let election = format!("{sa}-leader-election");
    ok(kubectl(&kc).args(["get", "role", &election, "-n", NAMESPACE]));
    ok(kubectl(&kc).args(["get", "rolebinding", &election, "-n", NAMESPACE]));

    ok(helm(&kc).args(["uninstall", RELEASE, "--namespace", NAMESPACE, "--wait"]));
    for (kind, ns) in [
        ("clusterrole", None),
        ("clusterrolebinding", None),
        ("deployment", Some(NAMESPACE)),
        ("serviceaccount", Some(NAMESPACE)),
        ("configmap", Some(NAMESPACE)),
        ("role", Some(NAMESPACE)),
        ("rolebinding", Some(NAMESPACE)),
    ] {
        let name = match kind {
            "configmap" => format!("{sa}-config"),
            "role" | "rolebinding" => format!("{sa}-leader-election"),
            _ => sa.clone(),
        };
        let mut get = kubectl(&kc);
        get.args(["get", kind, &name, "--ignore-not-found", "-o", "name"]);
        if let Some(ns) = ns {
            get.args(["-n", ns]);
        }
        assert_eq!(ok(&mut get).trim(), "", "{kind} {name} left behind");
    }
    let _ = output(kubectl(&kc).args(["delete", "namespace", NAMESPACE, "--wait=false"]));
}

/// deploy/kustomize/base is the chart's default rendering (plus a comment header), and
/// kustomize builds it.
#[test]
fn kustomize_base_is_the_charts_default_rendering() {
    let kc = kubeconfig();
    let rendered = ok(helm(&kc).args([
        "template",
        "virtual-kubelet",
        &chart(),
        "--namespace",
        "kube-system",
    ]));
    let base = root().join("deploy/kustomize/base");
    let file = std::fs::read_to_string(base.join("virtual-kubelet.yaml")).expect("base file");
    let header = file.strip_suffix(rendered.as_str()).unwrap_or_else(|| {
        panic!("deploy/kustomize/base/virtual-kubelet.yaml differs from the chart; regenerate it (see its header)")
    });
    assert!(
        header.lines().all(|l| l.starts_with('#')),
        "only a comment header: {header}"
    );
    let built = ok(kubectl(&kc).arg("kustomize").arg(&base));
    assert!(built.contains("kind: Deployment") && built.contains("kind: ClusterRole"));
}

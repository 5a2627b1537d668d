//! kubectl as the streaming scenarios use it: one-shot commands timed from the outside,
//! and relays (`port-forward`, `proxy`) that print the local port they listen on.

use std::path::PathBuf;
use std::process::Stdio;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// Which streaming protocol kubectl speaks to the API server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// WebSocket (`v5.channel.k8s.io`, and `SPDY/3.1+portforward.k8s.io` tunnelled in
    /// WebSocket for port-forward): kubectl's default since 1.31.
    WebSocket,
    /// SPDY/3.1, as before.
    Spdy,
}

impl Protocol {
    /// Both, in the order the scenarios measure them.
    pub(crate) const ALL: [Self; 2] = [Self::WebSocket, Self::Spdy];

    /// `websocket` or `spdy`, as metrics are named.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::WebSocket => "websocket",
            Self::Spdy => "spdy",
        }
    }

    /// The environment that makes kubectl use this protocol for exec/attach and for
    /// port-forward (the same switches the end-to-end tests use).
    pub(crate) fn env(self) -> [(&'static str, &'static str); 2] {
        let on = match self {
            Self::WebSocket => "true",
            Self::Spdy => "false",
        };
        [
            ("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", on),
            ("KUBECTL_PORT_FORWARD_WEBSOCKETS", on),
        ]
    }
}

/// kubectl bound to a kubeconfig and a namespace.
#[derive(Debug, Clone)]
pub(crate) struct Kubectl {
    program: PathBuf,
    kubeconfig: PathBuf,
    namespace: String,
}

impl Kubectl {
    /// kubectl (as the end-to-end tests find it) on `kubeconfig`, in `namespace`.
    pub(crate) fn new(kubeconfig: PathBuf, namespace: &str) -> Self {
        Self {
            program: vk_testkit::cluster::kubectl(),
            kubeconfig,
            namespace: namespace.to_owned(),
        }
    }

    /// `kubectl <args>` speaking `protocol`, stdin closed, killed when dropped.
    pub(crate) fn command(&self, protocol: Protocol, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--namespace", &self.namespace])
            .args(args)
            .envs(protocol.env())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Runs `kubectl <args>` to the end; its standard output, or an error with its
    /// standard error when it fails.
    pub(crate) async fn run(&self, protocol: Protocol, args: &[&str]) -> anyhow::Result<String> {
        let out = self
            .command(protocol, args)
            .output()
            .await
            .context("running kubectl")?;
        if !out.status.success() {
            bail!(
                "kubectl {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Starts `kubectl <args>` (`port-forward` or `proxy`) and waits until it prints the
    /// local `127.0.0.1:<port>` it listens on.
    pub(crate) async fn relay(&self, protocol: Protocol, args: &[&str]) -> anyhow::Result<Relay> {
        let mut child = self
            .command(protocol, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting kubectl")?;
        let stdout = child.stdout.take().context("kubectl's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let port = loop {
            let Some(line) = lines.next_line().await? else {
                let status = child.wait().await?;
                bail!(
                    "kubectl {} exited ({status}) before listening",
                    args.join(" ")
                );
            };
            if let Some(port) = local_port(&line) {
                break port;
            }
        };
        // kubectl prints a line per connection; a closed pipe would kill it (SIGPIPE).
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Relay { child, port })
    }
}

/// A kubectl process listening on a local port; killed when dropped.
pub(crate) struct Relay {
    /// Kept for `kill_on_drop`.
    #[allow(dead_code)]
    child: Child,
    /// The local port.
    pub(crate) port: u16,
}

/// The port of the first `127.0.0.1:<port>` in `line` ("Forwarding from
/// 127.0.0.1:41234 -> 8080", "Starting to serve on 127.0.0.1:8001").
fn local_port(line: &str) -> Option<u16> {
    let rest = &line[line.find("127.0.0.1:")? + "127.0.0.1:".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_ports_of_port_forward_and_proxy() {
        assert_eq!(
            local_port("Forwarding from 127.0.0.1:41234 -> 8080"),
            Some(41234)
        );
        assert_eq!(
            local_port("Starting to serve on 127.0.0.1:8001"),
            Some(8001)
        );
        assert_eq!(local_port("Forwarding from [::1]:41234 -> 8080"), None);
        assert_eq!(local_port("Handling connection for 41234"), None);
    }

    #[test]
    fn protocols_switch_both_exec_and_port_forward() {
        assert!(Protocol::Spdy.env().iter().all(|(_, v)| *v == "false"));
        assert!(Protocol::WebSocket.env().iter().all(|(_, v)| *v == "true"));
    }
}

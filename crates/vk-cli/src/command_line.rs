//! The command line as the binary presents it: `--help` shows each setting's effective
//! default (the flags are optional so that they layer over the config file, so clap
//! itself has no default to show), and parsing remembers which values came from
//! environment variables, so that an invalid one names the variable.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};

use clap::builder::TypedValueParser;
use clap::parser::ValueSource;
use clap::{CommandFactory as _, FromArgMatches as _};

use crate::{Flags, ProviderInfo, Settings};

/// The binary's command: [`Flags`] named and described by `info`, with `[default: ...]`
/// in the help of every setting that has a default.
pub fn command(info: &ProviderInfo) -> clap::Command {
    let defaults = defaults(info);
    Flags::command()
        .name(info.binary)
        .version(info.version)
        .about(info.about)
        .mut_args(|arg| {
            let shown = arg
                .get_long()
                .filter(|_| arg.get_action().takes_values())
                .and_then(|long| defaults.get(long));
            let Some(shown) = shown else {
                return arg;
            };
            let help = arg.get_help().map(|h| format!("{h} [default: {shown}]"));
            let long_help = arg
                .get_long_help()
                .map(|h| format!("{h}\n\n[default: {shown}]"));
            let arg = match help {
                Some(h) => arg.help(h),
                None => arg,
            };
            match long_help {
                Some(h) => arg.long_help(h),
                None => arg,
            }
        })
}

/// Each setting's default as the help shows it, by flag name: the values of
/// [`Settings::default`], and the taint value's (the provider's name).
fn defaults(info: &ProviderInfo) -> BTreeMap<String, String> {
    let mut shown = BTreeMap::new();
    if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(Settings::default()) {
        for (key, value) in map {
            let text = match value {
                serde_json::Value::Null => continue,
                serde_json::Value::String(s) if s.is_empty() => continue,
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            shown.insert(key, text);
        }
    }
    shown.insert("taint-value".to_owned(), info.name.to_owned());
    shown
}

/// Parses `args` (the first being the binary's name) into [`Flags`], recording in
/// [`Flags::from_env`] the settings read from environment variables.
///
/// ```
/// # let info = vk_cli::ProviderInfo { name: "mock", binary: "vk-mock", version: "0", about: "" };
/// let flags = vk_cli::parse_command_line(&info, ["vk-mock", "--nodename", "vk-1"]).expect("parses");
/// assert_eq!(flags.nodename.as_deref(), Some("vk-1"));
/// ```
pub fn parse_command_line<I, T>(info: &ProviderInfo, args: I) -> Result<Flags, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let command = command(info);
    let matches = command.clone().try_get_matches_from(args)?;
    let mut flags = Flags::from_arg_matches(&matches)?;
    for arg in command.get_arguments() {
        if let (Some(variable), Some(long)) = (arg.get_env(), arg.get_long())
            && matches.value_source(arg.get_id().as_str()) == Some(ValueSource::EnvVariable)
        {
            flags
                .from_env
                .insert(long.to_owned(), variable.to_string_lossy().into_owned());
        }
    }
    Ok(flags)
}

/// A value parser that, when the value it refuses was read from the argument's
/// environment variable, says so: `KUBELET_PORT=abc` fails naming `KUBELET_PORT`, not
/// only `--listen-port`.
#[derive(Debug, Clone)]
pub struct NamesEnv<P>(pub P);

impl<P: TypedValueParser> TypedValueParser for NamesEnv<P> {
    type Value = P::Value;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<Self::Value, clap::Error> {
        self.0.parse_ref(cmd, arg, value).map_err(|e| {
            let Some((arg, variable)) = arg.and_then(|a| a.get_env().map(|v| (a, v))) else {
                return e;
            };
            if std::env::var_os(variable).as_deref() != Some(value) {
                return e;
            }
            let reason = match std::error::Error::source(&e) {
                Some(cause) => format!("is not valid ({cause})"),
                None => "is not valid".to_owned(),
            };
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!(
                    "environment variable {} (for --{}): {:?} {reason}\n",
                    variable.to_string_lossy(),
                    arg.get_long().unwrap_or_default(),
                    value.to_string_lossy(),
                ),
            )
            .with_cmd(cmd)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: ProviderInfo = ProviderInfo {
        name: "mock",
        binary: "vk-mock",
        version: "1.0.0",
        about: "A test.",
    };

    #[test]
    fn help_shows_the_effective_defaults() {
        // Whitespace-normalised: the help wraps lines.
        let help = command(&INFO)
            .render_help()
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        for shown in [
            "[default: 10250]",
            "[default: virtual-kubelet]",
            "[default: 32]",
            "[default: 1m]",
            "[default: 127.0.0.1:10255]",
            "[default: NoSchedule]",
            "[default: mock]",
            "[default: cluster.local]",
            "[default: Webhook]",
            "[default: info]",
        ] {
            assert!(help.contains(shown), "--help lacks {shown}:\n{help}");
        }
        // Switches and hidden Go flags show nothing.
        assert!(!help.contains("--no-kubelet-api [default"), "{help}");
        assert!(!help.contains("--klog.v"), "{help}");
        assert!(!help.contains("--enable-node-lease"), "{help}");
    }

    #[test]
    fn values_from_the_command_line_are_not_attributed_to_the_environment() {
        let flags = parse_command_line(&INFO, ["vk-mock", "--listen-port", "10251"]).expect("ok");
        assert_eq!(flags.listen_port, Some(10251));
        assert!(!flags.from_env.contains_key("listen-port"));
    }

    #[test]
    fn a_bad_value_on_the_command_line_names_the_flag() {
        let err = parse_command_line(&INFO, ["vk-mock", "--listen-port", "abc"])
            .expect_err("not a port")
            .to_string();
        assert!(err.contains("--listen-port"), "{err}");
    }
}

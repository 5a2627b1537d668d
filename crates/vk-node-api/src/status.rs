//! The `metav1.Status` documents the v4/v5 remote-command protocols write on the error
//! stream, and the plain-text messages of the older protocols.

use serde_json::{Value, json};

/// Reason of a non-zero exit (`remotecommand.NonZeroExitCodeReason`).
pub const NON_ZERO_EXIT_CODE_REASON: &str = "NonZeroExitCode";
/// Cause type carrying the exit code (`remotecommand.ExitCodeCauseType`).
pub const EXIT_CODE_CAUSE_TYPE: &str = "ExitCode";

/// How a command ended, as the error stream reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Exit code 0 (or a detached attach).
    Success,
    /// A non-zero exit code.
    Exited(i32),
    /// The provider could not run it.
    Failed(String),
}

impl Outcome {
    /// From a provider result.
    pub fn from_exit(code: i32) -> Self {
        if code == 0 {
            Outcome::Success
        } else {
            Outcome::Exited(code)
        }
    }

    /// The JSON `Status` of v4/v5 (what kubectl turns into its own exit code).
    ///
    /// ```
    /// let s = vk_node_api::status::Outcome::Exited(3).status_json();
    /// assert_eq!(s["reason"], "NonZeroExitCode");
    /// assert_eq!(s["details"]["causes"][0]["reason"], "ExitCode");
    /// assert_eq!(s["details"]["causes"][0]["message"], "3");
    /// ```
    pub fn status_json(&self) -> Value {
        match self {
            Outcome::Success => json!({"metadata": {}, "status": "Success"}),
            Outcome::Exited(code) => json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("command terminated with non-zero exit code: exit status {code}"),
                "reason": NON_ZERO_EXIT_CODE_REASON,
                "details": {"causes": [{"reason": EXIT_CODE_CAUSE_TYPE, "message": code.to_string()}]}
            }),
            Outcome::Failed(message) => json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("Internal error occurred: {message}"),
                "reason": "InternalError",
                "details": {"causes": [{"message": message}]},
                "code": 500
            }),
        }
    }

    /// The plain-text error of v1–v3 (`None` on success: nothing is written).
    pub fn text(&self) -> Option<String> {
        match self {
            Outcome::Success => None,
            Outcome::Exited(code) => Some(format!(
                "command terminated with non-zero exit code: exit status {code}"
            )),
            Outcome::Failed(message) => Some(message.clone()),
        }
    }

    /// The bytes to write on the error stream: JSON for v4+, text before.
    pub fn error_stream_bytes(&self, json_status: bool) -> Option<Vec<u8>> {
        if json_status {
            serde_json::to_vec(&self.status_json()).ok()
        } else {
            self.text().map(String::into_bytes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_match_what_client_go_parses() {
        let ok = String::from_utf8(Outcome::Success.error_stream_bytes(true).expect("json"))
            .expect("utf8");
        assert_eq!(ok, r#"{"metadata":{},"status":"Success"}"#);
        let failed = Outcome::Exited(7).status_json();
        assert_eq!(failed["status"], "Failure");
        assert_eq!(failed["details"]["causes"][0]["message"], "7");
        assert_eq!(Outcome::Success.error_stream_bytes(false), None);
        assert_eq!(
            Outcome::Exited(2).text().as_deref(),
            Some("command terminated with non-zero exit code: exit status 2")
        );
        assert_eq!(
            Outcome::Failed("boom".into()).status_json()["reason"],
            "InternalError"
        );
        assert_eq!(Outcome::from_exit(0), Outcome::Success);
    }
}

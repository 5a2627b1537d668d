//! Refusing request paths that could name something other than a Kubernetes object.
//! Every route of the kubelet API takes namespaces, pod and container names, which are
//! DNS labels or subdomains; a path segment that decodes to `.` or `..`, or holds a
//! `/` (`%2F`), a `\` or a NUL, is an attempt to reach a file through a provider that
//! might build paths from names, and is answered 400 before routing.

use crate::error::ApiError;
use crate::options::decode_component;

/// `Ok` when no segment of `path` (as sent, percent-encoded) decodes to a dot segment
/// or holds a path separator or NUL; else a 400 naming the segment.
///
/// ```
/// use vk_node_api::path_guard::check_path;
///
/// assert!(check_path("/containerLogs/default/web/app").is_ok());
/// assert!(check_path("/containerLogs/default/web/..%2F..%2Fetc%2Fpasswd").is_err());
/// assert!(check_path("/containerLogs/default/%2e%2e/app").is_err());
/// ```
pub fn check_path(path: &str) -> Result<(), ApiError> {
    for raw in path.split('/') {
        if !raw.contains(['%', '.', '\\']) {
            continue;
        }
        let segment = decode_component(raw);
        if segment == "." || segment == ".." || segment.contains(['/', '\\', '\0']) {
            return Err(ApiError::BadRequest(format!(
                "invalid path segment {raw:?}: names cannot be `.`, `..` or hold `/`, `\\` or NUL"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_pass_and_traversals_do_not() {
        for ok in [
            "/",
            "/healthz",
            "/containerLogs/kube-system/coredns-5d78c9869d-abcde/coredns",
            "/pods/",
            "/exec/default/web.v1/app",
            "/containerLogs/default/web/a%2Bb",
            "/containerLogs/default/web/...",
        ] {
            assert!(check_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "/containerLogs/default/web/..",
            "/containerLogs/default/web/.",
            "/containerLogs/default/../../etc/passwd",
            "/containerLogs/default/web/..%2F..%2Fetc%2Fpasswd",
            "/containerLogs/default/web/..%2f..%2fetc",
            "/containerLogs/default/web/%2E%2E",
            "/containerLogs/default/web/a%5Cb",
            "/containerLogs/default/web/a\\b",
            "/containerLogs/default/web/a%00b",
        ] {
            let e = check_path(bad).expect_err(bad);
            assert_eq!(e.status(), 400, "{bad}");
            assert!(e.to_string().contains("invalid path segment"), "{e}");
        }
    }
}

//! The kubelet API's query strings ([`vk_node_api::options`]).

use vk_node_api::options::{
    command, decode_component, log_options, parse_bool, parse_query, stream_options,
};

/// Target `kubelet_options`: the input (as text, invalid UTF-8 replaced) is the raw
/// query string of a request.
///
/// Checks: the log, stream and command options either parse to values that respect
/// their rules (positive `sinceSeconds` and `limitBytes`, non-negative `tailLines`, at
/// most one of `sinceSeconds`/`sinceTime`; at least one stream, no stderr with a TTY;
/// a non-empty command) or are refused with 400; and percent-decoding inverts
/// percent-encoding, and is the identity on text without `%` and `+`.
pub fn query(data: &[u8]) {
    let raw = String::from_utf8_lossy(data);
    let query = parse_query(Some(&raw));

    match log_options(&query) {
        Ok(options) => {
            assert!(options.since_seconds.is_none_or(|s| s >= 1), "{options:?}");
            assert!(options.limit_bytes.is_none_or(|l| l >= 1), "{options:?}");
            assert!(
                options.since_seconds.is_none() || options.since_time.is_none(),
                "{options:?}"
            );
            for (name, value) in [
                ("sinceSeconds", options.since_seconds),
                ("tailLines", options.tail_lines),
                ("limitBytes", options.limit_bytes),
            ] {
                assert_eq!(
                    value.is_some(),
                    query.contains_key(name),
                    "{name} in {query:?} gave {options:?}"
                );
            }
        }
        Err(err) => assert_eq!(err.status(), 400, "{err}"),
    }

    match stream_options(&query) {
        Ok(streams) => {
            assert!(
                streams.stdin || streams.stdout || streams.stderr,
                "{streams:?}"
            );
            assert!(!(streams.tty && streams.stderr), "{streams:?}");
        }
        Err(err) => assert_eq!(err.status(), 400, "{err}"),
    }

    match command(Some(&raw)) {
        Ok(command) => assert!(!command.is_empty()),
        Err(err) => assert_eq!(err.status(), 400, "{err}"),
    }

    for (name, value) in &query {
        let _ = parse_bool(name, value);
    }

    let encoded: String = data.iter().map(|b| format!("%{b:02X}")).collect();
    assert_eq!(decode_component(&encoded), String::from_utf8_lossy(data));
    if !raw.contains(['%', '+']) {
        assert_eq!(decode_component(&raw), raw);
    }
}

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::*;
use crate::capabilities::LogOptions;

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).expect("time")
}

/// Five lines, one a minute, at t(0)..t(240); "now" is t(300).
fn log() -> Vec<LogLine> {
    (0..5)
        .map(|i| LogLine::new(Some(t(i * 60)), format!("line {i}")))
        .collect()
}

fn opts(f: impl FnOnce(&mut LogOptions)) -> LogOptions {
    let mut o = LogOptions::default();
    f(&mut o);
    o
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("utf-8")
}

#[test]
fn no_options_show_everything() {
    let out = select(log(), &LogOptions::default(), t(300));
    assert_eq!(text(&out), "line 0\nline 1\nline 2\nline 3\nline 4\n");
}

#[test]
fn tail_zero_shows_nothing_and_tail_beyond_the_length_shows_all() {
    assert!(select(log(), &opts(|o| o.tail_lines = Some(0)), t(300)).is_empty());
    let all = select(log(), &opts(|o| o.tail_lines = Some(500)), t(300));
    assert_eq!(all, select(log(), &LogOptions::default(), t(300)));
    let two = select(log(), &opts(|o| o.tail_lines = Some(2)), t(300));
    assert_eq!(text(&two), "line 3\nline 4\n");
}

#[test]
fn since_seconds_and_since_time() {
    let out = select(log(), &opts(|o| o.since_seconds = Some(90)), t(300));
    assert_eq!(text(&out), "line 4\n");
    let out = select(log(), &opts(|o| o.since_time = Some(t(120))), t(300));
    assert_eq!(text(&out), "line 2\nline 3\nline 4\n", "since is inclusive");
}

#[test]
fn since_in_the_future_selects_nothing() {
    let out = select(log(), &opts(|o| o.since_time = Some(t(10_000))), t(300));
    assert!(out.is_empty());
}

#[test]
fn tail_applies_before_since_as_on_the_kubelet() {
    // The last three lines are 2, 3, 4; of those, only 4 is within 90 s.
    let out = select(
        log(),
        &opts(|o| {
            o.tail_lines = Some(3);
            o.since_seconds = Some(90);
        }),
        t(300),
    );
    assert_eq!(text(&out), "line 4\n");
}

#[test]
fn lines_of_unknown_time_pass_since_and_get_no_timestamp() {
    let lines = lines_from_text(b"a\nb\n", None);
    let out = select(
        lines,
        &opts(|o| {
            o.since_seconds = Some(1);
            o.timestamps = true;
        }),
        t(300),
    );
    assert_eq!(text(&out), "a\nb\n");
}

#[test]
fn timestamps_use_the_kubelets_format() {
    let lines = vec![
        LogLine::new(Some(t(0)), "whole second"),
        LogLine::new(
            t(1).checked_add(SignedDuration::from_millis(250)).ok(),
            "quarter",
        ),
        LogLine::new(
            t(2).checked_add(SignedDuration::from_nanos(7)).ok(),
            "nanos",
        ),
    ];
    let out = select(lines, &opts(|o| o.timestamps = true), t(300));
    assert_eq!(
        text(&out),
        "2023-11-14T22:13:20Z whole second\n\
         2023-11-14T22:13:21.25Z quarter\n\
         2023-11-14T22:13:22.000000007Z nanos\n"
    );
}

#[test]
fn limit_bytes_is_exact_even_inside_a_multibyte_character() {
    // "é" is two bytes: a limit of 2 ends between them, as the kubelet's limit writer does.
    let lines = lines_from_text("é\nabc\n".as_bytes(), None);
    let out = select(lines.clone(), &opts(|o| o.limit_bytes = Some(1)), t(0));
    assert_eq!(out, vec![0xC3]);
    let out = select(lines.clone(), &opts(|o| o.limit_bytes = Some(5)), t(0));
    assert_eq!(out, "é\nab".as_bytes());
    let out = select(lines, &opts(|o| o.limit_bytes = Some(0)), t(0));
    assert!(out.is_empty());
}

#[test]
fn limit_counts_the_timestamp_prefix() {
    let out = select(
        log(),
        &opts(|o| {
            o.timestamps = true;
            o.limit_bytes = Some(10);
        }),
        t(300),
    );
    assert_eq!(text(&out), "2023-11-14");
}

#[test]
fn partial_lines_join_and_count_once() {
    let lines = vec![
        LogLine::new(Some(t(0)), "first"),
        LogLine::partial(Some(t(10)), "sec"),
        LogLine::partial(Some(t(11)), "o"),
        LogLine::new(Some(t(12)), "nd"),
        LogLine::new(Some(t(20)), "third"),
    ];
    let out = select(
        lines.clone(),
        &opts(|o| {
            o.tail_lines = Some(2);
            o.timestamps = true;
        }),
        t(300),
    );
    assert_eq!(
        text(&out),
        "2023-11-14T22:13:30Z second\n2023-11-14T22:13:40Z third\n"
    );
    // `since` decides on the first part: a line begun before it is left out whole.
    let out = select(lines, &opts(|o| o.since_time = Some(t(11))), t(300));
    assert_eq!(text(&out), "third\n");
}

#[test]
fn text_without_a_final_newline_ends_without_one() {
    let lines = lines_from_text(b"a\nb", None);
    assert_eq!(select(lines, &LogOptions::default(), t(0)), b"a\nb");
    assert!(lines_from_text(b"", None).is_empty());
}

#[test]
fn timestamped_text_is_parsed() {
    let lines = lines_from_timestamped_text(
        b"2023-11-14T22:13:20.5Z hello world\nnot a time here\n2023-11-14T22:13:21Z \n",
    );
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0].text, "hello world");
    assert_eq!(
        lines[0].time.map(format_timestamp).as_deref(),
        Some("2023-11-14T22:13:20.5Z")
    );
    assert_eq!(
        (lines[1].time, &lines[1].text[..]),
        (None, &b"not a time here"[..])
    );
    assert_eq!(lines[2].text, "");
    assert!(lines[2].time.is_some());
}

#[test]
fn the_splitter_cuts_lines_across_chunk_boundaries() {
    let mut s = LineSplitter::new(Stamp::Fixed(Some(t(0))));
    let mut all = Vec::new();
    for chunk in [&b"ab"[..], b"c\nde", b"", b"f\n\ng", b"h"] {
        all.extend(s.push(chunk));
    }
    all.extend(s.finish());
    let texts: Vec<&[u8]> = all.iter().map(|l| &l.text[..]).collect();
    assert_eq!(texts, [&b"abc"[..], b"def", b"", b"gh"]);
    assert!(all[..3].iter().all(|l| l.complete) && !all[3].complete);
    assert!(all.iter().all(|l| l.time == Some(t(0))));
}

#[tokio::test]
async fn split_lines_stamps_arrival_times() {
    let before = Timestamp::now();
    let chunks: Vec<std::io::Result<Bytes>> = vec![Ok("one\ntw".into()), Ok("o\nrest".into())];
    let lines: Vec<LogLine> = split_lines(Box::pin(futures::stream::iter(chunks)), Stamp::Arrival)
        .map(|l| l.expect("line"))
        .collect()
        .await;
    let after = Timestamp::now();
    let texts: Vec<&[u8]> = lines.iter().map(|l| &l.text[..]).collect();
    assert_eq!(texts, [&b"one"[..], b"two", b"rest"]);
    for l in &lines {
        let time = l.time.expect("stamped");
        assert!(before <= time && time <= after);
    }
    assert!(!lines[2].complete);
}

async fn collect(stream: crate::capabilities::ByteStream) -> String {
    let chunks: Vec<Bytes> = stream.map(|c| c.expect("chunk")).collect().await;
    chunks
        .iter()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect()
}

#[tokio::test]
async fn log_stream_follows_after_the_head_under_one_limit() {
    let live: Vec<std::io::Result<LogLine>> = vec![
        Ok(LogLine::new(Some(t(400)), "live 1")),
        Ok(LogLine::new(Some(t(401)), "live 2")),
    ];
    let options = opts(|o| {
        o.follow = true;
        o.tail_lines = Some(1);
        o.limit_bytes = Some(14);
    });
    let out = collect(log_stream(
        log(),
        Some(Box::pin(futures::stream::iter(live))),
        &options,
        t(300),
    ))
    .await;
    assert_eq!(out, "line 4\nlive 1\n");
}

#[tokio::test]
async fn follow_with_tail_zero_shows_only_new_lines() {
    let live = vec![Ok(LogLine::new(Some(t(400)), "new"))];
    let options = opts(|o| {
        o.follow = true;
        o.tail_lines = Some(0);
    });
    let out = collect(log_stream(
        log(),
        Some(Box::pin(futures::stream::iter(live))),
        &options,
        t(300),
    ))
    .await;
    assert_eq!(out, "new\n");
}

#[tokio::test]
async fn follow_with_since_in_the_future_shows_lines_once_they_are_newer() {
    let live = vec![
        Ok(LogLine::new(Some(t(500)), "too early")),
        Ok(LogLine::new(Some(t(700)), "late enough")),
    ];
    let options = opts(|o| {
        o.follow = true;
        o.since_time = Some(t(600));
    });
    let out = collect(log_stream(
        log(),
        Some(Box::pin(futures::stream::iter(live))),
        &options,
        t(300),
    ))
    .await;
    assert_eq!(out, "late enough\n");
}

#[tokio::test]
async fn without_follow_the_live_part_is_not_read() {
    let live = futures::stream::pending::<std::io::Result<LogLine>>();
    let out = collect(log_stream(
        log(),
        Some(Box::pin(live)),
        &opts(|o| o.tail_lines = Some(1)),
        t(300),
    ))
    .await;
    assert_eq!(out, "line 4\n");
}

#[tokio::test]
async fn a_limit_used_up_by_the_head_does_not_wait_for_more() {
    let live = futures::stream::pending::<std::io::Result<LogLine>>();
    let options = opts(|o| {
        o.follow = true;
        o.limit_bytes = Some(3);
    });
    let out = collect(log_stream(log(), Some(Box::pin(live)), &options, t(300))).await;
    assert_eq!(out, "lin");
}

fn fast() -> FollowConfig {
    FollowConfig {
        poll_interval: Duration::from_millis(5),
        ..Default::default()
    }
}

/// Reads from `stream` until `want` has arrived (the follower has no end of its own).
async fn read_until(
    stream: &mut (impl futures::Stream<Item = std::io::Result<Bytes>> + Unpin),
    seen: &mut String,
    want: &str,
) {
    while !seen.contains(want) {
        let chunk = stream.next().await.expect("more data").expect("read");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn follow_file_reads_appends_and_ends_when_told() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("log");
    std::fs::write(&path, "old\n").expect("write");
    let ended = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&ended);
    let mut stream = Box::pin(follow_file(
        path.clone(),
        4,
        move || flag.load(std::sync::atomic::Ordering::SeqCst),
        fast(),
    ));
    append(&path, "new 1\n");
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "new 1\n").await;
    append(&path, "last\n");
    ended.store(true, std::sync::atomic::Ordering::SeqCst);
    // Written before `ended`: still delivered, then the stream ends.
    while let Some(chunk) = stream.next().await {
        seen.push_str(&String::from_utf8_lossy(&chunk.expect("read")));
    }
    assert_eq!(seen, "new 1\nlast\n");
}

fn append(path: &std::path::Path, text: &str) {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .expect("open");
    f.write_all(text.as_bytes()).expect("append");
}

#[tokio::test]
async fn follow_file_follows_rename_rotation() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("log");
    std::fs::write(&path, "").expect("create");
    let mut stream = Box::pin(follow_file(path.clone(), 0, || false, fast()));
    append(&path, "before\n");
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "before\n").await;
    // logrotate's default: written to the old file just before the rename, then a
    // new file at the path.
    append(&path, "tail of old\n");
    std::fs::rename(&path, dir.path().join("log.1")).expect("rotate");
    append(&path, "in new\n");
    read_until(&mut stream, &mut seen, "in new\n").await;
    assert_eq!(seen, "before\ntail of old\nin new\n");
}

#[tokio::test]
async fn follow_file_follows_truncation_and_waits_for_a_missing_file() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("log");
    let mut stream = Box::pin(follow_file(path.clone(), 0, || false, fast()));
    append(&path, "0123456789\n");
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "0123456789\n").await;
    // copytruncate: same file, emptied, then written again.
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .expect("truncate");
    append(&path, "after\n");
    read_until(&mut stream, &mut seen, "after\n").await;
    assert_eq!(seen, "0123456789\nafter\n");
}

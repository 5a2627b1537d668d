//! Random frame sequences from a client, with an application behaving in one of a few
//! ways: the session must never panic, must keep the protocol's rules in what it sends,
//! and must end.

use std::sync::Arc;

use proptest::prelude::*;

use super::super::super::frame::{DEFAULT_INITIAL_WINDOW, FLAG_UNIDIRECTIONAL, MAX_WINDOW};
use super::*;

/// What the client sends in the property test.
#[derive(Debug, Clone)]
enum Action {
    /// Opens the next stream (ids in order, as a well-behaved client does).
    Open { kind: &'static str, flags: u8 },
    /// DATA of `len` bytes (made at send time, to keep failure reports short).
    Data {
        stream_id: u32,
        len: usize,
        fin: bool,
    },
    /// Any frame, ids included.
    Frame(Frame),
    /// Bytes that may be anything, including a broken frame.
    Raw(Vec<u8>),
    /// Waits until everything is idle, letting the application catch up.
    Pause,
}

/// Mostly the ids of the first streams opened (so that sequences do more than end the
/// session early), sometimes any.
fn arb_id() -> impl Strategy<Value = u32> {
    prop_oneof![
        20 => (0..5u32).prop_map(|i| 2 * i + 1),
        2 => 0..12u32,
        1 => any::<u32>().prop_map(|id| id & 0x7fff_ffff),
    ]
}

fn arb_flags() -> impl Strategy<Value = u8> {
    prop::sample::select(vec![0u8, 0, FLAG_FIN, FLAG_UNIDIRECTIONAL, 0xff])
}

fn arb_kind() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["error", "stdin", "stdout", "stderr", "resize", "data"])
}

/// Frames a client may send without ending the session (mostly: a WINDOW_UPDATE can
/// still overflow the session window).
fn arb_benign_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        2 => (arb_id(), 0..12u32).prop_map(|(id, status)| rst(id, RstStatus(status))),
        1 => prop_oneof![Just(0u32), Just(10), Just(70_000), Just(MAX_WINDOW), any::<u32>()]
            .prop_map(initial_window_setting),
        3 => any::<u32>().prop_map(|id| Frame::Ping { id }),
        1 => (arb_id(), 0..3u32).prop_map(|(id, status)| Frame::GoAway {
            last_good_stream_id: id,
            status: GoAwayStatus(status),
        }),
        2 => (arb_id(), any::<u8>()).prop_map(|(id, flags)| Frame::Headers {
            stream_id: id,
            flags,
            headers: headers(&[("x", "y")]),
        }),
        1 => (arb_id(), any::<u8>()).prop_map(|(id, flags)| Frame::SynReply {
            stream_id: id,
            flags,
            headers: Headers::new(),
        }),
        4 => (arb_id(), prop_oneof![Just(0u32), 1..100_000u32, Just(MAX_WINDOW)])
            .prop_map(|(id, delta)| window_update(id, delta)),
        1 => (10..20u16, any::<u8>(), prop::collection::vec(any::<u8>(), 0..16)).prop_map(
            |(frame_type, flags, payload)| Frame::Unknown {
                version: 3,
                frame_type,
                flags,
                payload: Bytes::from(payload),
            }
        ),
    ]
}

/// Frames that (most likely) end the session with a protocol error.
fn arb_fatal_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        // Stream ids not increasing, or even.
        (arb_id(), arb_kind(), arb_flags()).prop_map(|(id, kind, flags)| syn_flags(
            id,
            &[("streamtype", kind)],
            flags
        )),
        // Known types with a random payload, or of another version.
        (
            1..10u16,
            2..4u16,
            any::<u8>(),
            prop::collection::vec(any::<u8>(), 0..16)
        )
            .prop_map(|(frame_type, version, flags, payload)| Frame::Unknown {
                version,
                frame_type,
                flags,
                payload: Bytes::from(payload),
            }),
        Just(data(0, b"", false)),
    ]
}

/// What a client does; with `hostile`, also what ends the session.
fn arb_action(hostile: bool) -> impl Strategy<Value = Action> {
    let fatal = if hostile { 1 } else { 0 };
    prop_oneof![
        10 => (arb_kind(), arb_flags()).prop_map(|(kind, flags)| Action::Open { kind, flags }),
        12 => (arb_id(), prop_oneof![0..64usize, 0..40_000usize], any::<bool>())
            .prop_map(|(stream_id, len, fin)| Action::Data { stream_id, len, fin }),
        14 => arb_benign_frame().prop_map(Action::Frame),
        2 => Just(Action::Pause),
        fatal => arb_fatal_frame().prop_map(Action::Frame),
        fatal => prop::collection::vec(any::<u8>(), 1..32).prop_map(Action::Raw),
    ]
}

/// How the application treats the streams in the property test.
#[derive(Debug, Clone, Copy)]
enum App {
    /// Accepts, replies, reads everything and writes some.
    Serve,
    /// Accepts and drops the streams.
    Drop,
    /// Accepts streams and leaves them alone, until told to let go (after the client
    /// closed). Unread data stalls the session (see the module docs): it cannot see the
    /// end of the connection before the application reads or lets go.
    Hold,
    /// Drops `Incoming` at once.
    Refuse,
}

/// How the client ends the connection.
#[derive(Debug, Clone, Copy)]
enum Close {
    /// Shuts down its writing side, reading until the server is done.
    HalfClose,
    /// Drops the connection.
    Drop,
}

/// The application side of the property test.
async fn random_app(
    mut incoming: Incoming,
    app: App,
    mut release: tokio::sync::oneshot::Receiver<()>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    let mut held = Vec::new();
    if matches!(app, App::Refuse) {
        return tasks;
    }
    loop {
        let stream = tokio::select! {
            stream = incoming.accept() => stream,
            _ = &mut release, if matches!(app, App::Hold) => break,
        };
        let Some(stream) = stream else {
            break;
        };
        match app {
            App::Serve => tasks.push(tokio::spawn(async move {
                let _ = stream.reply().await;
                let (mut reader, mut writer) = stream.split();
                let read = async move {
                    let mut sink = Vec::new();
                    let _ = reader.read_to_end(&mut sink).await;
                };
                let write = async move {
                    for _ in 0..3 {
                        if writer.write_all(&[1; 20_000]).await.is_err() {
                            return;
                        }
                    }
                    let _ = writer.shutdown().await;
                };
                tokio::join!(read, write);
            })),
            App::Hold => held.push(stream),
            App::Drop | App::Refuse => drop(stream),
        }
    }
    drop(held);
    tasks
}

/// Flow-control credit the client granted, counted before the frame is sent (so it is
/// never less than what the server has seen).
#[derive(Debug, Default)]
struct Credit {
    session: u64,
    streams: std::collections::HashMap<u32, u64>,
    /// Largest SETTINGS_INITIAL_WINDOW_SIZE sent (at least the default).
    max_initial: u64,
}

impl Credit {
    fn record(&mut self, frame: &Frame) {
        match frame {
            Frame::WindowUpdate {
                stream_id: 0,
                delta,
            } => self.session += u64::from(*delta),
            Frame::WindowUpdate { stream_id, delta } => {
                *self.streams.entry(*stream_id).or_default() += u64::from(*delta);
            }
            Frame::Settings { entries, .. } => {
                for entry in entries {
                    if entry.id == SETTINGS_INITIAL_WINDOW_SIZE {
                        self.max_initial = self.max_initial.max(u64::from(entry.value));
                    }
                }
            }
            _ => {}
        }
    }
}

/// What a stream looks like from the client, from the server's frames.
#[derive(Debug, Default)]
struct Seen {
    replied: bool,
    /// RST_STREAM status sent before SYN_REPLY.
    reset_before_reply: Option<RstStatus>,
    fin: bool,
    reset: bool,
    data: u64,
}

/// Reads the server's frames until EOF, checking rules any session must keep.
async fn check_server_frames(
    mut rx: ClientRx,
    credit: Arc<std::sync::Mutex<Credit>>,
    enforce: bool,
) {
    let mut streams: std::collections::HashMap<u32, Seen> = std::collections::HashMap::new();
    let mut total_data = 0u64;
    let mut goaway = false;
    while let Some(frame) = rx.next().await {
        assert!(!goaway, "{frame:?} after GOAWAY");
        match frame {
            Frame::SynReply {
                stream_id, flags, ..
            } => {
                assert_eq!(stream_id % 2, 1, "SYN_REPLY for an even stream");
                assert_eq!(flags, 0);
                let seen = streams.entry(stream_id).or_default();
                assert!(!seen.replied, "second SYN_REPLY for {stream_id}");
                // A RST_STREAM before may only be INVALID_STREAM, for frames the client
                // sent on the id before opening it: this is a new stream.
                if let Some(status) = seen.reset_before_reply {
                    assert_eq!(
                        status,
                        RstStatus::INVALID_STREAM,
                        "SYN_REPLY after RST_STREAM"
                    );
                }
                *seen = Seen {
                    replied: true,
                    ..Seen::default()
                };
            }
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                let seen = streams.entry(stream_id).or_default();
                assert!(seen.replied, "DATA on {stream_id} before SYN_REPLY");
                assert!(
                    !seen.fin && !seen.reset,
                    "DATA on {stream_id} after {seen:?}"
                );
                assert!(data.len() <= MAX_DATA_FRAME_PAYLOAD);
                seen.fin = flags & FLAG_FIN != 0;
                assert_eq!(flags & !FLAG_FIN, 0);
                seen.data += data.len() as u64;
                total_data += data.len() as u64;
                if enforce {
                    let credit = credit.lock().unwrap();
                    let initial = credit.max_initial.max(u64::from(DEFAULT_INITIAL_WINDOW));
                    let stream_credit = credit.streams.get(&stream_id).copied().unwrap_or(0);
                    assert!(
                        seen.data <= initial + stream_credit,
                        "stream {stream_id}: {} bytes sent, window {initial} + {stream_credit}",
                        seen.data
                    );
                    assert!(
                        total_data <= u64::from(DEFAULT_INITIAL_WINDOW) + credit.session,
                        "{total_data} bytes sent, session credit {}",
                        credit.session
                    );
                }
            }
            Frame::RstStream { stream_id, status } => {
                let seen = streams.entry(stream_id).or_default();
                if !seen.replied {
                    seen.reset_before_reply = Some(status);
                }
                seen.reset = true;
            }
            Frame::GoAway { .. } => goaway = true,
            Frame::Ping { id } => assert_eq!(id % 2, 1, "PING {id} echoed"),
            Frame::WindowUpdate { delta, .. } => assert!(delta > 0 && delta <= MAX_WINDOW),
            frame => panic!("the server sent {frame:?}"),
        }
    }
}

async fn run_random_session(actions: Vec<Action>, app: App, close: Close, config: SessionConfig) {
    let enforce = config.send_window == SendWindowMode::Enforce;
    let (session, incoming, mut tx, rx) = start_with_pipe(config, 8 * 1024);
    let (release_tx, release_rx) = tokio::sync::oneshot::channel();
    let app_task = tokio::spawn(random_app(incoming, app, release_rx));
    let credit = Arc::new(std::sync::Mutex::new(Credit::default()));
    let checker = tokio::spawn(check_server_frames(rx, Arc::clone(&credit), enforce));
    let mut next_id = 1;
    for action in actions {
        let send = async {
            match action {
                Action::Open { kind, flags } => {
                    next_id += 2;
                    tx.try_send(syn_flags(next_id - 2, &[("streamtype", kind)], flags))
                        .await
                }
                Action::Data {
                    stream_id,
                    len,
                    fin,
                } => {
                    tx.try_send(data(stream_id, &pattern(len, stream_id as u8), fin))
                        .await
                }
                Action::Frame(frame) => {
                    credit.lock().unwrap().record(&frame);
                    tx.try_send(frame).await
                }
                Action::Raw(bytes) => tx.send_raw(&bytes).await,
                Action::Pause => {
                    quiesce().await;
                    Ok(())
                }
            }
        };
        let result = if matches!(app, App::Hold) {
            // Sending stalls once the held streams have buffered enough: the client
            // then gives up (possibly in the middle of a frame).
            match timeout(Duration::from_secs(1), send).await {
                Ok(result) => result,
                Err(_) => break,
            }
        } else {
            guard("client send", send).await
        };
        if result.is_err() {
            // The server is gone.
            break;
        }
    }
    match close {
        Close::HalfClose => {
            // Let the application see everything first: the session ends as soon as it
            // reads EOF, dropping what it has not sent yet.
            quiesce().await;
            let _ = tx.io.shutdown().await;
            drop(tx);
        }
        Close::Drop => {
            drop(tx);
            checker.abort();
        }
    }
    let _ = release_tx.send(());
    guard("session end", session.closed()).await;
    assert!(session.is_closed());
    let tasks = guard("application", app_task).await.unwrap();
    for task in tasks {
        guard("stream task", task).await.unwrap();
    }
    match guard("checker", checker).await {
        Ok(()) => {}
        Err(err) if err.is_cancelled() => {}
        Err(err) => std::panic::resume_unwind(err.into_panic()),
    }
}

proptest! {
    // No failure file: it would be written outside this module's directory. A failure
    // prints the minimal input, to turn into a test of its own.
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_frames_never_panic_and_the_session_ends(
        actions in any::<bool>().prop_flat_map(|hostile| prop::collection::vec(arb_action(hostile), 0..40)),
        app in prop_oneof![4 => Just(App::Serve), 1 => Just(App::Drop), 1 => Just(App::Hold), 1 => Just(App::Refuse)],
        close in prop::sample::select(vec![Close::HalfClose, Close::Drop]),
        enforce in any::<bool>(),
        idle in any::<bool>(),
    ) {
        let config = SessionConfig {
            send_window: if enforce { SendWindowMode::Enforce } else { SendWindowMode::Detect },
            idle_timeout: idle.then_some(Duration::from_secs(5)),
            max_frame_len: 64 * 1024,
            ..SessionConfig::default()
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(run_random_session(actions, app, close, config));
    }
}

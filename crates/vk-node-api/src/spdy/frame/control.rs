//! The vocabulary of control frames: their type codes, the SETTINGS flags and ids, the
//! status codes of RST_STREAM ([`RstStatus`]) and GOAWAY ([`GoAwayStatus`]), and the
//! entries of a SETTINGS frame ([`Setting`]).

use std::fmt;

/// Control frame type of SYN_STREAM.
pub const TYPE_SYN_STREAM: u16 = 1;
/// Control frame type of SYN_REPLY.
pub const TYPE_SYN_REPLY: u16 = 2;
/// Control frame type of RST_STREAM.
pub const TYPE_RST_STREAM: u16 = 3;
/// Control frame type of SETTINGS.
pub const TYPE_SETTINGS: u16 = 4;
/// Control frame type of PING.
pub const TYPE_PING: u16 = 6;
/// Control frame type of GOAWAY.
pub const TYPE_GOAWAY: u16 = 7;
/// Control frame type of HEADERS.
pub const TYPE_HEADERS: u16 = 8;
/// Control frame type of WINDOW_UPDATE.
pub const TYPE_WINDOW_UPDATE: u16 = 9;

/// Flag of SETTINGS: clear previously persisted settings.
pub const FLAG_SETTINGS_CLEAR_SETTINGS: u8 = 0x01;
/// Flag of a SETTINGS entry: the recipient should persist the value.
pub const FLAG_SETTINGS_PERSIST_VALUE: u8 = 0x01;
/// Flag of a SETTINGS entry: the value was persisted earlier and is being returned.
pub const FLAG_SETTINGS_PERSISTED: u8 = 0x02;

/// SETTINGS id: expected upload bandwidth.
pub const SETTINGS_UPLOAD_BANDWIDTH: u32 = 1;
/// SETTINGS id: expected download bandwidth.
pub const SETTINGS_DOWNLOAD_BANDWIDTH: u32 = 2;
/// SETTINGS id: expected round-trip time.
pub const SETTINGS_ROUND_TRIP_TIME: u32 = 3;
/// SETTINGS id: how many concurrent streams the sender accepts.
pub const SETTINGS_MAX_CONCURRENT_STREAMS: u32 = 4;
/// SETTINGS id: the sender's TCP congestion window.
pub const SETTINGS_CURRENT_CWND: u32 = 5;
/// SETTINGS id: the sender's retransmission rate.
pub const SETTINGS_DOWNLOAD_RETRANS_RATE: u32 = 6;
/// SETTINGS id: the initial window of new streams (flow control).
pub const SETTINGS_INITIAL_WINDOW_SIZE: u32 = 7;
/// SETTINGS id: size of the client certificate vector (SPDY/3 only).
pub const SETTINGS_CLIENT_CERTIFICATE_VECTOR_SIZE: u32 = 8;

/// Status code of a RST_STREAM frame.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RstStatus(pub u32);

impl RstStatus {
    /// Generic error.
    pub const PROTOCOL_ERROR: Self = Self(1);
    /// A frame arrived for a stream that is not active.
    pub const INVALID_STREAM: Self = Self(2);
    /// The stream was refused before any processing.
    pub const REFUSED_STREAM: Self = Self(3);
    /// The recipient does not support the SPDY version.
    pub const UNSUPPORTED_VERSION: Self = Self(4);
    /// The stream is no longer needed.
    pub const CANCEL: Self = Self(5);
    /// The implementation failed internally.
    pub const INTERNAL_ERROR: Self = Self(6);
    /// The peer violated flow control.
    pub const FLOW_CONTROL_ERROR: Self = Self(7);
    /// A SYN_STREAM or SYN_REPLY for a stream already open.
    pub const STREAM_IN_USE: Self = Self(8);
    /// Data or SYN_REPLY for a stream already half-closed.
    pub const STREAM_ALREADY_CLOSED: Self = Self(9);
    /// Credentials were invalid (SPDY/3 only).
    pub const INVALID_CREDENTIALS: Self = Self(10);
    /// A frame was too large for the implementation.
    pub const FRAME_TOO_LARGE: Self = Self(11);

    /// The spec's name of the code, if it is a known one.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "PROTOCOL_ERROR",
            2 => "INVALID_STREAM",
            3 => "REFUSED_STREAM",
            4 => "UNSUPPORTED_VERSION",
            5 => "CANCEL",
            6 => "INTERNAL_ERROR",
            7 => "FLOW_CONTROL_ERROR",
            8 => "STREAM_IN_USE",
            9 => "STREAM_ALREADY_CLOSED",
            10 => "INVALID_CREDENTIALS",
            11 => "FRAME_TOO_LARGE",
            _ => return None,
        })
    }
}

impl fmt::Display for RstStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "status {}", self.0),
        }
    }
}

impl fmt::Debug for RstStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RstStatus({self})")
    }
}

/// Status code of a GOAWAY frame.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct GoAwayStatus(pub u32);

impl GoAwayStatus {
    /// Normal session teardown.
    pub const OK: Self = Self(0);
    /// The peer violated the protocol.
    pub const PROTOCOL_ERROR: Self = Self(1);
    /// The implementation failed internally.
    pub const INTERNAL_ERROR: Self = Self(2);

    /// The spec's name of the code, if it is a known one.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "OK",
            1 => "PROTOCOL_ERROR",
            2 => "INTERNAL_ERROR",
            _ => return None,
        })
    }
}

impl fmt::Display for GoAwayStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "status {}", self.0),
        }
    }
}

impl fmt::Debug for GoAwayStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GoAwayStatus({self})")
    }
}

/// One entry of a SETTINGS frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// Entry flags ([`FLAG_SETTINGS_PERSIST_VALUE`], [`FLAG_SETTINGS_PERSISTED`]).
    pub flags: u8,
    /// Setting id (24 bits), e.g. [`SETTINGS_INITIAL_WINDOW_SIZE`].
    pub id: u32,
    /// Setting value.
    pub value: u32,
}

//! Reading HTTP/2 frame headers (RFC 9113 §4.1) out of a byte stream as it
//! passes, without buffering it.
//!
//! Data path, HTTP/2 connections only. The guard (`guard.rs`) feeds it every
//! byte read from the client and every byte written to it, in whatever pieces
//! the socket gives, and learns of each frame as its 9-byte header completes;
//! of the payloads it keeps only the few fields the guard needs (SETTINGS
//! entries and WINDOW_UPDATE increments, a 6-byte scratch) and skips the rest.
//! hyper's h2 still parses and validates everything: this only counts.

/// Frame types (RFC 9113 §6).
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;

/// The ACK flag of SETTINGS and PING.
pub const ACK: u8 = 0x1;

/// SETTINGS_INITIAL_WINDOW_SIZE (RFC 9113 §6.5.2).
pub const INITIAL_WINDOW_SIZE: u16 = 0x4;

/// Bytes of the client connection preface (RFC 9113 §3.4) before its first frame.
pub const PREFACE_LEN: usize = 24;

/// A frame's 9-byte header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub len: u32,
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
}

/// What the scanner saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// A frame's header, as soon as it is complete.
    Frame(Head),
    /// One entry of a SETTINGS frame (not an ACK): identifier, value.
    Setting(u16, u32),
    /// A WINDOW_UPDATE: stream (0: the connection), increment.
    WindowUpdate(u32, u32),
}

/// Where the scanner is in the stream.
#[derive(Debug, Default)]
pub struct Scanner {
    /// Payload bytes (or preface bytes) still to pass before the next header.
    skip: usize,
    head: [u8; 9],
    /// Header bytes gathered so far.
    have: usize,
    /// The field of the current payload being gathered: its length (0: none),
    /// the bytes so far, and the frame it belongs to.
    field_len: usize,
    field: [u8; 6],
    got: usize,
    current: Option<Head>,
}

impl Scanner {
    /// A scanner whose stream starts with `skip` bytes that are not frames (the
    /// client's preface).
    pub fn after(skip: usize) -> Scanner {
        Scanner {
            skip,
            ..Scanner::default()
        }
    }

    /// Whether the stream so far ends on a frame's end: what is written next
    /// starts a frame.
    pub fn at_boundary(&self) -> bool {
        self.skip == 0 && self.have == 0
    }

    /// Pass `bytes`, reporting what they complete to `on`.
    pub fn feed(&mut self, mut bytes: &[u8], mut on: impl FnMut(Seen)) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                if self.field_len == 0 {
                    let n = self.skip.min(bytes.len());
                    self.skip -= n;
                    bytes = &bytes[n..];
                    continue;
                }
                let n = (self.field_len - self.got).min(bytes.len());
                self.field[self.got..self.got + n].copy_from_slice(&bytes[..n]);
                self.got += n;
                self.skip -= n;
                bytes = &bytes[n..];
                if self.got == self.field_len {
                    self.field_done(&mut on);
                }
                continue;
            }
            let n = (9 - self.have).min(bytes.len());
            self.head[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have == 9 {
                self.have = 0;
                self.start(&mut on);
            }
        }
    }

    fn start(&mut self, on: &mut impl FnMut(Seen)) {
        let h = &self.head;
        let head = Head {
            len: u32::from_be_bytes([0, h[0], h[1], h[2]]),
            kind: h[3],
            flags: h[4],
            stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
        };
        on(Seen::Frame(head));
        self.skip = head.len as usize;
        self.current = Some(head);
        self.got = 0;
        // A field that cannot be whole is not gathered (h2 rejects the frame).
        self.field_len = match head.kind {
            SETTINGS if head.flags & ACK == 0 && self.skip >= 6 => 6,
            WINDOW_UPDATE if self.skip >= 4 => 4,
            _ => 0,
        };
    }

    fn field_done(&mut self, on: &mut impl FnMut(Seen)) {
        let f = &self.field;
        let Some(head) = self.current else {
            self.field_len = 0;
            return;
        };
        self.got = 0;
        if head.kind == SETTINGS {
            on(Seen::Setting(
                u16::from_be_bytes([f[0], f[1]]),
                u32::from_be_bytes([f[2], f[3], f[4], f[5]]),
            ));
            // The next entry, if a whole one is left after this one.
            if self.skip < 6 {
                self.field_len = 0;
            }
        } else {
            let increment = u32::from_be_bytes([f[0], f[1], f[2], f[3]]) & 0x7fff_ffff;
            on(Seen::WindowUpdate(head.stream, increment));
            self.field_len = 0;
        }
    }
}

/// A GOAWAY frame (RFC 9113 §6.8) with this last stream, error code and debug
/// data (what h2 also sends: e.g. `too_many_resets`).
pub fn goaway(last_stream: u32, code: u32, debug: &[u8]) -> Vec<u8> {
    let len = 8 + debug.len() as u32;
    let mut f = Vec::with_capacity(9 + len as usize);
    f.extend_from_slice(&len.to_be_bytes()[1..]);
    f.extend_from_slice(&[GOAWAY, 0, 0, 0, 0, 0]);
    f.extend_from_slice(&(last_stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(&code.to_be_bytes());
    f.extend_from_slice(debug);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = len.to_be_bytes()[1..].to_vec();
        f.extend([kind, flags]);
        f.extend(stream.to_be_bytes());
        f.extend(payload);
        f
    }

    fn stream() -> Vec<u8> {
        let mut s = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        let mut settings = Vec::new();
        settings.extend([0, 3, 0, 0, 0, 100]); // MAX_CONCURRENT_STREAMS
        settings.extend([0, 4, 0, 0, 0, 0]); // INITIAL_WINDOW_SIZE = 0
        s.extend(frame(SETTINGS, 0, 0, &settings));
        s.extend(frame(WINDOW_UPDATE, 0, 0, &[0, 1, 0, 0]));
        s.extend(frame(HEADERS, 0x5, 1, &[0x82, 0x86, 0x84]));
        s.extend(frame(PING, 0, 0, &[7; 8]));
        s.extend(frame(DATA, 0x1, 1, &[9; 1000]));
        s.extend(frame(SETTINGS, ACK, 0, &[]));
        s
    }

    fn expected() -> Vec<Seen> {
        let head = |len, kind, flags, stream| {
            Seen::Frame(Head {
                len,
                kind,
                flags,
                stream,
            })
        };
        vec![
            head(12, SETTINGS, 0, 0),
            Seen::Setting(3, 100),
            Seen::Setting(INITIAL_WINDOW_SIZE, 0),
            head(4, WINDOW_UPDATE, 0, 0),
            Seen::WindowUpdate(0, 65536),
            head(3, HEADERS, 0x5, 1),
            head(8, PING, 0, 0),
            head(1000, DATA, 0x1, 1),
            head(0, SETTINGS, ACK, 0),
        ]
    }

    /// Whatever pieces the bytes come in, the same frames and fields are seen,
    /// and the stream ends on a boundary.
    #[test]
    fn frames_are_seen_however_the_stream_is_cut() {
        let bytes = stream();
        for piece in [1, 2, 3, 5, 7, 9, 13, 64, bytes.len()] {
            let mut scanner = Scanner::after(PREFACE_LEN);
            let mut seen = Vec::new();
            for chunk in bytes.chunks(piece) {
                scanner.feed(chunk, |s| seen.push(s));
            }
            assert_eq!(seen, expected(), "pieces of {piece}");
            assert!(scanner.at_boundary());
        }
    }

    #[test]
    fn mid_frame_is_not_a_boundary() {
        let bytes = frame(DATA, 0, 1, &[0; 100]);
        let mut scanner = Scanner::default();
        scanner.feed(&bytes[..5], |_| {});
        assert!(!scanner.at_boundary());
        scanner.feed(&bytes[5..50], |_| {});
        assert!(!scanner.at_boundary());
        scanner.feed(&bytes[50..], |_| {});
        assert!(scanner.at_boundary());
    }

    #[test]
    fn goaway_is_a_well_formed_frame() {
        let f = goaway(7, 0xb, b"ping_flood");
        let mut scanner = Scanner::default();
        let mut seen = Vec::new();
        scanner.feed(&f, |s| seen.push(s));
        assert_eq!(
            seen,
            vec![Seen::Frame(Head {
                len: 18,
                kind: GOAWAY,
                flags: 0,
                stream: 0
            })]
        );
        assert!(scanner.at_boundary());
        assert_eq!(&f[9..17], &[0, 0, 0, 7, 0, 0, 0, 0xb]);
        assert_eq!(&f[17..], b"ping_flood");
    }
}

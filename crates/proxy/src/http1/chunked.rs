//! Chunked transfer coding (RFC 9112 §7.1): chunk-size lines written for a
//! streamed request body, and a response body decoded as it arrives.
//!
//! Data path, no I/O: plain functions over byte buffers. Chunk-size lines must end
//! in CRLF and hold at most 16 hex digits; trailers are parsed like a head, within
//! the same limits.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::codec::{MAX_HEAD, MAX_HEADERS};
use super::Error;

/// The longest chunk-size line, extensions included.
const MAX_CHUNK_LINE: usize = 4096;

/// Write a chunk-size line for `len` bytes of data.
pub fn encode_chunk_size(len: usize, out: &mut impl BufMut) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    let mut n = len;
    loop {
        i -= 1;
        digits[i] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[i..]);
    out.put_slice(b"\r\n");
}

/// What the chunked decoder produced.
#[derive(Debug, PartialEq)]
pub enum Decoded {
    Data(Bytes),
    /// The body ended; with trailers when the target sent any.
    End(Option<HeaderMap>),
}

/// A chunked body, decoded incrementally from a read buffer.
#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    /// Data bytes left in the current chunk; `None` while a size line is expected.
    remaining: Option<u64>,
    /// The CRLF after a chunk's data is still to come.
    crlf_due: bool,
    /// The last chunk (size 0) was read; trailers follow.
    last: bool,
}

impl ChunkedDecoder {
    /// Decode what `buf` holds. `Ok(None)`: read more.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, Error> {
        loop {
            if self.last {
                return self.trailers(buf);
            }
            if self.crlf_due {
                if buf.len() < 2 {
                    return Ok(None);
                }
                if &buf[..2] != b"\r\n" {
                    return Err(Error::Invalid("chunk data not followed by CRLF"));
                }
                buf.advance(2);
                self.crlf_due = false;
            }
            match self.remaining {
                None => {
                    let Some(size) = chunk_size(buf)? else {
                        return Ok(None);
                    };
                    if size == 0 {
                        self.last = true;
                    } else {
                        self.remaining = Some(size);
                    }
                }
                Some(remaining) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let take = remaining.min(buf.len() as u64) as usize;
                    let data = take_bytes(buf, take);
                    let left = remaining - take as u64;
                    self.remaining = (left > 0).then_some(left);
                    self.crlf_due = left == 0;
                    return Ok(Some(Decoded::Data(data)));
                }
            }
        }
    }

    fn trailers(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, Error> {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match httparse::parse_headers(buf, &mut slots) {
            Ok(httparse::Status::Complete((len, fields))) => {
                let trailers = if fields.is_empty() {
                    None
                } else {
                    let mut map = HeaderMap::with_capacity(fields.len());
                    for h in fields {
                        let name = HeaderName::from_bytes(h.name.as_bytes())
                            .map_err(|_| Error::Invalid("trailer name"))?;
                        let value = HeaderValue::from_bytes(h.value)
                            .map_err(|_| Error::Invalid("trailer value"))?;
                        map.append(name, value);
                    }
                    Some(map)
                };
                buf.advance(len);
                Ok(Some(Decoded::End(trailers)))
            }
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => Err(Error::HeadTooLarge),
            Ok(httparse::Status::Partial) => Ok(None),
            Err(_) => Err(Error::Invalid("malformed trailers")),
        }
    }
}

/// Parse and consume one chunk-size line (`1a;ext=v\r\n`). `Ok(None)`: incomplete.
fn chunk_size(buf: &mut BytesMut) -> Result<Option<u64>, Error> {
    let window = &buf[..buf.len().min(MAX_CHUNK_LINE)];
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        if buf.len() >= MAX_CHUNK_LINE {
            return Err(Error::Invalid("chunk-size line too long"));
        }
        return Ok(None);
    };
    if lf == 0 || window[lf - 1] != b'\r' {
        return Err(Error::Invalid("chunk-size line not ended by CRLF"));
    }
    let line = &window[..lf - 1];
    let digits_end = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    if digits_end == 0 || digits_end > 16 {
        return Err(Error::Invalid("chunk size"));
    }
    let rest = &line[digits_end..];
    // Only chunk extensions may follow the size (RFC 9112 §7.1.1), after optional
    // whitespace; they are ignored.
    let rest = rest.trim_ascii_start();
    if !rest.is_empty() && rest[0] != b';' {
        return Err(Error::Invalid("chunk size"));
    }
    let size = line[..digits_end].iter().fold(0u64, |n, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => d - b'A' + 10,
        };
        (n << 4) | u64::from(v)
    });
    buf.advance(lf + 1);
    Ok(Some(size))
}

/// Take `n` bytes off the front of `buf`. Small pieces are copied, so the read
/// buffer stays whole and is reused for the next read; large ones are split off
/// without a copy.
pub fn take_bytes(buf: &mut BytesMut, n: usize) -> Bytes {
    if n <= 4096 {
        let data = Bytes::copy_from_slice(&buf[..n]);
        buf.advance(n);
        data
    } else {
        buf.split_to(n).freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], step: usize) -> Result<(Vec<u8>, Option<HeaderMap>), Error> {
        let mut decoder = ChunkedDecoder::default();
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut fed = 0;
        loop {
            match decoder.decode(&mut buf)? {
                Some(Decoded::Data(d)) => body.extend_from_slice(&d),
                Some(Decoded::End(t)) => return Ok((body, t)),
                None => {
                    if fed >= input.len() {
                        return Err(Error::Incomplete);
                    }
                    let end = (fed + step).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_at_any_split() {
        let input = b"5\r\nhello\r\n1;ext=1\r\n \r\nA \r\n0123456789\r\n0\r\nx-t: 1\r\n\r\n";
        for step in [1, 2, 3, 7, input.len()] {
            let (body, trailers) = decode_all(input, step).expect("valid");
            assert_eq!(body, b"hello 0123456789");
            assert_eq!(trailers.expect("trailers")["x-t"], "1");
        }
        let (body, trailers) = decode_all(b"0\r\n\r\n", 1).expect("valid");
        assert!(body.is_empty() && trailers.is_none());
    }

    #[test]
    fn chunked_syntax_errors_are_refused() {
        for bad in [
            &b"5\nhello\r\n0\r\n\r\n"[..], // bare LF
            b"5\r\nhelloXX0\r\n\r\n",      // no CRLF after data
            b"g\r\n",                      // not hex
            b"\r\n",                       // no size
            b"11111111111111111\r\n",      // 17 digits
            b"5 x\r\nhello\r\n0\r\n\r\n",  // junk after the size
        ] {
            assert!(
                matches!(decode_all(bad, 1), Err(Error::Invalid(_))),
                "{:?} accepted",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!("1;{}\r\n", "x".repeat(MAX_CHUNK_LINE));
        assert!(decode_all(long.as_bytes(), 64).is_err());
    }
}

//! A watch: one long POST to `/v3/watch` whose answer is a stream of JSON
//! objects, one per watch response (`{"result": {...}}`), for as long as etcd
//! keeps the connection.
//!
//! Control path. Responses are read as they arrive and split with serde_json's
//! stream reader, so a response cut across reads waits for its end. The stream
//! ending (etcd stopped, the connection lost) is an error for the caller, who
//! reconnects: a watch never ends on its own.

use bytes::{Buf as _, BytesMut};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use serde_json::Value;

use super::{int, kv, EtcdError};

/// The largest single watch response buffered (a fleet config, with margin).
const MAX_RESPONSE: usize = 16 << 20;

/// What a watch says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// The watch is in place; the store was at this revision.
    Created { revision: i64 },
    /// The key was written (`value`) at `revision`.
    Put { value: Vec<u8>, revision: i64 },
    /// The key was deleted at `revision`.
    Deleted { revision: i64 },
    /// The revisions asked for were compacted away: read the key afresh, then
    /// watch from after that read.
    Compacted { compact_revision: i64 },
}

pub struct Watch {
    body: Incoming,
    buffer: BytesMut,
}

impl Watch {
    pub(super) fn new(body: Incoming) -> Watch {
        Watch {
            body,
            buffer: BytesMut::new(),
        }
    }

    /// The next response's events (never empty); an error when the stream ends.
    pub async fn next(&mut self) -> Result<Vec<WatchEvent>, EtcdError> {
        loop {
            if let Some(events) = self.parse()? {
                if !events.is_empty() {
                    return Ok(events);
                }
                continue;
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                        if self.buffer.len() > MAX_RESPONSE {
                            return Err(EtcdError::Protocol("watch response too large".into()));
                        }
                    }
                }
                Some(Err(e)) => return Err(EtcdError::Unreachable(format!("watch: {e}"))),
                None => return Err(EtcdError::Unreachable("the watch stream ended".into())),
            }
        }
    }

    /// One whole response out of the buffer, if there is one.
    fn parse(&mut self) -> Result<Option<Vec<WatchEvent>>, EtcdError> {
        let mut stream = serde_json::Deserializer::from_slice(&self.buffer).into_iter::<Value>();
        let value = match stream.next() {
            None => {
                self.buffer.clear(); // whitespace only
                return Ok(None);
            }
            Some(Err(e)) if e.is_eof() => return Ok(None),
            Some(Err(e)) => return Err(EtcdError::Protocol(format!("watch: {e}"))),
            Some(Ok(v)) => v,
        };
        let used = stream.byte_offset();
        self.buffer.advance(used);
        events(&value).map(Some)
    }
}

/// The events of one watch response.
pub(crate) fn events(response: &Value) -> Result<Vec<WatchEvent>, EtcdError> {
    if let Some(error) = response.get("error") {
        // The gateway's word for a watch that broke (etcd stopping, its
        // connection lost): the watch is gone and must be made again.
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("watch error");
        return Err(EtcdError::Unreachable(format!("watch: {message}")));
    }
    let Some(result) = response.get("result") else {
        return Ok(Vec::new());
    };
    let compacted = int(result.get("compact_revision"));
    if compacted != 0 {
        return Ok(vec![WatchEvent::Compacted {
            compact_revision: compacted,
        }]);
    }
    let mut out = Vec::new();
    if result.get("created").and_then(Value::as_bool) == Some(true) {
        out.push(WatchEvent::Created {
            revision: int(result.pointer("/header/revision")),
        });
    }
    if result.get("canceled").and_then(Value::as_bool) == Some(true) {
        let reason = result
            .get("cancel_reason")
            .and_then(Value::as_str)
            .unwrap_or("canceled by etcd");
        return Err(EtcdError::Unreachable(format!("watch canceled: {reason}")));
    }
    if let Some(Value::Array(items)) = result.get("events") {
        for e in items {
            let kv = kv(e.get("kv").unwrap_or(&Value::Null))?;
            let deleted = e.get("type").and_then(Value::as_str) == Some("DELETE");
            out.push(if deleted {
                WatchEvent::Deleted {
                    revision: kv.mod_revision,
                }
            } else {
                WatchEvent::Put {
                    value: kv.value,
                    revision: kv.mod_revision,
                }
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn responses_read_as_events() {
        let created = json!({"result": {"header": {"revision": "7"}, "created": true}});
        assert_eq!(
            events(&created).unwrap_or_default(),
            [WatchEvent::Created { revision: 7 }]
        );
        let put = json!({"result": {"events": [
            {"kv": {"key": "Zm9v", "mod_revision": "8", "value": "YmFy"}},
            {"type": "DELETE", "kv": {"key": "Zm9v", "mod_revision": "9"}}]}});
        assert_eq!(
            events(&put).unwrap_or_default(),
            [
                WatchEvent::Put {
                    value: b"bar".to_vec(),
                    revision: 8
                },
                WatchEvent::Deleted { revision: 9 }
            ]
        );
        let compacted = json!({"result": {"compact_revision": "5", "canceled": true}});
        assert_eq!(
            events(&compacted).unwrap_or_default(),
            [WatchEvent::Compacted {
                compact_revision: 5
            }]
        );
        assert!(events(&json!({"error": {"message": "boom"}})).is_err());
    }
}

//! The guard's limits, each at its bound and one past it, over an in-memory
//! pipe standing for the client's socket.

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend([kind, flags]);
    f.extend(stream.to_be_bytes());
    f.extend(payload);
    f
}

/// A guard over one end of a pipe whose other end (the client) has sent
/// the preface.
async fn guarded(stall: Duration) -> (Guard<DuplexStream>, DuplexStream, Arc<ConnState>) {
    let (server, mut client) = tokio::io::duplex(1 << 20);
    client
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .expect("preface");
    let state = ConnState::new(Arc::default(), Duration::from_secs(30));
    (Guard::new(server, state.clone(), stall), client, state)
}

/// Read through the guard until the pipe is empty: the error, if it tripped.
async fn drain(guard: &mut Guard<DuplexStream>) -> Option<io::Error> {
    let mut buf = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(Duration::from_millis(50), guard.read(&mut buf));
        match read.await {
            Err(_) => return None,
            Ok(Ok(0)) => return None,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Some(e),
        }
    }
}

/// The GOAWAY the client got: error code and debug data.
async fn goaway_sent(client: &mut DuplexStream) -> (u32, Vec<u8>) {
    let mut head = [0u8; 9];
    client.read_exact(&mut head).await.expect("a frame");
    assert_eq!(head[3], frames::GOAWAY);
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; len];
    client.read_exact(&mut payload).await.expect("payload");
    let code = u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
    (code, payload[8..].to_vec())
}

#[tokio::test]
async fn pings_over_the_limit_close_with_enhance_your_calm() {
    let (mut guard, mut client, _) = guarded(Duration::from_secs(60)).await;
    let ping = frame(frames::PING, 0, 0, &[1; 8]);
    let n = MAX_PINGS_PER_SECOND as usize;
    client.write_all(&ping.repeat(n)).await.expect("write");
    assert!(drain(&mut guard).await.is_none(), "{n} PINGs are allowed");
    client.write_all(&ping).await.expect("write");
    assert!(drain(&mut guard).await.is_some(), "one more is not");
    let (code, debug) = goaway_sent(&mut client).await;
    assert_eq!(code, 0xb);
    assert_eq!(debug, b"ping_flood");
    assert_eq!(guard.verdict().load(Ordering::Relaxed), 0xb);
}

/// gRPC's bandwidth probes: a PING after each burst of response data.
#[tokio::test]
async fn a_ping_after_response_data_is_free() {
    let (mut guard, mut client, _) = guarded(Duration::from_secs(60)).await;
    let ping = frame(frames::PING, 0, 0, &[1; 8]);
    let data = frame(frames::DATA, 0, 1, &[0; 100]);
    for _ in 0..3 * MAX_PINGS_PER_SECOND {
        guard.write_all(&data).await.expect("response data");
        client.write_all(&ping).await.expect("write");
        let mut buf = [0u8; 64];
        let n = guard.read(&mut buf).await.expect("not closed");
        assert!(n > 0);
    }
}

#[tokio::test]
async fn settings_and_resets_over_their_limits_close() {
    for (kind, payload, limit, what) in [
        (
            frames::SETTINGS,
            &[][..],
            MAX_SETTINGS_PER_SECOND,
            "settings_flood",
        ),
        (
            frames::RST_STREAM,
            &[0, 0, 0, 8][..],
            MAX_RESETS_PER_SECOND,
            "rapid_reset",
        ),
    ] {
        let (mut guard, mut client, _) = guarded(Duration::from_secs(60)).await;
        let one = frame(
            kind,
            0,
            if kind == frames::SETTINGS { 0 } else { 1 },
            payload,
        );
        client
            .write_all(&one.repeat(limit as usize))
            .await
            .expect("write");
        assert!(drain(&mut guard).await.is_none(), "{what}: {limit} allowed");
        client.write_all(&one).await.expect("write");
        assert!(drain(&mut guard).await.is_some(), "{what}: one more is not");
        assert_eq!(
            goaway_sent(&mut client).await,
            (0xb, what.as_bytes().to_vec())
        );
    }
}

/// A GOAWAY is only written between two of h2's frames: in the middle of
/// one, the connection is closed without it.
#[tokio::test]
async fn no_goaway_in_the_middle_of_a_frame() {
    let (mut guard, mut client, _) = guarded(Duration::from_secs(60)).await;
    let data = frame(frames::DATA, 0, 1, &[0; 100]);
    guard.write_all(&data[..50]).await.expect("half a frame");
    let ping = frame(frames::PING, 0, 0, &[1; 8]);
    let n = MAX_PINGS_PER_SECOND as usize + 1;
    client.write_all(&ping.repeat(n)).await.expect("write");
    assert!(drain(&mut guard).await.is_some());
    drop(guard);
    let mut sent = Vec::new();
    client.read_to_end(&mut sent).await.expect("read");
    assert_eq!(sent, &data[..50]);
}

/// Streams waiting on a client that gives no window: closed after the
/// stall limit; with window given, never.
#[tokio::test]
async fn a_shut_window_with_requests_waiting_is_closed_after_the_limit() {
    let stall = Duration::from_millis(300);
    let (mut guard, mut client, state) = guarded(stall).await;
    let zero_window = frame(frames::SETTINGS, 0, 0, &[0, 4, 0, 0, 0, 0]);
    client.write_all(&zero_window).await.expect("write");
    assert!(drain(&mut guard).await.is_none());
    // No request waiting: not stalled, however long.
    let mut buf = [0u8; 64];
    let idle = tokio::time::timeout(2 * stall, guard.read(&mut buf)).await;
    assert!(idle.is_err(), "nothing to read, not closed");
    let request = state.begin(true);
    let t = std::time::Instant::now();
    let e = guard.read(&mut buf).await.expect_err("closed");
    assert!(
        t.elapsed() >= stall - Duration::from_millis(20),
        "{:?}",
        t.elapsed()
    );
    assert!(e.to_string().contains("zero_window"), "{e}");
    assert_eq!(
        goaway_sent(&mut client).await,
        (0xb, b"zero_window".to_vec())
    );
    drop(request);
}

//! Zero-downtime binary upgrade (SIGUSR2, SPEC §13): a new `ballast` takes over
//! the listening sockets of the running one, which then drains and exits.
//!
//! Control path. As HAProxy's `-x`, Envoy's hot restart and Pingora's graceful
//! upgrade do, the sockets themselves are passed (`SCM_RIGHTS` over a Unix
//! socket), not bound again with `SO_REUSEPORT`: both processes then hold the
//! same kernel socket, so a connection waiting in its accept queue is accepted by
//! one or the other and none is reset when the old process closes its copy
//! (with `SO_REUSEPORT` each process has a queue of its own, and what waits in
//! the old one's is lost).
//!
//! The old process makes a `SOCK_SEQPACKET` socket pair (one message per socket,
//! boundaries kept), starts the binary at the path it was started from with the
//! same arguments, and lets it inherit one end, named by `BALLAST_UPGRADE_FD` (a
//! descriptor, not a path: no other process can connect and take the sockets).
//! It sends `listener <name> <bind> <local>` or `admin <bind> <local>` with
//! each socket, then `end`. The new process loads its config as a restart would
//! (same file, same state directory), starts with the sockets (a listener whose
//! address matches one accepts on it instead of binding), and answers
//! `serving <pid>` once every listener accepts. Only then does the old process
//! stop accepting and drain, as on SIGTERM. If the new process exits first, or
//! says nothing within [`TAKEOVER_TIMEOUT`], the old one kills it, says why at
//! ERROR and keeps serving.
//!
//! Under systemd the old process, when `NOTIFY_SOCKET` is set (`NotifyAccess=main`
//! or `Type=notify`), tells the service manager the new main PID before exiting,
//! so that the service is not taken for stopped.

use std::ffi::OsString;
use std::io::{ErrorKind, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use ballast_proxy::{ListeningSocket, Server};
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};

/// The descriptor of the socket to the process being replaced.
const ENV: &str = "BALLAST_UPGRADE_FD";

/// How long the new process has to start serving.
pub const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(30);

/// The listening sockets of a running process, as handed over.
pub struct Sockets {
    pub listeners: Vec<ListeningSocket>,
    pub admin: Option<ListeningSocket>,
}

/// The old process's side: what to start, and the upgrade in progress.
pub struct Upgrade {
    exe: PathBuf,
    /// The admin API's configured address (port 0 stays 0).
    admin_bind: SocketAddr,
    args: Vec<OsString>,
    running: Option<tokio::task::JoinHandle<anyhow::Result<u32>>>,
}

impl Upgrade {
    /// The binary's path and arguments, read at start: once a new binary has
    /// replaced the file, `/proc/self/exe` names the old one, "(deleted)".
    pub fn new(admin_bind: SocketAddr) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("the path of this binary")?;
        Ok(Upgrade {
            exe,
            admin_bind,
            args: std::env::args_os().skip(1).collect(),
            running: None,
        })
    }

    /// SIGUSR2: start the new process and hand it `admin` and every listener's
    /// socket. One upgrade at a time.
    pub async fn start(&mut self, server: &Server, admin: &std::net::TcpListener) {
        if self.running.is_some() {
            tracing::warn!("SIGUSR2: an upgrade is already in progress");
            return;
        }
        let sockets = match copies(server, admin, self.admin_bind).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "upgrade failed: cannot copy the listening sockets; this process keeps serving");
                return;
            }
        };
        tracing::info!(
            binary = %self.exe.display(), listeners = sockets.listeners.len(),
            "SIGUSR2: starting a new process to take over the listening sockets"
        );
        let (exe, args) = (self.exe.clone(), self.args.clone());
        self.running = Some(tokio::task::spawn_blocking(move || {
            hand_over(exe, args, sockets)
        }));
    }

    /// Resolves when an upgrade ends: true once the new process serves (this
    /// one should drain and exit), false if it failed (said at ERROR). Never
    /// resolves while no upgrade runs.
    pub async fn finished(&mut self) -> bool {
        let Some(running) = self.running.as_mut() else {
            return std::future::pending().await;
        };
        let result = running.await;
        self.running = None;
        match result {
            Ok(Ok(pid)) => {
                tracing::info!(pid, "upgrade: the new process serves; draining this one");
                notify_main_pid(pid);
                true
            }
            Ok(Err(e)) => {
                tracing::error!("upgrade failed: {e:#}; this process keeps serving");
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "upgrade failed; this process keeps serving");
                false
            }
        }
    }
}

async fn copies(
    server: &Server,
    admin: &std::net::TcpListener,
    bind: SocketAddr,
) -> std::io::Result<Sockets> {
    let listeners = server.listening_sockets().await?;
    let local_addr = admin.local_addr()?;
    let admin = ListeningSocket {
        name: "admin".to_string(),
        bind,
        local_addr,
        socket: admin.try_clone()?,
    };
    Ok(Sockets {
        listeners,
        admin: Some(admin),
    })
}

/// Start the new process and hand it the sockets; its pid once it serves.
/// Blocking (a thread of its own).
fn hand_over(exe: PathBuf, args: Vec<OsString>, sockets: Sockets) -> anyhow::Result<u32> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context("socketpair")?;
    // `dup` leaves close-on-exec off: the one descriptor the new process inherits
    // (nothing else in this process starts programs meanwhile).
    let inheritable = nix::unistd::dup(&theirs).context("dup")?;
    drop(theirs);
    let mut child = Command::new(&exe)
        .args(&args)
        .env(ENV, inheritable.as_raw_fd().to_string())
        .spawn()
        .with_context(|| format!("cannot start {}", exe.display()))?;
    drop(inheritable);
    let result = talk(ours, &sockets, &mut child);
    if result.is_err() {
        let _ = child.kill();
        let _ = child.wait();
    }
    result
}

fn talk(channel: OwnedFd, sockets: &Sockets, child: &mut Child) -> anyhow::Result<u32> {
    let channel = UnixDatagram::from(channel);
    channel.set_write_timeout(Some(TAKEOVER_TIMEOUT))?;
    channel.set_read_timeout(Some(TAKEOVER_TIMEOUT))?;
    let fd = channel.as_raw_fd();
    let sent = (|| {
        for l in &sockets.listeners {
            let line = format!("listener {} {} {}", l.bind, l.local_addr, l.name);
            send(fd, &line, Some(l.socket.as_raw_fd()))?;
        }
        if let Some(a) = &sockets.admin {
            send(
                fd,
                &format!("admin {} {}", a.bind, a.local_addr),
                Some(a.socket.as_raw_fd()),
            )?;
        }
        send(fd, "end", None)
    })();
    let mut answer = [0u8; 64];
    let answered = match sent {
        Ok(()) => recv_within(&channel, &mut answer, Instant::now() + TAKEOVER_TIMEOUT),
        Err(e) => Err(e),
    };
    match answered {
        Ok(n) if n > 0 => {
            let text = String::from_utf8_lossy(&answer[..n]);
            match text.strip_prefix("serving ").and_then(|p| p.parse().ok()) {
                Some(pid) => Ok(pid),
                None => bail!("unexpected answer from the new process: {text:?}"),
            }
        }
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => bail!(
            "the new process (pid {}) did not serve within {} s; killed",
            child.id(),
            TAKEOVER_TIMEOUT.as_secs()
        ),
        Err(e) if !closed(&e) => bail!("talking to the new process (pid {}): {e}", child.id()),
        // It closed its end (end of file, or a write found it closed): it
        // exited (a bad config, a crash).
        _ => {
            let status = child.wait().context("wait for the new process")?;
            bail!(
                "the new process (pid {}) exited before serving ({status}); see its log above",
                child.id()
            )
        }
    }
}

/// The other end is gone: a write to a closed socket.
fn closed(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::NotConnected
    )
}

/// `recv` until `deadline`, resumed after a signal (a socket with a timeout is
/// interrupted by every signal, `SA_RESTART` or not).
fn recv_within(
    channel: &UnixDatagram,
    buf: &mut [u8],
    deadline: Instant,
) -> std::io::Result<usize> {
    loop {
        match channel.recv(buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(ErrorKind::TimedOut.into());
                }
                channel.set_read_timeout(Some(left))?;
            }
            result => return result,
        }
    }
}

fn send(fd: RawFd, text: &str, socket: Option<RawFd>) -> std::io::Result<()> {
    let fds = socket.map(|s| [s]);
    let cmsgs: Vec<ControlMessage> = fds.iter().map(|f| ControlMessage::ScmRights(f)).collect();
    let iov = [IoSlice::new(text.as_bytes())];
    loop {
        match sendmsg::<()>(fd, &iov, &cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => return Ok(()),
        }
    }
}

/// The new process's side: the sockets handed over, and the channel to say
/// when it serves.
pub struct Takeover {
    channel: UnixDatagram,
    pub sockets: Sockets,
}

impl Takeover {
    /// The sockets of the process this one replaces, when started by an upgrade
    /// (`BALLAST_UPGRADE_FD` is set).
    pub fn receive() -> anyhow::Result<Option<Takeover>> {
        let Some(fd) = std::env::var_os(ENV) else {
            return Ok(None);
        };
        let fd: RawFd = fd
            .to_str()
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("{ENV}: not a descriptor: {fd:?}"))?;
        let channel = UnixDatagram::from(own(fd));
        channel.set_read_timeout(Some(TAKEOVER_TIMEOUT))?;
        let sockets = receive_sockets(&channel).context("upgrade: receiving the sockets")?;
        tracing::info!(
            listeners = sockets.listeners.len(),
            "upgrade: took over the listening sockets of the previous process"
        );
        Ok(Some(Takeover { channel, sockets }))
    }

    /// The admin API's listening socket: the one handed over if it was bound at
    /// `bind`, else a new one.
    pub fn admin_socket(
        takeover: Option<&mut Takeover>,
        bind: SocketAddr,
    ) -> std::io::Result<std::net::TcpListener> {
        match takeover.and_then(|t| t.sockets.admin.take()) {
            Some(a) if a.bind == bind || a.local_addr == bind => Ok(a.socket),
            _ => std::net::TcpListener::bind(bind),
        }
    }

    /// Every listener accepts: tell the old process, which then drains.
    pub fn serving(self) {
        let message = format!("serving {}", std::process::id());
        if let Err(e) = self.channel.send(message.as_bytes()) {
            // The old process is gone (stopped meanwhile): this one serves on.
            tracing::warn!(error = %e, "upgrade: cannot tell the previous process that this one serves");
        }
    }
}

fn receive_sockets(channel: &UnixDatagram) -> anyhow::Result<Sockets> {
    let mut sockets = Sockets {
        listeners: Vec::new(),
        admin: None,
    };
    loop {
        let mut buf = [0u8; 4096];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = match recvmsg::<()>(
            channel.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            msg => msg?,
        };
        let mut fds = Vec::new();
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(received) = c {
                fds.extend(received.into_iter().map(own));
            }
        }
        let n = msg.bytes;
        if n == 0 {
            bail!("the previous process closed the channel");
        }
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let mut words = text.splitn(4, ' ');
        let (kind, bind, local) = (words.next(), words.next(), words.next());
        if kind == Some("end") {
            return Ok(sockets);
        }
        let addr = |a: Option<&str>| -> anyhow::Result<SocketAddr> {
            a.and_then(|a| a.parse().ok())
                .with_context(|| format!("bad message {text:?}"))
        };
        let (bind, local_addr) = (addr(bind)?, addr(local)?);
        let Some(fd) = fds.pop() else {
            bail!("no socket with {text:?}");
        };
        let socket = ListeningSocket {
            name: words.next().unwrap_or("admin").to_string(),
            bind,
            local_addr,
            socket: std::net::TcpListener::from(fd),
        };
        match kind {
            Some("listener") => sockets.listeners.push(socket),
            Some("admin") => sockets.admin = Some(socket),
            _ => bail!("bad message {text:?}"),
        }
    }
}

/// Take ownership of a descriptor this process was given: the channel it
/// inherited, or a socket received with `SCM_RIGHTS`.
fn own(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` is open and owned by nothing else in this process: the
    // kernel installed it for us (`SCM_RIGHTS`), or it was inherited across exec
    // under the number the parent put in `BALLAST_UPGRADE_FD`, which is read once.
    #[allow(unsafe_code)]
    unsafe {
        OwnedFd::from_raw_fd(fd)
    }
}

/// Under systemd (`NOTIFY_SOCKET` set): the new process is the service's main
/// process now (sd_notify's `MAINPID=`), so the old one's exit does not stop
/// the service.
fn notify_main_pid(pid: u32) {
    use std::os::linux::net::SocketAddrExt as _;
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sent = (|| {
        let addr = match path.as_encoded_bytes().strip_prefix(b"@") {
            Some(name) => std::os::unix::net::SocketAddr::from_abstract_name(name)?,
            None => std::os::unix::net::SocketAddr::from_pathname(&path)?,
        };
        UnixDatagram::unbound()?.send_to_addr(format!("MAINPID={pid}").as_bytes(), &addr)
    })();
    if let Err(e) = sent {
        tracing::warn!(error = %e, "cannot tell systemd the new main PID (NOTIFY_SOCKET)");
    }
}

//! Where actors listen and how they connect: a Unix domain socket in a
//! private directory by default, TCP on loopback as an option.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::task::{Context, Poll};

use smol::io::{AsyncRead, AsyncWrite};
use smol::net::unix::{UnixListener, UnixStream};
use smol::net::{TcpListener, TcpStream};

/// An actor's listening address, as passed to children in the
/// environment: `unix:/path/to/sock` or `tcp:127.0.0.1:4000`.
///
/// ```
/// use smol_devx::ipc::transport::Addr;
/// let addr: Addr = "tcp:127.0.0.1:4000".parse().unwrap();
/// assert_eq!(addr.to_string(), "tcp:127.0.0.1:4000");
/// assert!("ftp:x".parse::<Addr>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Addr {
    /// A Unix domain socket path.
    Unix(PathBuf),
    /// A TCP address (loopback in practice).
    Tcp(SocketAddr),
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Unix(path) => write!(f, "unix:{}", path.display()),
            Addr::Tcp(addr) => write!(f, "tcp:{addr}"),
        }
    }
}

impl FromStr for Addr {
    type Err = io::Error;

    fn from_str(s: &str) -> io::Result<Self> {
        let bad = || io::Error::new(io::ErrorKind::InvalidInput, format!("bad address {s:?}"));
        match s.split_once(':') {
            Some(("unix", path)) if !path.is_empty() => Ok(Addr::Unix(path.into())),
            Some(("tcp", addr)) => addr.parse().map(Addr::Tcp).map_err(|_| bad()),
            _ => Err(bad()),
        }
    }
}

/// Which transport a new listener uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Transport {
    /// A Unix domain socket (0600) in a fresh private directory (0700).
    #[default]
    Unix,
    /// TCP on `127.0.0.1`, on a port the system picks.
    TcpLoopback,
}

/// A bound listener. Dropping it removes its socket and directory.
pub struct Listener {
    inner: ListenerKind,
    addr: Addr,
}

enum ListenerKind {
    Unix(UnixListener, PathBuf),
    Tcp(TcpListener),
}

impl Listener {
    /// Binds a new listener of the given kind; a Unix socket goes in a
    /// private directory of its own.
    pub fn bind(transport: Transport) -> io::Result<Self> {
        Self::bind_under(transport, None)
    }

    /// [`Listener::bind`], with the private directory of a Unix socket
    /// made inside `tree_dir` (the root's) when given: every actor's
    /// socket then lives under the root's one directory, which the root
    /// removes on its way out, also those of actors that died without
    /// cleaning up.
    pub fn bind_under(transport: Transport, tree_dir: Option<&Path>) -> io::Result<Self> {
        match transport {
            Transport::Unix => {
                // The root's directory was chosen with room for this level
                // (see `fits_sun_path`).
                let dir = match tree_dir {
                    Some(tree) => private_dir_in(tree, "")?,
                    None => private_dir()?,
                };
                let path = dir.join("sock");
                let listener = UnixListener::bind(&path)?;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
                Ok(Self {
                    inner: ListenerKind::Unix(listener, dir),
                    addr: Addr::Unix(path),
                })
            }
            Transport::TcpLoopback => {
                let std = std::net::TcpListener::bind("127.0.0.1:0")?;
                let addr = Addr::Tcp(std.local_addr()?);
                Ok(Self {
                    inner: ListenerKind::Tcp(TcpListener::try_from(std)?),
                    addr,
                })
            }
        }
    }

    /// The address peers connect to.
    pub fn addr(&self) -> &Addr {
        &self.addr
    }

    /// Accepts one connection, with the peer's user id where the
    /// transport can tell (`SO_PEERCRED` on Unix sockets).
    pub async fn accept(&self) -> io::Result<(Stream, Option<u32>)> {
        match &self.inner {
            ListenerKind::Unix(listener, _) => {
                let (stream, _) = listener.accept().await?;
                let cred = rustix::net::sockopt::socket_peercred(&stream)?;
                Ok((Stream::Unix(stream), Some(cred.uid.as_raw())))
            }
            ListenerKind::Tcp(listener) => {
                let (stream, _) = listener.accept().await?;
                stream.set_nodelay(true)?;
                Ok((Stream::Tcp(stream), None))
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let ListenerKind::Unix(_, dir) = &self.inner {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Where the private socket directories go: `$XDG_RUNTIME_DIR`, else the
/// temp dir, unless a socket path under it would not fit in a
/// `sockaddr_un`; then `/tmp` (said once in the log).
fn socket_base() -> PathBuf {
    let wanted = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    if fits_sun_path(&wanted) {
        return wanted;
    }
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        log::info!(
            "socket directory base {} is too long for a Unix socket path: using {SHORT_BASE}",
            wanted.display()
        );
    });
    PathBuf::from(SHORT_BASE)
}

/// The short base used when the usual one is too long.
const SHORT_BASE: &str = "/tmp";

/// Bytes a socket path may have (`sun_path` is 108 on Linux, with its NUL).
const SUN_PATH_MAX: usize = 107;

/// Whether the longest socket path made under `base` fits in a
/// `sockaddr_un`: a subactor's, `<base>/smol-devx-<pid>-<8 hex>/<pid>-<8
/// hex>/sock` under the root's base (a root's own is shorter; a
/// subactor's directory base is the root's directory, with room for one
/// level).
fn fits_sun_path(base: &Path) -> bool {
    let level = "/4294967295-ffffffff".len();
    let longest_rest = DIR_PREFIX.len() + 2 * level + "/sock".len();
    base.as_os_str().len() + longest_rest <= SUN_PATH_MAX
}

const DIR_PREFIX: &str = "smol-devx-";

/// The pid in a socket directory name of the exact form this module makes
/// (`smol-devx-<pid>-<8 hex digits>`); `None` for any other name.
fn dir_pid(name: &str) -> Option<u32> {
    let (pid, suffix) = name.strip_prefix(DIR_PREFIX)?.split_once('-')?;
    let hex = suffix.len() == 8 && suffix.bytes().all(|b| b.is_ascii_hexdigit());
    let digits = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
    if hex && digits {
        pid.parse().ok()
    } else {
        None
    }
}

/// Removes the socket directories under `base` for which `stale(pid,
/// dir)` holds. Only names of the exact form this module makes are
/// touched, and only directories of this user.
fn remove_dirs_where(base: &Path, stale: impl Fn(u32, &Path) -> bool) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    let me = rustix::process::getuid().as_raw();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(dir_pid) else {
            continue;
        };
        let path = entry.path();
        let mine = entry.metadata().is_ok_and(|m| m.is_dir() && m.uid() == me);
        if !mine || !stale(pid, &path) {
            continue;
        }
        match std::fs::remove_dir_all(&path) {
            Ok(()) => log::debug!("removed {} of dead pid {pid}", path.display()),
            // Its reaper and a starting root's sweep may race to it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => log::warn!("cannot remove {}: {e}", path.display()),
        }
    }
}

/// Removes the socket directories that process `pid`, now dead and
/// reaped, left behind: a process killed by a signal runs no cleanup.
pub(crate) fn remove_dirs_of(pid: u32) {
    remove_dirs_where(&socket_base(), |p, _| p == pid);
}

/// Removes socket directories that processes which died without cleanup
/// left, and that no parent reaped: a SIGKILLed root's whole tree. The
/// root calls it at start, so they do not pile up run after run.
///
/// A directory is stale when its pid is no live process here and nothing
/// listens on its socket: a process in another pid namespace that shares
/// this temp dir keeps its directory.
pub(crate) fn remove_stale_dirs() {
    remove_stale_dirs_in(&socket_base());
}

fn remove_stale_dirs_in(base: &Path) {
    let me = std::process::id();
    remove_dirs_where(base, |pid, dir| {
        pid != me
            && !is_alive(pid)
            && std::os::unix::net::UnixStream::connect(dir.join("sock")).is_err()
    });
}

fn is_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    // EPERM: alive, someone else's.
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

/// A fresh directory only this user can enter, for one socket.
fn private_dir() -> io::Result<PathBuf> {
    private_dir_in(&socket_base(), DIR_PREFIX)
}

/// A fresh directory `<base>/<prefix><pid>-<8 hex>` only this user can
/// enter.
fn private_dir_in(base: &Path, prefix: &str) -> io::Result<PathBuf> {
    for _ in 0..16 {
        let dir = base.join(format!(
            "{prefix}{}-{:08x}",
            std::process::id(),
            random_u32()?
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("no free private socket directory"))
}

fn random_u32() -> io::Result<u32> {
    let mut b = [0u8; 4];
    crate::ipc::random::random_bytes(&mut b)?;
    Ok(u32::from_ne_bytes(b))
}

/// Connects to an actor's address.
pub async fn connect(addr: &Addr) -> io::Result<Stream> {
    match addr {
        Addr::Unix(path) => Ok(Stream::Unix(UnixStream::connect(path).await?)),
        Addr::Tcp(addr) => {
            let stream = TcpStream::connect(*addr).await?;
            stream.set_nodelay(true)?;
            Ok(Stream::Tcp(stream))
        }
    }
}

/// A connected byte stream of either transport. Clones share the socket,
/// so one clone can read while another writes.
#[derive(Clone, Debug)]
pub enum Stream {
    /// Unix domain socket.
    Unix(UnixStream),
    /// TCP.
    Tcp(TcpStream),
}

impl Stream {
    /// Closes both directions: the peer's reads end.
    pub fn shutdown(&self) {
        let _ = match self {
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Both),
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Both),
        };
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_close(cx),
            Stream::Tcp(s) => Pin::new(s).poll_close(cx),
        }
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Unix(s) => s.as_fd(),
            Stream::Tcp(s) => s.as_fd(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_socket_dir_names_carry_a_pid() {
        assert_eq!(dir_pid("smol-devx-4242-0123abcd"), Some(4242));
        for other in [
            "smol-devx-4242-0123abc",
            "smol-devx-+42-0123abcd",
            "smol-devx--0123abcd",
            "smol-devx-4242-0123abcg",
            "smol-devx-4242.log",
            "smol-devx-tree-4242.json",
        ] {
            assert_eq!(dir_pid(other), None, "{other}");
        }
    }

    #[test]
    fn stale_dirs_go_live_ones_stay() {
        let base =
            std::env::temp_dir().join(format!("smol-devx-sweep-test-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        // A pid that was alive and is reaped now.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let dir = |pid: u32, tag: &str| {
            let dir = base.join(format!("smol-devx-{pid}-{tag}"));
            std::fs::create_dir_all(&dir).unwrap();
            dir
        };
        let stale = dir(dead, "0000dead");
        let own = dir(std::process::id(), "0000beef");
        // Dead here, but something listens: another pid namespace's.
        let listened = dir(dead, "0000cafe");
        let _listener = std::os::unix::net::UnixListener::bind(listened.join("sock")).unwrap();
        let unrelated = base.join("smol-devx-notes");
        std::fs::create_dir_all(&unrelated).unwrap();

        remove_stale_dirs_in(&base);
        assert!(!stale.exists());
        assert!(own.exists());
        assert!(listened.exists());
        assert!(unrelated.exists());
        std::fs::remove_dir_all(&base).unwrap();
    }
}

//! The debugger embedded in an actor system that is not this crate's: the
//! `toy` system of `examples/embed/mod.rs` (its own spawning and IPC), with
//! async-std's executor driving every actor (`async_std::task::block_on`)
//! and async-std's Unix sockets. The same tree runs on smol in
//! `embed_host`.
//!
//! `cargo run --example embed_async_std`: `pauser` pauses (`p x` shows 42),
//! `crasher` fails meanwhile and queues for the terminal; `c` hands it
//! the terminal for its crash REPL, `c` again gives the root's crash
//! REPL on `crasher`'s error, and `c` ends the program with exit code 1.
//! With `SMOL_DEVX_STACK_ON_SIG=1`, `kill -USR1 <root pid>` writes the
//! whole tree's task dump to `$TMPDIR/smol-devx-tree-<root pid>.json`.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use smol_devx::debug::dialog::BoxFuture;

mod embed;

struct AsyncStd;

impl embed::Rt for AsyncStd {
    type Stream = async_std::os::unix::net::UnixStream;

    fn block_on<T>(fut: impl Future<Output = T>) -> T {
        async_std::task::block_on(fut)
    }

    async fn connect(path: PathBuf) -> io::Result<Self::Stream> {
        async_std::os::unix::net::UnixStream::connect(path).await
    }

    fn listen(path: &Path, serve: fn(Self::Stream) -> BoxFuture<'static, ()>) -> io::Result<()> {
        let bound = std::os::unix::net::UnixListener::bind(path)?;
        let listener = async_std::os::unix::net::UnixListener::from(bound);
        async_std::task::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                async_std::task::spawn(serve(stream));
            }
        });
        Ok(())
    }

    async fn sleep(d: Duration) {
        async_std::task::sleep(d).await
    }
}

fn pauser() -> BoxFuture<'static, Result<(), embed::Failure>> {
    Box::pin(async {
        let x = 42;
        smol_devx::pause!(x).await?;
        Ok(())
    })
}

fn main() -> std::process::ExitCode {
    embed::main::<AsyncStd>(&[("pauser", pauser), ("crasher", embed::crasher)])
}

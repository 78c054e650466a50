//! The debugger embedded in an actor system that is not this crate's: the
//! `toy` system of `examples/embed/mod.rs` (its own spawning and IPC), on
//! smol's executor. The same tree runs on async-std in `embed_async_std`.
//!
//! `cargo run --example embed_host`: `pauser` pauses (`p x` shows 42),
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

struct Smol;

impl embed::Rt for Smol {
    type Stream = smol::net::unix::UnixStream;

    fn block_on<T>(fut: impl Future<Output = T>) -> T {
        smol::block_on(fut)
    }

    fn connect(path: PathBuf) -> impl Future<Output = io::Result<Self::Stream>> + Send {
        smol::net::unix::UnixStream::connect(path)
    }

    fn listen(path: &Path, serve: fn(Self::Stream) -> BoxFuture<'static, ()>) -> io::Result<()> {
        let listener = smol::net::unix::UnixListener::bind(path)?;
        smol::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                smol::spawn(serve(stream)).detach();
            }
        })
        .detach();
        Ok(())
    }

    async fn sleep(d: Duration) {
        smol::Timer::after(d).await;
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
    embed::main::<Smol>(&[("pauser", pauser), ("crasher", embed::crasher)])
}

//! # smol-devx
//!
//! A multi-process debugger for actor trees built on the [smol] runtime,
//! modelled on the debug subsystem of the Python actor runtime tractor.
//!
//! The crate is built in layers; each uses only the layers below it:
//!
//! | layer | modules | owns |
//! |---|---|---|
//! | wire | [`msg`], [`codec`] | message types, length-prefixed CBOR frames, the per-task payload spec |
//! | task | [`task`] | runtime-agnostic task-local storage; the registry of tracked tasks and its tree |
//! | debug | [`debug`] | the host seam ([`debug::host`]), the tree-wide TTY lock, pause and crash REPLs, ctrl-c |
//! | devx | [`stack_on_sig`], [`log`] | `kill -USR1` task-tree dumps; logging setup |
//! | runtime (feature `runtime`, default) | `ipc`, `actor` | the reference actor system: transports, handshake, dialogs, the actor tree; one debugger host among others |
//!
//! The debugger embeds in any actor system on smol or async-std: the
//! system implements [`debug::host::Host`] and installs it once per
//! process. `cargo build --no-default-features` builds the debugger
//! alone.
//!
//! Everything that crosses a process boundary goes through [`codec`],
//! which bounds frame size and nesting depth and turns every bad byte
//! sequence into a typed [`codec::CodecError`].
//!
//! ```
//! use smol_devx::codec::{Codec, PldSpec, encode_pld};
//! use smol_devx::task::{decode_pld, with_pld_spec};
//! use smol_devx::msg::{ActorUid, LockMsg, LockRelease, Msg};
//!
//! let release = LockMsg::LockRelease(LockRelease {
//!     subactor_uid: ActorUid::new("child", "1f78"),
//!     cid: 7,
//! });
//! let frame = Codec::default()
//!     .encode(&Msg::Yield { cid: 7, pld: encode_pld(&release).unwrap() })
//!     .unwrap();
//! let (msg, used) = Codec::default().decode_frame(&frame).unwrap();
//! assert_eq!(used, frame.len());
//! let Msg::Yield { pld, .. } = msg else { unreachable!() };
//!
//! // Inside the lock dialog's task only lock messages are accepted.
//! let got: LockMsg = smol::block_on(with_pld_spec(&PldSpec::LOCK, async {
//!     decode_pld(&pld)
//! }))
//! .unwrap();
//! assert_eq!(got, release);
//! ```
//!
//! [smol]: https://docs.rs/smol

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub use report::Report;

#[cfg(feature = "runtime")]
pub mod actor;
pub mod codec;
pub mod debug;
#[cfg(feature = "runtime")]
pub mod ipc;
pub mod log;
pub mod msg;
pub mod report;
pub mod stack_on_sig;
pub mod task;

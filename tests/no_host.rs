//! A process with no debugger host: `pause!` and the tree lock are
//! refused with a typed error at once, and nothing hangs.

use smol_devx::debug::lock_dialog::{acquire_debug_lock, maybe_wait_for_debugger};
use smol_devx::debug::pause::PauseError;
use smol_devx::debug::DebugError;
use smol_devx::msg::TaskUid;

#[test]
fn without_a_host_the_debugger_refuses_and_says_why() {
    let paused = smol::block_on(smol_devx::pause!());
    assert!(
        matches!(paused, Err(PauseError::Refused(DebugError::NoHost))),
        "{paused:?}"
    );
    let message = paused.unwrap_err().to_string();
    assert!(message.contains("debug::install"), "{message}");
    let locked = smol::block_on(acquire_debug_lock(TaskUid::new("t", 1)));
    assert!(
        matches!(locked, Err(DebugError::NoHost)),
        "{:?}",
        locked.err()
    );
    assert!(!smol::block_on(maybe_wait_for_debugger()));
}

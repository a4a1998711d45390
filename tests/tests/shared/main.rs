//! The shared crate against the emulator (notifications, state documents and claims), and the
//! harness's own database servers.

mod databases;
mod notify;
mod state;

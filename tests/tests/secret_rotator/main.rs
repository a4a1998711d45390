//! secret-rotator against real PostgreSQL and MariaDB servers and the emulator's Secrets Manager:
//! rotations end to end, clones, the guard against escalation, and takeover of an interrupted
//! rotation.

mod clones;
mod guard;
mod rotation;
mod takeover;

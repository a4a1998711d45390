//! The hardening tests: faults between the functions and AWS, processes killed mid-invocation,
//! concurrent writers, load on the Function URL, and the secret-leak guard's own checks. (The
//! fuzz tests are a binary of their own: they count allocations with a global allocator.)

mod concurrency;
mod faults;
mod faults_functions;
mod kill;
mod leaks;
mod load;

/// One hardening test at a time: they measure deadlines, time kills and load the two cores, so a
/// neighbour must not decide their outcome.
pub async fn alone() -> tokio::sync::MutexGuard<'static, ()> {
    static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    ALONE.lock().await
}

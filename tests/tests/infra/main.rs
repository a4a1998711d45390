//! infra/ checked: the HCL is parsed and compared with what the functions read and call
//! (`against_code`), the EventBridge patterns are run on the fixtures (`events`), and the layout
//! and references are checked as `terraform fmt` and `validate` would (`layout`); and it is
//! applied for real against the emulator, its functions run as the roles it made (`apply`, with
//! the IAM evaluator of `policy.rs` over the calls `recorded.rs` maps).

mod against_code;
mod apply;
mod events;
mod layout;
mod policy;
mod recorded;

mod code;
mod fmt;
#[path = "hcl.rs"]
mod hcl_model;
mod iam;
mod pattern;
mod refs;
mod source;
mod support;

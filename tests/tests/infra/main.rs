//! infra/ checked without AWS or a Terraform binary: the HCL is parsed and compared with what
//! the functions read and call (`against_code`), the EventBridge patterns are run on the fixtures
//! (`events`), and the layout and references are checked as `terraform fmt` and `validate` would
//! (`layout`).

mod against_code;
mod events;
mod layout;

mod code;
mod fmt;
#[path = "hcl.rs"]
mod hcl_model;
mod iam;
mod pattern;
mod refs;
mod source;
mod support;

//! What the live-daemon benches share (`#[path = "../common/mod.rs"] mod
//! common;`): timing a child process, the machine line, rewriting a marked
//! section of BENCHMARKS.md, and the tiny guest's domain XML.

// Each bench uses its own part of this.
#![allow(dead_code)]

pub mod machine;
pub mod measure;
pub mod section;
pub mod settings;
pub mod stop;
pub mod tiny;

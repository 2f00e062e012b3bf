//! doctor checks

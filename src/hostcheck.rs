//! host probes

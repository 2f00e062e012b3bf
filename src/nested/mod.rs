//! The nested libvirt host: the only place that talks to Docker (bollard).
